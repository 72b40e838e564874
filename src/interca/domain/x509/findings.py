"""Findings: the result of every X.509 check (certificates.md §1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from interca.errors import InvalidInput

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One check result. `message` starts with `[id]`; only `id` is stable."""

    id: str
    severity: Severity
    message: str
    subject: str

    @classmethod
    def error(cls, id: str, text: str, subject: str) -> Finding:
        return cls(id, "error", f"[{id}] {text}", subject)

    @classmethod
    def warning(cls, id: str, text: str, subject: str) -> Finding:
        return cls(id, "warning", f"[{id}] {text}", subject)

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "severity": self.severity, "message": self.message, "subject": self.subject}


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


class FindingsError(InvalidInput):
    """An upload or finalize was refused; carries every finding (certificates.md §1).

    The message is every error message joined by one space, so it starts with the first `[id]`.
    """

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = list(findings)
        super().__init__(" ".join(f.message for f in self.findings if f.severity == "error"))
