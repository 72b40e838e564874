"""Checks on an uploaded intermediate (certificates.md §2), as an ordered list of findings.

Gates run in order and stop at the first failure (later checks would describe the wrong input);
checks all run and every finding is reported. Each check is a small function over a
`Candidate`, so more checks slot into `GATES` and `CHECKS` without touching the callers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from interca.domain.x509.findings import Finding, FindingsError


@dataclass(frozen=True)
class Candidate:
    """What the checks look at: the uploaded certificates and what the record expects."""

    certs: list[x509.Certificate]
    expected_spki: bytes  # SubjectPublicKeyInfo DER of the key generated for this record
    csr_path_length: int | None

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
    except ValueError:  # a key type cryptography cannot load is not ours either
        return False


# Gates ---------------------------------------------------------------------------------------


def gate_single(c: Candidate) -> Finding | None:
    if len(c.certs) == 1:
        return None
    m = sum(_matches_key(cert, c.expected_spki) for cert in c.certs)
    return Finding.error(
        "expected_single_certificate",
        f"The file holds {len(c.certs)} certificates ({m} match this certificate's key pair). "
        "Upload the signed intermediate alone and the others with uploadCertChain.",
        "fileUpload",
    )


def gate_public_key(c: Candidate) -> Finding | None:
    if _matches_key(c.cert, c.expected_spki):
        return None
    return Finding.error(
        "public_key_mismatch",
        "The certificate's public key does not match the key pair generated for this certificate.",
        describe(c.cert),
    )


# Checks --------------------------------------------------------------------------------------


def check_is_ca(c: Candidate) -> Finding | None:
    try:
        bc = c.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is not None and bc.ca:
        return None
    return Finding.error(
        "not_a_ca",
        "basicConstraints does not assert cA=TRUE, so this certificate cannot issue certificates; "
        "have it signed as a subordinate CA.",
        describe(c.cert),
    )


Check = Callable[[Candidate], Finding | None]
GATES: list[Check] = [gate_single, gate_public_key]
CHECKS: list[Check] = [check_is_ca]


def check_intermediate(candidate: Candidate) -> list[Finding]:
    """Every finding for the candidate: the first failing gate alone, else all check findings."""
    for gate in GATES:
        finding = gate(candidate)
        if finding is not None:
            return [finding]
    return [f for check in CHECKS if (f := check(candidate)) is not None]


def require_valid(findings: list[Finding]) -> list[Finding]:
    """Raise `FindingsError` if any finding is an error; otherwise return the warnings."""
    if any(f.severity == "error" for f in findings):
        raise FindingsError(findings)
    return [f for f in findings if f.severity == "warning"]
