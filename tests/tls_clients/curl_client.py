"""curl as certificates.md §7 invokes it: `--cacert root.pem`, `--resolve HOST:PORT:IP`, no proxy
unless one is given (`--proxy http://PHOST:PPORT`, then the proxy resolves the name).

Debian's curl also trusts `--capath /etc/ssl/certs` by default, even with `--cacert`: the harness
points `--capath` at an empty directory so the given root is the only trust anchor."""

from __future__ import annotations

from pathlib import Path

from tests.tls_clients.launch import require, run_client
from tests.tls_clients.target import ClientResult, Target, bracketed

TIMEOUT = 20.0
MAX_TIME = 10


def check_curl(target: Target, workdir: Path) -> ClientResult:
    """curl trusting only `target.root`; ok = exit 0 and the marker in the body."""
    curl = require("curl", "curl")
    empty = workdir / "curl-capath"
    empty.mkdir(exist_ok=True)
    host = target.ascii_host
    argv = [curl, "-sS", "--max-time", str(MAX_TIME), "--cacert", str(target.root), "--capath", str(empty)]
    argv += ["--user-agent", "interca-tls-test curl"]
    if target.proxy is not None:
        argv += ["--proxy", f"http://{bracketed(target.proxy[0])}:{target.proxy[1]}"]
    else:
        argv += ["--noproxy", "*"]
        if not target.ip_host:
            argv += ["--resolve", f"{host}:{target.port}:{bracketed(target.connect_ip)}"]
    argv.append(target.url(host))
    finished = run_client(argv, timeout=TIMEOUT, cwd=str(workdir))
    if finished.returncode is None:
        return ClientResult(False, f"curl timed out after {TIMEOUT:.0f} s")
    if finished.returncode != 0:
        # stderr: "curl: (60) SSL certificate problem: ..." then a pointer to curl's docs.
        first = next((line for line in finished.stderr.splitlines() if line.startswith("curl:")), "")
        return ClientResult(False, f"exit {finished.returncode}: {first or finished.stderr.strip()[-800:]}")
    if target.marker not in finished.stdout:
        return ClientResult(False, f"no {target.marker!r} in the body: {finished.stdout[:200]!r}")
    return ClientResult(True, f"body: {finished.stdout[:200]}")
