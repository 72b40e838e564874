"""An emulated HSM attestation PKI made on the fly with software keys (hsm.md §8.2–§8.5).

Software P-384 keys stand in for the tokens: a manufacturer root, one attestation key (AK) per
region with its DeviceInfo, and statements for any software key with the claims a genuine
SoftHSM2 key would carry. The attestor reads those claims from a real token; here they are made
up to be genuine unless a test overrides one. Attackers are simply another `AttestationPKI`
(same deployment id, so every name is identical).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from interca.domain.attestation.claims import (
    CKK_EC,
    CKK_RSA,
    CKM_EC_KEY_PAIR_GEN,
    CKM_RSA_PKCS_KEY_PAIR_GEN,
    EMULATED_MODEL,
    Claims,
    DeviceInfoClaims,
)
from interca.domain.attestation.report import VerificationReport
from interca.domain.attestation.statement import (
    build_ak_certificate,
    build_manufacturer_root,
    build_statement,
    bundle_pem,
    fingerprint,
)
from interca.domain.attestation.verify import verify_bundle

REGIONS = ("GLOBAL", "ASIA", "EUROPE", "US")
# SoftHSM2 token serials are 16 hex digits; one token per region.
SERIALS = {
    "GLOBAL": "1a00c0ffee000001",
    "ASIA": "2b00c0ffee000002",
    "EUROPE": "3c00c0ffee000003",
    "US": "4d00c0ffee000004",
}
PROVISIONED = dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def spki(key: Any) -> bytes:
    public = key.public_key() if hasattr(key, "private_bytes") else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Device:
    """One region's emulated attestation token: its AK and AK certificate."""

    region: str
    token_serial: str
    ak_key: ec.EllipticCurvePrivateKey
    ak_cert: x509.Certificate


class AttestationPKI:
    def __init__(self, provisioned: dt.datetime = PROVISIONED, deployment_id: str = "5e1f0a7b") -> None:
        # Kept (unlike provisioning, which destroys it) so tests can hand-build odd AK certificates.
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = build_manufacturer_root(self.root_key, deployment_id, provisioned)
        self.devices: dict[str, Device] = {}
        for region in REGIONS:
            ak_key = ec.generate_private_key(ec.SECP384R1())
            info = DeviceInfoClaims(region, SERIALS[region], EMULATED_MODEL, "2.6.1", True)
            cert = build_ak_certificate(ak_key.public_key(), info, self.root, self.root_key, provisioned)
            self.devices[region] = Device(region, SERIALS[region], ak_key, cert)

    @property
    def pin(self) -> bytes:
        return fingerprint(self.root)

    def claims(self, key: Any, region: str = "US", key_id: bytes | None = None, **overrides: Any) -> Claims:
        """The claims a key freshly generated in `region`'s token carries (hsm.md §4 templates)."""
        public = key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            kind, bits, mechanism = CKK_RSA, public.key_size, CKM_RSA_PKCS_KEY_PAIR_GEN
        else:
            kind, bits, mechanism = CKK_EC, public.curve.key_size, CKM_EC_KEY_PAIR_GEN
        genuine = Claims(
            region=region,
            token_serial=SERIALS[region],
            key_id=key_id if key_id is not None else secrets.token_bytes(16),
            key_label="interca-7",
            key_type=kind,
            key_bits=bits,
            local=True,
            key_gen_mechanism=mechanism,
            never_extractable=True,
            extractable=False,
            always_sensitive=True,
            sensitive=True,
            attested_at=NOW,
            generated_at=NOW - dt.timedelta(seconds=2),
        )
        return dataclasses.replace(genuine, **overrides)

    def statement(
        self,
        key: Any,
        region: str = "US",
        *,
        device: str | None = None,
        at: dt.datetime = NOW,
        on_demand: bool = False,
        nonce: bytes | None = None,
        **claim_overrides: Any,
    ) -> x509.Certificate:
        """A statement for `key` in `region`, signed by `device`'s AK (default: the region's own)."""
        dev = self.devices[device or region]
        claims = self.claims(key, region, nonce=nonce, **claim_overrides)
        return build_statement(key.public_key(), claims, dev.ak_cert, dev.ak_key, at, on_demand=on_demand)

    def bundle(
        self, statement: x509.Certificate, device: str = "US", root: x509.Certificate | None = None
    ) -> bytes:
        return bundle_pem(statement, self.devices[device].ak_cert, root or self.root)

    def verify(
        self,
        bundle: bytes,
        key: Any,
        *,
        region: str | None = "US",
        key_id: bytes | None = None,
        now: dt.datetime = NOW,
        pins: Any = None,
        **kw: Any,
    ) -> VerificationReport:
        return verify_bundle(
            bundle,
            pinned_roots=[self.pin] if pins is None else pins,
            expected_spki=spki(key) if key is not None else None,
            region=region,
            key_id=key_id,
            now=now,
            **kw,
        )
