"""A restart of the service keeps every certificate, key, session and the default."""

from __future__ import annotations

import time

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.conftest import R
from tests.integration.helpers import CSR_FIELDS, upload
from tests.live import LiveServer
from tests.pki import TestPKI, pem

from interca.auth.apikey import obfuscate


def test_restart_keeps_everything(live_server: LiveServer, pki: TestPKI) -> None:
    ts = str(int(time.time() * 1000))
    login = httpx.post(
        live_server.base + "/api/v1/authenticatedSession",
        json={
            "apiKey": obfuscate(live_server.api_key, ts),
            "username": live_server.username,
            "password": live_server.password,
            "timestamp": ts,
        },  # fmt: skip
    )
    assert login.status_code == 200
    session = login.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    c = httpx.Client(base_url=live_server.base, cookies={"JSESSIONID": session}, timeout=60)

    ready = c.post(R, json={"name": "Ready", "type": "CUSTOM_SW", "keyType": "RSA_2K"}).json()["id"]
    c.post(f"{R}/keyPair/{ready}")
    c.post(f"{R}/generateCsr/{ready}", json=CSR_FIELDS)
    csr = x509.load_pem_x509_csr(c.get(f"{R}/downloadCsr/{ready}").content)
    assert upload(c, "uploadCert", ready, pem(pki.sign_ca(csr))).status_code == 200
    assert upload(c, "uploadCertChain", ready, pem(pki.root.cert)).status_code == 200
    assert c.post(f"{R}/finalizeCert/{ready}").status_code == 200
    assert c.put(f"{R}/makeDefault/{ready}").status_code == 200
    pending = c.post(R, json={"name": "Pending", "type": "CUSTOM_SW", "keyType": "EC_P384"}).json()["id"]
    public_key = c.post(f"{R}/keyPair/{pending}").json()["publicKey"]
    before = c.get(R).json()

    live_server.stop()
    live_server.start()

    assert c.get("/api/v1/authenticatedSession").status_code == 200  # the session survived
    assert c.get(R).json() == before
    assert [x["id"] for x in before if x["defaultCertificate"]] == [ready]
    # The stored key still signs: a CSR made after the restart carries the same public key.
    assert c.post(f"{R}/generateCsr/{pending}", json=CSR_FIELDS).status_code == 200
    csr = x509.load_pem_x509_csr(c.get(f"{R}/downloadCsr/{pending}").content)
    assert csr.is_signature_valid
    spki = csr.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert spki.decode() == public_key
    chain = x509.load_pem_x509_certificates(c.get(f"{R}/downloadCertChain/{ready}").content)
    assert chain[1] == pki.root.cert
    c.close()
