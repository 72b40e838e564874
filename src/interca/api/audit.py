"""`{prefix}/auditLog` (api.md §2 row 26, §3.6): the audit log, read by any role."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from interca.api.bodies import json_response
from interca.api.deps import MAX_CERT_ID, Paging, paging, principal, rate_limited, services
from interca.auth.ratelimit import RateClass
from interca.domain.principal import Principal
from interca.errors import InvalidInput
from interca.service.registry import Services
from interca.storage.audit import AuditEntry, AuditQuery

router = APIRouter()


def _epoch(request: Request, name: str) -> dt.datetime | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise InvalidInput(f"{name} must be epoch seconds (a non-negative integer).")
    return dt.datetime.fromtimestamp(int(raw), dt.UTC)


def audit_query(request: Request) -> AuditQuery:
    q = request.query_params
    cert = q.get("certId")
    if cert is not None and (not cert.isascii() or not cert.isdigit() or not 1 <= int(cert) <= MAX_CERT_ID):
        raise InvalidInput("Invalid certificate id.")
    return AuditQuery(
        start=_epoch(request, "startTime"),
        end=_epoch(request, "endTime"),
        action=q.get("action") or None,
        cert_id=int(cert) if cert else None,
        actor=q.get("actor") or None,
    )


def wire(entry: AuditEntry) -> dict[str, object]:
    body: dict[str, object] = {
        "id": entry.id,
        "time": int(entry.time.timestamp()),
        "actor": entry.actor,
        "actorType": entry.actor_type,
        "sourceAddress": entry.source_address,
        "action": entry.action,
        "certId": entry.cert_id,
        "outcome": entry.outcome,
        "detail": entry.detail,
    }
    return {k: v for k, v in body.items() if v is not None and v != ""}


@router.get("/auditLog", dependencies=[rate_limited(RateClass.READ)])
def audit_log(
    caller: Principal = Depends(principal),
    p: Paging = Depends(paging),
    q: AuditQuery = Depends(audit_query),
    s: Services = Depends(services),
) -> Response:
    return json_response([wire(e) for e in s.audit.query(q, p.page, p.page_size)])
