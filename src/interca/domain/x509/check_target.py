"""What every per-certificate F check works on (certificates.md §2): the certificate under check
with its finding subject and policy (`Target`), the check signature (`CertCheck`), and how a
finding quotes text taken from a certificate (`printable`).
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509

from interca.domain.x509.findings import Finding
from interca.domain.x509.policy import CheckPolicy

E = TypeVar("E", bound=x509.ExtensionType)


@dataclass(frozen=True)
class Target:
    """One certificate under check: `subject` labels its findings, `policy` gives time and limits."""

    cert: x509.Certificate
    subject: str
    policy: CheckPolicy

    @property
    def now(self) -> dt.datetime:
        now = self.policy.now
        return now if now.tzinfo is not None else now.replace(tzinfo=dt.UTC)

    def extension(self, kind: type[E]) -> x509.Extension[E] | None:
        try:
            return self.cert.extensions.get_extension_for_class(kind)
        except x509.ExtensionNotFound:
            return None

    def error(self, finding_id: str, text: str) -> list[Finding]:
        return [Finding.error(finding_id, text, self.subject)]

    def warning(self, finding_id: str, text: str) -> list[Finding]:
        return [Finding.warning(finding_id, text, self.subject)]


CertCheck = Callable[[Target], list[Finding]]


def printable(text: str) -> str:
    """`text` for a message: control and other non-printing characters become `?`."""
    return "".join("?" if unicodedata.category(c)[0] in "CZ" and c != " " else c for c in text)
