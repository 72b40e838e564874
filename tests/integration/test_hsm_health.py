"""The HSM health check (hsm.md §6.5) over real SoftHSM2 tokens: every finalized CUSTOM_HSM key
signs a challenge in its token and the signature verifies with the stored public key; a token
taken away turns the key unhealthy, and it recovers once the token is back; the results reach
`/metrics`. Software keys and unfinished HSM keys are not checked."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pkcs11 import Attribute
from tests.conftest import Api
from tests.hsm import SoftHsm
from tests.integration.helpers import advance
from tests.integration.test_hsm_lifecycle import hsm_services
from tests.integration.test_metrics import samples
from tests.pki import TestPKI

from interca.errors import KeyStoreError
from interca.keystore.pkcs11 import KeyRef
from interca.storage.tables import CertificateRow


def test_health_check_follows_the_token_and_reaches_the_metrics(
    api: Api, http_server: Any, data_dir: Path, softhsm: SoftHsm, tmp_path: Path, pki: TestPKI,
    fast_backoff: None,
) -> None:  # fmt: skip
    us, europe = softhsm.new_token(tmp_path), softhsm.new_token(tmp_path)
    services = hsm_services(api, http_server, data_dir, softhsm, {"US": us, "EUROPE": europe})
    ec_id = api.create("HSM EC", type="CUSTOM_HSM", region="US", keyType="EC_P256")["id"]
    rsa_id = api.create("HSM RSA", type="CUSTOM_HSM", region="EUROPE", keyType="RSA_2K")["id"]
    pending = api.create("HSM pending", type="CUSTOM_HSM", region="US", keyType="EC_P256")["id"]
    software = api.create("Software", keyType="EC_P256")["id"]
    for ca_id in (ec_id, rsa_id):
        advance(api, pki, ca_id, "CERT_READY", pathLengthConstraint=0)
    advance(api, pki, pending, "KEYGEN_DONE")
    advance(api, pki, software, "CERT_READY")
    health = services.hsm_health
    assert health.results() == []  # nothing before the first check

    results = health.check()
    assert [(r.ca_id, r.region, r.healthy) for r in results] == [(ec_id, "US", True), (rsa_id, "EUROPE", True)]

    with europe.removed():
        by_id = {r.ca_id: r for r in health.check()}
    assert by_id[ec_id].healthy
    assert not by_id[rsa_id].healthy and by_id[rsa_id].error_id in ("hsm_unavailable", "hsm_token_not_found")
    got = samples(api.admin.get("/metrics").text)
    assert got[("interca_hsm_key_healthy", (("ca_id", str(rsa_id)), ("region", "EUROPE")))] == 0
    assert got[("interca_hsm_key_healthy", (("ca_id", str(ec_id)), ("region", "US")))] == 1

    # The token is back: the key store reconnects by itself (after its back-off, 10 ms here).
    deadline = time.monotonic() + 30  # hang bound
    while not all(r.healthy for r in health.check()):
        assert time.monotonic() < deadline, health.results()
        time.sleep(0.05)
    got = samples(api.admin.get("/metrics").text)
    assert got[("interca_hsm_key_healthy", (("ca_id", str(rsa_id)), ("region", "EUROPE")))] == 1
    assert ("interca_hsm_key_checked_timestamp_seconds", (("ca_id", str(ec_id)),)) in got


def test_a_key_missing_from_its_token_is_named_by_certificate(
    api: Api, http_server: Any, data_dir: Path, softhsm: SoftHsm, tmp_path: Path, pki: TestPKI,
    fast_backoff: None,
) -> None:  # fmt: skip
    token = softhsm.new_token(tmp_path)
    hsm_services(api, http_server, data_dir, softhsm, {"US": token})
    ca_id = api.create("HSM gone", type="CUSTOM_HSM", region="US", keyType="EC_P256")["id"]
    advance(api, pki, ca_id, "CERT_READY", pathLengthConstraint=0)
    with api.services.ctx.db.read() as s:
        key_id = KeyRef.parse(str(s.get(CertificateRow, ca_id).key_ref)).key_id  # type: ignore[union-attr]

    def destroy(tok: Any) -> None:  # behind the service's back: someone cleared the token
        for obj in tok.session.get_objects({Attribute.ID: key_id}):
            obj.destroy()

    token.hsm.backend.run(token.config("US"), destroy)
    softhsm.backend.reinitialize()
    services = hsm_services(api, http_server, data_dir, softhsm, {"US": token})  # fresh key stores
    with pytest.raises(KeyStoreError) as exc:
        services.ctx.signer(services.ctx.load(ca_id))
    assert exc.value.error_id == "hsm_key_not_found"
    assert f"Certificate {ca_id}'s key" in exc.value.message and key_id.hex() in exc.value.message
    assert [(r.ca_id, r.error_id) for r in services.hsm_health.check()] == [(ca_id, "hsm_key_not_found")]
