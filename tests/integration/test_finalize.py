"""finalizeCert proves the CA with the real minting code (certificates.md §5, §8 rows 39, 51-53)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from tests.conftest import Api, R, make_settings
from tests.integration.helpers import CSR_FIELDS, snapshot, upload
from tests.pki import TestPKI, pem

from interca.app import build_services, create_app
from interca.clock import FrozenClock


@pytest.fixture
def clock() -> FrozenClock:  # the services of this module run on a clock the tests move
    return FrozenClock()


def csr_of(api: Api, ca_id: int) -> x509.CertificateSigningRequest:
    return x509.load_pem_x509_csr(api.admin.get(f"{R}/downloadCsr/{ca_id}").content)


def ready_for_upload(api: Api) -> int:
    ca_id = api.create("Finalize CA", keyType="EC_P256")["id"]
    assert api.admin.post(f"{R}/keyPair/{ca_id}").status_code == 200
    assert api.admin.post(f"{R}/generateCsr/{ca_id}", json=CSR_FIELDS).status_code == 200
    return ca_id


def stored_row(api: Api, ca_id: int):  # noqa: ANN201
    from interca.storage.tables import CertificateRow

    with api.services.ctx.db.read() as s:
        return s.get(CertificateRow, ca_id)


def test_finalize_with_chain_issues_the_first_crl(api: Api, pki: TestPKI) -> None:
    ca_id = ready_for_upload(api)
    cert = pki.sign_ca(csr_of(api, ca_id))
    assert upload(api.admin, "uploadCert", ca_id, pem(cert)).status_code == 200
    assert upload(api.admin, "uploadCertChain", ca_id, pem(pki.root.cert)).status_code == 200
    resp = api.admin.post(f"{R}/finalizeCert/{ca_id}")
    assert resp.status_code == 200, resp.text
    row = stored_row(api, ca_id)
    warnings = {w["id"] for w in row.warnings}
    assert "root_unknown" not in warnings and "crl_url_loopback" in warnings  # the default pki_base_url
    crl = x509.load_der_x509_crl(row.crl_der)
    assert crl.issuer.public_bytes() == cert.subject.public_bytes()
    assert crl.is_signature_valid(cert.public_key())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski
    assert len(list(crl)) == 0
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(days=7)
    assert row.effective_expiry == min(cert.not_valid_after_utc, pki.root.cert.not_valid_after_utc)


def test_finalize_without_chain_warns_root_unknown(api: Api, pki: TestPKI) -> None:
    ca_id = ready_for_upload(api)
    assert upload(api.admin, "uploadCert", ca_id, pem(pki.sign_ca(csr_of(api, ca_id)))).status_code == 200
    assert api.admin.post(f"{R}/finalizeCert/{ca_id}").status_code == 200
    assert "root_unknown" in {w["id"] for w in stored_row(api, ca_id).warnings}
    report = api.admin.post(f"{R}/validateCert/{ca_id}").json()  # neither part: what is stored
    assert report["valid"] is True and "root_unknown" in {f["id"] for f in report["findings"]}


def test_finalize_after_the_certificate_expired(api: Api, pki: TestPKI, clock: FrozenClock) -> None:
    ca_id = ready_for_upload(api)
    cert = pki.sign_ca(csr_of(api, ca_id), days=200)
    assert upload(api.admin, "uploadCert", ca_id, pem(cert)).status_code == 200
    before = snapshot(api, ca_id)
    clock.set(cert.not_valid_after_utc + dt.timedelta(days=1))
    form = {
        "grant_type": ["client_credentials"],
        "client_id": [api.client_id],
        "client_secret": [api.client_secret],
    }
    token = api.services.auth.issue_token(form, None).access_token  # the old one expired with the move
    api.admin.headers["Authorization"] = f"Bearer {token}"
    resp = api.admin.post(f"{R}/finalizeCert/{ca_id}")
    assert resp.status_code == 400 and resp.json()["message"].startswith("[expired] ")
    assert snapshot(api, ca_id) == before


def test_finalize_refuses_a_stored_certificate_whose_eku_excludes_server_auth(api: Api, pki: TestPKI) -> None:
    """A certificate that bypassed the upload checks (stored by hand) is caught at finalize."""
    ca_id = ready_for_upload(api)
    csr = csr_of(api, ca_id)
    assert upload(api.admin, "uploadCert", ca_id, pem(pki.sign_ca(csr))).status_code == 200
    bad = pki.sign_ca(csr, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    from interca.storage.tables import CertificateRow

    with api.services.ctx.db.write() as s:
        s.get(CertificateRow, ca_id).cert_der = bad.public_bytes(serialization.Encoding.DER)
    before = snapshot(api, ca_id)
    resp = api.admin.post(f"{R}/finalizeCert/{ca_id}")
    assert resp.status_code == 400
    assert resp.json()["message"].startswith("[eku_excludes_server_auth] ")
    assert snapshot(api, ca_id) == before


def with_org_roots(api: Api, http_server, settings, roots_file: Path) -> None:  # noqa: ANN001
    services = build_services(
        make_settings(settings.data_dir, org_roots_file=roots_file), api.services.ctx.clock
    )
    http_server[1].app = create_app(services.ctx.settings, services)
    api.services = services


def test_finalize_refuses_a_root_with_path_length_zero(
    api: Api, http_server, settings, tmp_path: Path
) -> None:  # noqa: ANN001
    """Row 52: the root above the intermediate (from org_roots_file, no chain) allows no CA below it."""
    strict_root = TestPKI()
    root = strict_root.new_root("Strict Root", path_length=0)
    roots_file = tmp_path / "roots.pem"
    roots_file.write_bytes(pem(root.cert))
    with_org_roots(api, http_server, settings, roots_file)
    ca_id = ready_for_upload(api)
    cert = strict_root.sign_ca(csr_of(api, ca_id), issuer=root)
    assert upload(api.admin, "uploadCert", ca_id, pem(cert)).status_code == 200
    before = snapshot(api, ca_id)
    resp = api.admin.post(f"{R}/finalizeCert/{ca_id}")
    assert resp.status_code == 400
    assert resp.json()["message"].startswith("[selftest_verifier_failed] ")
    assert snapshot(api, ca_id) == before


def test_untrusted_root_with_org_roots_file(
    api: Api, pki: TestPKI, http_server, settings, tmp_path: Path
) -> None:  # noqa: ANN001
    """Row 39: the chain ends at a look-alike of the organisation's configured root."""
    roots_file = tmp_path / "roots.pem"
    roots_file.write_bytes(pem(pki.root.cert))
    with_org_roots(api, http_server, settings, roots_file)
    look_alike = pki.new_root("interca Test Root CA")
    ca_id = ready_for_upload(api)
    cert = pki.sign_ca(csr_of(api, ca_id), issuer=look_alike)
    assert upload(api.admin, "uploadCert", ca_id, pem(cert)).status_code == 200
    before = snapshot(api, ca_id)
    resp = upload(api.admin, "uploadCertChain", ca_id, pem(look_alike.cert))
    assert resp.status_code == 400 and resp.json()["message"].startswith("[untrusted_root] ")
    assert snapshot(api, ca_id) == before
    # The real root is accepted, and finalize without a chain finds the org root itself.
    ok_id = api.create("Second", keyType="EC_P256")["id"]
    api.admin.post(f"{R}/keyPair/{ok_id}")
    api.admin.post(f"{R}/generateCsr/{ok_id}", json=CSR_FIELDS)
    assert upload(api.admin, "uploadCert", ok_id, pem(pki.sign_ca(csr_of(api, ok_id)))).status_code == 200
    assert api.admin.post(f"{R}/finalizeCert/{ok_id}").status_code == 200
    assert "root_unknown" not in {w["id"] for w in stored_row(api, ok_id).warnings}
