"""Steps shared by the API tests: drive a certificate to a given lifecycle state over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
from cryptography import x509
from tests.conftest import Api, R
from tests.pki import TestPKI, pem

CSR_FIELDS = {
    "csrFileName": "branch",
    "commName": "Branch Inspection CA",
    "orgName": "Example Org",
    "deptName": "Security",
    "city": "London",
    "state": "England",
    "country": "COUNTRY_GB",
}


# api.md §3.1, in wire order.
FULL_ORDER = [
    "id", "name", "type", "region", "status", "defaultCertificate", "keyType", "fallbackCertId",
    "certStartDate", "certExpDate", "description", "currentState", "publicKey", "keyGenerationTime",
    "hsmAttestationVerifiedTime", "csrFileName", "csrGenerationTime", "uploadedCertFileName",
    "uploadedCertChainFileName",
]  # fmt: skip


def ok(resp: httpx.Response) -> Any:
    assert resp.status_code in (200, 204), resp.text
    return resp.json() if resp.content and resp.headers.get("content-type") == "application/json" else resp


def upload(
    client: httpx.Client, step: str, ca_id: int, data: bytes, filename: str = "certificate.pem"
) -> httpx.Response:
    return client.post(
        f"{R}/{step}/{ca_id}", files={"fileUpload": (filename, data, "application/octet-stream")}
    )


STEPS = ["GENERAL_DONE", "KEYGEN_DONE", "PUBKEY_DONE", "CSRGEN_DONE", "INTCERT_UPLOAD_DONE",
         "CERTCHAIN_UPLOAD_DONE", "CERT_READY"]  # fmt: skip


def advance(api: Api, pki: TestPKI, ca_id: int, to: str, **csr_fields: Any) -> None:
    """Move certificate `ca_id` from GENERAL_DONE to state `to` through the real endpoints."""
    target = STEPS.index(to)
    if target >= 1:
        ok(api.admin.post(f"{R}/keyPair/{ca_id}"))
    if target >= 2:
        ok(api.admin.get(f"{R}/downloadPublicKey/{ca_id}"))
    if target >= 3:
        ok(api.admin.post(f"{R}/generateCsr/{ca_id}", json={**CSR_FIELDS, **csr_fields}))
    if target >= 4:
        csr = x509.load_pem_x509_csr(api.admin.get(f"{R}/downloadCsr/{ca_id}").content)
        ok(upload(api.admin, "uploadCert", ca_id, pem(pki.sign_ca(csr))))
    if target >= 5 and to != "CERT_READY":
        ok(upload(api.admin, "uploadCertChain", ca_id, pem(pki.root.cert), "root.pem"))
    if target >= 6:
        ok(api.admin.post(f"{R}/finalizeCert/{ca_id}"))
    assert api.admin.get(f"{R}/{ca_id}").json()["currentState"] == to


def new_ca(
    api: Api, pki: TestPKI, state: str = "GENERAL_DONE", name: str = "Branch CA", **fields: Any
) -> int:
    ca_id: int = api.create(name, keyType="EC_P256", **fields)["id"]
    advance(api, pki, ca_id, state)
    return ca_id


def snapshot(api: Api, ca_id: int) -> dict[str, Any]:
    """Everything observable about a certificate, to prove a refusal changed nothing."""
    record = api.admin.get(f"{R}/{ca_id}").json()
    state = record["currentState"]
    extra: dict[str, Any] = {}
    if STEPS.index(state) >= 3:
        extra["csr"] = api.admin.get(f"{R}/downloadCsr/{ca_id}").text
    if STEPS.index(state) >= 4:
        extra["chain"] = api.admin.get(f"{R}/downloadCertChain/{ca_id}").text
    return {"record": record, **extra}
