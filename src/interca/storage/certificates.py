"""The certificate repository: intermediate CA records and the default pointer."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from interca.domain.models import (
    CaKey,
    CaType,
    CrlRecord,
    CsrRecord,
    CsrSubject,
    IntermediateCa,
    KeyType,
    Region,
    SignatureAlgorithm,
    Status,
    UploadedCert,
)
from interca.domain.states import State
from interca.storage.tables import CertificateRow, DefaultCertificateRow


def _subject_to_json(subject: CsrSubject) -> dict[str, Any]:
    data = asdict(subject)
    data["signature_algorithm"] = subject.signature_algorithm.value
    return data


def _subject_from_json(data: dict[str, Any]) -> CsrSubject:
    return CsrSubject(**{**data, "signature_algorithm": SignatureAlgorithm(data["signature_algorithm"])})


def _to_domain(row: CertificateRow, default_id: int | None) -> IntermediateCa:
    ca = IntermediateCa(
        id=row.id,
        name=row.name,
        type=CaType(row.type),
        region=Region(row.region),
        status=Status(row.status),
        key_type=KeyType(row.key_type),
        description=row.description,
        state=State[row.state],
        is_default=row.id == default_id,
    )
    if row.key_ref and row.public_key_pem:
        ca.key = CaKey(
            row.key_ref,
            row.public_key_pem,
            row.key_generated_at,
            row.attestation_verified_at,
            row.attestation_pem,
        )
    elif row.key_ref:
        ca.pending_key_ref = row.key_ref
    if row.csr_pem and row.csr_subject and row.csr_generated_at:
        ca.csr = CsrRecord(row.csr_pem, _subject_from_json(row.csr_subject), row.csr_generated_at)
    if row.cert_der and row.cert_not_before and row.cert_not_after:
        ca.cert = UploadedCert(
            der=row.cert_der,
            file_name=row.cert_file_name,
            not_before=row.cert_not_before,
            not_after=row.cert_not_after,
            chain_pem=row.chain_pem,
            chain_file_name=row.chain_file_name,
            effective_expiry=row.effective_expiry,
            warnings=list(row.warnings or []),
        )
    if row.crl_der and row.crl_issued_at:
        ca.crl = CrlRecord(row.crl_number, row.crl_der, row.crl_issued_at)
    return ca


def _fill(row: CertificateRow, ca: IntermediateCa, now: dt.datetime) -> None:
    row.name = ca.name
    row.name_key = ca.name.casefold()
    row.type = ca.type.value
    row.region = ca.region.value
    row.status = ca.status.value
    row.key_type = ca.key_type.value
    row.description = ca.description
    row.state = ca.state.name
    key, csr, cert = ca.key, ca.csr, ca.cert
    row.key_ref = key.ref if key else ca.pending_key_ref
    row.public_key_pem = key.public_key_pem if key else None
    row.key_generated_at = key.generated_at if key else None
    row.attestation_verified_at = key.attestation_verified_at if key else None
    row.attestation_pem = key.attestation_pem if key else None
    row.csr_pem = csr.pem if csr else None
    row.csr_subject = _subject_to_json(csr.subject) if csr else None
    row.csr_generated_at = csr.generated_at if csr else None
    row.cert_der = cert.der if cert else None
    row.cert_file_name = cert.file_name if cert else None
    row.cert_not_before = cert.not_before if cert else None
    row.cert_not_after = cert.not_after if cert else None
    row.chain_pem = cert.chain_pem if cert else None
    row.chain_file_name = cert.chain_file_name if cert else None
    row.effective_expiry = cert.effective_expiry if cert else None
    row.warnings = list(cert.warnings) if cert and cert.warnings else None
    if ca.crl is not None:  # the number is kept even when the CRL is dropped, so it never goes back
        row.crl_number = ca.crl.number
    row.crl_der = ca.crl.der if ca.crl else None
    row.crl_issued_at = ca.crl.issued_at if ca.crl else None
    row.updated_at = now


class CertificateRepository:
    """Reads and writes `IntermediateCa` records inside the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def default_id(self) -> int | None:
        return self._s.scalar(select(DefaultCertificateRow.certificate_id))

    def get(self, ca_id: int) -> IntermediateCa | None:
        row = self._s.get(CertificateRow, ca_id)
        return _to_domain(row, self.default_id()) if row else None

    def list(self, search: str | None, offset: int, limit: int) -> list[IntermediateCa]:
        """Records by ascending id; `search` keeps names containing it, ignoring case."""
        query = select(CertificateRow).order_by(CertificateRow.id)
        if search:
            escaped = search.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(CertificateRow.name_key.like(f"%{escaped}%", escape="\\"))
        default_id = self.default_id()
        rows = self._s.scalars(query.offset(offset).limit(limit))
        return [_to_domain(row, default_id) for row in rows]

    def name_taken(self, name: str) -> bool:
        return (
            self._s.scalar(select(CertificateRow.id).where(CertificateRow.name_key == name.casefold()))
            is not None
        )

    def custom_counts(self) -> tuple[int, int]:
        """(custom certificates, of which enabled); the built-in one does not count."""
        custom = CertificateRow.type != CaType.ZSCALER.value
        total = self._s.scalar(select(func.count()).where(custom)) or 0
        enabled = (
            self._s.scalar(select(func.count()).where(custom, CertificateRow.status == Status.ENABLED.value))
            or 0
        )
        return total, enabled

    def add(self, ca: IntermediateCa, now: dt.datetime) -> IntermediateCa:
        """Insert a new record. `ca.id` 0 lets the database allocate the id."""
        row = CertificateRow(created_at=now)
        if ca.id:
            row.id = ca.id
        _fill(row, ca, now)
        self._s.add(row)
        self._s.flush()
        ca.id = row.id
        return ca

    def save(self, ca: IntermediateCa, now: dt.datetime) -> None:
        row = self._s.get(CertificateRow, ca.id)
        if row is None:
            raise LookupError(f"certificate {ca.id} vanished")
        _fill(row, ca, now)
        self._s.flush()

    def delete(self, ca_id: int) -> None:
        row = self._s.get(CertificateRow, ca_id)
        if row is not None:
            self._s.delete(row)
            self._s.flush()

    def set_default(self, ca_id: int) -> None:
        """Point the default at `ca_id` (one row, so the old default loses it in the same write)."""
        pointer = self._s.get(DefaultCertificateRow, 1)
        if pointer is None:
            self._s.add(DefaultCertificateRow(singleton=1, certificate_id=ca_id))
        else:
            pointer.certificate_id = ca_id
        self._s.flush()
