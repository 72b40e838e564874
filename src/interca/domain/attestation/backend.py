"""Verifier backends (hsm.md §8.8): one shape for every device that attests keys, so the service
asks the region's backend and never knows which vendor answered."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from interca.domain.attestation.claims import Claims
from interca.domain.attestation.report import Check
from interca.domain.attestation.verify import verify_bundle
from interca.domain.models import Region


class AttestationVerifier(Protocol):
    """A per-region verifier backend (hsm.md §8.8). Real vendors (YubiHSM 2, Marvell
    LiquidSecurity, Thales Luna) plug in here and normalise their claims to `Claims`.

    `verify` checks `bundle` for the key whose SubjectPublicKeyInfo DER is `expected_spki`, in
    `region`, with CKA_ID `key_id`, at `now`; `nonce` and `max_age` for an on-demand statement.
    Returns every check in order, and the claims only when no check failed. Never raises for the
    bundle's content."""

    def verify(
        self,
        bundle: bytes,
        expected_spki: bytes,
        region: Region | str,
        key_id: bytes,
        now: dt.datetime,
        nonce: bytes | None = None,
        max_age: dt.timedelta | None = None,
    ) -> tuple[list[Check], Claims | None]: ...


@dataclass(frozen=True)
class EmulatedHsmVerifier:
    """The verifier backend of the emulated (SoftHSM2) Cloud HSM, one per region or shared
    (hsm.md §8.8): the pins and deny list come from the attestor's pins file, the skew from
    settings. Satisfies `AttestationVerifier`."""

    pinned_roots: tuple[bytes, ...]
    denied_ak_fingerprints: tuple[bytes, ...] = ()
    skew_seconds: int = 300

    def verify(
        self,
        bundle: bytes,
        expected_spki: bytes,
        region: Region | str,
        key_id: bytes,
        now: dt.datetime,
        nonce: bytes | None = None,
        max_age: dt.timedelta | None = None,
    ) -> tuple[list[Check], Claims | None]:
        report = verify_bundle(
            bundle,
            pinned_roots=self.pinned_roots,
            denied_ak_fingerprints=self.denied_ak_fingerprints,
            expected_spki=expected_spki,
            region=region,
            key_id=key_id,
            now=now,
            skew_seconds=self.skew_seconds,
            nonce=nonce,
            max_age=max_age,
        )
        return report.checks, report.claims
