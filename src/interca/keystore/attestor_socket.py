"""The attestor as its own process (hsm.md §8.1): `interca attestor serve` answers one operation,
`attest(region, key_id, nonce=None) -> PEM bundle`, on a Unix socket; `SocketAttestor` is the
service's side of it.

Why a process: the attestor plays the HSM firmware. It alone reads the attestation keys' PINs
(`$DATA/attestor/pins`), and its PKCS#11 module is initialised with its own `SOFTHSM2_CONF`. The
embedded default runs it as a child of the service, same user and directory, which separates
nothing yet; a deployment gives it its own user and token directory (§8.1, §9).

Wire format: one JSON object per line each way. Request `{"op": "attest", "region": "US",
"key_id": "<hex>", "nonce": "<hex>" | null}`; answer `{"bundle": "<PEM>"}` or `{"error":
{"id": "<error id>", "message": "<sentence>"}}`: the attestor's `KeyStoreError`s cross the
socket unchanged. The socket file is 0600 in a 0700 directory.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interca.errors import KeyStoreError
from interca.keystore.base import KeyAttestor
from interca.keystore.pkcs11 import key_id_of

log = logging.getLogger(__name__)

MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes, NUL included
MAX_REQUEST = 4096
START_TIMEOUT = 30.0  # the child imports interca and opens its tokens before it listens
CALL_TIMEOUT = 60.0


def check_socket_path(path: Path) -> None:
    """Refuse a path a Unix socket cannot have, naming the setting to change."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise KeyStoreError(
            "hsm_attestation_unavailable",
            f"The attestor socket path is longer than {MAX_SOCKET_PATH} bytes: set "
            "INTERCA_ATTESTOR_SOCKET to a shorter path.",
        )


# the attestor process ------------------------------------------------------------------------


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST)
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or request.get("op") != "attest":
                raise ValueError("unknown operation")
            region = str(request["region"])
            key_id = bytes.fromhex(str(request["key_id"]))
            nonce = bytes.fromhex(request["nonce"]) if request.get("nonce") is not None else None
        except (ValueError, KeyError, TypeError):
            self._answer({"error": {"id": "attestation_malformed", "message": "Malformed attestor request."}})
            return
        try:
            bundle = self.server.attestor.attest(region, key_id, nonce)
        except KeyStoreError as exc:
            text = exc.message.removeprefix(f"[{exc.error_id}] ")
            self._answer({"error": {"id": exc.error_id, "message": text}})
        except Exception:  # the firmware answers, it never hangs up
            log.exception("attestor: attest failed")
            self._answer({"error": {"id": "hsm_attestation_unavailable", "message": "The attestor failed."}})
        else:
            self._answer({"bundle": bundle.decode("ascii")})

    def _answer(self, body: dict[str, Any]) -> None:
        self.wfile.write(json.dumps(body).encode() + b"\n")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, attestor: KeyAttestor) -> None:
        self.attestor = attestor
        super().__init__(str(path), _Handler)


def serve(attestor: KeyAttestor, path: Path, *, parent_pid: int | None = None) -> None:
    """Answer `attest` requests on `path` until killed (or, with `parent_pid`, until that process
    is gone: the embedded attestor never outlives the service that started it)."""
    check_socket_path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.unlink(missing_ok=True)  # a socket left by a killed attestor
    # Bound and listening under a temporary name, then renamed: whoever sees `path` can connect.
    pending = path.with_name(f".{os.getpid()}.sock")
    check_socket_path(pending)
    pending.unlink(missing_ok=True)
    old = os.umask(0o177)
    try:
        server = _Server(pending, attestor)
    finally:
        os.umask(old)
    os.replace(pending, path)
    if parent_pid is not None:
        threading.Thread(target=_exit_with_parent, args=(server, parent_pid), daemon=True).start()
    log.info("attestor: listening on %s", path)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        path.unlink(missing_ok=True)


def _exit_with_parent(server: _Server, parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1)
    log.info("attestor: the service is gone; stopping")
    server.shutdown()


# the service's side -------------------------------------------------------------------------


class SocketAttestor:
    """`KeyAttestor` over the attestor's socket. When nothing answers and `start` is given (the
    embedded default), `start()` launches the attestor once and the call waits for it to listen."""

    def __init__(self, path: Path, start: Callable[[], None] | None = None) -> None:
        self.path = path
        self._start = start
        self._started = False
        self._lock = threading.Lock()

    def key_id_of(self, ref: str) -> bytes:
        return key_id_of(ref)

    def attest(self, region: str, key_id: bytes, nonce: bytes | None = None) -> bytes:
        request = {"op": "attest", "region": region, "key_id": key_id.hex(), "nonce": nonce and nonce.hex()}
        answer = self._call(json.dumps(request).encode() + b"\n")
        if "bundle" in answer:
            return str(answer["bundle"]).encode("ascii")
        error = answer.get("error") or {}
        error_id = str(error.get("id", "hsm_attestation_unavailable"))
        raise KeyStoreError(error_id, str(error.get("message", "")))

    def _call(self, request: bytes) -> dict[str, Any]:
        check_socket_path(self.path)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(CALL_TIMEOUT)
                    sock.connect(str(self.path))
                    sock.sendall(request)
                    with sock.makefile("rb") as answer:
                        line = answer.readline()
                result = json.loads(line)
                if not isinstance(result, dict):
                    raise ValueError("not an object")
                return result
            except (FileNotFoundError, ConnectionRefusedError):
                if not self._launch() or time.monotonic() > deadline:
                    raise _unavailable() from None
                time.sleep(0.1)
            except (OSError, ValueError):
                log.warning("attestor: no usable answer on %s", self.path)
                raise _unavailable() from None

    def _launch(self) -> bool:
        """Start the embedded attestor once; False when there is nothing to start."""
        if self._start is None:
            return False
        with self._lock:
            if not self._started:
                self._started = True
                self._start()
        return True


def _unavailable() -> KeyStoreError:
    return KeyStoreError(
        "hsm_attestation_unavailable",
        "The HSM attestor does not answer: start it (`interca attestor serve`) or check its log.",
    )
