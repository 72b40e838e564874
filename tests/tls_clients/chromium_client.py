"""Headless Chromium as certificates.md §7 runs it: a fresh HOME whose NSS database
(`$HOME/.pki/nssdb`, made with certutil) holds only the test root, a fresh `--user-data-dir`,
`--host-resolver-rules` instead of DNS, `--dump-dom` to read the page. Chromium prints nothing when a
page fails, so the reason comes from its NetLog: each `params.net_error` in -299...-200 (the
certificate errors) mapped through the log's own `constants.netError` table.

Browsers are given the host as typed (`bücher.example.test`); the A-label is Chromium's job.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tests.tls_clients.launch import client_env, require, run_client
from tests.tls_clients.target import ClientResult, Target, bracketed

TIMEOUT = 30.0
TEST_DOMAINS = ("example.test", "allowed.test")
_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
)  # fmt: skip


def check_chromium(target: Target, workdir: Path) -> ClientResult:
    """Load `https://HOST:PORT/` once; ok = the marker in the dumped DOM, else the NetLog's errors."""
    chromium = require("chromium", "chromium")
    # Fresh directories even when the caller reuses `workdir`: a profile or NSS database left
    # from an earlier run would carry its trust and state into this one.
    home = Path(tempfile.mkdtemp(prefix="chromium-home-", dir=workdir))
    _trust_only(target.root, home)
    netlog = home / "netlog.json"
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir))
    argv = [chromium, *_FLAGS, f"--user-data-dir={profile}", f"--log-net-log={netlog}"]
    if target.proxy is not None:
        # "<-loopback>" removes the implicit bypass of loopback names, so they use the proxy too.
        argv += [f"--proxy-server=http://{bracketed(target.proxy[0])}:{target.proxy[1]}"]
        argv += ["--proxy-bypass-list=<-loopback>"]
    elif not target.ip_host:
        argv.append(f"--host-resolver-rules={resolver_rules(target)}")
    argv += ["--dump-dom", target.url(target.host)]
    finished = run_client(argv, timeout=TIMEOUT, env=client_env({"HOME": str(home)}), cwd=str(workdir))
    shutil.rmtree(profile, ignore_errors=True)  # 2-3 MB of browser state; the NetLog stays
    if finished.returncode is not None and target.marker in finished.stdout:
        return ClientResult(True, f"marker in the DOM: {target.marker}")
    reasons = netlog_errors(netlog, target.port)
    if finished.returncode is None:
        reasons.insert(0, f"timed out after {TIMEOUT:.0f} s")
    if not reasons:
        tail = " | ".join(finished.stderr.strip().splitlines()[-3:])
        reasons.append(f"no marker, no net_error in the NetLog (exit {finished.returncode}): {tail}")
    return ClientResult(False, "; ".join(reasons))


def resolver_rules(target: Target) -> str:
    """The §7 rules (every test domain to the connect address), plus the host itself when it lies
    outside them."""
    address = bracketed(target.connect_ip)
    rules = [f"MAP *.{domain} {address}" for domain in TEST_DOMAINS]
    if not target.ascii_host.endswith(tuple(f".{d}" for d in TEST_DOMAINS)):
        rules.append(f"MAP {target.ascii_host} {address}")
    return ", ".join(rules)


def _trust_only(root: Path, home: Path) -> None:
    """A new NSS database in `home/.pki/nssdb` whose only added certificate is `root`, trusted
    for TLS servers ("C,,")."""
    certutil = require("certutil", "libnss3-tools")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    for args in (["-N", "--empty-password"], ["-A", "-t", "C,,", "-n", "Test Org Root", "-i", str(root)]):
        finished = run_client([certutil, "-d", f"sql:{nssdb}", *args], timeout=20)
        if finished.returncode != 0:
            raise RuntimeError(f"certutil {args[0]} failed: {finished.stderr.strip()}")


def netlog_errors(netlog: Path, port: int) -> list[str]:
    """The distinct net errors, named, of the NetLog sources that concern `port` (URL request,
    connect job, socket); certificate errors (-299...-200) alone when there are any, since the
    errors that follow them (aborted requests) say nothing new. Other sources are background
    fetches that fail offline (ERR_NAME_NOT_RESOLVED) and would mislead."""
    log = _load_netlog(netlog)
    if log is None:
        return []
    names = {int(code): name for name, code in log.get("constants", {}).get("netError", {}).items()}
    events: list[dict[str, Any]] = [e for e in log.get("events", []) if isinstance(e, dict)]
    needle = f":{port}"
    sources = {_source(e) for e in events if needle in json.dumps(e.get("params", {}))}
    codes: list[int] = []
    for event in events:
        code = (event.get("params") or {}).get("net_error")
        if isinstance(code, int) and code < 0 and _source(event) in sources and code not in codes:
            codes.append(code)
    certificate = [c for c in codes if -299 <= c <= -200]
    return [f"{names.get(c, 'net_error')} ({c})" for c in certificate or codes]


def _source(event: dict[str, Any]) -> Any:
    return (event.get("source") or {}).get("id")


def _load_netlog(netlog: Path) -> dict[str, Any] | None:
    """The NetLog, also when Chromium was killed before closing the JSON (then the events array
    ends in a comma or a partial event)."""
    try:
        text = netlog.read_text(errors="replace")
    except OSError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    cut = text.rfind("},\n")  # events are written one per line
    for candidate in (text[: cut + 1] + "]}" if cut > 0 else "", text.rstrip().rstrip(",") + "]}"):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None
