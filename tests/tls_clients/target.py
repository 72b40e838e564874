"""What one client check connects to (certificates.md §7): the host it asks for, in the form each
kind of client is given, where the connection really goes, the one root it trusts and an
optional HTTP CONNECT proxy."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import idna


@dataclass(frozen=True)
class ClientResult:
    """The outcome of one client run: `ok` = verified (and, for HTTP clients, the server's marker
    received); `detail` = why, in the client's own words (error code, verify message, net_error)."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class Target:
    """One server as a client sees it.

    - `host`: the name asked for, as a user would type it (`bücher.example.test`), or an IP
      literal. SNI is sent exactly when it is a DNS name (§7 ip case: no SNI, iPAddress SAN).
    - `port`: the server's port (behind the proxy: the upstream's port).
    - `root`: PEM file of the one root the client trusts.
    - `connect_ip`: where a DNS host really connects to (ignored for IP hosts and through a proxy,
      which resolves names itself).
    - `proxy`: `(host, port)` of an HTTP CONNECT proxy, or `None` for a direct connection.
    """

    host: str
    port: int
    root: Path
    connect_ip: str = "127.0.0.1"
    proxy: tuple[str, int] | None = None

    @property
    def ip_host(self) -> bool:
        """Whether `host` is an IP literal (then no SNI is sent)."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def ascii_host(self) -> str:
        """The host as non-browser clients are given it: IDN labels as A-labels (IDNA 2008)."""
        if self.ip_host or self.host.isascii():
            return self.host.lower()
        return idna.encode(self.host, uts46=True).decode("ascii")

    @property
    def address(self) -> str:
        """The IP address the TCP connection goes to when there is no proxy."""
        return self.host if self.ip_host else self.connect_ip

    @property
    def marker(self) -> str:
        """The body the test server answers for this host (its Host header, A-label form)."""
        return f"OK-MARKER {self.ascii_host}"

    def url(self, host: str) -> str:
        """`https://host:port/`, IPv6 literals bracketed."""
        return f"https://{bracketed(host)}:{self.port}/"


def bracketed(host: str) -> str:
    """An IPv6 literal in brackets (for URLs and `host:port`); anything else unchanged."""
    return f"[{host}]" if ":" in host else host
