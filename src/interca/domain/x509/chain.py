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

Steps 1-3 and the entries they hand on are in `chain_file.py`; whether a certificate issued
another (names as encoded, the signature, names after normalisation) is decided in
`issuance_links.py`. `untrusted_root` names the SHA-256 fingerprint of the root's DER as 64
lower-case hex digits without separators (as `sha256sum` and the attestation pins file write it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from interca.domain.x509.chain_file import ChainEntry, chain_subject, screen
from interca.domain.x509.findings import Finding
from interca.domain.x509.issuance_links import normalised_name, raw_names, signed_by
from interca.domain.x509.policy import CheckPolicy
from interca.domain.x509.profile_checks import CHAIN_CA_PROFILE, ROOT_PROFILE, profile_findings


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


def pem_bundle(certs: list[x509.Certificate]) -> str:
    """Certificates as PEM text, in order, `\\n` line ends and a trailing `\\n`."""
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


# Certificate facts ---------------------------------------------------------------------------


def _spki(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (UnsupportedAlgorithm, ValueError):
        return None


def _day(when: dt.datetime) -> str:
    return when.date().isoformat()


# Steps 4-12 ----------------------------------------------------------------------------------


@dataclass
class _Walk:
    path: list[ChainEntry]  # above the intermediate, issuer order
    stop: Finding | None  # step 5 or 6
    complete: bool  # ended at a self-signed certificate
    key_ids: list[Finding]  # step 7


def _aki_ski(child: ChainEntry, issuer: ChainEntry) -> Finding | None:
    aki = child.extension(x509.AuthorityKeyIdentifier)
    ski = issuer.extension(x509.SubjectKeyIdentifier)
    if aki is None or aki.key_identifier is None or ski is None or aki.key_identifier == ski.digest:
        return None
    return Finding.error(
        "aki_ski_mismatch",
        f'The authorityKeyIdentifier of "{child.dn}" differs from the subjectKeyIdentifier of its '
        f'issuer "{issuer.dn}"; OpenSSL-based clients use it to pick the issuer and fail.',
        child.label,
    )


def _walk(start: ChainEntry, usable: list[ChainEntry], refused: list[ChainEntry]) -> _Walk:
    """Steps 4-7: walk up from `start` until a self-signed certificate or a dead end."""
    path: list[ChainEntry] = []
    key_ids: list[Finding] = []
    current = start
    while not current.self_signed:
        placed = [start, *path]
        named = [e for e in usable if e not in placed and e.subject == current.issuer]
        signers = [e for e in named if signed_by(current.cert, e.cert)]
        if signers:
            issuer = next((e for e in signers if e.self_signed), signers[0])
            if (finding := _aki_ski(current, issuer)) is not None:
                key_ids.append(finding)
            path.append(issuer)
            current = issuer
            continue
        if any(e.subject == current.issuer and signed_by(current.cert, e.cert) for e in placed):
            loop = Finding.error(
                "chain_loop",
                "The certificates issue each other in a loop without reaching a root.",
                "chainUpload",
            )
            return _Walk(path, loop, False, key_ids)
        if any(e.subject == current.issuer and signed_by(current.cert, e.cert) for e in refused):
            return _Walk(path, None, False, key_ids)  # reported at step 3
        return _Walk(path, _dead_end(current, [e for e in usable if e not in placed], named), False, key_ids)
    return _Walk(path, None, True, key_ids)


def _dead_end(current: ChainEntry, unused: list[ChainEntry], named: list[ChainEntry]) -> Finding:
    """Step 5: why nothing issued `current`."""
    child, issuer_dn = current.dn, current.cert.issuer.rfc4514_string()
    wanted = normalised_name(current.cert.issuer)
    for e in unused:
        if (
            e.subject != current.issuer
            and normalised_name(e.cert.subject) == wanted
            and signed_by(current.cert, e.cert)
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


def _leftovers(usable: list[ChainEntry], path: list[ChainEntry]) -> list[Finding]:
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


def _is_org_root(root: ChainEntry, org_roots: Sequence[x509.Certificate]) -> bool:
    spki = _spki(root.cert)
    return spki is not None and any(raw_names(r)[1] == root.subject and _spki(r) == spki for r in org_roots)


def _untrusted(root: ChainEntry) -> Finding:
    """Step 9."""
    fingerprint = hashlib.sha256(root.cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return Finding.error(
        "untrusted_root",
        f'The chain ends at "{root.dn}" (SHA-256 {fingerprint}), which is not one of the '
        "organization's roots configured for this deployment.",
        root.label,
    )


def _path_lengths(path: list[ChainEntry]) -> list[Finding]:
    """Step 10: the CA at depth d (intermediate 0) with pathLen p needs p >= d."""
    findings = []
    for depth, e in enumerate(path, start=1):
        bc = e.extension(x509.BasicConstraints)
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


def _expiry(intermediate: x509.Certificate, path: list[ChainEntry]) -> list[Finding]:
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
    findings, usable, refused = screen(intermediate, certs)
    walk = _walk(ChainEntry.of(None, intermediate), usable, refused)
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
    issuer = raw_names(intermediate)[0]
    return next((r for r in org_roots if raw_names(r)[1] == issuer and signed_by(intermediate, r)), None)
