"""`interca edge`: a plain TLS listener that serves minted leaves (certificates.md §6.3-§6.4, §7).

Every connection gets a leaf from the engine for its SNI (without SNI: the address the client
connected to), sent with the intermediate and the non-root CAs above it, and an HTTP answer
`OK-MARKER <host>`; each request is logged with its host and User-Agent. A refusal
(`invalid_host`, `outside_name_constraints`, `ca_not_valid`, `no_default_ca`) fails the handshake
and closes the connection with a log line naming the refusal: unlike the proxy, the edge has
no upstream to pass the connection through to.

Handshakes run in worker threads, one per connection, each with a timeout: browsers open
speculative connections that never send a ClientHello (§7).
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from OpenSSL import SSL

from interca.domain.x509.hostnames import HostName
from interca.domain.x509.leaf_refusal import LeafRefused
from interca.proxy.minter import Minter, Outcomes, names_for, shown

log = logging.getLogger(__name__)

MAX_REQUEST_HEAD = 16 * 1024
_CONTEXT_CACHE = 32  # SSL contexts per CA chain; a default switch adds one


@dataclass
class _Connection:
    """What the SNI callback learnt about one connection, for the thread that runs it."""

    destination: str
    names: list[HostName] = field(default_factory=list)
    host: str | None = None  # the name the leaf was minted for, once it was
    refusal: LeafRefused | None = None
    failed: bool = False


class Edge:
    """A TLS listener on `host:port` (port 0 picks a free one) serving leaves from `minter`.

    `serve_forever()` accepts until `stop()`; `outcomes` counts each handshake by outcome;
    `timeout` bounds every read and write of a connection (seconds); at most `max_connections`
    connections are served at once (further ones wait in the listen backlog).
    """

    def __init__(
        self,
        minter: Minter,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        outcomes: Outcomes | None = None,
        timeout: float = 30.0,
        max_connections: int = 256,
    ) -> None:
        self._minter = minter
        self._outcomes = outcomes
        self._timeout = timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._contexts: dict[tuple[bytes, ...], SSL.Context] = {}
        self._sni_context = _new_context()
        self._sni_context.set_tlsext_servername_callback(self._on_client_hello)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host, port), family=family, backlog=128)
        self._sock.settimeout(0.5)  # so that serve_forever notices stop()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def serve_forever(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    sock, peer = self._sock.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if self._stopping.is_set():
                        break
                    raise
                self._slots.acquire()
                threading.Thread(
                    target=self._serve, args=(sock, peer), name=f"edge {peer[0]}:{peer[1]}", daemon=True
                ).start()
        finally:
            self._sock.close()

    def stop(self) -> None:
        """Stop accepting (within half a second); connections being served run to their end."""
        self._stopping.set()

    def _serve(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        try:
            with sock:
                self._with_timeouts(sock)
                state = _Connection(destination=str(sock.getsockname()[0]))
                conn = SSL.Connection(self._sni_context, sock)
                conn.set_app_data(state)
                conn.set_accept_state()
                try:
                    conn.do_handshake()
                except (SSL.Error, OSError) as exc:
                    self._handshake_failed(state, peer, exc)
                    return
                self._answer(conn, state, peer)
        finally:
            self._slots.release()

    def _with_timeouts(self, sock: socket.socket) -> None:
        # A blocking socket with kernel timeouts: pyOpenSSL cannot wait on a Python-level timeout,
        # and a read that times out surfaces as an SSL error that ends the connection.
        sock.setblocking(True)
        seconds = int(self._timeout)
        micros = int((self._timeout - seconds) * 1_000_000)
        timeval = struct.pack("ll", seconds, micros)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)

    def _on_client_hello(self, conn: SSL.Connection) -> None:
        """OpenSSL's SNI callback, also called without SNI. On a refusal or a fault no certificate
        is set, so the handshake fails; the thread serving the connection logs why. Never raises."""
        state: _Connection = conn.get_app_data()
        raw = conn.get_servername()
        sni = raw.decode("utf-8", "replace") if raw is not None else None
        try:
            state.names = names_for(sni, state.destination)
            minted = self._minter.mint(state.names)
            conn.set_context(self._context_for(minted.chain[1:]))
            conn.use_certificate(x509.load_der_x509_certificate(minted.chain[0]))
            conn.use_privatekey(minted.key)
        except LeafRefused as exc:
            state.refusal = exc
            self._count(exc.id)
            return
        except Exception:
            state.failed = True
            self._count("error")
            log.exception("edge: minting a leaf for %s failed; closing the connection", shown(state.names))
            return
        state.host = str(state.names[0])
        self._count("minted")

    def _handshake_failed(self, state: _Connection, peer: tuple[str, int], exc: Exception) -> None:
        if state.refusal is not None:
            log.warning(
                "edge: refused %s for %s:%s, connection closed: %s",
                shown(state.names),
                peer[0],
                peer[1],
                state.refusal.message,
            )
        elif not state.failed:  # the client gave up or refused the leaf: not interca's fault
            log.info("edge: handshake with %s:%s failed: %s", peer[0], peer[1], exc)

    def _answer(self, conn: SSL.Connection, state: _Connection, peer: tuple[str, int]) -> None:
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < MAX_REQUEST_HEAD:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                head += chunk
        except SSL.ZeroReturnError:
            pass
        except (SSL.Error, OSError) as exc:
            log.info("edge: connection from %s:%s for %s ended: %s", peer[0], peer[1], state.host, exc)
            return
        if not head:
            return  # a handshake-only client (openssl s_client </dev/null)
        request_line, _, headers = head.partition(b"\r\n")
        log.info(
            "edge: %s for %s, Host %s, User-Agent %s",
            ascii(request_line.decode("latin-1")[:200]),
            state.host,
            ascii(_header(headers, b"host")),
            ascii(_header(headers, b"user-agent")),
        )
        body = f"OK-MARKER {state.host}\n".encode()
        response = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        ) + body
        try:
            conn.sendall(response)
            conn.shutdown()
        except (SSL.Error, OSError):
            pass

    def _context_for(self, intermediates: tuple[bytes, ...]) -> SSL.Context:
        """The context that sends these CA certificates after the leaf (one per CA chain)."""
        with self._lock:
            context = self._contexts.get(intermediates)
            if context is None:
                if len(self._contexts) >= _CONTEXT_CACHE:
                    self._contexts.clear()  # connections keep a reference to theirs
                context = _new_context()
                for der in intermediates:
                    context.add_extra_chain_cert(x509.load_der_x509_certificate(der))
                self._contexts[intermediates] = context
            return context

    def _count(self, outcome: str) -> None:
        if self._outcomes is not None:
            self._outcomes.count(outcome)


def _new_context() -> SSL.Context:
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
    context.set_alpn_select_callback(_select_http1)
    return context


def _select_http1(conn: SSL.Connection, offered: list[bytes]) -> Any:
    # The edge speaks HTTP/1.1 only; a client offering only other protocols gets no ALPN at all.
    return b"http/1.1" if b"http/1.1" in offered else SSL.NO_OVERLAPPING_PROTOCOLS


def _header(headers: bytes, name: bytes) -> str:
    for line in headers.split(b"\r\n"):
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == name:
            return value.strip().decode("latin-1")[:200]
    return ""
