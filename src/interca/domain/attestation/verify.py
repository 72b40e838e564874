"""Verification of an emulated HSM key attestation bundle: steps V1–V9 of hsm.md §8.6.

Every step is reported, in order; the first failure decides. V1 is structural: when it fails no
later step can run and each is reported as skipped. Later steps run even after an earlier one
failed (after V2 with the bundle's own root), so a report shows everything wrong at once; the
claims are exposed as verified (`report.claims`) only when nothing failed. A comparison the
caller gives nothing for (no region, no key id offline) is not made and the detail says so; V6
without a public key and V9 without a nonce or maximum age are skipped.

The tampering cases of §8.7 land on their own ids: an edited claim or swapped SPKI breaks the AK's
signature (V3), look-alike roots are not pinned (V2), another key's statement fails V6, another
region's V8, an imported or once-extractable key V7, a late or replayed on-demand statement V5/V9.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Iterable
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from interca.domain.attestation.bundle import ROLES, DecodedBundle, decode_bundle
from interca.domain.attestation.claims import (
    CKK_EC,
    CKK_RSA,
    CKM_EC_KEY_PAIR_GEN,
    CKM_RSA_PKCS_KEY_PAIR_GEN,
    HSM_KEY_ATTESTATION_EKU,
    PROTECTION_LEVEL,
    Claims,
    device_info_of,
)
from interca.domain.attestation.report import STEPS, Check, Status, VerificationReport
from interca.domain.models import Region
from interca.domain.x509.issuance_links import raw_names, signed_by
from interca.domain.x509.profile_checks import iso_timestamp

_SPKI = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
_SIGNATURE_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)


_E = TypeVar("_E", bound=x509.ExtensionType)


class _Failed(Exception):
    """A step's failure; the argument is its sentence."""


def verify_bundle(
    bundle_pem: bytes,
    *,
    pinned_roots: Iterable[bytes | str] | x509.Certificate,
    denied_ak_fingerprints: Iterable[bytes | str] = (),
    expected_spki: bytes | None,
    region: Region | str | None,
    key_id: bytes | None,
    now: dt.datetime,
    skew_seconds: int = 300,
    nonce: bytes | None = None,
    max_age: dt.timedelta | None = None,
) -> VerificationReport:
    """Run V1–V9 over a bundle (statement, AK certificate, root; hsm.md §8.5).

    `pinned_roots`: SHA-256 fingerprints of the pinned manufacturer roots (32 raw bytes or hex,
    colons allowed), or the pinned root certificate itself (offline `--root`). `denied_ak_fingerprints`
    in the same form. `expected_spki`: the record's public key as SubjectPublicKeyInfo DER.
    `region`, `key_id`: the record's region and CKA_ID. `nonce`, `max_age`: for an on-demand
    statement. `skew_seconds` tolerates a notBefore slightly in the future (certificates.md §1).

    Never raises for the bundle's content. Raises `ValueError` if `now` is naive, `expected_spki`
    does not parse, or a fingerprint is not SHA-256 sized.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    expected_key = serialization.load_der_public_key(expected_spki) if expected_spki is not None else None
    if isinstance(pinned_roots, x509.Certificate):
        pinned_copy: x509.Certificate | None = pinned_roots
        pins = {hashlib.sha256(pinned_roots.public_bytes(serialization.Encoding.DER)).digest()}
    else:
        pinned_copy, pins = None, _fingerprints(pinned_roots)
    denied = _fingerprints(denied_ak_fingerprints)
    region_value = region.value if isinstance(region, Region) else region
    skew = dt.timedelta(seconds=skew_seconds)

    checks: list[Check] = []
    try:
        bundle = decode_bundle(bundle_pem)
    except ValueError as exc:
        checks.append(_check(0, "failed", str(exc)))
        checks += [_check(i, "skipped", "Not run: the bundle did not decode") for i in range(1, len(STEPS))]
        return VerificationReport(checks, None, None)
    checks.append(_check(0, "passed", "Three certificates; keyAttestation version 1 decodes"))

    steps: list[Callable[[], str | None]] = [
        lambda: _v2_pinned(bundle, pins, pinned_copy),
        lambda: _v3_signatures(bundle),
        lambda: _v4_profiles(bundle, denied),
        lambda: _v5_validity(bundle, now, skew),
        lambda: _v6_key(bundle, expected_key),
        lambda: _v7_claims(bundle.claims, key_id),
        lambda: _v8_region(bundle, region_value),
        lambda: _v9_fresh(bundle.claims, now, skew, nonce, max_age),
    ]
    for index, step in enumerate(steps, start=1):
        try:
            detail = step()
        except _Failed as exc:
            checks.append(_check(index, "failed", str(exc)))
            continue
        if detail is None:
            checks.append(_check(index, "skipped", _SKIP_REASONS[index]))
        else:
            checks.append(_check(index, "passed", detail))
    return VerificationReport(checks, bundle.claims, bundle.device_info)


_SKIP_REASONS = {
    5: "No public key given to compare the attested key with",
    7: "The AK certificate has no DeviceInfo to compare with (see V4)",
    8: "No nonce or maximum age requested (a creation-time statement)",
}


def _check(index: int, status: Status, detail: str) -> Check:
    step, id_, title = STEPS[index]
    return Check(step, id_, title, status, detail)


def _fingerprints(values: Iterable[bytes | str]) -> set[bytes]:
    out = set()
    for value in values:
        raw = value if isinstance(value, bytes) else binascii.unhexlify(value.replace(":", "").strip())
        if len(raw) != 32:
            raise ValueError("fingerprints are SHA-256: 32 bytes or 64 hex digits")
        out.add(raw)
    return out


def _v2_pinned(b: DecodedBundle, pins: set[bytes], pinned_copy: x509.Certificate | None) -> str:
    digest = hashlib.sha256(b.root.public_bytes(serialization.Encoding.DER)).digest()
    if digest not in pins:
        raise _Failed(f"The bundle's root (SHA-256 {digest.hex()}) is not a pinned HSM manufacturer root")
    if pinned_copy is not None:
        b.root = pinned_copy  # the same bytes; from here on, only the pinned copy is used
    return "The bundle's root is a pinned manufacturer root"


def _v3_signatures(b: DecodedBundle) -> str:
    for child, issuer, what in (
        (b.ak, b.root, "AK certificate"),
        (b.statement, b.ak, "attestation certificate"),
    ):
        by = "the manufacturer root" if issuer is b.root else "the AK certificate"
        if raw_names(child)[0] != raw_names(issuer)[1]:
            raise _Failed(f"The {what}'s issuer name is not the subject of {by}")
        try:
            strong = isinstance(child.signature_hash_algorithm, _SIGNATURE_HASHES)
        except UnsupportedAlgorithm:
            strong = False
        if not strong or not signed_by(child, issuer):
            raise _Failed(f"The {what}'s signature does not verify with the key of {by}")
    return "The root signed the AK certificate; the AK signed the attestation certificate"


def _v4_profiles(b: DecodedBundle, denied: set[bytes]) -> str:
    ext = b.ak.extensions
    bc = _value(ext, x509.BasicConstraints)
    if bc is None or not bc.ca or bc.path_length != 0:
        raise _Failed("The AK certificate is not a CA certificate with pathLen 0")
    ku = _value(ext, x509.KeyUsage)
    if ku is None or not ku.key_cert_sign:
        raise _Failed("The AK certificate's key usage lacks keyCertSign")
    eku = _value(ext, x509.ExtendedKeyUsage)
    if eku is None or HSM_KEY_ATTESTATION_EKU not in eku:
        raise _Failed("The AK certificate lacks the id-interca-kp-hsmKeyAttestation extended key usage")
    try:
        b.device_info = device_info_of(b.ak)
    except ValueError:
        raise _Failed("The AK certificate has no DeviceInfo extension that decodes") from None
    digest = hashlib.sha256(b.ak.public_bytes(serialization.Encoding.DER)).digest()
    if digest in denied:
        raise _Failed(f"The AK certificate (SHA-256 {digest.hex()}) is on the deny list")
    bc = _value(b.statement.extensions, x509.BasicConstraints)
    if bc is None or bc.ca:
        raise _Failed("The attestation certificate is not marked CA:FALSE")
    eku = _value(b.statement.extensions, x509.ExtendedKeyUsage)
    if eku is None or list(eku) != [HSM_KEY_ATTESTATION_EKU]:
        raise _Failed(
            "The attestation certificate's extended key usage is not exactly id-interca-kp-hsmKeyAttestation"
        )
    return (
        "AK certificate: CA pathLen 0, keyCertSign, attestation EKU, DeviceInfo, not denied; "
        "attestation certificate: CA:FALSE, attestation EKU only"
    )


def _value(extensions: x509.Extensions, kind: type[_E]) -> _E | None:
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _v5_validity(b: DecodedBundle, now: dt.datetime, skew: dt.timedelta) -> str:
    for role, cert in zip(ROLES, (b.statement, b.ak, b.root), strict=True):
        if cert.not_valid_before_utc > now + skew:
            raise _Failed(f"The {role} is not valid before {iso_timestamp(cert.not_valid_before_utc)}")
        if cert.not_valid_after_utc <= now:
            raise _Failed(f"The {role} expired on {iso_timestamp(cert.not_valid_after_utc)}")
    return f"All three certificates are valid at {iso_timestamp(now)}"


def _v6_key(b: DecodedBundle, expected: PublicKeyTypes | None) -> str | None:
    if expected is None:
        return None
    try:
        attested = b.statement.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise _Failed("The attestation certificate's public key does not parse") from None
    # Both re-encoded, so an expected key written with other DER choices still compares equal.
    if expected.public_bytes(*_SPKI) != attested.public_bytes(*_SPKI):
        raise _Failed("The attestation certificate is for another key than the expected public key")
    if isinstance(attested, rsa.RSAPublicKey):
        kind, bits, shown = CKK_RSA, attested.key_size, f"RSA-{attested.key_size}"
    elif isinstance(attested, ec.EllipticCurvePublicKey):
        kind, bits, shown = CKK_EC, attested.curve.key_size, f"EC {attested.curve.name}"
    else:
        raise _Failed("The attested key is neither RSA nor EC")
    if (b.claims.key_type, b.claims.key_bits) != (kind, bits):
        raise _Failed(
            f"The claims say keyType {b.claims.key_type} with {b.claims.key_bits} bits, "
            f"but the attested key is {shown}"
        )
    return f"The attested key is the expected {shown} key"


def _v7_claims(c: Claims, key_id: bytes | None) -> str:
    mechanism = {CKK_RSA: CKM_RSA_PKCS_KEY_PAIR_GEN, CKK_EC: CKM_EC_KEY_PAIR_GEN}.get(c.key_type)
    wrong = [
        f"{name} is {shown(actual)} (expected {shown(want)})"
        for name, actual, want in (
            ("protectionLevel", c.protection_level, PROTECTION_LEVEL),
            ("local", c.local, True),
            ("neverExtractable", c.never_extractable, True),
            ("alwaysSensitive", c.always_sensitive, True),
            ("sensitive", c.sensitive, True),
            ("extractable", c.extractable, False),
        )
        if actual != want
    ]
    if mechanism is None:
        wrong.append(f"keyType is {c.key_type} (expected 0 for RSA or 3 for EC)")
    elif c.key_gen_mechanism != mechanism:
        wrong.append(f"keyGenMechanism is {c.key_gen_mechanism:#x} (expected {mechanism:#x})")
    if key_id is not None and not hmac.compare_digest(c.key_id, key_id):
        wrong.append(f"keyId is {c.key_id.hex()} (expected {key_id.hex()})")
    if wrong:
        raise _Failed("The attested key's claims are not acceptable: " + "; ".join(wrong))
    detail = "Generated in the token, never extractable, always sensitive"
    return detail + ("" if key_id is not None else "; keyId not compared (none given)")


def shown(value: object) -> str:
    """A claim value as the messages show it: booleans as ASN.1 writes them."""
    return ("TRUE" if value else "FALSE") if isinstance(value, bool) else str(value)


def _v8_region(b: DecodedBundle, region: str | None) -> str | None:
    c, device = b.claims, b.device_info
    if device is None:
        return None
    if region is not None and c.region != region:
        raise _Failed(f"The key was attested in region {c.region}, not {region}")
    if c.region != device.region:
        raise _Failed(
            f"The claims name region {c.region}, but the attestation key is the {device.region} one"
        )
    if c.token_serial != device.token_serial:
        raise _Failed(
            f"The claims name token serial {c.token_serial}, but the attestation key vouches for "
            f"token serial {device.token_serial}"
        )
    detail = f"Region {c.region}, token serial {c.token_serial}, as the AK's DeviceInfo says"
    return detail + ("" if region is not None else "; the expected region was not compared (none given)")


def _v9_fresh(
    c: Claims, now: dt.datetime, skew: dt.timedelta, nonce: bytes | None, max_age: dt.timedelta | None
) -> str | None:
    if nonce is None and max_age is None:
        return None
    done = []
    if nonce is not None:
        if c.nonce is None:
            raise _Failed("The statement carries no nonce, but a fresh statement was requested")
        if not hmac.compare_digest(c.nonce, nonce):
            raise _Failed("The statement's nonce is not the one requested")
        done.append("The nonce is the one requested")
    if max_age is not None:
        if c.attested_at > now + skew:
            raise _Failed(
                f"The statement claims to be attested in the future, at {iso_timestamp(c.attested_at)}"
            )
        if now - c.attested_at > max_age:
            raise _Failed(
                f"The statement was attested at {iso_timestamp(c.attested_at)}, more than "
                f"{int(max_age.total_seconds())} seconds ago"
            )
        done.append(f"attested within {int(max_age.total_seconds())} seconds")
    return "; ".join(done)
