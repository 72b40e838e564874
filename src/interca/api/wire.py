"""Wire shapes (api.md §3): camelCase keys in the spec's order, absent values left out, epoch
seconds. Plain dicts, since the order and the omission rules are the contract."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509

from interca.clock import epoch
from interca.domain.models import IntermediateCa
from interca.domain.x509.findings import Finding
from interca.domain.x509.summary import summarize


def _compact(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k: v for k, v in pairs if v is not None and v != ""}


def _ts(value: dt.datetime | None) -> int | None:
    return epoch(value) if value else None


def _lite_pairs(ca: IntermediateCa) -> list[tuple[str, Any]]:
    cert = ca.cert
    return [
        ("id", ca.id),
        ("name", ca.name),
        ("type", ca.type.value),
        ("region", ca.region.value),
        ("status", ca.status.value),
        ("defaultCertificate", ca.is_default),
        ("keyType", ca.key_type.value),
        ("fallbackCertId", 0),
        ("certStartDate", _ts(cert.not_before) if cert else None),
        ("certExpDate", _ts(cert.not_after) if cert else None),
        ("description", ca.description),
        ("currentState", ca.state.name),
    ]


def lite(ca: IntermediateCa) -> dict[str, Any]:
    return _compact(_lite_pairs(ca))


def full(ca: IntermediateCa) -> dict[str, Any]:
    key, csr, cert = ca.key, ca.csr, ca.cert
    return _compact(
        [
            *_lite_pairs(ca),
            ("publicKey", key.public_key_pem if key else None),
            ("keyGenerationTime", _ts(key.generated_at) if key else None),
            ("hsmAttestationVerifiedTime", _ts(key.attestation_verified_at) if key else None),
            ("csrFileName", csr.subject.csr_file_name if csr else None),
            ("csrGenerationTime", _ts(csr.generated_at) if csr else None),
            ("uploadedCertFileName", cert.file_name if cert else None),
            ("uploadedCertChainFileName", cert.chain_file_name if cert and cert.chain_pem else None),
        ]
    )


def ready_item(ca: IntermediateCa) -> dict[str, Any]:
    return {"id": ca.id, "name": ca.name, "defaultCertificate": ca.is_default}


def hsm_key(ca: IntermediateCa) -> dict[str, Any]:
    assert ca.key is not None
    return _compact(
        [
            ("certId", ca.id),
            ("keyGenerationTime", _ts(ca.key.generated_at)),
            ("publicKey", ca.key.public_key_pem),
        ]
    )


def key_attestation(ca: IntermediateCa) -> dict[str, Any]:
    assert ca.key is not None
    return {"certId": ca.id, "hsmAttestationVerifiedTime": _ts(ca.key.attestation_verified_at)}


def cert_csr(ca: IntermediateCa) -> dict[str, Any]:
    assert ca.csr is not None
    return {"certId": ca.id, "csrGenerationTime": _ts(ca.csr.generated_at)}


def csr_request(ca: IntermediateCa) -> dict[str, Any]:
    assert ca.csr is not None
    s = ca.csr.subject
    return {
        "certId": ca.id,
        "csrFileName": s.csr_file_name,
        "commName": s.comm_name,
        "orgName": s.org_name,
        "deptName": s.dept_name,
        "city": s.city,
        "state": s.state,
        "country": s.country,
        "keySize": s.key_size,
        "signatureAlgorithm": s.signature_algorithm.value,
        "pathLengthConstraint": s.path_length_constraint,
    }


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def show_cert(ca: IntermediateCa, cert: x509.Certificate) -> dict[str, Any]:
    s = summarize(cert)
    return _compact(
        [
            ("certName", ca.name),
            ("commName", s.comm_name),
            ("orgName", s.org_name),
            ("deptName", s.dept_name),
            ("city", s.city),
            ("state", s.state),
            ("country", s.country),
            ("keySize", s.key_size),
            ("signatureAlgorithm", s.signature_algorithm),
            ("pathLengthConstraint", s.path_length),
            ("pathLengthConstraintInCsr", ca.csr.subject.path_length_constraint if ca.csr else None),
            ("issuedBy", s.issued_by),
            ("startDate", _iso(s.not_before)),
            ("expDate", _iso(s.not_after)),
            ("validityInDays", s.validity_days),
        ]
    )


def validation_report(valid: bool, findings: list[Finding]) -> dict[str, Any]:
    """validateCert's answer (certificates.md §4)."""
    return {"valid": valid, "findings": [f.as_dict() for f in findings]}
