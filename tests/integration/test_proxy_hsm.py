"""The hsmca case of certificates.md §7 through `interca proxy`, and the software EC CA: a real
`interca serve` takes three CAs through the lifecycle over HTTP (an EC P-256 and an RSA-2048
CA whose keys live in the deployment's embedded SoftHSM2 tokens, and a software EC P-256 CA),
each signed by the organisation's root; `interca proxy` runs over the same data directory, and
every required client, trusting only that root, gets through the proxy while each CA in turn is
the default. The proxy is never restarted: each switch reaches it through the engine's poll,
and the served leaf's issuer proves which CA signed it (no stale cached leaf). The negative
controls of the proxy (wrongroot, replaced, nc-outside) are in test_proxy.py."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from tests.conftest import free_port
from tests.integration.helpers import CSR_FIELDS, upload
from tests.integration.test_edge import clean_env, stop, wait_listening
from tests.integration.test_proxy import (  # noqa: F401 (module fixtures used below)
    SWITCH_BOUND,
    Upstream,
    proxied_chain,
    proxy_python,
    run,
    upstream,
)
from tests.live import LiveServer, start_live_server
from tests.pki import TestPKI, pem
from tests.tls_clients import present_clients

R = "/api/v1/intermediateCaCertificate"
GOOD = "good.example.test"
CAS = {  # case -> (type, region, keyType)
    "hsm-ec": ("CUSTOM_HSM", "US", "EC_P256"),
    "hsm-rsa": ("CUSTOM_HSM", "EUROPE", "RSA_2K"),
    "software-ec": ("CUSTOM_SW", "GLOBAL", "EC_P256"),
}


@dataclass
class Deployment:
    server: LiveServer
    admin: httpx.Client
    root: Path  # the organisation's root, the only one the clients trust
    cas: dict[str, tuple[int, x509.Certificate]]  # case -> (id, intermediate)
    port: int  # the proxy's
    upstream: Upstream
    default: str = field(default="")

    def make_default(self, case: str) -> None:
        """Switch the default through the API and wait until the running proxy mints with it."""
        if self.default == case:
            return
        ca_id, intermediate = self.cas[case]
        assert self.admin.put(f"{R}/makeDefault/{ca_id}").status_code == 200
        deadline = time.monotonic() + SWITCH_BOUND
        while (
            proxied_chain(self.port, GOOD, self.upstream.server.port)[0].issuer != intermediate.subject
        ):
            assert time.monotonic() < deadline, f"the proxy does not mint with {case} yet"
            time.sleep(0.2)
        self.default = case


def finalized(admin: httpx.Client, pki: TestPKI, name: str, ca_type: str, region: str, key_type: str) -> tuple[
    int, x509.Certificate
]:  # fmt: skip
    """A CA taken through every step over HTTP, its CSR signed by the organisation's root."""
    resp = admin.post(R, json={"name": name, "type": ca_type, "region": region, "keyType": key_type})
    assert resp.status_code == 200, resp.text
    ca_id = resp.json()["id"]
    assert admin.post(f"{R}/keyPair/{ca_id}").status_code == 200
    assert admin.get(f"{R}/downloadPublicKey/{ca_id}").status_code == 200
    path_len = {"pathLengthConstraint": 0} if ca_type == "CUSTOM_HSM" else {}
    assert (
        admin.post(f"{R}/generateCsr/{ca_id}", json={**CSR_FIELDS, "commName": name, **path_len}).status_code
        == 200
    )
    cert = pki.sign_ca(x509.load_pem_x509_csr(admin.get(f"{R}/downloadCsr/{ca_id}").content))
    assert upload(admin, "uploadCert", ca_id, pem(cert)).status_code == 200
    assert upload(admin, "uploadCertChain", ca_id, pem(pki.root.cert), "root.pem").status_code == 200
    resp = admin.post(f"{R}/finalizeCert/{ca_id}")
    assert resp.status_code == 200, resp.text
    return ca_id, cert


@pytest.fixture(scope="module")
def deployment(
    template_data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    upstream: Upstream,  # noqa: F811 (test_proxy's module fixture)
    proxy_python: Path,  # noqa: F811
) -> Iterator[Deployment]:
    work = tmp_path_factory.mktemp("proxy-hsm")
    server = start_live_server(template_data_dir, work, free_port())
    admin = server.bearer()
    pki = TestPKI()
    root = work / "org-root.pem"
    root.write_bytes(pem(pki.root.cert))
    proxy = None
    try:
        cas = {case: finalized(admin, pki, f"Proxy {case}", *spec) for case, spec in CAS.items()}
        port = free_port()
        argv = [str(proxy_python), "-m", "interca", "proxy", "--listen", f"127.0.0.1:{port}",
                "--upstream-ca", str(upstream.root), "--map", "*.example.test=127.0.0.1"]  # fmt: skip
        log_file = work / "proxy.log"
        with log_file.open("wb") as log:
            proxy = subprocess.Popen(
                argv, env=clean_env(server.data_dir), stdout=log, stderr=subprocess.STDOUT
            )
        wait_listening(port, proxy, log_file)
        yield Deployment(server, admin, root, cas, port, upstream)
    finally:
        if proxy is not None:
            stop(proxy)
        admin.close()
        server.stop()


@pytest.mark.parametrize("client", present_clients())
@pytest.mark.parametrize("case", list(CAS))  # outer: one default switch per case, then every client
def test_every_client_accepts_the_default_ca_through_the_proxy(
    deployment: Deployment, case: str, client: str, tmp_path: Path
) -> None:
    deployment.make_default(case)
    result = run(client, GOOD, deployment.root, deployment, deployment.upstream, tmp_path)  # type: ignore[arg-type]
    assert result.ok, f"{client} through the proxy with the {case} default: {result.detail}"
