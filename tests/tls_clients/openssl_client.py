"""`openssl s_client` as certificates.md §7 invokes it, with its success rule: exit 0,
`Verify return code: 0 (ok)` **and** a server certificate in the output (s_client also prints
"ok" when no certificate arrived at all)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.tls_clients.launch import require, run_client
from tests.tls_clients.target import ClientResult, Target, bracketed

TIMEOUT = 20.0
_VERIFY_ERROR = re.compile(r"^verify error:.*$", re.M)
_RETURN_CODE = re.compile(r"^\s*Verify return code: (\d+) \((.*)\)\s*$", re.M)


def check_openssl(target: Target, workdir: Path) -> ClientResult:
    """s_client trusting only `target.root` (-no-CApath -no-CAstore), host name checked with
    -verify_hostname (-verify_ip for an IP host, without -servername: no SNI)."""
    openssl = require("openssl", "openssl")
    host = target.ascii_host
    peer = host if target.proxy is not None else target.address
    argv = [openssl, "s_client", "-connect", f"{bracketed(peer)}:{target.port}"]
    if target.ip_host:
        argv += ["-verify_ip", host]
    else:
        argv += ["-servername", host, "-verify_hostname", host]
    argv += ["-CAfile", str(target.root), "-no-CApath", "-no-CAstore", "-verify_return_error"]
    if target.proxy is not None:
        argv += ["-proxy", f"{bracketed(target.proxy[0])}:{target.proxy[1]}"]
    finished = run_client(argv, timeout=TIMEOUT, cwd=str(workdir))
    if finished.returncode is None:
        return ClientResult(False, f"openssl s_client timed out after {TIMEOUT:.0f} s")
    output = finished.stdout + finished.stderr
    code = _RETURN_CODE.findall(output)
    has_certificate = "-----BEGIN CERTIFICATE-----" in output
    ok = finished.returncode == 0 and code[-1:] == [("0", "ok")] and has_certificate
    if ok:
        return ClientResult(True, "Verify return code: 0 (ok), server certificate received")
    reasons = _VERIFY_ERROR.findall(output)
    if code:
        reasons.append(f"Verify return code: {code[-1][0]} ({code[-1][1]})")
    if code[-1:] == [("0", "ok")] and not has_certificate:
        reasons.append("no server certificate in the output")
    if not reasons:  # no verification at all: a connection or handshake error
        reasons = [line for line in finished.stderr.splitlines() if line.strip()][-2:]
    return ClientResult(False, f"exit {finished.returncode}: " + "; ".join(dict.fromkeys(reasons)))
