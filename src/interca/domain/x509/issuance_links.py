"""Whether one certificate issued another, as path building decides it (certificates.md §3
steps 4-5): the issuer and subject names as encoded, the signature checked with the issuer's key,
and names compared after normalisation.

Names are matched on their DER bytes as they appear in the certificates (step 4), and a link is
proved by checking the signature with the issuer's key: `verify_directly_issued_by` does both, but
cryptography refuses SHA-1 and MD5 signatures there, and a path through a SHA-1 CA must still be
built so that step 11 names it (`weak_signature`) instead of a false `signature_mismatch`. Step 5's
"equal after normalisation" compares attribute by attribute with letter case folded and runs of
white space collapsed, ignoring the string type.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

from interca.domain.x509 import der

_VERIFY_ERRORS = (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError)


def raw_names(cert: x509.Certificate) -> tuple[bytes, bytes]:
    """(issuer, subject) exactly as encoded in the TBSCertificate."""
    tbs = cert.tbs_certificate_bytes
    top = der.read_header(tbs)
    kids = der.children(tbs, top, 7) if top is not None else []
    if top is None or len(kids) < 6 or any(k.end is None for k in kids):
        return cert.issuer.public_bytes(), cert.subject.public_bytes()  # unreachable once parsed
    starts = [top.start, *(k.end for k in kids[:-1])]
    at = 1 if kids[0].tag == 0xA0 else 0  # [0] version precedes the serial in v2/v3
    # serial, signature, issuer, validity, subject
    return tbs[starts[at + 2] : kids[at + 2].end], tbs[starts[at + 4] : kids[at + 4].end]


_SIGNATURE_FAMILIES = {
    oid: name.split("_")[0]
    for name, oid in vars(SignatureAlgorithmOID).items()
    if isinstance(oid, x509.ObjectIdentifier) and not name.startswith("_")
}
"""Signature algorithm OID -> "RSA", "RSASSA" (PSS), "ECDSA", "DSA", "ED25519", "ED448", ..."""


def signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer`'s key made `child`'s signature: the signature half of
    `verify_directly_issued_by`, which raises "Unsupported signature algorithm" for SHA-1 and MD5."""
    signature, data = child.signature, child.tbs_certificate_bytes
    family = _SIGNATURE_FAMILIES.get(child.signature_algorithm_oid)
    try:
        key = issuer.public_key()
        hash_alg = child.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey) and family == "RSA" and hash_alg is not None:
            key.verify(signature, data, padding.PKCS1v15(), hash_alg)
        elif isinstance(key, rsa.RSAPublicKey) and family == "RSASSA" and hash_alg is not None:
            pss = child.signature_algorithm_parameters
            if not isinstance(pss, padding.PSS):
                return False
            key.verify(signature, data, pss, hash_alg)
        elif isinstance(key, ec.EllipticCurvePublicKey) and family == "ECDSA" and hash_alg is not None:
            key.verify(signature, data, ec.ECDSA(hash_alg))
        elif isinstance(key, dsa.DSAPublicKey) and family == "DSA" and hash_alg is not None:
            key.verify(signature, data, hash_alg)
        elif (isinstance(key, ed25519.Ed25519PublicKey) and family == "ED25519") or (
            isinstance(key, ed448.Ed448PublicKey) and family == "ED448"
        ):
            key.verify(signature, data)
        else:
            return False
    except _VERIFY_ERRORS:
        return False
    return True


def _fold(value: str | bytes) -> str | bytes:
    return " ".join(value.split()).casefold() if isinstance(value, str) else value


def normalised_name(name: x509.Name) -> tuple[frozenset[tuple[str, str | bytes]], ...]:
    """`name` as step 5 compares it: per RDN, each attribute's OID with its value folded."""
    return tuple(frozenset((a.oid.dotted_string, _fold(a.value)) for a in rdn) for rdn in name.rdns)
