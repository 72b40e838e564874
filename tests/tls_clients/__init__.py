"""The real TLS clients of certificates.md §7, one function per client, each run in its own process
with a timeout, trusting only the given root and using no proxy unless one is given.

    result = check("curl", host="good.example.test", port=server.port, root=root_pem, workdir=tmp)
    assert result.ok, result.detail

`CLIENTS` lists the required clients in the §7 table's order; `OPTIONAL_CLIENTS` the ones run only
where their program is present (Java). A required client whose program is missing raises
`ClientUnavailable`, so a test fails and says to run `make test`, rather than a negative control
passing because nothing ran.

Modules: `target.py` (what to connect to, the result), `launch.py` (process, environment,
timeouts), one module per client; `python_probe.py` and `tests/clients/*.js` are the programs the
Python and Node clients run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from tests.tls_clients.chromium_client import check_chromium
from tests.tls_clients.curl_client import check_curl
from tests.tls_clients.java_client import check_java
from tests.tls_clients.launch import ClientUnavailable
from tests.tls_clients.node_client import check_node
from tests.tls_clients.openssl_client import check_openssl
from tests.tls_clients.python_client import check_python, check_python_strict
from tests.tls_clients.target import ClientResult, Target

__all__ = [
    "BROWSERS",
    "CLIENTS",
    "OPTIONAL_CLIENTS",
    "ClientResult",
    "ClientUnavailable",
    "Target",
    "check",
    "present_clients",
]

_CHECKS: dict[str, Callable[[Target, Path], ClientResult]] = {
    "python": check_python,
    "python-strict": check_python_strict,
    "openssl": check_openssl,
    "curl": check_curl,
    "node": check_node,
    "chromium": check_chromium,
}

CLIENTS: tuple[str, ...] = tuple(_CHECKS)
"""The required clients (§7 table, "Required: yes"), in table order."""

OPTIONAL_CLIENTS: dict[str, str] = {"java": "java"}
"""Optional client -> the program whose presence enables it (§7: "when `java` is present"). Go is
left out until a `go` toolchain is part of the test machine."""

_OPTIONAL_CHECKS: dict[str, Callable[[Target, Path], ClientResult]] = {"java": check_java}

BROWSERS = frozenset({"chromium"})
"""Clients given the host as typed (U-labels); the others get A-labels (§7)."""


def present_clients() -> tuple[str, ...]:
    """The required clients plus every optional client whose program is installed."""
    return CLIENTS + tuple(name for name, program in OPTIONAL_CLIENTS.items() if shutil.which(program))


def check(
    client: str,
    *,
    host: str,
    port: int,
    root: Path,
    workdir: Path,
    connect_ip: str = "127.0.0.1",
    proxy: tuple[str, int] | None = None,
) -> ClientResult:
    """Run `client` once against `https://host:port/` trusting only `root` (a PEM file).

    - `host`: a DNS name as typed (IDN allowed: browsers get it as is, other clients its A-label)
      or an IP literal (then no SNI: the server must present an iPAddress SAN).
    - `connect_ip`: where a DNS host connects (curl `--resolve`, Chromium `--host-resolver-rules`).
    - `proxy`: `(host, port)` of an HTTP CONNECT proxy; the client then asks the proxy for
      `host:port` and neither resolves nor connects itself.
    - `workdir`: a directory for the client's files (Chromium's NSS database and NetLog, made
      fresh per call inside it); created when missing.

    Returns `ClientResult(ok, detail)`; `detail` explains a failure in the client's words.
    Raises `ClientUnavailable` when the client's program is not installed, `KeyError` for an
    unknown client.
    """
    run = _CHECKS.get(client) or _OPTIONAL_CHECKS.get(client)
    if run is None:
        raise KeyError(
            f"unknown TLS client {client!r}; known: {', '.join(CLIENTS + tuple(_OPTIONAL_CHECKS))}"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    return run(Target(host=host, port=port, root=root, connect_ip=connect_ip, proxy=proxy), workdir)
