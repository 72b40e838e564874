"""CUSTOM_HSM certificates over HTTP with real SoftHSM2 tokens, one per region (hsm.md, api.md §4.3):
keyPair -> downloadPublicKey -> generateCsr -> uploadCert -> uploadCertChain -> finalizeCert (the
self-test signs its canary in the token) -> makeDefault -> delete (destroys the token key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.conftest import Api, R, make_settings
from tests.hsm import SoftHsm, TestToken
from tests.integration.helpers import CSR_FIELDS, ok, snapshot, upload
from tests.pki import TestPKI, pem

from interca.app import build_services, create_app
from interca.config import SOFTHSM2_MODULE
from interca.domain.models import CaType, Region
from interca.errors import KeyStoreError
from interca.keystore.pkcs11 import KeyRef
from interca.service import lifecycle, selftest
from interca.service.registry import Services
from interca.storage.tables import CertificateRow

KEY_TYPES = {"GLOBAL": "EC_P256", "ASIA": "EC_P384", "EUROPE": "RSA_2K", "US": "EC_P256"}
SIGNATURE = {"EC_P384": "SHA384"}


def hsm_services(
    api: Api, http_server: Any, data_dir: Path, softhsm: SoftHsm, tokens: dict[str, TestToken], **extra: Any
) -> Services:
    """The deployment of `api`, now with every region's HSM pointing at a fresh token."""
    overrides: dict[str, Any] = {"hsm_module": SOFTHSM2_MODULE, "softhsm2_conf": softhsm.conf, **extra}
    for region, token in tokens.items():
        overrides.update(token.settings(region))
    services = build_services(make_settings(data_dir, **overrides), api.services.ctx.clock)
    http_server[1].app = create_app(services.ctx.settings, services)
    api.services = services
    return services


def key_ref(api: Api, ca_id: int) -> str:
    with api.services.ctx.db.read() as s:
        return str(s.get(CertificateRow, ca_id).key_ref)


@pytest.fixture
def minted(monkeypatch: pytest.MonkeyPatch) -> list[x509.Certificate]:
    """Every leaf the finalize self-test mints, as it came out of the real minting code."""
    leaves: list[x509.Certificate] = []
    real = selftest.build_leaf

    def spy(*args: Any, **kwargs: Any) -> x509.Certificate:
        leaves.append(real(*args, **kwargs))
        return leaves[-1]

    monkeypatch.setattr(selftest, "build_leaf", spy)
    return leaves


def test_hsm_certificate_in_every_region_through_the_whole_lifecycle(
    api: Api, http_server: Any, data_dir: Path, softhsm: SoftHsm, tmp_path: Path, pki: TestPKI,
    minted: list[x509.Certificate],
) -> None:  # fmt: skip
    tokens = {region: softhsm.new_token(tmp_path) for region in KEY_TYPES}
    hsm_services(api, http_server, data_dir, softhsm, tokens)
    ids: dict[str, int] = {}
    for region, key_type in KEY_TYPES.items():
        token = tokens[region]
        ca_id = ids[region] = api.create(f"HSM {region}", type="CUSTOM_HSM", region=region, keyType=key_type)[
            "id"
        ]
        body = ok(api.admin.post(f"{R}/keyPair/{ca_id}"))
        ref = key_ref(api, ca_id)
        parsed = KeyRef.parse(ref)
        assert parsed is not None and (parsed.token, parsed.serial) == (token.label, token.serial), ref
        assert [t.objects(parsed.key_id) for t in tokens.values()].count(["PRIVATE_KEY", "PUBLIC_KEY"]) == 1
        token_public = token.public_object(ref)  # read from the token, decoded by python-pkcs11
        spki = token_public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert body["publicKey"].encode() == spki
        assert api.admin.get(f"{R}/downloadPublicKey/{ca_id}").content == spki
        assert api.admin.get(f"{R}/{ca_id}").json()["currentState"] == "PUBKEY_DONE"

        fields = {**CSR_FIELDS, "commName": f"HSM {region} CA", "pathLengthConstraint": 0}
        ok(
            api.admin.post(
                f"{R}/generateCsr/{ca_id}",
                json={**fields, "signatureAlgorithm": SIGNATURE.get(key_type, "SHA256")},
            )
        )
        csr = x509.load_pem_x509_csr(api.admin.get(f"{R}/downloadCsr/{ca_id}").content)
        assert csr.is_signature_valid and csr.public_key() == token_public
        cert = pki.sign_ca(csr)
        ok(upload(api.admin, "uploadCert", ca_id, pem(cert)))
        ok(upload(api.admin, "uploadCertChain", ca_id, pem(pki.root.cert), "root.pem"))

        before = len(minted)
        ok(api.admin.post(f"{R}/finalizeCert/{ca_id}"))
        assert api.admin.get(f"{R}/{ca_id}").json()["currentState"] == "CERT_READY"
        (leaf,) = minted[before:]  # the self-test's canary, signed in the token
        leaf.verify_directly_issued_by(cert)
        leaf.verify_directly_issued_by(pki.sign_ca(csr, subject=cert.subject))  # any cert for the token key
        with api.services.ctx.db.read() as s:
            crl = x509.load_der_x509_crl(s.get(CertificateRow, ca_id).crl_der)
        assert crl.is_signature_valid(token_public)

    ok(api.admin.put(f"{R}/makeDefault/{ids['US']}"))
    assert api.admin.get(f"{R}/{ids['US']}").json()["defaultCertificate"] is True
    assert api.admin.delete(f"{R}/{ids['US']}").status_code == 400  # the default stays

    for region in ("GLOBAL", "ASIA", "EUROPE", "US"):
        if region == "US":
            ok(api.admin.put(f"{R}/makeDefault/1"))
        key_id = KeyRef.parse(key_ref(api, ids[region])).key_id  # type: ignore[union-attr]
        assert api.admin.delete(f"{R}/{ids[region]}").status_code == 204
        assert tokens[region].objects(key_id) == []
    assert [c["id"] for c in api.admin.get(R).json()] == [1]


def test_hsm_key_pair_with_the_token_missing_is_503_and_changes_nothing(
    api: Api, http_server: Any, data_dir: Path, softhsm: SoftHsm, tmp_path: Path
) -> None:
    token = softhsm.new_token(tmp_path)
    hsm_services(api, http_server, data_dir, softhsm, {"EUROPE": token})
    ca_id = api.create("HSM EUROPE", type="CUSTOM_HSM", region="EUROPE", keyType="EC_P256")["id"]
    before = snapshot(api, ca_id)
    with token.removed():
        resp = api.admin.post(f"{R}/keyPair/{ca_id}")
    assert resp.status_code == 503 and resp.headers["retry-after"] == "10"
    assert resp.json()["code"] == "SERVICE_UNAVAILABLE"
    message = resp.json()["message"]
    assert message.startswith("[hsm_token_not_found] ") and "EUROPE" in message
    assert token.serial not in message and token.label not in message
    assert snapshot(api, ca_id) == before
    softhsm.backend.reinitialize()  # the token is back: nothing was left in it
    assert token.hsm.backend.run(token.config("EUROPE"), lambda tok: list(tok.session.get_objects())) == []
    ok(api.admin.post(f"{R}/keyPair/{ca_id}"))  # and now it works


def _key_refs(api: Api, ca_id: int) -> tuple[str | None, str | None]:
    with api.services.ctx.db.read() as s:
        row = s.get(CertificateRow, ca_id)
        return row.key_ref, row.public_key_pem


@pytest.mark.parametrize("then", ["retry", "delete"])
def test_a_key_pair_cut_short_is_cleaned_up_by_the_next_attempt_or_the_delete(
    api: Api, http_server: Any, data_dir: Path, softhsm: SoftHsm, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, then: str,
) -> None:  # fmt: skip
    """hsm.md §4: the CKA_ID is recorded before generation. Here the attempt dies after the token
    made the key and its clean-up cannot reach the token either (what a crash leaves): the record
    keeps the pending reference, the API shows nothing changed, and the next keyPair (or the
    delete) destroys the left-over objects, so no key is ever orphaned in the token."""
    token = softhsm.new_token(tmp_path)
    services = hsm_services(api, http_server, data_dir, softhsm, {"US": token})
    ca_id = api.create("HSM cut short", type="CUSTOM_HSM", region="US", keyType="EC_P256")["id"]
    before = snapshot(api, ca_id)
    store = services.ctx.keystores.for_new_key(CaType.CUSTOM_HSM, Region.US)
    real_destroy = store.destroy

    def dies(*_: Any) -> str:
        raise RuntimeError("the process died here")

    def unreachable(ref: str) -> None:
        raise KeyStoreError("hsm_unavailable", "Region US's HSM refused the operation; retry later.")

    monkeypatch.setattr(lifecycle.csr_builder, "public_key_pem", dies)
    monkeypatch.setattr(store, "destroy", unreachable)
    assert api.admin.post(f"{R}/keyPair/{ca_id}").status_code == 500
    monkeypatch.undo()
    assert store.destroy == real_destroy
    pending, public = _key_refs(api, ca_id)
    assert pending is not None and public is None
    left = KeyRef.parse(pending).key_id  # type: ignore[union-attr]
    assert token.objects(left) == ["PRIVATE_KEY", "PUBLIC_KEY"]  # the orphan a crash would leave
    assert snapshot(api, ca_id) == before

    if then == "retry":
        ok(api.admin.post(f"{R}/keyPair/{ca_id}"))
        ref, public = _key_refs(api, ca_id)
        assert ref is not None and public is not None and ref != pending
        assert token.objects(KeyRef.parse(ref).key_id) == ["PRIVATE_KEY", "PUBLIC_KEY"]  # type: ignore[union-attr]
    else:
        assert api.admin.delete(f"{R}/{ca_id}").status_code == 204
    assert token.objects(left) == []
