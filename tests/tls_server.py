"""A threaded HTTPS test server on a loopback port whose certificate comes from a `mint` callable
asked in the SNI callback (certificates.md §7 "Harness"), so real TLS clients can be pointed at the
leaves of any minter: `interca.domain.x509.leaf.build_leaf` under the test PKI today, the issuing
engine tomorrow.

Every HTTP request is answered with the body `OK-MARKER <host>` and logged (SNI, Host, User-Agent).
Handshakes run in worker threads: browsers open speculative connections that never send a
ClientHello, and one of those must not stall the next client.

pyOpenSSL rather than `ssl`: the standard library loads keys only from files, and leaf private keys
never touch disk (certificates.md §6.1).
"""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from OpenSSL import SSL

MARKER = "OK-MARKER"
"""The body prefix every answer carries: `OK-MARKER <host>`."""

Mint = Callable[[Sequence[str]], tuple[tuple[bytes, ...], Any]]
"""`mint(names) -> (chain_der, key)`: `names` is `(sni,)`, or `(local IP,)` when the client sent no
SNI (§6.3); `chain_der` is what the server sends, leaf first; `key` is the leaf's private key as a
`cryptography` object. Raising refuses the handshake (the reason goes to `TlsTestServer.failures`)."""

_log = logging.getLogger(__name__)

IO_TIMEOUT = 15.0  # per connection: handshake plus one request
MAX_REQUEST_HEAD = 64 * 1024


@dataclass(frozen=True)
class LoggedRequest:
    """One HTTP request the server answered: what the client asked for and who it said it was."""

    sni: str | None
    host: str
    user_agent: str
    path: str


@dataclass(frozen=True)
class Served:
    """One certificate chain the server presented: the SNI the client sent (`None`: none), the
    names `mint` was asked for and the chain it returned (leaf first)."""

    sni: str | None
    names: tuple[str, ...]
    chain: tuple[x509.Certificate, ...]


def serve_leaf_alone(mint: Mint) -> Mint:
    """A `mint` that sends only the leaf, without its intermediate (the noint control, §7)."""

    def leaf_only(names: Sequence[str]) -> tuple[tuple[bytes, ...], Any]:
        chain, key = mint(names)
        return chain[:1], key

    return leaf_only


def serve_for_name(mint: Mint, name: str) -> Mint:
    """A `mint` that presents the certificate for `name` whatever the client asked for (the
    wrongname control, §7)."""

    def other_name(names: Sequence[str]) -> tuple[tuple[bytes, ...], Any]:
        return mint((name,))

    return other_name


class TlsTestServer(socketserver.ThreadingTCPServer):
    """HTTPS on `127.0.0.1:<port 0>` (or `bind`), certificates from `mint` per handshake.

    Use as a context manager; `port` is the listening port. `requests`, `served` and `failures`
    are appended to by the worker threads (read them after the client has finished).
    """

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, mint: Mint, bind: str = "127.0.0.1") -> None:
        self.address_family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        super().__init__((bind, 0), _ConnectionHandler)
        self.mint = mint
        self.requests: list[LoggedRequest] = []
        self.served: list[Served] = []
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def __enter__(self) -> TlsTestServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

    def record(self, what: LoggedRequest | Served | str) -> None:
        """Append one log entry (thread-safe)."""
        with self._lock:
            if isinstance(what, LoggedRequest):
                self.requests.append(what)
            elif isinstance(what, Served):
                self.served.append(what)
            else:
                self.failures.append(what)

    def tls_context(self) -> SSL.Context:
        """The context every connection starts with: TLS 1.2+, no certificate until SNI is known."""
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.set_tlsext_servername_callback(self._choose_certificate)
        return context

    def _choose_certificate(self, connection: SSL.Connection) -> None:
        # OpenSSL calls the servername callback for every ClientHello, also one without SNI.
        raw = connection.get_servername()
        sni = raw.decode("ascii") if raw is not None else None
        names = (sni,) if sni is not None else (_local_ip(connection),)
        try:
            chain_der, key = self.mint(names)
        except Exception as exc:  # any refusal: the handshake fails, the test reads why
            # Not re-raised: pyOpenSSL would print it through sys.excepthook. Without a
            # certificate the handshake fails all the same.
            self.record(f"mint{names} refused: {type(exc).__name__}: {exc}")
            return
        chain = tuple(x509.load_der_x509_certificate(der) for der in chain_der)
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.use_certificate(chain[0])
        context.use_privatekey(key)
        for cert in chain[1:]:
            context.add_extra_chain_cert(cert)
        connection.set_context(context)
        self.record(Served(sni, names, chain))


class _ConnectionHandler(socketserver.BaseRequestHandler):
    """One connection: handshake, then one HTTP request answered with the marker."""

    server: TlsTestServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setblocking(False)
        connection = SSL.Connection(self.server.tls_context(), sock)
        connection.set_accept_state()
        deadline = time.monotonic() + IO_TIMEOUT
        try:
            _pump(connection.do_handshake, sock, deadline)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < MAX_REQUEST_HEAD:
                head += _pump(lambda: connection.recv(16384), sock, deadline)
            request = _parse_request(head, connection)
            self.server.record(request)
            _log.info(
                "GET %s host=%s sni=%s user-agent=%s",
                request.path,
                request.host,
                request.sni,
                request.user_agent,
            )
            body = f"{MARKER} {request.host}".encode()
            answer = (
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                + f"Content-Length: {len(body)}\r\n".encode()
                + b"Connection: close\r\n\r\n"
                + body
            )
            while answer:
                sent = _pump(lambda: connection.send(answer), sock, deadline)
                answer = answer[sent:]
            _pump(connection.shutdown, sock, deadline)
        except (SSL.Error, OSError, TimeoutError, EOFError):
            # Clients that reject the certificate (and openssl s_client with </dev/null) hang up
            # here; the client side reports why.
            pass


def _pump(operation: Callable[[], Any], sock: socket.socket, deadline: float) -> Any:
    """Run a non-blocking pyOpenSSL operation to completion, waiting on the socket as it asks."""
    while True:
        try:
            return operation()
        except SSL.WantReadError:
            readable, writable = [sock], []
        except SSL.WantWriteError:
            readable, writable = [], [sock]
        except SSL.ZeroReturnError:
            raise EOFError from None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        select.select(readable, writable, [], remaining)


def _parse_request(head: bytes, connection: SSL.Connection) -> LoggedRequest:
    lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    if not lines or len(lines[0].split(" ")) != 3:
        raise EOFError
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    raw_sni = connection.get_servername()
    return LoggedRequest(
        sni=raw_sni.decode("ascii") if raw_sni is not None else None,
        host=_without_port(headers.get("host", "")),
        user_agent=headers.get("user-agent", ""),
        path=lines[0].split(" ")[1],
    )


def _without_port(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.index("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _local_ip(connection: SSL.Connection) -> str:
    """The address the client connected to: the name to mint for without SNI (§6.3)."""
    address = connection.getsockname()[0]  # pyOpenSSL forwards socket methods
    return str(ipaddress.ip_address(address.split("%", 1)[0]))


class TunnelProxy(socketserver.ThreadingTCPServer):
    """A plain HTTP CONNECT proxy on `127.0.0.1:<port 0>` that proves the harness's proxy mode
    (certificates.md §7 "Through `interca proxy`") before `interca proxy` exists: it resolves
    names itself (`route(host, port) -> (ip, port)`, default every name to 127.0.0.1, as the
    test addon maps test names to the upstream) and copies bytes both ways without looking at
    them. `tunnels` logs each `CONNECT` authority."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, route: Callable[[str, int], tuple[str, int]] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _TunnelHandler)
        self.route = route or (lambda host, port: ("127.0.0.1", port))
        self.tunnels: list[str] = []
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def __enter__(self) -> TunnelProxy:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

    def record(self, authority: str) -> None:
        """Log one CONNECT authority (thread-safe)."""
        with self._lock:
            self.tunnels.append(authority)


class _TunnelHandler(socketserver.BaseRequestHandler):
    """One proxy connection: `CONNECT host:port`, `200`, then bytes both ways until either side
    closes. Anything else is answered `405`."""

    server: TunnelProxy

    def handle(self) -> None:
        client: socket.socket = self.request
        client.settimeout(IO_TIMEOUT)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < MAX_REQUEST_HEAD:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(request_line) != 3 or request_line[0] != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        authority = request_line[1]
        self.server.record(authority)
        host, _, port = authority.rpartition(":")
        try:
            upstream = socket.create_connection(
                self.server.route(host.strip("[]"), int(port)), timeout=IO_TIMEOUT
            )
        except (OSError, ValueError):
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            early = head.split(b"\r\n\r\n", 1)[1]  # a client may send its ClientHello at once
            if early:
                upstream.sendall(early)
            _relay(client, upstream)


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes between `a` and `b` until one side closes or both stay silent for IO_TIMEOUT."""
    peers = {a: b, b: a}
    while True:
        readable, _, _ = select.select(list(peers), [], [], IO_TIMEOUT)
        if not readable:
            return
        for sock in readable:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            peers[sock].sendall(data)
