"""The outcome of verifying a key attestation (hsm.md §8.6): one `Check` per step V1–V9, the
report that holds them, and the error the service raises when the report fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from interca.domain.attestation.claims import Claims, DeviceInfoClaims
from interca.errors import InvalidInput

Status = Literal["passed", "failed", "skipped"]

STEPS: tuple[tuple[str, str, str], ...] = (
    ("V1", "attestation_malformed", "Bundle format"),
    ("V2", "attestation_root_not_pinned", "Pinned manufacturer root"),
    ("V3", "attestation_signature_invalid", "Signatures"),
    ("V4", "attestation_chain_invalid", "Certificate profiles"),
    ("V5", "attestation_expired", "Validity"),
    ("V6", "attestation_key_mismatch", "Attested key"),
    ("V7", "attestation_claims_rejected", "Key claims"),
    ("V8", "attestation_region_mismatch", "Region and token"),
    ("V9", "attestation_stale", "Freshness"),
)
"""(step, id, title) in verification order."""


@dataclass(frozen=True)
class Check:
    """One step's result. `detail` is the failure sentence (no final period), what passed, or why
    the step was skipped. Only `step` and `id` are stable."""

    step: str
    id: str
    title: str
    status: Status
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"step": self.step, "id": self.id, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class VerificationReport:
    """Every step V1–V9 in order. The first failure decides; skipped steps do not fail a report
    (a comparison the caller gave nothing to compare with, or a step that could not run because
    V1 failed, which has already failed the report)."""

    checks: list[Check]
    decoded_claims: Claims | None
    """The statement's claims as decoded, verified or not: for display and diagnosis only."""
    device_info: DeviceInfoClaims | None
    """The AK certificate's DeviceInfo as decoded, verified or not."""

    @property
    def ok(self) -> bool:
        return len(self.checks) == len(STEPS) and all(c.status != "failed" for c in self.checks)

    @property
    def first_failure(self) -> Check | None:
        return next((c for c in self.checks if c.status == "failed"), None)

    @property
    def claims(self) -> Claims | None:
        """The claims, only when every step passed: the only ones safe to act on."""
        return self.decoded_claims if self.ok else None

    @property
    def message(self) -> str | None:
        """`Key attestation verification failed: [<id>] <sentence>.` (hsm.md §8.6), or None."""
        first = self.first_failure
        return None if first is None else f"Key attestation verification failed: [{first.id}] {first.detail}."

    def raise_for_failure(self) -> None:
        """Raise `AttestationVerificationFailed` unless the report is ok."""
        if not self.ok:
            raise AttestationVerificationFailed(self)


class AttestationVerificationFailed(InvalidInput):
    """verifyKeyAttestation refused (api.md §4.3: 400, nothing changes). `error_id` is the first
    failing step's id; the message is the report's message."""

    def __init__(self, report: VerificationReport) -> None:
        first = report.first_failure
        self.report = report
        self.error_id = first.id if first else "attestation_malformed"
        super().__init__(report.message or "Key attestation verification failed.")
