"""The per-CA leaf template (certificates.md §6.1): the CA's part of every leaf encoded once, so a
leaf costs a few byte joins and one signature.

A TBSCertificate (RFC 5280 §4.1) of the §6.1 profile is, in order:

    [0] v3 | serial | signature alg | issuer | validity | subject | SPKI |
    [3] { basicConstraints | keyUsage extKeyUsage subjectKeyId | authorityKeyId | subjectAltName |
          cRLDistributionPoints? | authorityInfoAccess? }

The CA fixes the algorithm, issuer, AKI, CDP and AIA; the leaf key fixes the SPKI and the
keyUsage..subjectKeyId run (`leaf_key_parts`, once per pool key); serial, validity, subject and
SAN are encoded per leaf. The extension order and every value encoded here follow
`interca.domain.x509.leaf.build_leaf`, which a property test holds equal byte for byte.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, ExtensionOID

from interca.domain.x509.issuance_links import raw_names
from interca.domain.x509.leaf import (
    CaPath,
    LeafPlan,
    LeafProfile,
    leaf_key_usage,
    leaf_signature_hash,
)
from interca.issuance import der
from interca.issuance.cache import refresh_time

_VERSION_3 = b"\xa0\x03\x02\x01\x02"  # [0] EXPLICIT INTEGER 2
# AlgorithmIdentifier DER as `cryptography` writes it: NULL parameters for RSA (RFC 4055 §5),
# absent for ECDSA (RFC 5758 §3.2).
_ALGORITHMS = {
    ("rsa", "sha256"): bytes.fromhex("300d06092a864886f70d01010b0500"),
    ("ec", "sha256"): bytes.fromhex("300a06082a8648ce3d040302"),
    ("ec", "sha384"): bytes.fromhex("300a06082a8648ce3d040303"),
}


def _ext(oid: x509.ObjectIdentifier, value: x509.ExtensionType, *, critical: bool = False) -> bytes:
    # Values come from `cryptography`'s own encoder, so they match its builder by construction.
    return der.extension(der.oid(oid.dotted_string), value.public_bytes(), critical=critical)


def leaf_key_parts(public_key: CertificatePublicKeyTypes) -> tuple[bytes, bytes]:
    """(SubjectPublicKeyInfo DER, the keyUsage + extKeyUsage + subjectKeyIdentifier extensions)
    of a leaf key: what a pool key contributes to every leaf, computed once per key (§6.1: the SKI
    is SHA-1 of the subjectPublicKey, RFC 5280 §4.2.1.2 method 1)."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    run = b"".join(
        [
            _ext(ExtensionOID.KEY_USAGE, leaf_key_usage(public_key), critical=True),
            _ext(ExtensionOID.EXTENDED_KEY_USAGE, x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])),
            _ext(ExtensionOID.SUBJECT_KEY_IDENTIFIER, x509.SubjectKeyIdentifier.from_public_key(public_key)),
        ]
    )
    return spki, run


class LeafTemplate:
    """One CA's precomputed leaf parts and signer; `mint` makes a signed leaf.

    Built once per default CA (the engine rebuilds it only when the default or its record
    changes). Immutable after construction except for a one-slot validity memo, so any number of
    threads may mint with it at once.

    Attributes: `ca_id`; `ca_path` (the `CaPath` every plan is checked against); `served` (the
    intermediate and the non-root chain, DER, path order: what follows the leaf in a handshake);
    `ca_spki` (a leaf key must never equal it); `fingerprint` (SHA-256 of the intermediate's
    DER, hex); `cache_id` (a digest of everything that shapes a leaf: the CA's certificate, path,
    chain, key reference, profile and `profile_version`; the cache keys leaves by it).
    """

    def __init__(
        self,
        ca_id: int,
        ca_cert: x509.Certificate,
        signer: CertificateIssuerPrivateKeyTypes,
        *,
        path: Sequence[x509.Certificate],
        served_chain: Sequence[x509.Certificate],
        effective_expiry: dt.datetime,
        profile: LeafProfile,
        profile_version: str = "",
        key_ref: str = "",
    ) -> None:
        """`path`: the CAs above `ca_cert`, root last when known (name constraints and validity
        are checked against all of them); `served_chain`: the non-root CAs above `ca_cert` to send.

        Raises: `TypeError` for a CA key the profile cannot sign with (§6.1); `ValueError` for a
        CA without subjectKeyIdentifier (F10) or a naive `effective_expiry`.
        """
        self.ca_id = ca_id
        self.profile = profile
        self.ca_path = CaPath.of(ca_cert, path, effective_expiry)
        public = ca_cert.public_key()
        hash_alg = leaf_signature_hash(public)
        kind = "rsa" if isinstance(public, rsa.RSAPublicKey) else "ec"
        self._algorithm = _ALGORITHMS[(kind, hash_alg.name)]
        self._sign = _signing(signer, kind, hash_alg)
        self.ca_spki = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        try:
            ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            raise ValueError("The CA certificate has no subjectKeyIdentifier (certificates.md F10)") from None
        # Everything between the serial and the validity: the algorithm and the issuer, the CA's
        # subject exactly as its certificate encodes it (§6.1: never re-encoded).
        self._algorithm_issuer = self._algorithm + raw_names(ca_cert)[1]
        self._basic = _ext(ExtensionOID.BASIC_CONSTRAINTS, x509.BasicConstraints(False, None), critical=True)
        aki = x509.AuthorityKeyIdentifier(ski, None, None)  # keyIdentifier only, the CA's SKI bytes
        self._authority = _ext(ExtensionOID.AUTHORITY_KEY_IDENTIFIER, aki)
        self._tail = _url_extensions(profile)
        own = ca_cert.public_bytes(serialization.Encoding.DER)
        self.served: tuple[bytes, ...] = (
            own,
            *(c.public_bytes(serialization.Encoding.DER) for c in served_chain),
        )
        identity = hashlib.sha256()
        for part in (str(ca_id), profile_version, key_ref, repr(profile)):
            identity.update(part.encode() + b"\0")
        for cert in (*self.served, *(c.public_bytes(serialization.Encoding.DER) for c in path)):
            identity.update(hashlib.sha256(cert).digest())
        self.cache_id = identity.hexdigest()
        self.fingerprint = hashlib.sha256(own).hexdigest()
        self._validity: tuple[dt.datetime, dt.datetime, tuple[bytes, dt.datetime]] | None = None
        self._serials = der.Serials()

    def tbs(self, plan: LeafPlan, spki: bytes, key_extensions: bytes, serial: bytes) -> bytes:
        """The TBSCertificate DER of `plan` for a leaf key given as `leaf_key_parts`; `serial`
        is the serialNumber INTEGER, DER-encoded."""
        validity = self._times(plan)[0]
        extensions = b"".join(
            (
                self._basic,
                key_extensions,
                self._authority,
                # RFC 5280 §4.2.1.6: the SAN is critical exactly when the subject is empty.
                der.subject_alt_name(plan.hosts, plan.common_name is None),
                self._tail,
            )
        )
        inner = der.header(der.SEQUENCE, len(extensions))
        outer = der.header(der.EXPLICIT_3, len(inner) + len(extensions))
        subject = der.common_name(plan.common_name)
        size = (
            len(_VERSION_3) + len(serial) + len(self._algorithm_issuer) + len(validity) + len(subject)
            + len(spki) + len(outer) + len(inner) + len(extensions)
        )  # fmt: skip
        return b"".join(
            (
                der.header(der.SEQUENCE, size),
                _VERSION_3,
                serial,
                self._algorithm_issuer,
                validity,
                subject,
                spki,
                outer,
                inner,
                extensions,
            )
        )

    def refresh_at(self, plan: LeafPlan) -> dt.datetime:
        """When a cached leaf of `plan` should be minted again: a quarter of its span before its
        notAfter (certificates.md §6.2)."""
        return self._times(plan)[1]

    def _times(self, plan: LeafPlan) -> tuple[bytes, dt.datetime]:
        # Leaves minted within one second share their validity: encode it once.
        memo = self._validity
        if memo is not None and memo[0] == plan.not_before and memo[1] == plan.not_after:
            return memo[2]
        encoded = der.validity(plan.not_before, plan.not_after)
        refresh = refresh_time(plan.not_before, plan.not_after)
        self._validity = (plan.not_before, plan.not_after, (encoded, refresh))
        return encoded, refresh

    def sign(self, tbs: bytes) -> bytes:
        """The Certificate DER: `tbs` signed with the CA key (its one `sign` call). Raises what
        the signer raises (key stores: `KeyStoreError`)."""
        return der.signed_certificate(tbs, self._algorithm, self._sign(tbs))

    def mint(
        self,
        plan: LeafPlan,
        spki: bytes,
        key_extensions: bytes,
        *,
        serial: int | None = None,
    ) -> bytes:
        """A signed leaf (DER) for `plan` and a leaf key given as `leaf_key_parts`.

        Raises: `ValueError` when the leaf key is the CA key (DESIGN.md: Schannel broke, and the
        CA key would reach the TLS terminator); what the signer raises.
        """
        if spki == self.ca_spki:
            raise ValueError("The leaf key must not be the CA key")
        number = self._serials.next() if serial is None else der.integer(serial)
        return self.sign(self.tbs(plan, spki, key_extensions, number))


def _url_extensions(profile: LeafProfile) -> bytes:
    parts = []
    if profile.crl_url is not None:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(profile.crl_url)], None, None, None)
        parts.append(_ext(ExtensionOID.CRL_DISTRIBUTION_POINTS, x509.CRLDistributionPoints([point])))
    if profile.aia_url is not None:
        access = x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(profile.aia_url)
        )
        parts.append(
            _ext(ExtensionOID.AUTHORITY_INFORMATION_ACCESS, x509.AuthorityInformationAccess([access]))
        )
    return b"".join(parts)


def _signing(
    signer: CertificateIssuerPrivateKeyTypes, kind: str, hash_alg: hashes.HashAlgorithm
) -> Callable[[bytes], bytes]:
    """The one call that signs a TBSCertificate: PKCS#1 v1.5 for RSA CAs, ECDSA for EC CAs, with
    the objects built once. Key-store keys (HSM) implement the same `sign` signatures."""
    if kind == "rsa":
        if not isinstance(signer, rsa.RSAPrivateKey):
            raise TypeError("The CA certificate carries an RSA key but its signer is not RSA")
        pkcs1 = padding.PKCS1v15()
        return lambda tbs: signer.sign(tbs, pkcs1, hash_alg)
    if not isinstance(signer, ec.EllipticCurvePrivateKey):
        raise TypeError("The CA certificate carries an EC key but its signer is not EC")
    ecdsa = ec.ECDSA(hash_alg)
    return lambda tbs: signer.sign(tbs, ecdsa)
