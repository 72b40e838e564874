"""The certificates of an uploaded chain file (certificates.md §3 steps 1-3): each one as a
`ChainEntry` (its position in the file, its names as encoded, whether it is self-signed), the
subject its findings carry, and the steps that look at the file itself: exact repeats (step 1),
copies of the intermediate (step 2) and certificates that are not CAs (step 3).

`chain.py` builds the path from these entries and runs the later steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from interca.domain.x509.findings import Finding
from interca.domain.x509.issuance_links import raw_names, signed_by

_E = TypeVar("_E", bound=x509.ExtensionType)


def chain_subject(index: int, cert: x509.Certificate) -> str:
    """A finding's subject for the certificate at `index` in the uploaded file."""
    return f"chain[{index}]: {cert.subject.rfc4514_string()}"


def _extension(cert: x509.Certificate, cls: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):  # unparsable: as absent
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    bc = _extension(cert, x509.BasicConstraints)
    return bc is not None and bc.ca


def _dn(name: x509.Name) -> str:
    return name.rfc4514_string()


@dataclass(eq=False)
class ChainEntry:
    """One certificate taking part: its file position (None for the intermediate) and names."""

    index: int | None
    cert: x509.Certificate
    issuer: bytes
    subject: bytes
    self_signed: bool

    @classmethod
    def of(cls, index: int | None, cert: x509.Certificate) -> ChainEntry:
        issuer, subject = raw_names(cert)
        return cls(index, cert, issuer, subject, issuer == subject and signed_by(cert, cert))

    @property
    def label(self) -> str:
        if self.index is None:
            return f"intermediate: {_dn(self.cert.subject)}"
        return chain_subject(self.index, self.cert)

    @property
    def dn(self) -> str:
        return _dn(self.cert.subject)

    def extension(self, cls: type[_E]) -> _E | None:
        """The value of the `cls` extension; `None` when it is absent or cannot be parsed."""
        return _extension(self.cert, cls)


def screen(
    intermediate: x509.Certificate, certs: list[x509.Certificate]
) -> tuple[list[Finding], list[ChainEntry], list[ChainEntry]]:
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
    usable: list[ChainEntry] = []
    refused: list[ChainEntry] = []
    for index, cert in kept:
        if _is_ca(cert):
            usable.append(ChainEntry.of(index, cert))
            continue
        refused.append(ChainEntry.of(index, cert))
        non_ca.append(
            Finding.error(
                "non_ca_in_chain",
                f'chain[{index}] "{_dn(cert.subject)}" is not a CA certificate '
                "(a server certificate pasted into the chain?).",
                chain_subject(index, cert),
            )
        )
    return duplicates + copies + non_ca, usable, refused
