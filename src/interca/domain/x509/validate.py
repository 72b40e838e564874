"""Checks on an uploaded intermediate (certificates.md §2), as an ordered list of findings.

Gates G10–G13 run in order and stop at the first failure (later checks would describe the wrong
input); then the F checks all run and every finding is reported, in spec order. The checks that
compare with the CSR (F3, F4, F21, F22) are here; the per-certificate ones, shared with the chain
checks of §3, are run by `profile_checks.py` (those on extensions live in `extension_checks.py`).

One gate beyond the spec follows G10: a certificate whose serial, names or extensions
`cryptography` cannot parse (it parses them lazily; the upload decoder already forces them and
refuses such files as G9, but other callers may pass such a certificate) gets
`malformed_certificate` with G9's message, reason `not a certificate` and subject `fileUpload`,
exactly as the decoder would have, alone, instead of a crash.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from interca.domain.x509.check_target import Target, printable
from interca.domain.x509.findings import Finding, FindingsError
from interca.domain.x509.policy import CheckPolicy
from interca.domain.x509.profile_checks import CERT_CHECKS, INTERMEDIATE_PROFILE, malformed, unparseable

# api.md §3.3: the pathLen values a CSR may request; F3 suggests regenerating the CSR only with these.
CSR_PATH_LENGTHS = (0, 1)


@dataclass(frozen=True)
class Candidate:
    """What the checks look at: the uploaded certificates and what the record expects.

    `csr_path_length` None (no CSR, the built-in self-check) skips F3 and F4; `csr_subject` None
    skips F21 and F22; `policy` None checks at the current time with the default thresholds.
    `allow_path_length_change` says whether the record may use another pathLen (CUSTOM_SW may use
    0 or 1, CUSTOM_HSM only 0): it decides F3's second clause.
    """

    certs: list[x509.Certificate]
    expected_spki: bytes  # SubjectPublicKeyInfo DER of the key generated for this record
    csr_path_length: int | None
    csr_subject: x509.Name | None = None
    policy: CheckPolicy | None = None
    allow_path_length_change: bool = True

    @property
    def cert(self) -> x509.Certificate:
        return self.certs[0]


def spki_der(cert_or_key: x509.Certificate | object) -> bytes:
    key = cert_or_key.public_key() if isinstance(cert_or_key, x509.Certificate) else cert_or_key
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def describe(cert: x509.Certificate) -> str:
    return f"intermediate: {cert.subject.rfc4514_string()}"


def _matches_key(cert: x509.Certificate, expected_spki: bytes) -> bool:
    try:
        return spki_der(cert) == expected_spki
    except Exception:  # a key type cryptography cannot load is not ours either
        return False


# Gates ---------------------------------------------------------------------------------------


def gate_single(c: Candidate) -> Finding | None:
    """G10."""
    if len(c.certs) == 1:
        return None
    m = sum(_matches_key(cert, c.expected_spki) for cert in c.certs)
    return Finding.error(
        "expected_single_certificate",
        f"The file holds {len(c.certs)} certificates ({m} match this certificate's key pair). "
        "Upload the signed intermediate alone and the others with uploadCertChain.",
        "fileUpload",
    )


def is_self_signed(cert: x509.Certificate) -> bool:
    """Issuer bytes == subject bytes and the signature verifies with the certificate's own key."""
    if cert.issuer.public_bytes() != cert.subject.public_bytes():
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError
        return False
    return True


def gate_self_signed(c: Candidate) -> Finding | None:
    """G11."""
    if not is_self_signed(c.cert):
        return None
    return Finding.error(
        "self_signed",
        "The certificate is self-signed (a root?). Upload the certificate the organization's CA issued "
        "for this CSR.",
        describe(c.cert),
    )


def gate_public_key(c: Candidate) -> Finding | None:
    """G12."""
    if _matches_key(c.cert, c.expected_spki):
        return None
    return Finding.error(
        "public_key_mismatch",
        "The certificate's public key does not match the key pair generated for this certificate.",
        describe(c.cert),
    )


def gate_version(c: Candidate) -> Finding | None:
    """G13. cryptography loads only v1 and v3 (other versions raise InvalidVersion at load)."""
    version = c.cert.version
    if version == x509.Version.v3:
        return None
    return Finding.error(
        "not_v3",
        f"The certificate is X.509 version {version.value + 1}; a CA certificate must be version 3 "
        "(was it signed without an extensions file?).",
        describe(c.cert),
    )


def gate_parseable(c: Candidate) -> Finding | None:
    """Beyond the spec, G9 again for lazily parsed fields (see the module docstring)."""
    return malformed("fileUpload") if unparseable(c.cert) else None


# Checks that compare with the CSR --------------------------------------------------------------


def _path_length(cert: x509.Certificate) -> tuple[bool, int | None]:
    """(basicConstraints asserts cA=TRUE, its pathLenConstraint)."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False, None
    return bc.ca, bc.path_length


def check_path_length(c: Candidate, t: Target) -> list[Finding]:
    """F3: pathLenConstraint present and different from the CSR's requested value."""
    requested = c.csr_path_length
    _, v = _path_length(c.cert)
    if requested is None or v is None or v == requested:
        return []
    change = c.allow_path_length_change and v in CSR_PATH_LENGTHS
    alternative = f", or regenerate the CSR with {v} and upload this certificate again" if change else ""
    return t.error(
        "path_length_mismatch",
        f"pathLenConstraint is {v} but the CSR requested {requested}; have the CA sign it with "
        f"{requested}{alternative}.",
    )


def check_path_length_present(c: Candidate, t: Target) -> list[Finding]:
    """F4: a CA (cA=TRUE; otherwise F1 speaks) without pathLenConstraint."""
    ca, v = _path_length(c.cert)
    if c.csr_path_length is None or not ca or v is not None:
        return []
    return t.warning(
        "path_length_unconstrained",
        f"There is no pathLenConstraint (the CSR requested {c.csr_path_length}); it works, but this "
        "CA is allowed to create subordinate CAs.",
    )


def _common_names(name: x509.Name) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)]


def check_subject_cn(c: Candidate, t: Target) -> list[Finding]:
    """F21: all CN values, in order, exactly equal to the CSR's."""
    if c.csr_subject is None:
        return []
    cns, csr_cns = _common_names(c.cert.subject), _common_names(c.csr_subject)
    if cns == csr_cns:
        return []
    return t.error(
        "subject_mismatch",
        f'The subject common name "{printable(", ".join(cns))}" differs from the CSR\'s '
        f'"{printable(", ".join(csr_cns))}".',
    )


def check_subject_bytes(c: Candidate, t: Target) -> list[Finding]:
    """F22: CNs equal (else F21) but the subject DER differs (order, string types, other RDNs)."""
    csr = c.csr_subject
    if csr is None or _common_names(c.cert.subject) != _common_names(csr):
        return []
    if c.cert.subject.public_bytes() == csr.public_bytes():
        return []
    return t.warning(
        "subject_differs",
        f'The subject "{printable(c.cert.subject.rfc4514_string())}" differs from the CSR subject '
        f'"{printable(csr.rfc4514_string())}" outside the common name.',
    )


Gate = Callable[[Candidate], Finding | None]
CandidateCheck = Callable[[Candidate, Target], list[Finding]]

GATES: list[Gate] = [gate_single, gate_parseable, gate_self_signed, gate_public_key, gate_version]
_WITH_CSR: dict[str, CandidateCheck] = {
    "F3": check_path_length,
    "F4": check_path_length_present,
    "F21": check_subject_cn,
    "F22": check_subject_bytes,
}


def _per_certificate(number: str) -> CandidateCheck:
    check = CERT_CHECKS[number]
    return lambda _c, t: check(t)


CHECKS: list[tuple[str, CandidateCheck]] = [
    (number, _WITH_CSR[number] if number in _WITH_CSR else _per_certificate(number))
    for number in INTERMEDIATE_PROFILE
]
"""The F checks in spec order, as (number, check)."""


def failing_gate(candidate: Candidate) -> Finding | None:
    """The first gate that refuses the candidate, or None when every gate passes."""
    return next((f for gate in GATES if (f := gate(candidate)) is not None), None)


def check_intermediate(candidate: Candidate) -> list[Finding]:
    """Every finding for the candidate: the first failing gate alone, else all check findings."""
    gate = failing_gate(candidate)
    if gate is not None:
        return [gate]
    policy = candidate.policy or CheckPolicy(now=dt.datetime.now(dt.UTC))
    target = Target(candidate.cert, describe(candidate.cert), policy)
    return [f for _, check in CHECKS for f in check(candidate, target)]


def require_valid(findings: list[Finding]) -> list[Finding]:
    """Raise `FindingsError` if any finding is an error; otherwise return the warnings."""
    if any(f.severity == "error" for f in findings):
        raise FindingsError(findings)
    return [f for f in findings if f.severity == "warning"]
