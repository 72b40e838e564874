"""Request dependencies, in the precedence of api.md §4.6: credentials (401), role (403),
then the request's own parameters."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends
from starlette.requests import Request

from interca.domain.principal import Principal
from interca.errors import InvalidInput, NotAuthorized, SessionNotValid
from interca.service.registry import Services

MAX_CERT_ID = 2_147_483_647


def services(request: Request) -> Services:
    """The composition root's services, attached to the app state by `create_app`."""
    services: Services = request.app.state.services
    return services


def principal(request: Request) -> Principal:
    """The caller. An Authorization header, when present, decides alone (api.md §5.2)."""
    auth = request.app.state.services.auth
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise SessionNotValid(bearer=True)
        found: Principal = auth.check_bearer(token.strip())
    else:
        cookie = request.cookies.get("JSESSIONID")
        if not cookie:
            raise SessionNotValid()
        found = auth.check_session(cookie)
    found = found.at(request.client.host if request.client else None)
    request.state.principal = found
    return found


def admin(request: Request, caller: Principal = Depends(principal)) -> Principal:
    """Mutations need the admin role; a refused attempt is audited under the route's verb."""
    if not caller.is_admin:
        # Route handlers are named after the audit verbs (DESIGN.md's table).
        verb = getattr(request.scope.get("endpoint"), "__name__", "unknown")
        raw_id = request.path_params.get("certId", "")
        target = int(raw_id) if raw_id.isdigit() and int(raw_id) <= MAX_CERT_ID else None
        request.app.state.services.audit.record(caller, verb, target, "FAILURE", "NOT_AUTHORIZED")
        raise NotAuthorized()
    return caller


def cert_id(raw: str) -> int:
    """`{certId}`: a decimal integer 1-2147483647."""
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_CERT_ID:
        raise InvalidInput("Invalid certificate id.")
    return int(raw)


@dataclass(frozen=True)
class Paging:
    page: int
    page_size: int
    search: str | None


def paging(request: Request) -> Paging:
    """`page`, `pageSize` and `search` (api.md §4.7)."""
    q = request.query_params
    page = _int_or_none(q.get("page", "1"))
    if page is None or page < 1:
        raise InvalidInput("page must be an integer of at least 1.")
    size = _int_or_none(q.get("pageSize", "100"))
    if size is None or not 1 <= size <= 1000:
        raise InvalidInput("pageSize must be an integer between 1 and 1000.")
    return Paging(page, size, q.get("search") or None)


def _int_or_none(raw: str) -> int | None:
    raw = raw.strip()
    return int(raw) if raw.isascii() and raw.lstrip("-").isdigit() and len(raw) < 12 else None
