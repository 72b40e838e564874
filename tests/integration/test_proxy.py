"""`interca proxy` as a real mitmproxy process (certificates.md §6.3-§6.4, §7 "Through interca
proxy"), run from its own virtualenv `.venv-proxy` (`make proxy-venv`; mitmproxy cannot share the
test virtualenv). Each real client sends `CONNECT` to the proxy and verifies the leaf the proxy
minted against the one root it trusts; behind the proxy, a local HTTPS upstream with its own
certificate (trusted by the proxy through `--upstream-ca`) answers `OK-MARKER <host>`, and
`--map` points the test names at it.

Two deployments, each a copy of the template data directory with its own proxy process:
- `builtin`: the built-in CA is the default. good ✓ every client; wrongroot ✗ every client.
- `switched`: the proxy starts on the built-in CA, then a CA constrained to `allowed.test` (under
  another root) is made default while it runs. rotation + nc-inside ✓ (no restart, no stale
  leaf); replaced ✗ (the built-in root no longer helps); nc-outside: the engine refuses
  `good.example.test`, the proxy passes it through, so clients trusting the org root fail and
  clients trusting the upstream's root see the upstream's own certificate and succeed.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL
from tests.conftest import free_port
from tests.integration.helpers import CSR_FIELDS
from tests.integration.test_edge import blocking_with_timeout, builtin_chain, clean_env, stop, wait_listening
from tests.pki import TestPKI, new_key, pem
from tests.tls_clients import check, present_clients
from tests.tls_server import TlsTestServer

from interca.app import build_services
from interca.config import load_settings
from interca.domain.principal import Principal
from interca.domain.x509.pem import Upload

REPO = Path(__file__).resolve().parents[2]
PROXY_PYTHON = REPO / ".venv-proxy" / "bin" / "python"
SWITCH_BOUND = 30.0  # seconds: hang bound for the proxy's engine to see a new default (polls every 1 s)
UPSTREAM_NAMES = ("*.example.test", "*.allowed.test")
LOOPBACK = ipaddress.ip_address("127.0.0.1")
GOOD = "good.example.test"
INSIDE = "x.allowed.test"

# A failure for want of a trusted issuer, in every client's words (OpenSSL/Python/curl, Node,
# Chromium, Java).
UNTRUSTED = (
    r"unable to get local issuer certificate|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|unable to verify the first "
    r"certificate|UNABLE_TO_VERIFY_LEAF_SIGNATURE|ERR_CERT_AUTHORITY_INVALID|PKIX path (building|validation) failed"
)


@dataclass
class Upstream:
    server: TlsTestServer
    root: Path  # trusted by the proxy (--upstream-ca) and by passthrough clients
    cert: x509.Certificate


@dataclass
class Proxy:
    port: int
    metrics_port: int
    log_file: Path
    builtin_root: Path
    builtin_intermediate: x509.Certificate

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def metric(self, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        assert found, f"{name} is not in the proxy's metrics:\n{text[-2000:]}"
        return float(found.group(1))


@dataclass
class Switched:
    proxy: Proxy
    org_root: Path  # the root of the constrained CA now default
    org_ca: x509.Certificate


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """The origin server behind the proxy: one certificate for every test name, under its own root."""
    work = tmp_path_factory.mktemp("upstream")
    pki = TestPKI()
    root = pki.new_root("interca Test Upstream Root")
    key = new_key("ec")
    cert = pki.sign_ca(
        key.public_key(),
        subject="upstream.example.test",
        issuer=root,
        basic_constraints=False,
        key_usage=("digital_signature",),
        eku=[x509.ExtendedKeyUsageOID.SERVER_AUTH],
        extra_extensions=[
            (
                x509.SubjectAlternativeName([*map(x509.DNSName, UPSTREAM_NAMES), x509.IPAddress(LOOPBACK)]),
                False,
            )
        ],
    )
    root_file = work / "upstream-root.pem"
    root_file.write_bytes(root.cert_pem)
    der = cert.public_bytes(serialization.Encoding.DER)
    with TlsTestServer(lambda names: ((der,), key)) as server:
        yield Upstream(server, root_file, cert)


@pytest.fixture(scope="module")
def unrelated_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("unrelated") / "root.pem"
    path.write_bytes(TestPKI().new_root("interca Test Unrelated Root").cert_pem)
    return path


@pytest.fixture(scope="module")
def proxy_python() -> Path:
    if not PROXY_PYTHON.exists():
        pytest.fail(
            f"{PROXY_PYTHON} is missing: interca proxy runs from its own virtualenv (mitmproxy cannot share "
            "the test one). Build it with `make proxy-venv` (`make test` does)."
        )
    return PROXY_PYTHON


def start_proxy(work: Path, template: Path, upstream: Upstream, proxy_python: Path) -> tuple[Proxy, Any]:
    """A data directory copied from `template` and `interca proxy` over it; (proxy, process)."""
    data = work / "data"
    shutil.copytree(template, data)
    intermediate, root = builtin_chain(data)
    root_file = work / "builtin-root.pem"
    root_file.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    port, metrics_port = free_port(), free_port()
    argv = [str(proxy_python), "-m", "interca", "proxy", "--listen", f"127.0.0.1:{port}"]
    argv += ["--metrics-listen", f"127.0.0.1:{metrics_port}", "--upstream-ca", str(upstream.root)]
    argv += ["--map", "*.example.test=127.0.0.1", "--map", "*.allowed.test=127.0.0.1"]
    log_file = work / "proxy.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(argv, env=clean_env(data), stdout=log, stderr=subprocess.STDOUT, cwd=work)
    try:
        wait_listening(port, process, log_file)
    except BaseException:
        stop(process)
        raise
    return Proxy(port, metrics_port, log_file, root_file, intermediate), process


@pytest.fixture(scope="module")
def builtin(
    template_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, proxy_python: Path
) -> Iterator[Proxy]:
    proxy, process = start_proxy(
        tmp_path_factory.mktemp("builtin"), template_data_dir, upstream, proxy_python
    )
    yield proxy
    stop(process)


@pytest.fixture(scope="module")
def switched(
    template_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, proxy_python: Path
) -> Iterator[Switched]:
    work = tmp_path_factory.mktemp("switched")
    proxy, process = start_proxy(work, template_data_dir, upstream, proxy_python)
    try:
        # The built-in CA serves first, so the switch below has a cached leaf to make stale.
        assert (
            proxied_chain(proxy.port, INSIDE, upstream.server.port)[0].issuer
            == proxy.builtin_intermediate.subject
        )
        org_root, org_ca = make_constrained_default(work / "data", "allowed.test")
        org_root_file = work / "org-root.pem"
        org_root_file.write_bytes(org_root.public_bytes(serialization.Encoding.PEM))
        deadline = time.monotonic() + SWITCH_BOUND
        while proxied_chain(proxy.port, INSIDE, upstream.server.port)[0].issuer != org_ca.subject:
            assert time.monotonic() < deadline, (
                f"the proxy still mints with the old CA:\n{proxy.log()[-2000:]}"
            )
            time.sleep(0.2)
        yield Switched(proxy, org_root_file, org_ca)
    finally:
        stop(process)


def make_constrained_default(data: Path, permitted: str) -> tuple[x509.Certificate, x509.Certificate]:
    """A software CA whose intermediate (signed by a new org root) permits only `permitted`, taken
    through the lifecycle and made default, as an administrator would; (org root, intermediate)."""
    services = build_services(load_settings(data_dir=data))
    who = Principal.system("proxy-test")
    try:
        ca_id = services.certificates.create(
            who, {"name": "Allowed CA", "type": "CUSTOM_SW", "keyType": "EC_P256"}
        ).id
        services.lifecycle.generate_key_pair(who, ca_id)
        services.lifecycle.download_public_key(who, ca_id)
        services.lifecycle.generate_csr(who, ca_id, CSR_FIELDS)
        csr = x509.load_pem_x509_csr(services.lifecycle.download_csr(who, ca_id).body.encode())
        pki = TestPKI()
        constraints = x509.NameConstraints(
            permitted_subtrees=[x509.DNSName(permitted)], excluded_subtrees=None
        )
        cert = pki.sign_ca(csr, extra_extensions=[(constraints, True)])
        services.lifecycle.upload_cert(who, ca_id, Upload(pem(cert), "intermediate.pem"))
        services.lifecycle.upload_chain(who, ca_id, Upload(pem(pki.root.cert), "root.pem"))
        services.lifecycle.finalize(who, ca_id)
        services.certificates.make_default(who, ca_id)
    finally:
        services.ctx.db.dispose()
    return pki.root.cert, cert


def proxied_chain(proxy_port: int, host: str, port: int) -> list[x509.Certificate]:
    """What the proxy presents for `host` (sent as SNI) through a CONNECT tunnel, unverified."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=20) as sock:
        sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, f"the proxy closed the tunnel: {head!r}"
            head += chunk
        assert head.split(b" ", 2)[1] == b"200", head
        blocking_with_timeout(sock)
        conn = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), sock)
        conn.set_tlsext_host_name(host.encode())
        conn.set_connect_state()
        conn.do_handshake()
        chain = conn.get_peer_cert_chain(as_cryptography=True)
    assert chain is not None
    return chain


def run(client: str, host: str, root: Path, proxy: Proxy, upstream: Upstream, workdir: Path) -> Any:
    requests_before = len(upstream.server.requests)
    result = check(
        client,
        host=host,
        port=upstream.server.port,
        root=root,
        workdir=workdir,
        proxy=("127.0.0.1", proxy.port),
    )
    if result.ok and client != "openssl":  # s_client sends no request
        assert any(r.host == host for r in upstream.server.requests[requests_before:]), (
            "no request reached upstream"
        )
    return result


def assert_untrusted(client: str, result: Any, case: str) -> None:
    assert not result.ok, f"{client} accepted the {case} control: {result.detail}"
    assert re.search(UNTRUSTED, result.detail), f"{client} failed {case} for another reason: {result.detail}"


# builtin: the built-in CA is the default ----------------------------------------------------------


@pytest.mark.parametrize("client", present_clients())
def test_good_through_proxy(client: str, builtin: Proxy, upstream: Upstream, tmp_path: Path) -> None:
    result = run(client, GOOD, builtin.builtin_root, builtin, upstream, tmp_path)
    assert result.ok, f"{client}: {result.detail}"


@pytest.mark.parametrize("client", present_clients())
def test_wrongroot_through_proxy(
    client: str, builtin: Proxy, upstream: Upstream, unrelated_root: Path, tmp_path: Path
) -> None:
    assert_untrusted(client, run(client, GOOD, unrelated_root, builtin, upstream, tmp_path), "wrongroot")


def test_proxy_serves_minted_leaf_with_intermediate_not_the_root(builtin: Proxy, upstream: Upstream) -> None:
    chain = proxied_chain(builtin.port, GOOD, upstream.server.port)
    assert [c.subject for c in chain[1:]] == [builtin.builtin_intermediate.subject]
    sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [GOOD]
    assert chain[0] != upstream.cert
    assert builtin.metric('interca_proxy_handshakes_total{outcome="minted"}') >= 1
    assert builtin.metric('interca_leaves_minted_total{ca_id="1"}') >= 1
    # The same host again: a cache hit, and the engine's figures per CA (issue 6, item 5).
    proxied_chain(builtin.port, GOOD, upstream.server.port)
    assert builtin.metric('interca_leaf_cache_hits_total{ca_id="1"}') >= 1
    assert builtin.metric('interca_leaf_cache_misses_total{ca_id="1"}') >= 1
    assert builtin.metric('interca_leaf_mint_seconds_count{ca_id="1"}') >= 1
    assert builtin.metric("interca_leaf_key_pool_depth") >= 1


def test_proxy_without_sni_mints_for_the_connect_address(
    builtin: Proxy, upstream: Upstream, tmp_path: Path
) -> None:
    for client in ("python", "openssl"):
        result = run(client, "127.0.0.1", builtin.builtin_root, builtin, upstream, tmp_path / client)
        assert result.ok, f"{client}: {result.detail}"


# switched: a constrained CA made default while the proxy runs -------------------------------------


@pytest.mark.parametrize("client", present_clients())
def test_rotation_and_nc_inside_through_proxy(
    client: str, switched: Switched, upstream: Upstream, tmp_path: Path
) -> None:
    result = run(client, INSIDE, switched.org_root, switched.proxy, upstream, tmp_path)
    assert result.ok, f"{client}: {result.detail}"


@pytest.mark.parametrize("client", present_clients())
def test_replaced_root_fails_after_rotation(
    client: str, switched: Switched, upstream: Upstream, tmp_path: Path
) -> None:
    result = run(client, INSIDE, switched.proxy.builtin_root, switched.proxy, upstream, tmp_path)
    assert_untrusted(client, result, "replaced")


@pytest.mark.parametrize("client", present_clients())
def test_nc_outside_is_passed_through_uninspected(
    client: str, switched: Switched, upstream: Upstream, tmp_path: Path
) -> None:
    refused = 'interca_proxy_handshakes_total{outcome="outside_name_constraints"}'
    before = switched.proxy.metric(refused)
    result = run(client, GOOD, switched.org_root, switched.proxy, upstream, tmp_path / "org-root")
    assert_untrusted(client, result, "nc-outside")
    assert switched.proxy.metric(refused) > before
    # The same name, trusting the upstream's root: the client saw the upstream's own certificate.
    result = run(client, GOOD, upstream.root, switched.proxy, upstream, tmp_path / "upstream-root")
    assert result.ok, f"{client} did not get the upstream's own certificate: {result.detail}"


def test_nc_outside_serves_the_upstream_certificate_and_logs_the_refusal(
    switched: Switched, upstream: Upstream
) -> None:
    assert proxied_chain(switched.proxy.port, GOOD, upstream.server.port) == [upstream.cert]
    assert re.search(
        rf"passing {re.escape(GOOD)} through uninspected: \[outside_name_constraints\]", switched.proxy.log()
    ), switched.proxy.log()[-2000:]


# the command itself ---------------------------------------------------------------------------------


def test_proxy_command_without_mitmproxy_says_how_to_install_it(tmp_path: Path) -> None:
    # mitmproxy made unimportable, whichever virtualenv runs this test.
    code = "import sys; sys.modules['mitmproxy'] = None; from interca.cli.main import app; app(['proxy'])"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "install interca[proxy]" in message and "make proxy" in message, done.stderr
