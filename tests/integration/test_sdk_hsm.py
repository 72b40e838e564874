"""The official SDK driving CUSTOM_HSM certificates in every region of a real `interca serve`
with its embedded SoftHSM2 (hsm.md, api.md §4.3): keyPair, downloadPublicKey, downloadAttestation,
verifyKeyAttestation, generateCsr, uploadCert, uploadCertChain, finalizeCert, makeDefault; the
attestor runs as the service's child process; the keys survive a restart of the service; the
customer's offline verifier accepts each bundle. Public keys are read back from the token itself."""

from __future__ import annotations

import json
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from tests.conftest import free_port
from tests.integration.helpers import CSR_FIELDS
from tests.integration.sdk_support import (
    R,
    assert_download,
    execute,
    execute_sdk,
    isolate_sdk,
    multipart,
    oneapi_client,
)
from tests.integration.test_edge import clean_env, stop, wait_listening
from tests.integration.test_metrics import samples
from tests.live import LiveServer
from tests.pki import TestPKI, pem
from tests.tls_clients import check

from interca.domain.attestation.statement import BUNDLE_FIRST_LINE
from interca.keystore.pkcs11 import KeyRef

KEY_TYPES = {"GLOBAL": "EC_P256", "ASIA": "EC_P384", "EUROPE": "RSA_2K", "US": "EC_P256"}
REPO = Path(__file__).resolve().parents[2]


def token_public_key(srv: LiveServer, region: str, ca_id: int) -> bytes:
    """The CA key's public half as the embedded token holds it (its own process, own config)."""
    with sqlite3.connect(srv.data_dir / "interca.db") as db:
        (ref,) = db.execute("SELECT key_ref FROM certificates WHERE id = ?", (ca_id,)).fetchone()
    parsed = KeyRef.parse(ref)
    assert parsed is not None and parsed.token == f"interca-{region}", ref
    hsm = srv.data_dir / "hsm"
    out = subprocess.run(
        [sys.executable, "-m", "tests.token_reader", str(hsm / "softhsm2.conf"), parsed.token,
         str(hsm / "pins" / region), parsed.key_id.hex()],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout.encode()


def verify_offline(srv: LiveServer, bundle: bytes, public_key: bytes, tmp_path: Path, region: str) -> str:
    """`interca ca verify-attestation` as a customer runs it: no server, the pinned root file."""
    b, k = tmp_path / f"{region}-bundle.pem", tmp_path / f"{region}-key.pem"
    b.write_bytes(bundle)
    k.write_bytes(public_key)
    root = srv.data_dir / "attestation" / "manufacturer-root.pem"
    result = subprocess.run(
        [sys.executable, "-m", "interca", "ca", "verify-attestation", str(b), "--public-key", str(k),
         "--root", str(root), "--region", region],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_sdk_hsm_lifecycle_in_every_region_with_attestation_and_restart(
    live_server: LiveServer, pki: TestPKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_sdk(monkeypatch, tmp_path)
    srv = live_server
    ids: dict[str, int] = {}
    with oneapi_client(monkeypatch, srv.base, srv.client_id, srv.client_secret) as z:
        ica = z.zia.intermediate_certificates
        ex = z.get_request_executor()
        for region, key_type in KEY_TYPES.items():
            _, resp, err = ica.add_ca_certificate(
                name=f"HSM {region}", type="CUSTOM_HSM", region=region, key_type=key_type
            )
            assert err is None, repr(err)
            ca_id = ids[region] = resp.get_body()["id"]
            _, resp, err = ica.generate_key_pair(ca_id)
            assert err is None, repr(err)
            public_pem = resp.get_body()["publicKey"].encode()
            assert token_public_key(srv, region, ca_id) == public_pem  # the token's own key

            text, _, err = ica.download_public_key(ca_id)
            assert err is None and text.encode() == public_pem
            raw = execute(ex, "GET", f"{R}/downloadAttestation/{ca_id}")
            assert_download(raw, f"HSM {region}-Attestation.pem")
            assert raw.text.splitlines()[0] == BUNDLE_FIRST_LINE
            report = verify_offline(srv, raw.content, public_pem, tmp_path, region)
            assert "Emulated HSM attestation" in report
            _, resp, err = ica.verify_key_attestation(ca_id)
            assert err is None, repr(err)
            assert isinstance(resp.get_body()["hsmAttestationVerifiedTime"], int)

            fields = {**CSR_FIELDS, "commName": f"HSM {region} CA", "pathLengthConstraint": 0,
                      "signatureAlgorithm": "SHA384" if key_type == "EC_P384" else "SHA256"}  # fmt: skip
            resp, err = execute_sdk(ex, "POST", f"{R}/generateCsr/{ca_id}", fields)
            assert err is None, repr(err)
            csr_text, _, err = ica.download_csr(ca_id)
            assert err is None
            csr = x509.load_pem_x509_csr(csr_text.encode())
            assert csr.is_signature_valid  # signed in the token with the key read back above
            assert csr.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ) == public_pem
            cert = pki.sign_ca(csr)
            _, _, err = ica.upload_cert(ca_id, file_input_stream=pem(cert).decode())
            assert err is None, repr(err)
            data, ctype = multipart(pem(pki.root.cert), "root.pem")
            chain = execute(ex, "POST", f"{R}/uploadCertChain/{ca_id}", data, {"Content-Type": ctype}, True)
            assert chain.status_code == 200, chain.text
            _, _, err = ica.finalize_cert(ca_id)
            assert err is None, repr(err)
            model, _, err = ica.get_ca_certificate(ca_id)
            assert err is None and model.current_state == "CERT_READY"
        resp, err = execute_sdk(ex, "PUT", f"{R}/makeDefault/{ids['EUROPE']}", {})
        assert err is None, repr(err)

    srv.stop()  # the service and its attestor child go; the tokens stay
    srv.start()
    with oneapi_client(monkeypatch, srv.base, srv.client_id, srv.client_secret) as z:
        ica = z.zia.intermediate_certificates
        ex = z.get_request_executor()
        for region, ca_id in ids.items():
            model, _, err = ica.get_ca_certificate(ca_id)
            assert err is None and model.current_state == "CERT_READY"
            assert model.default_certificate is (region == "EUROPE")
            public_pem = token_public_key(srv, region, ca_id)
            assert model.public_key.encode() == public_pem
            raw = execute(ex, "GET", f"{R}/downloadAttestation/{ca_id}")
            verify_offline(srv, raw.content, public_pem, tmp_path, region)
        # The restarted service's health check (at start, then every 60 s) signed with every key.
        deadline = time.monotonic() + 60  # hang bound: the first check runs in the background
        with srv.bearer() as admin:
            while True:
                got = samples(admin.get("/metrics").text)
                healthy = {k[1][0][1] for k, v in got.items() if k[0] == "interca_hsm_key_healthy" and v == 1}
                if healthy == {str(i) for i in ids.values()}:
                    break
                assert time.monotonic() < deadline, healthy
                time.sleep(0.5)

    # A new manufacturer root from the command line, the service running: statements issued
    # before still verify (the old root stays pinned), fresh ones chain to the new root.
    rotated = subprocess.run([sys.executable, "-m", "interca", "attestor", "rotate-root"], env=srv.env,
                             capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    with oneapi_client(monkeypatch, srv.base, srv.client_id, srv.client_secret) as z:
        ica = z.zia.intermediate_certificates
        ex = z.get_request_executor()
        _, _, err = ica.delete_ca_certificate(ids["ASIA"])  # room under the 4-enabled limit
        assert err is None, repr(err)
        _, resp, err = ica.add_ca_certificate(name="HSM after rotation", type="CUSTOM_HSM", region="US",
                                              key_type="EC_P256")  # fmt: skip
        assert err is None, repr(err)
        new_id = resp.get_body()["id"]
        _, resp, err = ica.generate_key_pair(new_id)
        assert err is None, repr(err)
        _, _, err = ica.verify_key_attestation(new_id)
        assert err is None, repr(err)
        raw = execute(ex, "GET", f"{R}/downloadAttestation/{new_id}")
        verify_offline(srv, raw.content, resp.get_body()["publicKey"].encode(), tmp_path, "US")

    serve_with_the_hsm_default(srv, pki, ids["EUROPE"], tmp_path)


def serve_with_the_hsm_default(srv: LiveServer, pki: TestPKI, ca_id: int, tmp_path: Path) -> None:
    """`interca edge` over the restarted deployment mints with the default CA, whose key is in
    the EUROPE token: 200 concurrent handshakes for distinct names (200 token signatures from
    many threads) all verify against the organisation's root and the token's public key; with
    the token gone handshakes fail, and once it is back they succeed again without a restart."""
    token_public = serialization.load_pem_public_key(token_public_key(srv, "EUROPE", ca_id))
    root = tmp_path / "org-root.pem"
    root.write_bytes(pem(pki.root.cert))
    port = free_port()
    log_file = tmp_path / "edge.log"
    with log_file.open("wb") as log:
        edge = subprocess.Popen([sys.executable, "-m", "interca", "edge", "--listen", f"127.0.0.1:{port}"],
                                env=clean_env(srv.data_dir), stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_listening(port, edge, log_file)
        assert check("python-strict", host="hsm.example.test", port=port, root=root, workdir=tmp_path).ok
        assert check("openssl", host="hsm.example.test", port=port, root=root, workdir=tmp_path).ok

        def handshake(n: int) -> x509.Certificate:
            return verified_leaf(port, f"host{n}.example.test", root)

        with ThreadPoolExecutor(max_workers=40) as pool:
            leaves = list(pool.map(handshake, range(200)))
        assert len({leaf.serial_number for leaf in leaves}) == 200
        for leaf in leaves[:20]:
            assert isinstance(token_public, rsa.RSAPublicKey)
            token_public.verify(leaf.signature, leaf.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256())

        with embedded_token_removed(srv, "EUROPE"), pytest.raises((ssl.SSLError, OSError)):
            verified_leaf(port, "while-gone.example.test", root)
        deadline = time.monotonic() + 120  # hang bound: the key store backs off up to 30 s
        while True:
            try:
                verified_leaf(port, "back.example.test", root)
                break
            except (ssl.SSLError, OSError):
                assert time.monotonic() < deadline, log_file.read_text()[-3000:]
                time.sleep(0.5)
    finally:
        stop(edge)


def verified_leaf(port: int, host: str, root: Path) -> x509.Certificate:
    """A strict Python handshake trusting only `root`; the leaf it verified."""
    context = ssl.create_default_context(cafile=str(root))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as sock,
        context.wrap_socket(sock, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


@contextmanager
def embedded_token_removed(srv: LiveServer, region: str) -> Iterator[None]:
    """Take `region`'s embedded token directory away (SoftHSM names it by a UUID ending in the
    serial), and put it back."""
    serial = json.loads((srv.data_dir / "hsm" / "tokens.json").read_text())[region]
    tokens = srv.data_dir / "hsm" / "tokens"
    (directory,) = [p for p in tokens.iterdir() if p.name.replace("-", "").endswith(serial)]
    away = srv.data_dir / "hsm" / f"away-{directory.name}"
    directory.rename(away)
    try:
        yield
    finally:
        away.rename(directory)
