"""`interca edge` as a real process over a real data directory (certificates.md §6.3-§6.4, §7): its
engine mints with the deployment's default CA (the built-in one), the handshake sends leaf +
intermediate (never the root), real clients verify the leaf against the default CA's root, and
every success has its control: a client trusting another root fails, and a name the engine
refuses closes the connection with a log line naming the refusal, counted in the metrics."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from tests.conftest import free_port
from tests.pki import TestPKI
from tests.tls_clients import check

from interca.app import build_services
from interca.config import load_settings
from interca.domain.principal import Principal

START_BOUND = 60.0  # seconds: a hang bound for the process to listen, never a timing assertion
UNTRUSTED = r"unable to get local issuer certificate|unable to verify the first certificate"


@dataclass
class Edge:
    port: int
    metrics_port: int
    root: Path  # the built-in root: the default CA's trust anchor
    intermediate: x509.Certificate  # the built-in intermediate (the default CA)
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def metric(self, outcome: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        found = re.search(rf'^interca_edge_handshakes_total{{outcome="{outcome}"}} (\S+)$', text, re.M)
        assert found, f"no {outcome} handshake counter in the edge's metrics"
        return float(found.group(1))


def builtin_chain(data_dir: Path) -> tuple[x509.Certificate, x509.Certificate]:
    """The built-in (default) CA's (intermediate, root) of the deployment in `data_dir`."""
    services = build_services(load_settings(data_dir=data_dir))
    try:
        body = services.lifecycle.download_cert_chain(Principal.system("edge-test"), 1).body
    finally:
        services.ctx.db.dispose()
    intermediate, root = x509.load_pem_x509_certificates(body.encode())
    return intermediate, root


def wait_listening(port: int, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + START_BOUND
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the process exited with {process.returncode}:\n{log_file.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(
        f"nothing listened on port {port} within {START_BOUND:.0f} s:\n{log_file.read_text()[-3000:]}"
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def clean_env(data_dir: Path) -> dict[str, str]:
    """The environment of a child process: this test's data directory, nothing ambient."""
    ambient = ("INTERCA_", "PYTEST_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(ambient)}
    env["INTERCA_DATA_DIR"] = str(data_dir)
    return env


@pytest.fixture(scope="module")
def edge(template_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    work = tmp_path_factory.mktemp("edge")
    data = work / "data"
    shutil.copytree(template_data_dir, data)
    intermediate, root = builtin_chain(data)
    root_file = work / "builtin-root.pem"
    root_file.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    port, metrics_port = free_port(), free_port()
    log_file = work / "edge.log"
    argv = [sys.executable, "-m", "interca", "edge", "--listen", f"127.0.0.1:{port}"]
    argv += ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
    with log_file.open("wb") as log:
        process = subprocess.Popen(argv, env=clean_env(data), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, process, log_file)
        yield Edge(port, metrics_port, root_file, intermediate, log_file)
    finally:
        stop(process)


@pytest.fixture(scope="module")
def unrelated_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("unrelated") / "root.pem"
    path.write_bytes(TestPKI().new_root("interca Test Unrelated Root").cert_pem)
    return path


def blocking_with_timeout(sock: socket.socket, seconds: int = 20) -> None:
    """pyOpenSSL needs a blocking socket; the kernel's timeouts keep a stuck peer from hanging us."""
    sock.setblocking(True)
    for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
        sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("ll", seconds, 0))


def served_chain(port: int, sni: bytes | None) -> list[x509.Certificate]:
    """What the edge presents for `sni` (None: no SNI), read without verifying anything."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        blocking_with_timeout(sock)
        conn = SSL.Connection(context, sock)
        if sni is not None:
            conn.set_tlsext_host_name(sni)
        conn.set_connect_state()
        conn.do_handshake()
        chain = conn.get_peer_cert_chain(as_cryptography=True)
        conn.shutdown()
    assert chain is not None
    return chain


@pytest.mark.parametrize("client", ["openssl", "curl", "python", "python-strict"])
def test_edge_leaf_verifies_against_the_default_root(edge: Edge, client: str, tmp_path: Path) -> None:
    result = check(client, host="good.example.test", port=edge.port, root=edge.root, workdir=tmp_path)
    assert result.ok, f"{client}: {result.detail}"


@pytest.mark.parametrize("client", ["openssl", "curl", "python"])
def test_edge_client_trusting_another_root_fails(
    edge: Edge, unrelated_root: Path, client: str, tmp_path: Path
) -> None:
    result = check(client, host="good.example.test", port=edge.port, root=unrelated_root, workdir=tmp_path)
    assert not result.ok, f"{client} accepted a leaf of a root it does not trust: {result.detail}"
    assert re.search(UNTRUSTED, result.detail), f"{client} failed for another reason: {result.detail}"


def test_edge_sends_leaf_and_intermediate_never_the_root(edge: Edge) -> None:
    chain = served_chain(edge.port, b"good.example.test")
    assert [c.subject for c in chain[1:]] == [edge.intermediate.subject]
    sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["good.example.test"]
    assert chain[0].issuer == edge.intermediate.subject


def test_edge_without_sni_mints_for_the_destination_address(edge: Edge, tmp_path: Path) -> None:
    leaf = served_chain(edge.port, None)[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    result = check("openssl", host="127.0.0.1", port=edge.port, root=edge.root, workdir=tmp_path)
    assert result.ok, result.detail


def test_edge_refusal_closes_the_connection_and_names_the_refusal(edge: Edge) -> None:
    before = edge.metric("invalid_host")
    with pytest.raises(SSL.Error):
        served_chain(edge.port, b"a*b.example.test")  # a '*' in the SNI: invalid_host (§6.3)
    deadline = time.monotonic() + 10  # hang bound: the edge logs when the handshake has failed
    while "[invalid_host]" not in edge.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next((ln for ln in edge.log().splitlines() if "[invalid_host]" in ln), "")
    assert "refused a*b.example.test" in line and "connection closed" in line, edge.log()[-2000:]
    assert edge.metric("invalid_host") == before + 1
    assert edge.metric("minted") >= 1
