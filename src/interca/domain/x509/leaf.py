"""The leaves the issuing engine mints (certificates.md §6.1-6.2): the deployment's leaf profile,
the CA's leaf signature hash, and the one function that builds and signs a leaf.

Owns the leaf profile, field by field. The engine (per-CA templates, key pool, cache) and the
finalize self-test both mint through `build_leaf`, so the self-test proves the code that serves.
The names a leaf is minted for are normalised and checked against name constraints in
`hostnames.py`; refusals are `LeafRefused` (`leaf_refusal.py`), never another error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from interca.domain.x509.builtin import new_serial
from interca.domain.x509.csr import SignatureHash
from interca.domain.x509.hostnames import HostName, check_name_constraints, normalize_name
from interca.domain.x509.leaf_refusal import LeafRefused

MAX_LIFETIME_DAYS = 199  # §6.2: Android applies the public 200-day limit to its system store
MAX_BACKDATE_MINUTES = 1440
MAX_CN_LENGTH = 64  # RFC 5280 ub-common-name


@dataclass(frozen=True)
class LeafProfile:
    """Per-deployment leaf settings (certificates.md §1): span, backdate and the optional URLs.

    `lifetime_days` is the whole span notBefore -> notAfter (backdate included), 1-199;
    `backdate_minutes` 0-1440. `crl_url` / `aia_url`: `http://` URLs, `None` leaves the extension
    out. Raises `ValueError` when out of range.
    """

    lifetime_days: int = 90
    backdate_minutes: int = 60
    crl_url: str | None = None
    aia_url: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.lifetime_days <= MAX_LIFETIME_DAYS:
            raise ValueError(f"lifetime_days must be 1-{MAX_LIFETIME_DAYS}")
        if not 0 <= self.backdate_minutes <= MAX_BACKDATE_MINUTES:
            raise ValueError(f"backdate_minutes must be 0-{MAX_BACKDATE_MINUTES}")
        for url in (self.crl_url, self.aia_url):
            # §6.4: clients fetch these without TLS (fetching over TLS would need this very CRL).
            if url is not None and not url.startswith("http://"):
                raise ValueError("Leaf CRL and CA URLs must be http:// URLs")


def leaf_signature_hash(ca_public_key: PublicKeyTypes) -> SignatureHash:
    """The hash the CA signs leaves with (§6.1): RSA and P-256 SHA-256, P-384 SHA-384.

    Raises: `TypeError` for any other key (the upload checks refuse such CAs).
    """
    if isinstance(ca_public_key, rsa.RSAPublicKey):
        return hashes.SHA256()
    if isinstance(ca_public_key, ec.EllipticCurvePublicKey):
        if isinstance(ca_public_key.curve, ec.SECP256R1):
            return hashes.SHA256()
        if isinstance(ca_public_key.curve, ec.SECP384R1):
            return hashes.SHA384()
    raise TypeError(f"No leaf signature for a {type(ca_public_key).__name__} CA key")


def build_leaf(
    names: Sequence[HostName],
    leaf_public_key: CertificatePublicKeyTypes,
    ca_cert: x509.Certificate,
    ca_signer: CertificateIssuerPrivateKeyTypes,
    *,
    path: Sequence[x509.Certificate],
    effective_expiry: dt.datetime,
    now: dt.datetime,
    profile: LeafProfile,
    wildcard_ok: bool = False,
) -> x509.Certificate:
    """Mint and sign one leaf for `names` under `ca_cert`, exactly the §6.1 profile.

    - `names`: raw host names (SNI) or IP addresses, first one for the CN; normalised with
      `normalize_name`, duplicates dropped (order kept). Wildcards only with `wildcard_ok`.
    - `path`: the CA certificates above `ca_cert`, root last when known (not including `ca_cert`).
    - `ca_signer`: the CA key (software or a key-store object implementing `sign`); signing is
      its one `sign` call.
    - Validity: notBefore = max(now - backdate, latest notBefore on the path), notAfter =
      min(notBefore + lifetime, `effective_expiry`, earliest notAfter on the path), whole seconds.
    - Subject `CN=<first name>` when it has at most 64 characters and no CA on the path carries
      directoryName constraints (which the CN would have to satisfy), else empty; the SAN is
      critical exactly when the subject is empty (RFC 5280 §4.2.1.6).

    Pre: `now` and `effective_expiry` timezone-aware; `ca_cert` has a subjectKeyIdentifier.
    Raises: `LeafRefused` (`invalid_host`, `ca_not_valid` while any certificate of `ca_cert` +
    `path` is outside its validity at `now` or `effective_expiry` has passed,
    `outside_name_constraints`); `ValueError` for no names, a leaf key equal to the CA key, a CA
    without SKI, or naive datetimes; `TypeError` for an unsupported CA key; whatever
    `ca_signer.sign` raises (key stores raise `KeyStoreError`).
    """
    if now.tzinfo is None or effective_expiry.tzinfo is None:
        raise ValueError("now and effective_expiry must be timezone-aware")
    if not names:
        raise ValueError("A leaf needs at least one name")
    if _spki(leaf_public_key) == _spki(ca_cert.public_key()):
        # DESIGN.md: a leaf sharing the CA key broke Windows Schannel and exposes the CA key.
        raise ValueError("The leaf key must not be the CA key")
    ca_ski = _ski(ca_cert)
    algorithm = leaf_signature_hash(ca_cert.public_key())
    hosts = _unique(
        n if not isinstance(n, str) else normalize_name(n, wildcard_ok=wildcard_ok) for n in names
    )
    full_path = [ca_cert, *(c for c in path if c != ca_cert)]
    for cert in full_path:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise LeafRefused(
                "ca_not_valid", f'"{cert.subject.rfc4514_string()}" is not valid at {now.isoformat()}.'
            )
    if effective_expiry < now:
        raise LeafRefused("ca_not_valid", f"The CA path expired on {effective_expiry.isoformat()}.")
    check_name_constraints(hosts, full_path)

    backdate = dt.timedelta(minutes=profile.backdate_minutes)
    not_before = max([now - backdate, *(c.not_valid_before_utc for c in full_path)])
    not_after = min(
        [not_before + dt.timedelta(days=profile.lifetime_days), effective_expiry]
        + [c.not_valid_after_utc for c in full_path]
    )
    first = str(hosts[0])
    keep_cn = len(first) <= MAX_CN_LENGTH and not _has_directory_name_constraints(full_path)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first)] if keep_cn else [])

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        # The CA's subject object as parsed keeps its DER (string types, order): Go compares
        # issuer and subject byte for byte, and re-encoded names failed there (§6.1).
        .issuer_name(ca_cert.subject)
        .public_key(leaf_public_key)
        .serial_number(new_serial())
        .not_valid_before(not_before.replace(microsecond=0))
        .not_valid_after(not_after.replace(microsecond=0))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(leaf_public_key), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_public_key), critical=False)
        # keyIdentifier only, copied from the CA's SKI: CAs compute SKIs by different methods.
        .add_extension(
            x509.AuthorityKeyIdentifier(
                key_identifier=ca_ski, authority_cert_issuer=None, authority_cert_serial_number=None
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=not keep_cn)
    )
    if profile.crl_url is not None:
        point = x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(profile.crl_url)],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    if profile.aia_url is not None:
        access = x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(profile.aia_url)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    return builder.sign(ca_signer, algorithm)


def _has_directory_name_constraints(path: Sequence[x509.Certificate]) -> bool:
    for cert in path:
        try:
            constraints = cert.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            continue
        subtrees = [*(constraints.permitted_subtrees or ()), *(constraints.excluded_subtrees or ())]
        if any(isinstance(s, x509.DirectoryName) for s in subtrees):
            return True
    return False


def _general_name(host: HostName) -> x509.GeneralName:
    # An IP written as a dNSName failed in every client (§6.1).
    return x509.DNSName(host) if isinstance(host, str) else x509.IPAddress(host)


def _key_usage(leaf_public_key: CertificatePublicKeyTypes) -> x509.KeyUsage:
    # keyEncipherment only for RSA keys (RSA key exchange; NSS expects it), never for EC.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(leaf_public_key, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _ski(ca_cert: x509.Certificate) -> bytes:
    try:
        return ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        raise ValueError("The CA certificate has no subjectKeyIdentifier (certificates.md F10)") from None


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _unique(hosts: Iterable[HostName]) -> list[HostName]:
    seen: dict[HostName, None] = {}
    for host in hosts:
        seen.setdefault(host, None)
    return list(seen)
