"""The two Python clients of certificates.md §7: default (`python`) and strict (`python-strict`,
VERIFY_X509_STRICT | VERIFY_X509_PARTIAL_CHAIN), each a `python_probe.py` process."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.tls_clients.launch import probe_verdict, run_client
from tests.tls_clients.target import ClientResult, Target, bracketed

PROBE = Path(__file__).with_name("python_probe.py")
TIMEOUT = 20.0


def check_python(target: Target, workdir: Path, *, strict: bool = False) -> ClientResult:
    """Python's `ssl` trusting only `target.root`; ok = verified and the marker received."""
    argv = [sys.executable, "-I", str(PROBE), target.ascii_host, str(target.port), str(target.root)]
    argv.append(target.address)
    if strict:
        argv.append("--strict")
    if target.proxy is not None:
        argv += ["--proxy", f"{bracketed(target.proxy[0])}:{target.proxy[1]}"]
    finished = run_client(argv, timeout=TIMEOUT, cwd=str(workdir))
    return probe_verdict("python-strict" if strict else "python", finished, target, TIMEOUT)


def check_python_strict(target: Target, workdir: Path) -> ClientResult:
    """`check_python` with VERIFY_X509_STRICT | VERIFY_X509_PARTIAL_CHAIN (Python 3.13's default)."""
    return check_python(target, workdir, strict=True)
