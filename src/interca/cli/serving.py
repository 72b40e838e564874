"""How `interca serve` listens: plain HTTP, or HTTPS plus the plain-HTTP `/pki/*` listener
(api.md §1, certificates.md §6.4). Every refusal happens before the database is touched and
names the option to fix."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from interca.cli.output import console, fail
from interca.config import Settings

DEFAULT_PKI_LISTEN = "127.0.0.1:8079"


def tls_files(cert: Path | None, key: Path | None) -> tuple[str, str] | None:
    """The certificate and key files for HTTPS, None for plain HTTP; refuses (exit 1) when only
    one is given, a file cannot be read, or the two do not load together."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        fail("--tls-cert and --tls-key go together: give both for HTTPS, or neither for plain HTTP.")
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        try:
            path.read_bytes()
        except OSError as exc:
            fail(f"Cannot read {option} {path}: {exc.strerror or exc}.")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A password callback, so an encrypted key is refused here instead of prompting.
        context.load_cert_chain(cert, key, password=lambda: b"")
    except (ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        fail(
            f"--tls-cert {cert} and --tls-key {key} do not load together ({reason}). Give a PEM "
            "certificate (the chain after it, leaf first) and its unencrypted PEM private key."
        )
    return str(cert), str(key)


def listen_address(value: str, option: str) -> tuple[str, int]:
    """`HOST:PORT` (`[v6]:PORT` for IPv6) as a (host, port) pair; refuses anything else."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        fail(f"{option} must be HOST:PORT, e.g. {DEFAULT_PKI_LISTEN}; got {value!r}.")
    return host, int(port)


def check_pki_base_url(settings: Settings) -> None:
    """Serving HTTPS needs `pki_base_url` set explicitly: minted leaves name CRL and CA URLs
    under it, and its default points at the API listener, which then speaks HTTPS."""
    if "pki_base_url" not in settings.model_fields_set:
        fail(
            "Serving HTTPS needs pki_base_url (INTERCA_PKI_BASE_URL or interca.toml): the URL under which "
            "inspected clients fetch /pki/* over plain HTTP, such as the --pki-listen address "
            f"(default {DEFAULT_PKI_LISTEN}). Its default would point at the HTTPS listener."
        )
    if not settings.pki_base_url.startswith("http://"):
        fail(
            "pki_base_url must be an http:// URL (clients fetch CRLs over plain HTTP); "
            f"it is {settings.pki_base_url}."
        )


def run_with_pki_listener(config: Any, pki_config: Any, banner: str) -> bool:
    """Run the API server (`config`) and the plain PKI listener (`pki_config`) in one event loop
    until a signal stops both; True when the API server started. Both sockets are bound first,
    so an address in use is refused (exit 1) before either listener starts."""
    import uvicorn

    main_socket = _bind(config.host, config.port, "--host/--port")
    pki_socket = _bind(pki_config.host, pki_config.port, "--pki-listen")
    console.print(banner, soft_wrap=True)

    class Companion(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the API server takes the signals for both

    class WithCompanion(uvicorn.Server):
        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.companion = Companion(pki_config)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            self.companion.should_exit = True
            super().handle_exit(sig, frame)

        async def serve(self, sockets: Any = None) -> None:
            task = asyncio.create_task(self.companion.serve(sockets=[pki_socket]))
            try:
                await super().serve(sockets)
            finally:
                self.companion.should_exit = True
                await task

    server = WithCompanion(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[main_socket])
    return server.started


def _bind(host: str, port: int, option: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        fail(f"Cannot listen on {host}:{port} ({option}): {exc.strerror or exc}.")
    sock.set_inheritable(True)
    return sock
