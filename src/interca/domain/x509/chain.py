"""Checks on an uploaded chain (certificates.md §3).

This first version removes copies of the intermediate and refuses non-CA certificates; the
stored chain keeps the file's order. Path building by issuer name and signature follows.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from interca.domain.x509.findings import Finding


def chain_subject(index: int, cert: x509.Certificate) -> str:
    return f"chain[{index}]: {cert.subject.rfc4514_string()}"


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def build_chain(
    intermediate: x509.Certificate, certs: list[x509.Certificate]
) -> tuple[list[x509.Certificate], list[Finding]]:
    """The chain to store above `intermediate` and the findings about it."""
    own = intermediate.public_bytes(serialization.Encoding.DER)
    findings: list[Finding] = []
    path: list[x509.Certificate] = []
    for index, cert in enumerate(certs):
        if cert.public_bytes(serialization.Encoding.DER) == own:
            findings.append(
                Finding.warning(
                    "chain_contains_intermediate",
                    "The chain includes the signed intermediate itself; it was removed.",
                    chain_subject(index, cert),
                )
            )
            continue
        if not _is_ca(cert):
            findings.append(
                Finding.error(
                    "non_ca_in_chain",
                    f'chain[{index}] "{cert.subject.rfc4514_string()}" is not a CA certificate '
                    "(a server certificate pasted into the chain?).",
                    chain_subject(index, cert),
                )
            )
            continue
        path.append(cert)
    return path, findings


def pem_bundle(certs: list[x509.Certificate]) -> str:
    """Certificates as PEM text, in order, `\\n` line ends and a trailing `\\n`."""
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)
