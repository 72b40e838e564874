"""The issuing engine over a deployment driven through the real HTTP API (certificates.md §6):
a CA created, keyed, signed, uploaded with its chain, finalized and made default over the wire,
then leaves minted by `interca.issuance.Engine` and proven with the strict verifier and a real
TLS handshake (with negative controls); and the same with the CA key in a SoftHSM2 token."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.verification import DNSName, PolicyBuilder, Store, VerificationError
from tests.conftest import Api, R, make_settings
from tests.hsm import SoftHsm, TestToken
from tests.integration.helpers import CSR_FIELDS, ok, upload
from tests.pki import CA, TestPKI, pem

from interca.app import build_services, create_app
from interca.config import SOFTHSM2_MODULE
from interca.issuance import Engine, LeafRefused, Minted
from interca.service.handshake import handshake
from interca.service.registry import Services


def through_the_api(api: Api, pki: TestPKI, name: str, *, chain: list[x509.Certificate], issuer: CA | None = None,
                    **create: Any) -> tuple[int, x509.Certificate]:  # fmt: skip
    """Create -> keyPair -> downloadPublicKey -> generateCsr -> uploadCert -> uploadCertChain ->
    finalizeCert -> makeDefault, over HTTP; returns (id, the signed intermediate)."""
    ca_id = api.create(name, **create)["id"]
    ok(api.admin.post(f"{R}/keyPair/{ca_id}"))
    ok(api.admin.get(f"{R}/downloadPublicKey/{ca_id}"))
    signature = "SHA384" if create.get("keyType") == "EC_P384" else "SHA256"
    fields = {
        **CSR_FIELDS,
        "commName": f"{name} Inspection",
        "pathLengthConstraint": 0,
        "signatureAlgorithm": signature,
    }
    ok(api.admin.post(f"{R}/generateCsr/{ca_id}", json=fields))
    csr = x509.load_pem_x509_csr(api.admin.get(f"{R}/downloadCsr/{ca_id}").content)
    cert = pki.sign_ca(csr, issuer=issuer)
    ok(upload(api.admin, "uploadCert", ca_id, pem(cert)))
    ok(upload(api.admin, "uploadCertChain", ca_id, pem(*chain), "chain.pem"))
    ok(api.admin.post(f"{R}/finalizeCert/{ca_id}"))
    ok(api.admin.put(f"{R}/makeDefault/{ca_id}"))
    assert api.admin.get(f"{R}/{ca_id}").json()["defaultCertificate"] is True
    return ca_id, cert


def served(minted: Minted) -> list[x509.Certificate]:
    return [x509.load_der_x509_certificate(d) for d in minted.chain]


def verifier_refuses(root: x509.Certificate, host: str, minted: Minted) -> bool:
    leaf, *rest = served(minted)
    try:
        PolicyBuilder().store(Store([root])).build_server_verifier(DNSName(host)).verify(leaf, rest)
    except VerificationError:
        return True
    return False


def test_engine_mints_with_the_ca_made_default_through_the_api(api: Api, pki: TestPKI) -> None:
    policy = pki.sub_ca("Issuance Policy CA", path_length=1)
    ca_id, cert = through_the_api(
        api, pki, "Inspection", chain=[policy.cert, pki.root.cert], issuer=policy, keyType="EC_P256"
    )
    engine = Engine(api.services.ctx, default_poll_seconds=0)
    try:
        minted = engine.mint(["WWW.Example.TEST."])
        assert minted.ca_id == ca_id
        leaf, intermediate, *above = served(minted)
        assert intermediate == cert and above == [policy.cert]  # the root is never served
        assert not verifier_refuses(pki.root.cert, "www.example.test", minted)
        # A real TLS handshake with the chain as served: it passes, and fails for another host
        # name and for another root (negative controls).
        untrusted = [intermediate, *above]
        assert handshake(leaf, minted.key, "www.example.test", trusted=pki.root.cert, untrusted=untrusted,
                         partial_chain=False) is None  # fmt: skip
        assert handshake(leaf, minted.key, "other.example.test", trusted=pki.root.cert, untrusted=untrusted,
                         partial_chain=False) is not None  # fmt: skip
        stranger = TestPKI().root.cert
        assert handshake(leaf, minted.key, "www.example.test", trusted=stranger, untrusted=untrusted,
                         partial_chain=False) is not None  # fmt: skip
        assert verifier_refuses(pki.root.cert, "other.example.test", minted)
        assert verifier_refuses(stranger, "www.example.test", minted)

        ok(api.admin.put(f"{R}/makeDefault/1"))  # back to the built-in CA: new mints follow
        builtin = engine.mint(["www.example.test"])
        assert builtin.ca_id == 1 and builtin.chain[0] != minted.chain[0]
        assert served(builtin)[0].issuer != cert.subject
    finally:
        engine.close()


# HSM ------------------------------------------------------------------------------------------


def hsm_services(
    api: Api, http_server: Any, data_dir: Path, softhsm: SoftHsm, tokens: dict[str, TestToken]
) -> Services:
    """The deployment of `api`, now with the given regions' HSMs pointing at fresh tokens (as in
    test_hsm_lifecycle)."""
    overrides: dict[str, Any] = {"hsm_module": SOFTHSM2_MODULE, "softhsm2_conf": softhsm.conf}
    for region, token in tokens.items():
        overrides.update(token.settings(region))
    services = build_services(make_settings(data_dir, **overrides), api.services.ctx.clock)
    http_server[1].app = create_app(services.ctx.settings, services)
    api.services = services
    return services


def verify_with(public_key: Any, leaf: x509.Certificate) -> None:
    """The leaf's signature checked with the CA's public key, by hand (raises if wrong)."""
    assert leaf.signature_hash_algorithm is not None
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(
            leaf.signature, leaf.tbs_certificate_bytes, padding.PKCS1v15(), leaf.signature_hash_algorithm
        )
    else:
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        public_key.verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))


@pytest.mark.usefixtures("fast_backoff")
def test_engine_mints_with_an_hsm_default_ca(
    api: Api, http_server: Any, data_dir: Path, softhsm: SoftHsm, tmp_path: Path, pki: TestPKI
) -> None:
    tokens = {"US": softhsm.new_token(tmp_path), "EUROPE": softhsm.new_token(tmp_path)}
    services = hsm_services(api, http_server, data_dir, softhsm, tokens)
    for region, key_type in (("US", "EC_P256"), ("EUROPE", "RSA_2K")):
        ca_id, cert = through_the_api(
            api,
            pki,
            f"HSM {region}",
            chain=[pki.root.cert],
            type="CUSTOM_HSM",
            region=region,
            keyType=key_type,
        )
        record = services.ctx.load(ca_id)
        assert record.key is not None and record.key.ref.startswith("pkcs11:")
        engine = Engine(services.ctx, default_poll_seconds=0)
        try:
            minted = engine.mint(["hsm.example.test", "10.9.8.7"])
            assert minted.ca_id == ca_id
            leaf = served(minted)[0]
            token_public = tokens[region].public_object(record.key.ref)  # read back from the token
            verify_with(token_public, leaf)
            verify_with(cert.public_key(), leaf)
            assert not verifier_refuses(pki.root.cert, "hsm.example.test", minted)
            spki = serialization.PublicFormat.SubjectPublicKeyInfo
            der = serialization.Encoding.DER
            assert minted.key.public_key().public_bytes(der, spki) != token_public.public_bytes(der, spki)

            if region == "US":  # the token goes away: no leaf, a refusal the proxy can pass through
                with tokens[region].removed():
                    with pytest.raises(LeafRefused) as refused:
                        engine.mint(["during.example.test"])
                    assert refused.value.id == "no_default_ca"
                    assert tokens[region].serial not in refused.value.message
                softhsm.backend.reinitialize()
                time.sleep(0.05)  # past the (shortened) back-off, so the next call tries the token
                verify_with(token_public, served(engine.mint(["after.example.test"]))[0])
        finally:
            engine.close()
