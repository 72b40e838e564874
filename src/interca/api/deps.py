"""Request dependencies, in the precedence of api.md §4.6: credentials (401), rate limit (429),
role (403), then the request's own parameters.

Every route declares its rate class in its decorator, `dependencies=[rate_limited(...)]`
(or `[not_rate_limited()]` for the public rows 24-25). Route-level dependencies run before the
handler's own, and `principal` is cached per request, so the order is always 401 -> 429 -> 403
-> the rest. `check_rate_classes` makes the app refuse to start when a route declares nothing
or declares a class other than api.md §4.8's."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, params
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import BaseRoute

from interca.auth.ratelimit import RateClass, spec_class
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


# Rate limits (api.md §4.8) ---------------------------------------------------------------------

_PREFIX = re.compile(r"^(/zia)?/api/v1(?=/)")

Credential = Callable[..., Awaitable[str | None]] | Callable[..., str | None]


def endpoint_of(method: str, template: str) -> str:
    """`<METHOD> <route template>` without the API prefix: both prefixes share one counter."""
    return f"{method.upper()} {_PREFIX.sub('', template)}"


def caller_credential(caller: Principal = Depends(principal)) -> str:
    """The authenticated caller's counter name: a user (all its sessions) or an OAuth client."""
    return f"{'client' if caller.kind == 'CLIENT' else 'user'}:{caller.name}"


def rate_limited(rate_class: RateClass, credential: Credential = caller_credential) -> Any:
    """The route's rate class, as a route-level dependency. `credential` names the counter:
    the authenticated caller by default (so 401 comes first); the login and token routes pass
    the username or client_id presented, None when the request presents none (not counted)."""

    def check(request: Request, who: str | None = Depends(credential)) -> None:
        limiter = request.app.state.services.limiter
        route = request.scope["route"]
        if who is not None and limiter.enabled:
            limiter.check_and_count(who, endpoint_of(request.method, route.path), rate_class)

    check.rate_class = rate_class  # type: ignore[attr-defined]  # read by check_rate_classes
    return Depends(check)


def not_rate_limited() -> Any:
    """Declares a public route that is never rate-limited (api.md §4.8: rows 24-25)."""

    def unlimited() -> None:
        return None

    unlimited.rate_class = None  # type: ignore[attr-defined]
    return Depends(unlimited)


def declared_classes(route: APIRoute) -> list[RateClass | None]:
    """The rate classes a route declares (None: not limited); exactly one is right."""
    return [
        d.dependency.rate_class  # type: ignore[union-attr]
        for d in route.dependencies
        if isinstance(d, params.Depends) and hasattr(d.dependency, "rate_class")
    ]


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route, also inside included routers (FastAPI >= 0.165 keeps an included router
    as one `_IncludedRouter` entry whose `original_router` holds the routes as declared)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:
            yield from api_routes(included.routes)


def check_rate_classes(routes: Iterable[BaseRoute]) -> None:
    """Refuse an app in which a route declares no rate class, several, or not §4.8's."""
    problems = []
    for route in api_routes(routes):
        declared = declared_classes(route)
        for method in sorted(route.methods or ()):
            endpoint = endpoint_of(method, route.path)
            if len(declared) != 1:
                problems.append(
                    f"{endpoint} declares {len(declared)} rate classes: give it exactly one, "
                    "dependencies=[rate_limited(<class>)] or [not_rate_limited()] for a public route"
                )
                continue
            try:
                expected: RateClass | None = spec_class(endpoint)
            except KeyError:
                problems.append(f"{endpoint} is missing from api.md §4.8's table (ratelimit.SPEC_CLASSES)")
                continue
            if declared[0] != expected:
                problems.append(f"{endpoint} declares rate class {declared[0]}, api.md §4.8 says {expected}")
    if problems:
        raise RuntimeError("Rate classes (api.md §4.8): " + "; ".join(problems))


# Roles ---------------------------------------------------------------------------------------


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
