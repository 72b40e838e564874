"""The certificates of the emulated HSM attestation (hsm.md §8.2, §8.3, §8.5): the manufacturer
root, the per-region attestation key (AK) certificate, the attestation statement, and the bundle.

Owns their profiles: names, validity, extensions, serials and signature algorithm. The keys come
from the caller: at provisioning from a temporary token (root) and the `interca-attest-<REGION>`
token (AK), at issuance the attested key's public half as the attestor read it from the token. The
signers may be HSM objects implementing only `sign` and `public_key` (hsm.md §5). Everything is
signed ecdsa-with-SHA384 (RFC 5758 §3.2) with P-384 keys.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from interca.domain.attestation.claims import (
    HSM_KEY_ATTESTATION_EKU,
    Claims,
    DeviceInfoClaims,
    whole_seconds,
)
from interca.domain.x509.builtin import add_years, new_serial
from interca.domain.x509.issuance_links import raw_names

ROOT_YEARS = 20
AK_YEARS = 10
ON_DEMAND_VALIDITY = dt.timedelta(hours=1)
ORGANIZATION = "interca (EMULATED HSM)"
MAX_KEY_ID_BYTES = 20
"""`CN=interca key attestation <hex>` must fit the 64-character CN limit (RFC 5280 ub-common-name)."""

BUNDLE_FIRST_LINE = "# interca key attestation - EMULATED HSM (SoftHSM2), not hardware-backed"
EMULATION_NOTICE = (
    "SoftHSM2 attestation is an emulation: it proves only that the attestor, holder of the attestation "
    "key, saw this key in this token; it is not FIPS or hardware attestation."
)
"""hsm.md §8.8: said wherever attestation appears (bundle, CLI; the portal and docs too)."""


def build_manufacturer_root(
    key: ec.EllipticCurvePrivateKey, deployment_id: str, now: dt.datetime
) -> x509.Certificate:
    """The emulated manufacturer root (hsm.md §8.2 step 1): self-signed by `key` (P-384),
    `CN=interca Emulated HSM Manufacturer Root {deployment_id},O=interca (EMULATED HSM)`, valid
    from `now` for 20 years, CA:TRUE pathLen 1 (root -> AK -> statement) and keyCertSign, both
    critical, SKI. No AKI (RFC 5280 §4.2.1.1 lets a self-signed root omit it).

    Raises `ValueError` if the key is not P-384, `now` is naive or the id is empty.
    """
    if not deployment_id:
        raise ValueError("deployment_id must not be empty")
    public = _p384_public(key, "manufacturer root")
    now = whole_seconds(now)
    name = _name(f"interca Emulated HSM Manufacturer Root {deployment_id}")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(new_serial())
        .not_valid_before(now)
        .not_valid_after(add_years(now, ROOT_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_key_cert_sign(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA384())
    )


def build_ak_certificate(
    ak_public_key: ec.EllipticCurvePublicKey,
    device_info: DeviceInfoClaims,
    root_cert: x509.Certificate,
    root_signer: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
) -> x509.Certificate:
    """A region's AK certificate (hsm.md §8.2 step 2), issued by `root_cert` with `root_signer`:
    `CN=interca Emulated HSM {REGION} Attestation Key,O=interca (EMULATED HSM)`, valid from `now`
    for 10 years (never past the root), CA:TRUE pathLen 0 and keyCertSign (critical), EKU
    id-interca-kp-hsmKeyAttestation, SKI, AKI = the root's SKI, DeviceInfo (non-critical).

    Raises `ValueError` if a key is not P-384, the signer does not match the root certificate, or
    `now` is naive.
    """
    _p384_public(ak_public_key, "attestation key")
    _matching_signer(root_signer, root_cert, "root")
    now = whole_seconds(now)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(f"interca Emulated HSM {device_info.region} Attestation Key"))
        .issuer_name(root_cert.subject)
        .public_key(ak_public_key)
        .serial_number(new_serial())
        .not_valid_before(now)
        .not_valid_after(min(add_years(now, AK_YEARS), root_cert.not_valid_after_utc))
        # pathLen 0: the AK signs statements only (end entities are not counted, RFC 5280 §4.2.1.9).
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_cert_sign(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([HSM_KEY_ATTESTATION_EKU]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ak_public_key), critical=False)
        .add_extension(_aki(root_cert), critical=False)
        .add_extension(device_info.to_extension(), critical=False)
        .sign(root_signer, hashes.SHA384())
    )


def build_statement(
    attested_spki_public_key: PublicKeyTypes | bytes,
    claims: Claims,
    ak_cert: x509.Certificate,
    ak_signer: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
    *,
    on_demand: bool,
) -> x509.Certificate:
    """The attestation certificate for one key (hsm.md §8.3), signed ecdsa-with-SHA384 by the AK.

    `attested_spki_public_key` is the attested key as read from the token (a public key object or
    its SubjectPublicKeyInfo DER); it becomes the certificate's SPKI, which binds the claims to
    the key. `now` is attestedAt: it replaces `claims.attested_at` (to the second), so the claim
    and notBefore agree. Validity: attestedAt to the AK certificate's notAfter (creation-time) or
    to attestedAt + 1 hour (on-demand; never past the AK). An on-demand statement must carry the
    verifier's nonce and a creation-time one must not, so the two cannot be confused.

    Issuer = the AK certificate's subject bytes; subject `CN=interca key attestation <CKA_ID
    hex>,O=interca (EMULATED HSM)`; 16-byte random serial, top bit clear; CA:FALSE (critical); EKU
    exactly id-interca-kp-hsmKeyAttestation; AKI = the AK's SKI; keyAttestation non-critical.

    Raises `ValueError` if the AK signer does not match `ak_cert`, the nonce rule above is broken,
    the key id is empty or longer than 20 bytes, the AK certificate is not valid at `now` or has no
    SKI, or `now` is naive.
    """
    if isinstance(attested_spki_public_key, bytes):
        public = serialization.load_der_public_key(attested_spki_public_key)
    else:
        public = attested_spki_public_key
    if not 0 < len(claims.key_id) <= MAX_KEY_ID_BYTES:
        raise ValueError(f"the key id must be 1 to {MAX_KEY_ID_BYTES} bytes")
    if on_demand != (claims.nonce is not None):
        raise ValueError("an on-demand statement needs a nonce; a creation-time one has none")
    _matching_signer(ak_signer, ak_cert, "attestation key")
    attested_at = whole_seconds(now)
    if not ak_cert.not_valid_before_utc <= attested_at < ak_cert.not_valid_after_utc:
        raise ValueError("the attestation key certificate is not valid now")
    claims = dataclasses.replace(claims, attested_at=attested_at)
    not_after = ak_cert.not_valid_after_utc
    if on_demand:
        not_after = min(not_after, attested_at + ON_DEMAND_VALIDITY)
    statement = (
        x509.CertificateBuilder()
        .subject_name(_name(f"interca key attestation {claims.key_id.hex()}"))
        .issuer_name(ak_cert.subject)
        .public_key(_certificate_key(public))
        .serial_number(new_serial())
        .not_valid_before(attested_at)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([HSM_KEY_ATTESTATION_EKU]), critical=False)
        .add_extension(_aki(ak_cert), critical=False)
        # Non-critical: generic X.509 tools still parse and chain the statement (hsm.md §8.3).
        .add_extension(claims.to_extension(), critical=False)
        .sign(ak_signer, hashes.SHA384())
    )
    # Verifiers match issuer to subject on the encoded bytes (V3); cryptography re-encodes the
    # parsed name, which keeps each attribute's string type, so this holds for every AK
    # certificate built here. Refuse rather than hand out a statement that cannot verify.
    if raw_names(statement)[0] != raw_names(ak_cert)[1]:
        raise ValueError("the AK certificate's subject does not re-encode byte for byte")
    return statement


def bundle_pem(statement: x509.Certificate, ak_cert: x509.Certificate, root: x509.Certificate) -> bytes:
    """The attestation bundle (hsm.md §8.5): statement, AK certificate, manufacturer root, each
    after a comment line naming it; the first line says it is an emulation. ASCII, `\\n` line
    ends. Verifiers ignore the comments and pin the root by fingerprint, never this copy."""
    lines = [
        BUNDLE_FIRST_LINE,
        f"# Emulated HSM attestation. {EMULATION_NOTICE}",
        f"# Attestation certificate: {statement.subject.rfc4514_string()}",
        _pem(statement),
        f"# Attestation key (AK) certificate: {ak_cert.subject.rfc4514_string()}",
        _pem(ak_cert),
        f"# Emulated HSM manufacturer root: {root.subject.rfc4514_string()}",
        f"# Trust it only by its pinned SHA-256 fingerprint {fingerprint(root).hex()}",
        _pem(root),
    ]
    return "\n".join(lines).encode("ascii") + b"\n"


def fingerprint(cert: x509.Certificate) -> bytes:
    """SHA-256 of the certificate's DER: what pins and deny lists hold."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii").rstrip("\n")


def _name(common_name: str) -> x509.Name:
    # Encoded O first, CN last, so RFC 4514 (last RDN first) reads "CN=...,O=..." as in hsm.md.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_cert_sign() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    # RFC 5280 §4.2.1.1: the issuer's SKI byte for byte, so path builders match it exactly.
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        raise ValueError("the issuing certificate has no SKI") from None
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _p384_public(
    key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey, role: str
) -> ec.EllipticCurvePublicKey:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, ec.SECP384R1):
        raise ValueError(f"the {role} must be a P-384 key")
    return public


def _matching_signer(signer: ec.EllipticCurvePrivateKey, cert: x509.Certificate, role: str) -> None:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if _p384_public(signer, role).public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise ValueError(f"the {role} signer does not match its certificate")


def _certificate_key(public: PublicKeyTypes) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    # CUSTOM_HSM keys are RSA or EC (hsm.md §4); KeyAttestation's keyType knows no other.
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError("the attested key must be RSA or EC")
    return public
