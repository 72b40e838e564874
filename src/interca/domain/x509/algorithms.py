"""Signature algorithms and public keys of certificates, as certificates.md §2 F16–F18 judge them.

Read from the certificate's own DER where `cryptography` is not enough: the RSASSA-PSS parameters
(hash, mask generation function, salt length, trailer; RFC 4055 §3.1) come from the outer
signatureAlgorithm, not from `Certificate.signature_algorithm_parameters`, whose `padding.PSS`
keeps them in private attributes and which raises on parameters it does not support; the
SubjectPublicKeyInfo algorithm comes from the TBSCertificate when `cryptography` cannot load the
key. All parsing goes through the bounds-checked header reader of `der.py`; nothing here raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from interca.domain.x509.der import OID, SEQUENCE, Header, children, read_header

RSASSA_PSS = "1.2.840.113549.1.1.10"
MGF1 = "1.2.840.113549.1.1.8"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
_MAX_OID_OCTETS = 64

# Accepted as is (F17): the parameters of these carry nothing to judge.
_ACCEPTED = {
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
    "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
    "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
    "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
    "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
}
# MD5 or SHA-1 (F16), whatever the key type.
_WEAK = {
    "1.2.840.113549.1.1.4": "md5WithRSAEncryption",
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
    "1.3.14.3.2.3": "md5WithRSA",
    "1.3.14.3.2.29": "sha1WithRSASignature",
    "1.2.840.10045.4.1": "ecdsa-with-SHA1",
    "1.2.840.10040.4.3": "dsa-with-sha1",
}
# Hash OID -> (name, digest length in octets).
_HASHES = {
    "1.2.840.113549.2.5": ("MD5", 16),
    "1.3.14.3.2.26": ("SHA-1", 20),
    "2.16.840.1.101.3.4.2.4": ("SHA-224", 28),
    "2.16.840.1.101.3.4.2.1": ("SHA-256", 32),
    "2.16.840.1.101.3.4.2.2": ("SHA-384", 48),
    "2.16.840.1.101.3.4.2.3": ("SHA-512", 64),
}
_PSS_HASHES = frozenset({"SHA-256", "SHA-384", "SHA-512"})
_WEAK_HASHES = frozenset({"MD5", "SHA-1"})
_SHA1 = "1.3.14.3.2.26"
_KEY_TYPES = {
    "1.3.101.110": "X25519",
    "1.3.101.111": "X448",
    "1.3.101.112": "Ed25519",
    "1.3.101.113": "Ed448",
    "1.2.840.10040.4.1": "DSA",
    "1.2.840.10046.2.1": "DH",
    "2.16.840.1.101.3.4.3.17": "ML-DSA-44",
    "2.16.840.1.101.3.4.3.18": "ML-DSA-65",
    "2.16.840.1.101.3.4.3.19": "ML-DSA-87",
}


@dataclass(frozen=True)
class SignatureAlgorithm:
    """The verdict on a certificate's signatureAlgorithm: `weak` is F16 (MD5 or SHA-1),
    `accepted` is F17's list; `name` is for messages (`RSASSA-PSS with ...` spells out the
    parameters)."""

    oid: str
    name: str
    weak: bool
    accepted: bool


@dataclass(frozen=True)
class PssParameters:
    """RSASSA-PSS-params (RFC 4055 §3.1) with the defaults filled in; names are `_HASHES` names
    or the dotted OID of an unknown hash; `mgf` is the dotted mask generation OID."""

    hash: str
    mgf: str
    mgf_hash: str | None
    salt_length: int
    trailer: int


def signature_algorithm(cert: x509.Certificate) -> SignatureAlgorithm:
    oid = cert.signature_algorithm_oid.dotted_string
    if oid in _ACCEPTED:
        return SignatureAlgorithm(oid, _ACCEPTED[oid], weak=False, accepted=True)
    if oid in _WEAK:
        return SignatureAlgorithm(oid, _WEAK[oid], weak=True, accepted=False)
    if oid == RSASSA_PSS:
        params = pss_parameters(cert)
        if params is None:
            return SignatureAlgorithm(
                oid, "RSASSA-PSS with unreadable parameters", weak=False, accepted=False
            )
        return SignatureAlgorithm(
            oid, _pss_name(params), weak=params.hash in _WEAK_HASHES, accepted=_pss_ok(params)
        )
    name = cert.signature_algorithm_oid._name
    return SignatureAlgorithm(oid, "unknown" if name == "Unknown OID" else name, weak=False, accepted=False)


def _pss_ok(p: PssParameters) -> bool:
    digest = next((size for name, size in _HASHES.values() if name == p.hash), None)
    return (
        p.hash in _PSS_HASHES
        and p.mgf == MGF1
        and p.mgf_hash == p.hash
        and p.salt_length == digest
        and p.trailer == 1
    )


def _pss_name(p: PssParameters) -> str:
    mgf = f"MGF1 with {p.mgf_hash}" if p.mgf == MGF1 else f"mask generation {p.mgf}"
    trailer = "" if p.trailer == 1 else f", trailer field {p.trailer}"
    return f"RSASSA-PSS with {p.hash}, {mgf}, salt length {p.salt_length}{trailer}"


def pss_parameters(cert: x509.Certificate) -> PssParameters | None:
    """The PSS parameters of the outer signatureAlgorithm, or None when they cannot be read."""
    data = cert.public_bytes(serialization.Encoding.DER)
    outer = _sequence(data, read_header(data))
    top = children(data, outer, 3) if outer else []
    algorithm = _sequence(data, top[1]) if len(top) == 3 else None
    parts = children(data, algorithm, 2) if algorithm else []
    if not parts:
        return None
    if len(parts) == 1:  # RFC 4055 allows absent parameters: every default
        return PssParameters("SHA-1", MGF1, "SHA-1", 20, 1)
    params = _sequence(data, parts[1])
    if params is None:
        return None
    found: dict[int, Header] = {}
    for field in children(data, params, 5):
        inner = children(data, field, 1)
        if field.tag not in (0xA0, 0xA1, 0xA2, 0xA3) or field.tag in found or not inner:
            return None
        found[field.tag] = inner[0]
    hash_oid: str | None = _SHA1
    mgf: str | None = MGF1
    mgf_hash: str | None = _SHA1
    if 0xA0 in found:
        hash_oid = _algorithm_oid(data, found[0xA0])
    if 0xA1 in found:
        mgf_parts = children(data, found[0xA1], 2) if _sequence(data, found[0xA1]) else []
        mgf = _oid_at(data, mgf_parts[0]) if mgf_parts else None
        mgf_hash = _algorithm_oid(data, mgf_parts[1]) if len(mgf_parts) == 2 else None
    salt = _integer(data, found[0xA2]) if 0xA2 in found else 20
    trailer = _integer(data, found[0xA3]) if 0xA3 in found else 1
    if hash_oid is None or mgf is None or salt is None or trailer is None:
        return None
    return PssParameters(_hash_name(hash_oid), mgf, _hash_name(mgf_hash) if mgf_hash else None, salt, trailer)


def _hash_name(oid: str) -> str:
    return _HASHES[oid][0] if oid in _HASHES else oid


def spki_algorithm(cert: x509.Certificate) -> tuple[str | None, str | None]:
    """(algorithm OID, parameters OID such as a named curve) of the SubjectPublicKeyInfo, read
    from the TBSCertificate; None where absent or unreadable."""
    tbs = cert.tbs_certificate_bytes
    top = _sequence(tbs, read_header(tbs))
    fields = children(tbs, top, 8) if top else []
    at = 6 if fields and fields[0].tag == 0xA0 else 5  # [0] version shifts every field by one
    spki = _sequence(tbs, fields[at]) if len(fields) > at else None
    algorithm = children(tbs, spki, 1) if spki else []
    parts = children(tbs, algorithm[0], 2) if algorithm and _sequence(tbs, algorithm[0]) else []
    oid = _oid_at(tbs, parts[0]) if parts else None
    params = _oid_at(tbs, parts[1]) if len(parts) == 2 else None
    return oid, params


def key_type_name(oid: str | None) -> str:
    """What to call a key type interca does not accept, by its SubjectPublicKeyInfo OID."""
    if oid is None:
        return "of an unreadable type"
    return _KEY_TYPES.get(oid, f"of type {oid}")


def _sequence(data: bytes, header: Header | None) -> Header | None:
    ok = header is not None and header.tag == SEQUENCE and header.end is not None and header.end <= len(data)
    return header if ok else None


def _algorithm_oid(data: bytes, header: Header) -> str | None:
    """The OID of an AlgorithmIdentifier SEQUENCE."""
    parts = children(data, header, 1) if _sequence(data, header) else []
    return _oid_at(data, parts[0]) if parts else None


def _oid_at(data: bytes, header: Header) -> str | None:
    if header.tag != OID or header.end is None:
        return None
    return decode_oid(data[header.start : header.end])


def _integer(data: bytes, header: Header) -> int | None:
    if header.tag != 0x02 or header.end is None or not 0 < header.end - header.start <= 8:
        return None
    return int.from_bytes(data[header.start : header.end], "big", signed=True)


def decode_oid(content: bytes) -> str | None:
    """Dotted form of OBJECT IDENTIFIER content octets (X.690 §8.19), or None if malformed."""
    if not content or len(content) > _MAX_OID_OCTETS or content[-1] & 0x80:
        return None
    arcs: list[int] = []
    value = 0
    for octet in content:
        value = (value << 7) | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first, *arcs[1:]])
