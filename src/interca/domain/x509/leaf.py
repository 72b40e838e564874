"""The leaves the issuing engine mints (certificates.md §6.1-6.2): the deployment's leaf profile,
the CA's leaf signature hash, and the one function that builds and signs a leaf.

Owns the leaf profile, field by field. `plan_leaf` makes every check and choice (validity, CN,
names) for both `build_leaf` (the finalize self-test's minter, on `cryptography`'s builder) and
the engine's fast DER template (`interca.issuance.template`), which a property test holds byte
for byte equal to `build_leaf`, so the self-test proves the profile that serves.
The names a leaf is minted for are normalised and checked against name constraints in
`hostnames.py`; refusals are `LeafRefused` (`leaf_refusal.py`), never another error.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple, NoReturn

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

    @cached_property
    def lifetime(self) -> dt.timedelta:
        return dt.timedelta(days=self.lifetime_days)

    @cached_property
    def backdate(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.backdate_minutes)


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


@dataclass(frozen=True)
class CaPath:
    """What the leaf rules need to know about a CA path, computed once per CA (§6.1: "per CA,
    precompute"), so the engine's fast path does not walk certificates per leaf.

    `certs`: the issuing CA first, then the CAs above it (root last when known). `starts` /
    `ends`: the latest notBefore / the earliest notAfter on the path; `effective_expiry`: as
    stored for the CA (`until`: the smaller of the two). `constrained`: some certificate carries
    nameConstraints (only then is `check_name_constraints` worth calling); `cn_allowed`: no
    directoryName constraints, which a CN would have to satisfy.
    """

    certs: tuple[x509.Certificate, ...]
    effective_expiry: dt.datetime
    starts: dt.datetime
    ends: dt.datetime
    constrained: bool
    cn_allowed: bool

    @cached_property
    def until(self) -> dt.datetime:
        """The last moment a leaf may cover: min(`effective_expiry`, `ends`)."""
        return min(self.effective_expiry, self.ends)

    @cached_property
    def whole_seconds(self) -> tuple[dt.datetime, dt.datetime]:
        """(`starts`, `until`) without fractions of a second, for leaf validity (§6.1)."""
        return self.starts.replace(microsecond=0), self.until.replace(microsecond=0)

    @classmethod
    def of(
        cls, ca_cert: x509.Certificate, path: Sequence[x509.Certificate], effective_expiry: dt.datetime
    ) -> CaPath:
        """The facts of `ca_cert` + `path` (`ca_cert` is dropped from `path` if repeated there).

        Raises: `ValueError` for a naive `effective_expiry`.
        """
        if effective_expiry.tzinfo is None:
            raise ValueError("now and effective_expiry must be timezone-aware")
        certs = (ca_cert, *(c for c in path if c != ca_cert))
        constraints = [_name_constraints(c) for c in certs]
        return cls(
            certs=certs,
            effective_expiry=effective_expiry,
            starts=max(c.not_valid_before_utc for c in certs),
            ends=min(c.not_valid_after_utc for c in certs),
            constrained=any(nc is not None for nc in constraints),
            cn_allowed=not any(_has_directory_names(nc) for nc in constraints if nc is not None),
        )


class LeafPlan(NamedTuple):
    """Everything about one leaf except its key and serial: what `build_leaf` and the engine's
    template both encode. Times are whole seconds, UTC; `common_name` None = empty subject (and
    then the SAN is critical). A NamedTuple: the engine makes one per leaf."""

    hosts: tuple[HostName, ...]
    common_name: str | None
    not_before: dt.datetime
    not_after: dt.datetime


def normalize_hosts(names: Sequence[HostName], *, wildcard_ok: bool = False) -> tuple[HostName, ...]:
    """`names` normalised with `normalize_name` (IP address objects kept), duplicates dropped,
    order kept. Raises: `LeafRefused("invalid_host")`."""
    if len(names) == 1:
        return (_normalized(names[0], wildcard_ok),)
    return tuple(_unique(_normalized(n, wildcard_ok) for n in names))


# A DNS name already in normal form (§6.3): lower-case ASCII labels of a-z 0-9 - _, 1-63 long, not
# starting or ending with '-'. `normalize_name` returns such a name unchanged (unless it is an
# IPv4 literal); one regex match spares the per-label work on the engine's miss path. A property
# test holds `normalize_hosts` equal to `normalize_name` on arbitrary text.
_PLAIN_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_PLAIN_DNS = re.compile(rf"(?:{_PLAIN_LABEL}\.)*{_PLAIN_LABEL}")


def _normalized(name: HostName, wildcard_ok: bool) -> HostName:
    if not isinstance(name, str):
        return name
    if len(name) <= 253 and _PLAIN_DNS.fullmatch(name) and not name.replace(".", "").isdigit():
        return name
    return normalize_name(name, wildcard_ok=wildcard_ok)


def plan_leaf(
    hosts: Sequence[HostName], ca_path: CaPath, *, now: dt.datetime, profile: LeafProfile
) -> LeafPlan:
    """The checks and choices of §6.1-6.3 for a leaf of normalised `hosts` under `ca_path`.

    - Validity: notBefore = max(now - backdate, latest notBefore on the path), notAfter =
      min(notBefore + lifetime, `effective_expiry`, earliest notAfter on the path), whole seconds.
    - Subject `CN=<first host>` when it has at most 64 characters and no CA on the path carries
      directoryName constraints, else empty.

    Pre: `hosts` come from `normalize_hosts`. Raises: `ValueError` for no hosts or a naive `now`;
    `LeafRefused` (`ca_not_valid` while any certificate of the path is outside its validity at
    `now` or `effective_expiry` has passed; `outside_name_constraints`).
    """
    if now.tzinfo is None:
        raise ValueError("now and effective_expiry must be timezone-aware")
    if not hosts:
        raise ValueError("A leaf needs at least one name")
    if not ca_path.starts <= now <= ca_path.until:
        _refuse_invalid_path(ca_path, now)
    if ca_path.constrained:
        check_name_constraints(hosts, ca_path.certs)
    # The engine runs this once a leaf, so the arithmetic is kept to the minimum: dropping the
    # fractions first gives the same times as dropping them last (backdate and lifetime are whole
    # minutes and days), and `datetime.replace` costs more than all the rest.
    starts, until = ca_path.whole_seconds
    not_before = now - dt.timedelta(microseconds=now.microsecond) - profile.backdate
    if not_before < starts:
        not_before = starts
    not_after = not_before + profile.lifetime
    if not_after > until:
        not_after = until
    first = hosts[0] if isinstance(hosts[0], str) else str(hosts[0])
    keep_cn = len(first) <= MAX_CN_LENGTH and ca_path.cn_allowed
    return LeafPlan(
        hosts if type(hosts) is tuple else tuple(hosts), first if keep_cn else None, not_before, not_after
    )


def _refuse_invalid_path(ca_path: CaPath, now: dt.datetime) -> NoReturn:
    for cert in ca_path.certs:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise LeafRefused(
                "ca_not_valid", f'"{cert.subject.rfc4514_string()}" is not valid at {now.isoformat()}.'
            )
    raise LeafRefused("ca_not_valid", f"The CA path expired on {ca_path.effective_expiry.isoformat()}.")


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
    serial: int | None = None,
) -> x509.Certificate:
    """Mint and sign one leaf for `names` under `ca_cert`, exactly the §6.1 profile, with
    `cryptography`'s builder (the engine's template encodes the same bytes faster; a property
    test holds the two equal).

    - `names`: raw host names (SNI) or IP addresses, first one for the CN; normalised with
      `normalize_name`, duplicates dropped (order kept). Wildcards only with `wildcard_ok`.
    - `path`: the CA certificates above `ca_cert`, root last when known (not including `ca_cert`).
    - `ca_signer`: the CA key (software or a key-store object implementing `sign`); signing is
      its one `sign` call.
    - Validity and subject: as `plan_leaf`; the SAN is critical exactly when the subject is
      empty (RFC 5280 §4.2.1.6).
    - `serial`: default a fresh `new_serial()`; tests pass one to compare encodings.

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
    hosts = normalize_hosts(names, wildcard_ok=wildcard_ok)
    plan = plan_leaf(hosts, CaPath.of(ca_cert, path, effective_expiry), now=now, profile=profile)
    keep_cn = plan.common_name is not None
    cn = [] if plan.common_name is None else [x509.NameAttribute(NameOID.COMMON_NAME, plan.common_name)]
    subject = x509.Name(cn)

    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        # The CA's subject object as parsed keeps its DER (string types, order): Go compares
        # issuer and subject byte for byte, and re-encoded names failed there (§6.1).
        .issuer_name(ca_cert.subject)
        .public_key(leaf_public_key)
        .serial_number(new_serial() if serial is None else serial)
        .not_valid_before(plan.not_before)
        .not_valid_after(plan.not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(leaf_key_usage(leaf_public_key), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_public_key), critical=False)
        # keyIdentifier only, copied from the CA's SKI: CAs compute SKIs by different methods.
        .add_extension(
            x509.AuthorityKeyIdentifier(
                key_identifier=ca_ski, authority_cert_issuer=None, authority_cert_serial_number=None
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([_general_name(h) for h in plan.hosts]), critical=not keep_cn
        )
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


def _name_constraints(cert: x509.Certificate) -> x509.NameConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None


def _has_directory_names(constraints: x509.NameConstraints) -> bool:
    subtrees = [*(constraints.permitted_subtrees or ()), *(constraints.excluded_subtrees or ())]
    return any(isinstance(s, x509.DirectoryName) for s in subtrees)


def _general_name(host: HostName) -> x509.GeneralName:
    # An IP written as a dNSName failed in every client (§6.1).
    return x509.DNSName(host) if isinstance(host, str) else x509.IPAddress(host)


def leaf_key_usage(leaf_public_key: CertificatePublicKeyTypes) -> x509.KeyUsage:
    """digitalSignature, plus keyEncipherment for an RSA leaf key (§6.1)."""
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
