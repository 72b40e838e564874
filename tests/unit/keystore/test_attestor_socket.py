"""The attestor socket (hsm.md §8.1): requests and answers cross unchanged, the attestor's refusals
keep their ids, a silent socket is `hsm_attestation_unavailable`, the embedded start hook runs
once, and the socket file is private. The attestor behind it here is a stand-in that records its
calls: what is under test is the transport; the real attestor runs behind it in
tests/integration/test_hsm_attestation.py and test_sdk_hsm.py."""

from __future__ import annotations

import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interca.errors import KeyStoreError
from interca.keystore.attestor_socket import SocketAttestor, serve


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes, bytes | None]] = []

    def key_id_of(self, ref: str) -> bytes:
        raise NotImplementedError

    def attest(self, region: str, key_id: bytes, nonce: bytes | None = None) -> bytes:
        self.calls.append((region, key_id, nonce))
        if region == "EUROPE":
            raise KeyStoreError("attestation_wrong_device", "Region EUROPE's attestation key does not vouch.")
        return b"-----BEGIN CERTIFICATE-----\n" + key_id.hex().encode() + b"\n"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ia-", dir="/tmp") as d:
        yield Path(d)


def _serving(attestor: Recorder, path: Path) -> None:
    threading.Thread(target=serve, args=(attestor, path), daemon=True).start()
    deadline = time.monotonic() + 10
    while not path.exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_requests_answers_and_refusals_cross_the_socket(short_dir: Path) -> None:
    recorder, path = Recorder(), short_dir / "s" / "attestor.sock"
    _serving(recorder, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    client = SocketAttestor(path)
    assert client.attest("US", b"\x01\x02") == b"-----BEGIN CERTIFICATE-----\n0102\n"
    assert client.attest("US", b"\x03", b"\xff" * 32).endswith(b"03\n")
    with pytest.raises(KeyStoreError) as exc:
        client.attest("EUROPE", b"\x04")
    assert exc.value.error_id == "attestation_wrong_device"
    assert exc.value.message == "[attestation_wrong_device] Region EUROPE's attestation key does not vouch."
    assert recorder.calls == [("US", b"\x01\x02", None), ("US", b"\x03", b"\xff" * 32), ("EUROPE", b"\x04", None)]


def test_nothing_listening_is_unavailable_and_the_start_hook_runs_once(short_dir: Path) -> None:
    path = short_dir / "attestor.sock"
    with pytest.raises(KeyStoreError) as exc:
        SocketAttestor(path).attest("US", b"\x01")
    assert exc.value.error_id == "hsm_attestation_unavailable"
    assert "interca attestor serve" in exc.value.message

    recorder, starts = Recorder(), []

    def start() -> None:
        starts.append(1)
        _serving(recorder, path)

    client = SocketAttestor(path, start)
    threads = [threading.Thread(target=client.attest, args=("US", bytes([i]))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert starts == [1] and len(recorder.calls) == 8


def test_a_socket_path_too_long_names_the_setting(short_dir: Path) -> None:
    path = short_dir / ("x" * 120) / "attestor.sock"
    with pytest.raises(KeyStoreError) as exc:
        SocketAttestor(path).attest("US", b"\x01")
    assert "INTERCA_ATTESTOR_SOCKET" in exc.value.message
    assert not os.path.exists(path.parent)
