"""What showCert reports about a stored certificate (api.md §3.4), read from the certificate."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

_HASH_NAMES = {"sha256": "SHA256", "sha384": "SHA384", "sha512": "SHA512", "sha1": "SHA1", "md5": "MD5"}


@dataclass(frozen=True)
class CertSummary:
    comm_name: str | None
    org_name: str | None
    dept_name: str | None
    city: str | None
    state: str | None
    country: str
    key_size: int | None
    signature_algorithm: str | None
    path_length: int | None
    issued_by: str
    not_before: dt.datetime
    not_after: dt.datetime

    @property
    def validity_days(self) -> int:
        return (self.not_after - self.not_before).days


def _first(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    attrs = name.get_attributes_for_oid(oid)
    return str(attrs[0].value) if attrs else None


def summarize(cert: x509.Certificate) -> CertSummary:
    key = cert.public_key()
    key_size = key.key_size if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey) else None
    try:
        hash_alg = cert.signature_hash_algorithm
    except Exception:  # noqa: BLE001 - an unknown algorithm has no hash name to report
        hash_alg = None
    sig = _HASH_NAMES.get(hash_alg.name, hash_alg.name.upper()) if hash_alg else None
    try:
        path_length = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
    except x509.ExtensionNotFound:
        path_length = None
    country = _first(cert.subject, NameOID.COUNTRY_NAME)
    return CertSummary(
        comm_name=_first(cert.subject, NameOID.COMMON_NAME),
        org_name=_first(cert.subject, NameOID.ORGANIZATION_NAME),
        dept_name=_first(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME),
        city=_first(cert.subject, NameOID.LOCALITY_NAME),
        state=_first(cert.subject, NameOID.STATE_OR_PROVINCE_NAME),
        country=f"COUNTRY_{country}" if country else "NONE",
        key_size=key_size,
        signature_algorithm=sig,
        path_length=path_length,
        issued_by=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )
