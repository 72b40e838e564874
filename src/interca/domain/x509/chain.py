"""Path building and checks on an uploaded chain (certificates.md §3).

`build_chain` walks from the stored intermediate up to a self-signed root through the uploaded
certificates and returns the path to store, every finding in step order (1..12), the effective
expiry and the root. How the steps interact, so the result is predictable:

- Steps 1-3 look at the file and always run in full. Repeats (step 1) and copies of the
  intermediate (step 2) are removed; a certificate refused at step 3 (not a CA) is left out of
  path building and is not reported again (not as an issuer, not as unused). If the walk's
  issuer is such a refused certificate, the walk stops there without another finding.
- Steps 4-7 build the path. A link whose AKI differs from the issuer's SKI (step 7) is reported
  and the walk goes on: the signature proved the link. A walk that cannot continue (step 5,
  step 6, or a refused issuer) ends the path at the last certificate placed; there is then no
  root, and steps 8 and 9 are skipped, since "unused" and "root" only mean something for a
  complete path.
- Steps 10-12 run over the certificates placed on the path, complete or not: their depths,
  profiles and dates do not depend on what is missing above them. Without a root every placed
  certificate gets the non-root profile.
- Findings are ordered by step; within a step by file order (steps 1-3, 8) or path order (the rest).

Names are matched on their DER bytes as they appear in the certificates (step 4), and a link is
proved by checking the signature with the issuer's key: `verify_directly_issued_by` does both, but
cryptography refuses SHA-1 and MD5 signatures there, and a path through a SHA-1 CA must still be
built so that step 11 names it (`weak_signature`) instead of a false `signature_mismatch`. Step 5's
"equal after normalisation" compares attribute by attribute with letter case folded and runs of
white space collapsed, ignoring the string type. `untrusted_root` names the SHA-256 fingerprint of
the root's DER as 64 lower-case hex digits without separators (as `sha256sum` and the attestation
pins file write it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

from interca.domain.x509 import der
from interca.domain.x509.findings import Finding
from interca.domain.x509.policy import CheckPolicy
from interca.domain.x509.profile_checks import CHAIN_CA_PROFILE, ROOT_PROFILE, profile_findings

_VERIFY_ERRORS = (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError)
_E = TypeVar("_E", bound=x509.ExtensionType)


@dataclass(frozen=True)
class ChainResult:
    path: list[x509.Certificate]
    """The chain to store: above the intermediate, issuer order, root last."""
    findings: list[Finding]
    """Every finding, in check order (steps 1..12)."""
    effective_expiry: dt.datetime
    """The smallest notAfter on the path, intermediate included (UTC)."""
    root: x509.Certificate | None
    """The self-signed root that ends the path, if the walk reached one."""


def chain_subject(index: int, cert: x509.Certificate) -> str:
    """A finding's subject for the certificate at `index` in the uploaded file."""
    return f"chain[{index}]: {cert.subject.rfc4514_string()}"


def pem_bundle(certs: list[x509.Certificate]) -> str:
    """Certificates as PEM text, in order, `\\n` line ends and a trailing `\\n`."""
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


# Certificate facts ---------------------------------------------------------------------------


def _raw_names(cert: x509.Certificate) -> tuple[bytes, bytes]:
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


def _extension(cert: x509.Certificate, cls: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):  # unparsable: as absent
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    bc = _extension(cert, x509.BasicConstraints)
    return bc is not None and bc.ca


_SIGNATURE_FAMILIES = {
    oid: name.split("_")[0]
    for name, oid in vars(SignatureAlgorithmOID).items()
    if isinstance(oid, x509.ObjectIdentifier) and not name.startswith("_")
}
"""Signature algorithm OID -> "RSA", "RSASSA" (PSS), "ECDSA", "DSA", "ED25519", "ED448", ..."""


def _signature_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
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


def _normalised(name: x509.Name) -> tuple[frozenset[tuple[str, str | bytes]], ...]:
    return tuple(frozenset((a.oid.dotted_string, _fold(a.value)) for a in rdn) for rdn in name.rdns)


def _spki(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (UnsupportedAlgorithm, ValueError):
        return None


def _dn(name: x509.Name) -> str:
    return name.rfc4514_string()


def _day(when: dt.datetime) -> str:
    return when.date().isoformat()


@dataclass(eq=False)
class _Entry:
    """One certificate taking part: its file position (None for the intermediate) and names."""

    index: int | None
    cert: x509.Certificate
    issuer: bytes
    subject: bytes
    self_signed: bool

    @classmethod
    def of(cls, index: int | None, cert: x509.Certificate) -> _Entry:
        issuer, subject = _raw_names(cert)
        return cls(index, cert, issuer, subject, issuer == subject and _signature_by(cert, cert))

    @property
    def label(self) -> str:
        if self.index is None:
            return f"intermediate: {_dn(self.cert.subject)}"
        return chain_subject(self.index, self.cert)

    @property
    def dn(self) -> str:
        return _dn(self.cert.subject)


# Steps ---------------------------------------------------------------------------------------


def _screen(
    intermediate: x509.Certificate, certs: list[x509.Certificate]
) -> tuple[list[Finding], list[_Entry], list[_Entry]]:
    """Steps 1-3: (findings, CA entries for path building, refused non-CA entries)."""
    own = intermediate.public_bytes(serialization.Encoding.DER)
    seen: dict[bytes, int] = {}
    duplicates: list[Finding] = []
    copies: list[Finding] = []
    kept: list[tuple[int, x509.Certificate]] = []
    for index, cert in enumerate(certs):
        encoded = cert.public_bytes(serialization.Encoding.DER)
        if encoded == own:
            copies.append(
                Finding.warning(
                    "chain_contains_intermediate",
                    "The chain includes the signed intermediate itself; it was removed.",
                    chain_subject(index, cert),
                )
            )
        elif encoded in seen:
            duplicates.append(
                Finding.error(
                    "duplicate_certificate",
                    f'chain[{index}] "{_dn(cert.subject)}" is an exact copy of chain[{seen[encoded]}]; '
                    "include each certificate once.",
                    chain_subject(index, cert),
                )
            )
        else:
            seen[encoded] = index
            kept.append((index, cert))
    non_ca: list[Finding] = []
    usable: list[_Entry] = []
    refused: list[_Entry] = []
    for index, cert in kept:
        if _is_ca(cert):
            usable.append(_Entry.of(index, cert))
            continue
        refused.append(_Entry.of(index, cert))
        non_ca.append(
            Finding.error(
                "non_ca_in_chain",
                f'chain[{index}] "{_dn(cert.subject)}" is not a CA certificate '
                "(a server certificate pasted into the chain?).",
                chain_subject(index, cert),
            )
        )
    return duplicates + copies + non_ca, usable, refused


@dataclass
class _Walk:
    path: list[_Entry]  # above the intermediate, issuer order
    stop: Finding | None  # step 5 or 6
    complete: bool  # ended at a self-signed certificate
    key_ids: list[Finding]  # step 7


def _aki_ski(child: _Entry, issuer: _Entry) -> Finding | None:
    aki = _extension(child.cert, x509.AuthorityKeyIdentifier)
    ski = _extension(issuer.cert, x509.SubjectKeyIdentifier)
    if aki is None or aki.key_identifier is None or ski is None or aki.key_identifier == ski.digest:
        return None
    return Finding.error(
        "aki_ski_mismatch",
        f'The authorityKeyIdentifier of "{child.dn}" differs from the subjectKeyIdentifier of its '
        f'issuer "{issuer.dn}"; OpenSSL-based clients use it to pick the issuer and fail.',
        child.label,
    )


def _walk(start: _Entry, usable: list[_Entry], refused: list[_Entry]) -> _Walk:
    """Steps 4-7: walk up from `start` until a self-signed certificate or a dead end."""
    path: list[_Entry] = []
    key_ids: list[Finding] = []
    current = start
    while not current.self_signed:
        placed = [start, *path]
        named = [e for e in usable if e not in placed and e.subject == current.issuer]
        signers = [e for e in named if _signature_by(current.cert, e.cert)]
        if signers:
            issuer = next((e for e in signers if e.self_signed), signers[0])
            if (finding := _aki_ski(current, issuer)) is not None:
                key_ids.append(finding)
            path.append(issuer)
            current = issuer
            continue
        if any(e.subject == current.issuer and _signature_by(current.cert, e.cert) for e in placed):
            loop = Finding.error(
                "chain_loop",
                "The certificates issue each other in a loop without reaching a root.",
                "chainUpload",
            )
            return _Walk(path, loop, False, key_ids)
        if any(e.subject == current.issuer and _signature_by(current.cert, e.cert) for e in refused):
            return _Walk(path, None, False, key_ids)  # reported at step 3
        return _Walk(path, _dead_end(current, [e for e in usable if e not in placed], named), False, key_ids)
    return _Walk(path, None, True, key_ids)


def _dead_end(current: _Entry, unused: list[_Entry], named: list[_Entry]) -> Finding:
    """Step 5: why nothing issued `current`."""
    child, issuer_dn = current.dn, _dn(current.cert.issuer)
    wanted = _normalised(current.cert.issuer)
    for e in unused:
        if (
            e.subject != current.issuer
            and _normalised(e.cert.subject) == wanted
            and _signature_by(current.cert, e.cert)
        ):
            return Finding.error(
                "issuer_name_encoding_mismatch",
                f'"{child}" names its issuer "{issuer_dn}" and chain[{e.index}] "{e.dn}" signed it, '
                "but the two names are encoded differently (letter case, spacing or string type); "
                "clients that compare names byte for byte (Go) cannot build the path.",
                current.label,
            )
    if named:
        return Finding.error(
            "signature_mismatch",
            f'"{child}" names "{issuer_dn}" as its issuer and a certificate with that name is in the '
            f'chain, but its key did not sign "{child}"; was it exported from a different or renewed CA?',
            current.label,
        )
    return Finding.error(
        "incomplete_chain",
        f'No certificate in the chain issued "{child}" (issuer "{issuer_dn}"); include every CA '
        "certificate up to and including the root.",
        current.label,
    )


def _leftovers(usable: list[_Entry], path: list[_Entry]) -> list[Finding]:
    """Step 8."""
    findings = [
        Finding.warning(
            "unused_certificate",
            f'chain[{e.index}] "{e.dn}" is not on the path from the intermediate to its root; '
            "it was not stored.",
            e.label,
        )
        for e in usable
        if e not in path
    ]
    order = [e.index for e in path if e.index is not None]
    if order != sorted(order):
        stored = ", ".join(f'chain[{e.index}] "{e.dn}"' for e in path)
        findings.append(
            Finding.warning(
                "chain_reordered",
                f"The chain was stored in issuer order, root last: {stored}.",
                "chainUpload",
            )
        )
    return findings


def _is_org_root(root: _Entry, org_roots: Sequence[x509.Certificate]) -> bool:
    spki = _spki(root.cert)
    return spki is not None and any(_raw_names(r)[1] == root.subject and _spki(r) == spki for r in org_roots)


def _untrusted(root: _Entry) -> Finding:
    """Step 9."""
    fingerprint = hashlib.sha256(root.cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return Finding.error(
        "untrusted_root",
        f'The chain ends at "{root.dn}" (SHA-256 {fingerprint}), which is not one of the '
        "organization's roots configured for this deployment.",
        root.label,
    )


def _path_lengths(path: list[_Entry]) -> list[Finding]:
    """Step 10: the CA at depth d (intermediate 0) with pathLen p needs p >= d."""
    findings = []
    for depth, e in enumerate(path, start=1):
        bc = _extension(e.cert, x509.BasicConstraints)
        if bc is not None and bc.path_length is not None and bc.path_length < depth:
            findings.append(
                Finding.error(
                    "path_length_exceeded",
                    f'"{e.dn}" allows {bc.path_length} CA certificate(s) below it but {depth} sit '
                    "below it on this path.",
                    e.label,
                )
            )
    return findings


def _expiry(intermediate: x509.Certificate, path: list[_Entry]) -> list[Finding]:
    """Step 12's warnings."""
    limit = intermediate.not_valid_after_utc
    return [
        Finding.warning(
            "chain_expires_first",
            f'"{e.dn}" expires on {_day(e.cert.not_valid_after_utc)}, before the intermediate '
            f"({_day(limit)}); issued certificates stop working then.",
            e.label,
        )
        for e in path
        if e.cert.not_valid_after_utc < limit
    ]


# Entry points --------------------------------------------------------------------------------


def build_chain(
    intermediate: x509.Certificate,
    certs: list[x509.Certificate],
    policy: CheckPolicy,
    org_roots: Sequence[x509.Certificate] = (),
) -> ChainResult:
    """Build and check the path from `intermediate` through `certs` (the file's order).

    `org_roots` are the roots of `org_roots_file`; empty means any self-signed root ends the path.
    The caller refuses the upload when any finding is an error.
    """
    findings, usable, refused = _screen(intermediate, certs)
    walk = _walk(_Entry.of(None, intermediate), usable, refused)
    if walk.stop is not None:
        findings.append(walk.stop)
    findings += walk.key_ids
    root = walk.path[-1] if walk.complete and walk.path else None
    if walk.complete:
        findings += _leftovers(usable, walk.path)
        if root is not None and org_roots and not _is_org_root(root, org_roots):
            findings.append(_untrusted(root))
    findings += _path_lengths(walk.path)
    for e in walk.path:
        checks = ROOT_PROFILE if e is root else CHAIN_CA_PROFILE
        assert e.index is not None
        findings += profile_findings(e.cert, chain_subject(e.index, e.cert), policy, checks)
    findings += _expiry(intermediate, walk.path)
    expiry = min(c.not_valid_after_utc for c in [intermediate, *(e.cert for e in walk.path)])
    return ChainResult(
        path=[e.cert for e in walk.path],
        findings=findings,
        effective_expiry=expiry,
        root=root.cert if root is not None else None,
    )


def find_org_root(
    intermediate: x509.Certificate, org_roots: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    """The first configured root that directly issued `intermediate` (finalize without a chain)."""
    issuer = _raw_names(intermediate)[0]
    return next((r for r in org_roots if _raw_names(r)[1] == issuer and _signature_by(intermediate, r)), None)
