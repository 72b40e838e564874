"""`/pki/crl/{certId}.crl` and `/pki/ca/{certId}.crt` over real HTTP (api.md rows 24-25,
certificates.md §6.4): what minted leaves point at, served to anyone, refreshed every 24 hours."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.conftest import Api, R, make_settings
from tests.hsm import SoftHsm
from tests.integration.helpers import CSR_FIELDS, new_ca, ok, upload
from tests.pki import TestPKI, openssl, pem

from interca.app import build_services, create_app, create_pki_app
from interca.clock import FrozenClock
from interca.config import SOFTHSM2_MODULE
from interca.domain.x509.crl import THIS_UPDATE_BACKDATE
from interca.service.context import edit_lock
from interca.service.validation import Validator
from interca.storage.audit import AuditQuery

DAY = 24 * 3600


@pytest.fixture
def clock() -> FrozenClock:  # the services of this module run on a clock the tests move
    return FrozenClock()


def fetch_crl(api: Api, ca_id: int) -> x509.CertificateRevocationList:
    resp = api.anon.get(f"/pki/crl/{ca_id}.crl")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/pkix-crl"
    assert resp.headers["cache-control"] == "max-age=3600"
    return x509.load_der_x509_crl(resp.content)


def ca_cert(api: Api, ca_id: int) -> x509.Certificate:
    resp = api.anon.get(f"/pki/ca/{ca_id}.crt")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/pkix-cert"
    assert resp.headers["cache-control"] == "max-age=3600"
    return x509.load_der_x509_certificate(resp.content)


def number(crl: x509.CertificateRevocationList) -> int:
    return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)


def assert_signed_by(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> None:
    assert crl.issuer.public_bytes() == cert.subject.public_bytes()
    assert crl.is_signature_valid(cert.public_key())  # type: ignore[arg-type]
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski
    assert len(list(crl)) == 0


def reissues(api: Api, ca_id: int) -> list[Any]:
    return api.services.audit.query(AuditQuery(action="issue_crl", cert_id=ca_id), 1, 100)


def test_crl_after_finalize_and_its_refresh(api: Api, pki: TestPKI, clock: FrozenClock) -> None:
    ca_id = new_ca(api, pki, "CERT_READY")
    finalized_at = clock.now()
    cert = ca_cert(api, ca_id)
    crl = fetch_crl(api, ca_id)
    assert_signed_by(crl, cert)
    assert number(crl) == 1 and crl.last_update_utc == (finalized_at - THIS_UPDATE_BACKDATE).replace(
        microsecond=0
    )
    clock.advance(23 * 3600)
    assert fetch_crl(api, ca_id).public_bytes(serialization.Encoding.DER) == crl.public_bytes(
        serialization.Encoding.DER
    )  # not due yet: the stored CRL itself
    clock.advance(2 * 3600)
    refreshed = fetch_crl(api, ca_id)
    assert number(refreshed) == 2
    assert refreshed.last_update_utc - crl.last_update_utc == dt.timedelta(hours=25)
    assert_signed_by(refreshed, cert)
    assert number(fetch_crl(api, ca_id)) == 2
    (entry,) = reissues(api, ca_id)
    assert (entry.actor_type, entry.outcome) == ("SYSTEM", "SUCCESS") and entry.detail.startswith(
        "CRL 2 sha256:"
    )


def test_concurrent_fetches_when_due_bump_once(
    api: Api, pki: TestPKI, http_server: Any, settings: Any, clock: FrozenClock
) -> None:
    # A generous lock wait, so a busy machine cannot make a fetch fall back to the old CRL.
    services = build_services(make_settings(settings.data_dir, edit_lock_wait=30), clock)
    http_server[1].app = create_app(services.ctx.settings, services)
    api.services = services
    ca_id = new_ca(api, pki, "CERT_READY")
    clock.advance(DAY + 60)
    barrier = threading.Barrier(8)

    def get(_: int) -> bytes:
        barrier.wait()
        resp = httpx.get(f"{api.base}/pki/crl/{ca_id}.crl", timeout=60)
        assert resp.status_code == 200, resp.text
        return resp.content

    with ThreadPoolExecutor(8) as pool:
        bodies = set(pool.map(get, range(8)))
    assert len(bodies) == 1 and number(x509.load_der_x509_crl(bodies.pop())) == 2
    assert len(reissues(api, ca_id)) == 1


def test_refresh_crls_reissues_every_due_crl(api: Api, pki: TestPKI, clock: FrozenClock) -> None:
    first, second = new_ca(api, pki, "CERT_READY", "First CA"), new_ca(api, pki, "CERT_READY", "Second CA")
    assert api.services.pki.refresh_crls() == [1]  # the built-in CA's first CRL; the others are fresh
    clock.advance(DAY)
    assert api.services.pki.refresh_crls() == [1, first, second]
    assert api.services.pki.refresh_crls() == []
    for ca_id, expected in ((1, 2), (first, 2), (second, 2)):
        crl = fetch_crl(api, ca_id)
        assert number(crl) == expected
        assert_signed_by(crl, ca_cert(api, ca_id))


def test_builtin_ca_serves_what_its_leaves_point_at(api: Api) -> None:
    builtin = ca_cert(api, 1)
    profile = Validator(api.services.ctx).leaf_profile(1, builtin)
    assert profile.crl_url == f"{api.services.ctx.settings.pki_base_url}/pki/crl/1.crl"
    crl = fetch_crl(api, 1)  # the first fetch issues its first CRL
    assert number(crl) == 1
    assert_signed_by(crl, builtin)
    assert number(fetch_crl(api, 1)) == 1


def test_not_found_in_the_zia_shape(api: Api, pki: TestPKI, clock: FrozenClock) -> None:
    uploaded = new_ca(api, pki, "INTCERT_UPLOAD_DONE", "Uploaded CA")
    fresh = new_ca(api, pki, "GENERAL_DONE", "Fresh CA")
    for path, ca_id in (
        ("/pki/crl/999999.crl", 999999),
        (f"/pki/crl/{uploaded}.crl", uploaded),
        (f"/pki/crl/{fresh}.crl", fresh),
        (f"/pki/ca/{fresh}.crt", fresh),
        ("/pki/ca/999999.crt", 999999),
    ):
        resp = api.anon.get(path)
        assert (resp.status_code, resp.json()) == (
            404,
            {"code": "RESOURCE_NOT_FOUND", "message": f"Certificate {ca_id} not found."},
        ), path
    for path in ("/pki/crl/abc.crl", "/pki/crl/0.crl", "/pki/ca/-1.crt", "/pki/crl/1.pem"):
        resp = api.anon.get(path)
        assert resp.status_code == 404 and resp.json()["code"] == "RESOURCE_NOT_FOUND", path
    # Before finalize the uploaded certificate is already public, and no CRL was issued.
    stored = api.admin.get(f"{R}/downloadCertChain/{uploaded}").content
    assert ca_cert(api, uploaded) == x509.load_pem_x509_certificates(stored)[0]
    assert reissues(api, uploaded) == []


def test_a_ca_without_crl_sign_has_no_crl(api: Api, pki: TestPKI) -> None:
    ca_id = api.create("No CRL CA", keyType="EC_P256")["id"]
    ok(api.admin.post(f"{R}/keyPair/{ca_id}"))
    ok(api.admin.post(f"{R}/generateCsr/{ca_id}", json=CSR_FIELDS))
    csr = x509.load_pem_x509_csr(api.admin.get(f"{R}/downloadCsr/{ca_id}").content)
    ok(upload(api.admin, "uploadCert", ca_id, pem(pki.sign_ca(csr, key_usage=("key_cert_sign",)))))
    ok(api.admin.post(f"{R}/finalizeCert/{ca_id}"))
    assert api.anon.get(f"/pki/crl/{ca_id}.crl").status_code == 404
    assert api.services.pki.refresh_crls() == [1]  # the built-in CA only
    ca_cert(api, ca_id)  # its certificate is served all the same


def test_no_crl_after_the_ca_expires(api: Api, pki: TestPKI, clock: FrozenClock) -> None:
    ca_id = api.create("Short CA", keyType="EC_P256")["id"]
    ok(api.admin.post(f"{R}/keyPair/{ca_id}"))
    ok(api.admin.post(f"{R}/generateCsr/{ca_id}", json=CSR_FIELDS))
    csr = x509.load_pem_x509_csr(api.admin.get(f"{R}/downloadCsr/{ca_id}").content)
    cert = pki.sign_ca(csr, days=200)
    ok(upload(api.admin, "uploadCert", ca_id, pem(cert)))
    ok(api.admin.post(f"{R}/finalizeCert/{ca_id}"))
    clock.set(cert.not_valid_after_utc - dt.timedelta(seconds=1))
    assert number(fetch_crl(api, ca_id)) == 2  # due long ago: re-issued while the CA is valid
    clock.set(cert.not_valid_after_utc)
    resp = api.anon.get(f"/pki/crl/{ca_id}.crl")
    assert (resp.status_code, resp.json()["code"]) == (404, "RESOURCE_NOT_FOUND")
    assert ca_cert(api, ca_id) == cert  # the certificate itself stays public
    assert api.services.pki.refresh_crls() == [1]  # and nothing is re-issued for it


def test_openssl_verifies_the_crl(api: Api, pki: TestPKI, tmp_path: Path) -> None:
    ca_id = new_ca(api, pki, "CERT_READY")
    (tmp_path / "crl.der").write_bytes(api.anon.get(f"/pki/crl/{ca_id}.crl").content)
    (tmp_path / "ca.pem").write_bytes(pem(ca_cert(api, ca_id)))
    (tmp_path / "other.pem").write_bytes(pem(ca_cert(api, 1)))  # negative control: another CA
    good = openssl(
        "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout", "-verify", cwd=tmp_path
    )
    assert good.returncode == 0 and "verify OK" in good.stdout + good.stderr, good.stderr
    bad = openssl(
        "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "other.pem", "-noout", "-verify", cwd=tmp_path
    )
    assert bad.returncode != 0 or "verify OK" not in bad.stdout + bad.stderr


def test_served_through_the_plain_pki_listener(api: Api, pki: TestPKI, http_server: Any) -> None:
    ca_id = new_ca(api, pki, "CERT_READY")
    http_server[1].app = create_pki_app(create_app(api.services.ctx.settings, api.services))
    assert_signed_by(fetch_crl(api, ca_id), ca_cert(api, ca_id))
    resp = api.admin.get(f"{R}/{ca_id}")  # the API itself is not reachable there
    assert (resp.status_code, resp.json()["code"]) == (404, "RESOURCE_NOT_FOUND")


def test_an_hsm_ca_crl_is_signed_in_the_token(
    api: Api,
    pki: TestPKI,
    http_server: Any,
    data_dir: Path,
    softhsm: SoftHsm,
    tmp_path: Path,
    clock: FrozenClock,
) -> None:
    token = softhsm.new_token(tmp_path)
    overrides: dict[str, Any] = {"hsm_module": SOFTHSM2_MODULE, "softhsm2_conf": softhsm.conf}
    overrides.update(token.settings("EUROPE"))
    services = build_services(make_settings(data_dir, **overrides), clock)
    http_server[1].app = create_app(services.ctx.settings, services)
    api.services = services
    ca_id = api.create("HSM CA", type="CUSTOM_HSM", region="EUROPE", keyType="RSA_2K")["id"]
    ok(api.admin.post(f"{R}/keyPair/{ca_id}"))
    ok(api.admin.post(f"{R}/generateCsr/{ca_id}", json={**CSR_FIELDS, "pathLengthConstraint": 0}))
    csr = x509.load_pem_x509_csr(api.admin.get(f"{R}/downloadCsr/{ca_id}").content)
    cert = pki.sign_ca(csr)
    ok(upload(api.admin, "uploadCert", ca_id, pem(cert)))
    ok(api.admin.post(f"{R}/finalizeCert/{ca_id}"))
    assert number(crl := fetch_crl(api, ca_id)) == 1
    assert_signed_by(crl, cert)
    clock.advance(DAY + 3600)
    assert number(crl := fetch_crl(api, ca_id)) == 2
    assert_signed_by(crl, cert)


def test_a_busy_ca_serves_its_stored_crl_while_it_is_current(
    api: Api, pki: TestPKI, clock: FrozenClock
) -> None:
    """An admin's change holds the edit lock: a due CRL cannot be re-issued, so the stored one is
    served until its nextUpdate, then 503 with Retry-After."""
    ca_id = new_ca(api, pki, "CERT_READY")
    clock.advance(DAY + 3600)
    locks = api.services.ctx.locks
    with locks.hold(edit_lock(ca_id), wait=1):
        assert number(fetch_crl(api, ca_id)) == 1
    clock.advance(7 * DAY)  # past CRL 1's nextUpdate (and past the lease above: taken anew)
    with locks.hold(edit_lock(ca_id), wait=1):
        resp = api.anon.get(f"/pki/crl/{ca_id}.crl")
        assert (resp.status_code, resp.json()["code"], resp.headers["retry-after"]) == (
            503,
            "SERVICE_UNAVAILABLE",
            "10",
        )
    assert number(fetch_crl(api, ca_id)) == 2 and reissues(api, ca_id)[0].outcome == "SUCCESS"
