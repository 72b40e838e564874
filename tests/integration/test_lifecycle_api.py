"""The whole CUSTOM_SW lifecycle over real HTTP, with the wire shapes of api.md §3."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.conftest import ZR, Api, R
from tests.integration.helpers import CSR_FIELDS, FULL_ORDER, upload
from tests.pki import TestPKI, pem


def assert_ordered(body: dict, order: list[str]) -> None:
    keys = list(body)
    assert keys == [k for k in order if k in body], keys
    assert None not in body.values()


def test_whole_lifecycle(api: Api, pki: TestPKI) -> None:
    created = api.create("Branch CA", keyType="EC_P256", description="Branch CA")
    ca_id = created["id"]
    assert ca_id >= 2
    assert created == {
        "id": ca_id, "name": "Branch CA", "type": "CUSTOM_SW", "region": "GLOBAL", "status": "ENABLED",
        "defaultCertificate": False, "keyType": "EC_P256", "fallbackCertId": 0, "description": "Branch CA",
        "currentState": "GENERAL_DONE",
    }  # fmt: skip

    key = api.admin.post(f"{R}/keyPair/{ca_id}")
    assert key.status_code == 200
    assert list(key.json()) == ["certId", "keyGenerationTime", "publicKey"]
    public_pem = key.json()["publicKey"]
    assert public_pem.startswith("-----BEGIN PUBLIC KEY-----\n") and public_pem.endswith(
        "-----END PUBLIC KEY-----\n"
    )
    assert api.admin.get(f"{R}/{ca_id}").json()["currentState"] == "KEYGEN_DONE"

    pub = api.admin.get(f"{R}/downloadPublicKey/{ca_id}")
    assert pub.status_code == 200
    assert pub.headers["content-type"] == "application/octet-stream"
    assert pub.headers["content-disposition"] == 'attachment; filename="Branch CA-PublicKey.pem"'
    assert pub.headers["content-length"] == str(len(pub.content))
    assert pub.text == public_pem
    assert api.admin.get(f"{R}/{ca_id}").json()["currentState"] == "PUBKEY_DONE"

    csr_resp = api.admin.post(f"{R}/generateCsr/{ca_id}", json=CSR_FIELDS)
    assert csr_resp.status_code == 200, csr_resp.text
    assert list(csr_resp.json()) == ["certId", "csrGenerationTime"]
    csr_file = api.admin.get(f"{R}/downloadCsr/{ca_id}")
    assert csr_file.headers["content-disposition"] == 'attachment; filename="branch.csr"'
    csr = x509.load_pem_x509_csr(csr_file.content)
    assert csr.is_signature_valid
    assert (
        csr.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
        == public_pem
    )
    show_csr = api.admin.get(f"{R}/showCsr/{ca_id}").json()
    assert show_csr == {
        "certId": ca_id, **CSR_FIELDS, "keySize": 256, "signatureAlgorithm": "SHA256", "pathLengthConstraint": 1,
    }  # fmt: skip

    cert = pki.sign_ca(csr)
    up = upload(api.admin, "uploadCert", ca_id, pem(cert))
    assert up.status_code == 200, up.text
    body = up.json()
    assert body["currentState"] == "INTCERT_UPLOAD_DONE"
    assert body["uploadedCertFileName"] == "certificate.pem"
    assert body["certStartDate"] == int(cert.not_valid_before_utc.timestamp())
    assert body["certExpDate"] == int(cert.not_valid_after_utc.timestamp())
    assert_ordered(body, FULL_ORDER)

    chain = upload(api.admin, "uploadCertChain", ca_id, pem(pki.root.cert), "root.pem")
    assert chain.status_code == 200, chain.text
    assert chain.json()["currentState"] == "CERTCHAIN_UPLOAD_DONE"
    assert chain.json()["uploadedCertChainFileName"] == "root.pem"

    shown = api.admin.get(f"{R}/showCert/{ca_id}").json()
    assert list(shown) == [
        "certName", "commName", "orgName", "deptName", "city", "state", "country", "keySize",
        "signatureAlgorithm", "pathLengthConstraint", "pathLengthConstraintInCsr", "issuedBy", "startDate",
        "expDate", "validityInDays",
    ]  # fmt: skip
    assert shown["commName"] == "Branch Inspection CA" and shown["country"] == "COUNTRY_GB"
    assert shown["issuedBy"] == pki.root.cert.subject.rfc4514_string()

    bundle = api.admin.get(f"{R}/downloadCertChain/{ca_id}")
    assert bundle.headers["content-disposition"] == 'attachment; filename="Branch CA-Chain.pem"'
    assert x509.load_pem_x509_certificates(bundle.content) == [cert, pki.root.cert]

    final = api.admin.post(f"{R}/finalizeCert/{ca_id}")
    assert final.status_code == 200, final.text
    assert final.json()["currentState"] == "CERT_READY"

    ready = api.admin.get(f"{R}/readyToUse").json()
    assert ready == [
        {"id": 1, "name": "Built-in Intermediate CA Certificate", "defaultCertificate": True},
        {"id": ca_id, "name": "Branch CA", "defaultCertificate": False},
    ]

    made = api.admin.put(f"{R}/makeDefault/{ca_id}")
    assert made.status_code == 200 and made.json()["defaultCertificate"] is True
    defaults = [c["id"] for c in api.admin.get(R).json() if c["defaultCertificate"]]
    assert defaults == [ca_id]
    assert (
        api.admin.delete(f"{R}/{ca_id}")
        .json()["message"]
        .startswith("The default certificate cannot be deleted")
    )

    back = api.admin.put(f"{ZR}/makeDefault/1")
    assert back.status_code == 200 and back.json()["id"] == 1
    gone = api.admin.delete(f"{R}/{ca_id}")
    assert gone.status_code == 204 and gone.content == b"" and "content-type" not in gone.headers
    assert api.admin.get(f"{R}/{ca_id}").status_code == 404
