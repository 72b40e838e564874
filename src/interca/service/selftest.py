"""The finalize self-test (certificates.md §5 steps 2-5): mint a canary leaf with the engine's own
leaf function and the CA's real key, then prove it with a strict verifier and a real TLS handshake.

Owns the canary name, the trust anchor of the test and the §6 invariants checked on the canary;
the in-process TLS handshake is in `handshake.py`. Step 1 (re-running the upload checks) and
step 6 (storing the result) belong to the finalize use case, which also turns
`selftest_signing_failed` into a 503.

Time: the canary is minted and verified at `SelfTestInput.now`, but OpenSSL's handshake always
uses the real clock. With the system clock (finalize) the two agree; tests that move `now` are
about the verifier step, which runs first and stops the test when the path is out of validity.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, PublicKeyTypes
from cryptography.x509.verification import DNSName, PolicyBuilder, Store, VerificationError

from interca.domain.x509.findings import Finding
from interca.domain.x509.hostnames import check_name_constraints, normalize_name
from interca.domain.x509.leaf import MAX_LIFETIME_DAYS, LeafProfile, build_leaf, leaf_signature_hash
from interca.domain.x509.leaf_refusal import LeafRefused
from interca.errors import KeyStoreError
from interca.service.handshake import handshake

CANARY_LABEL = "interca-selftest"
FALLBACK_CANARY = f"{CANARY_LABEL}.invalid"  # RFC 2606: a name that can never be a real host
ROOT_UNKNOWN_TEXT = (
    "No root was uploaded, so only the link from a test certificate to this CA was verified; "
    "upload the chain to have the whole path checked."
)


@dataclass(frozen=True)
class SelfTestInput:
    """What the self-test needs; nothing here is read from settings or storage.

    `chain`: the stored chain above the intermediate, issuer order, root last (may be empty).
    `org_roots`: the roots of `org_roots_file` (may be empty). `signer`: the CA key, software or
    a key-store object. `effective_expiry`: the smallest notAfter on the path. `now`: aware.
    `leaf_key_type`: `ec-p256` or `rsa-2048`. `profile`: the deployment's leaf settings, so the
    canary is minted exactly as the engine would mint.
    """

    intermediate: x509.Certificate
    chain: list[x509.Certificate]
    org_roots: list[x509.Certificate]
    signer: CertificateIssuerPrivateKeyTypes
    effective_expiry: dt.datetime
    now: dt.datetime
    leaf_key_type: str = "ec-p256"
    profile: LeafProfile = LeafProfile()


LeafKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class _Anchor:
    store: x509.Certificate  # the one trusted certificate of the verifier and the TLS client
    untrusted: list[x509.Certificate]  # what the server sends after the leaf, intermediate first
    above: list[x509.Certificate]  # CA certificates above the intermediate, root last when known
    root_known: bool


def run_self_test(data: SelfTestInput) -> list[Finding]:
    """Run §5 steps 2-5 and return their findings in order; stops at the first error.

    Findings (subject `canary: <host>`): `selftest_no_canary_name`, `selftest_signing_failed`
    (its message names the key store's error id; the caller answers 503), `ca_not_valid` (the
    validity periods of the path never overlap, so the engine could never mint),
    `selftest_profile_violation` (an interca defect, or a CA the leaf profile cannot serve),
    `root_unknown` (warning), `selftest_verifier_failed`, `selftest_handshake_failed`.
    An empty list, or warnings only, means the CA passed.

    Raises: `ValueError` for an unknown `leaf_key_type` or a naive `now`.
    """
    if data.now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    leaf_key = _new_leaf_key(data.leaf_key_type)
    anchor = _anchor(data)
    path = [data.intermediate, *anchor.above]
    canary, tried = pick_canary(path)
    if canary is None:
        return [
            Finding.error(
                "selftest_no_canary_name",
                "No test host name fits the name constraints of every CA on the path "
                f"(tried {', '.join(tried)}), so no certificate could be issued under this CA.",
                f"canary: {tried[0]}",
            )
        ]
    subject = f"canary: {canary}"

    problem = _unmintable(data.intermediate)
    if problem is not None:
        return [_profile_violation(problem, subject)]
    try:
        leaf = build_leaf(
            [canary],
            leaf_key.public_key(),
            data.intermediate,
            data.signer,
            path=anchor.above,
            effective_expiry=data.effective_expiry,
            now=_mint_time(data, path),
            profile=data.profile,
        )
    except LeafRefused as refused:
        return [Finding(refused.id, "error", refused.message, subject)]
    except KeyStoreError as exc:
        # The key store's message starts with its own `[id]`; the id is named once, in the text.
        return [_signing_failed(exc.error_id, exc.message.removeprefix(f"[{exc.error_id}] "), subject)]
    except Exception:  # noqa: BLE001 - any failure inside the signer's `sign` is the key store's
        return [_signing_failed("signing_error", "The key store raised an unexpected error.", subject)]
    try:
        leaf.verify_directly_issued_by(data.intermediate)
    except (InvalidSignature, ValueError, TypeError):
        return [_signing_failed("signature_invalid", "The signature does not verify.", subject)]

    violation = profile_violation(leaf, data.intermediate, path, data.effective_expiry, canary)
    if violation is not None:
        return [_profile_violation(violation, subject)]

    findings: list[Finding] = []
    if not anchor.root_known:
        findings.append(Finding.warning("root_unknown", ROOT_UNKNOWN_TEXT, subject))
    try:
        PolicyBuilder().store(Store([anchor.store])).time(data.now).build_server_verifier(
            DNSName(canary)
        ).verify(leaf, anchor.untrusted)
    except VerificationError as exc:
        findings.append(
            Finding.error(
                "selftest_verifier_failed",
                f"The strict path check rejected a test certificate issued by this CA: {exc}.",
                subject,
            )
        )
        return findings

    failure = handshake(
        leaf,
        leaf_key,
        canary,
        trusted=anchor.store,
        untrusted=anchor.untrusted,
        partial_chain=not anchor.root_known,
    )
    if failure is not None:
        findings.append(
            Finding.error(
                "selftest_handshake_failed",
                f"A TLS handshake with a test certificate issued by this CA failed: {failure}.",
                subject,
            )
        )
    return findings


def pick_canary(path: Sequence[x509.Certificate]) -> tuple[str | None, list[str]]:
    """The canary host for `path` (intermediate first) and every candidate tried, in order.

    Candidates: `interca-selftest.<subtree>` for each permitted dNSName subtree on the path (in
    path order, leading dot dropped), else `interca-selftest.invalid`. The first that is a valid
    host and passes `check_name_constraints` wins; `None` when none does.
    """
    subtrees = []
    for cert in path:
        try:
            constraints = cert.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            continue
        subtrees += [s.value for s in constraints.permitted_subtrees or () if isinstance(s, x509.DNSName)]
    candidates = [f"{CANARY_LABEL}.{s.removeprefix('.')}" for s in subtrees] or [FALLBACK_CANARY]
    for candidate in candidates:
        try:
            host = normalize_name(candidate)
            if isinstance(host, str):
                check_name_constraints([host], path)
                return host, candidates
        except LeafRefused:
            continue
    return None, candidates


def profile_violation(
    leaf: x509.Certificate,
    ca_cert: x509.Certificate,
    path: Sequence[x509.Certificate],
    effective_expiry: dt.datetime,
    canary: str,
) -> str | None:
    """The first §6 invariant the minted `leaf` breaks, or `None` (`path` includes `ca_cert`)."""
    if leaf.issuer.public_bytes() != ca_cert.subject.public_bytes():
        return "the issuer is not the CA's subject byte for byte"
    try:
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "the authorityKeyIdentifier or subjectAltName is missing"
    if aki.key_identifier != ski.digest or aki.authority_cert_issuer or aki.authority_cert_serial_number:
        return "the authorityKeyIdentifier is not exactly the CA's subjectKeyIdentifier"
    if not 0 < leaf.serial_number < 2**127:
        return "the serial number is not positive or longer than 16 octets"
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if not (
        start <= end <= effective_expiry
        and end - start <= dt.timedelta(days=MAX_LIFETIME_DAYS)
        and all(c.not_valid_before_utc <= start and end <= c.not_valid_after_utc for c in path)
    ):
        return "the validity is not inside the CA path's validity"
    if canary not in san.get_values_for_type(x509.DNSName):
        return "the subjectAltName does not name the host"
    if _spki(leaf.public_key()) == _spki(ca_cert.public_key()):
        return "the certificate carries the CA's own key"
    return None


def _anchor(data: SelfTestInput) -> _Anchor:
    """Where trust starts (§5 step 4): the chain's root, else an org root that signed the top of
    the path, else the top of the path itself (the intermediate when no chain is stored)."""
    chain = list(data.chain)
    if chain and _self_signed(chain[-1]):
        return _Anchor(chain[-1], [data.intermediate, *chain[:-1]], chain, root_known=True)
    top = chain[-1] if chain else data.intermediate
    for root in data.org_roots:
        if _self_signed(root) and _issued_by(top, root):
            return _Anchor(root, [data.intermediate, *chain], [*chain, root], root_known=True)
    return _Anchor(top, [data.intermediate, *chain], chain, root_known=False)


def _mint_time(data: SelfTestInput, path: Sequence[x509.Certificate]) -> dt.datetime:
    """`now`, moved into the path's validity when it lies outside: the canary is still minted, so
    the verifier (which checks at `now`) is what refuses an expired or not-yet-valid path, as
    §8 row 51 expects. The engine itself would refuse with `ca_not_valid`, and finalize step 1
    reports `expired` / `not_yet_valid` before the self-test runs."""
    earliest = max(c.not_valid_before_utc for c in path)
    latest = min([data.effective_expiry, *(c.not_valid_after_utc for c in path)])
    return min(max(data.now, earliest), latest)


def _unmintable(ca_cert: x509.Certificate) -> str | None:
    """Why `build_leaf` cannot serve this CA at all, checked first so that every exception left
    from `build_leaf` comes from the signer."""
    try:
        leaf_signature_hash(ca_cert.public_key())
    except (TypeError, ValueError):
        return "interca signs leaves only with RSA, P-256 and P-384 CA keys"
    try:
        ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return "the CA has no subjectKeyIdentifier for the leaves' authorityKeyIdentifier"
    return None


def _profile_violation(what: str, subject: str) -> Finding:
    return Finding.error(
        "selftest_profile_violation",
        f"The test certificate does not follow interca's leaf profile: {what}.",
        subject,
    )


def _signing_failed(error_id: str, detail: str, subject: str) -> Finding:
    return Finding.error(
        "selftest_signing_failed",
        f"The CA key could not sign a test certificate ({error_id}): {detail} "
        "The certificate is not at fault; retry when the key store is available.",
        subject,
    )


def _new_leaf_key(key_type: str) -> LeafKey:
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"Unknown leaf key type {key_type!r}; expected ec-p256 or rsa-2048")


def _self_signed(cert: x509.Certificate) -> bool:
    return _issued_by(cert, cert)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
