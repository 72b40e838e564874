"""Every route declares its rate class (api.md §4.8), and the app refuses to start otherwise."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI

from interca.api.deps import (
    api_routes,
    check_rate_classes,
    declared_classes,
    endpoint_of,
    not_rate_limited,
    rate_limited,
)
from interca.app import create_app
from interca.auth.ratelimit import RateClass
from interca.config import Settings
from interca.service.registry import Services

R = "/intermediateCaCertificate"
# api.md §4.8's class table, transcribed here independently of interca.auth.ratelimit.
CHANGE = {("POST", R), ("PUT", R + "/{certId}"), ("PUT", R + "/deleteCertChain/{certId}"),
          ("PUT", R + "/makeDefault/{certId}"), ("POST", R + "/validateCert/{certId}")}  # fmt: skip
HEAVY = {("DELETE", R + "/{certId}")} | {
    ("POST", f"{R}/{step}/{{certId}}")
    for step in (
        "keyPair",
        "verifyKeyAttestation",
        "generateCsr",
        "uploadCert",
        "uploadCertChain",
        "finalizeCert",
    )
}
READ = {("POST", "/authenticatedSession"), ("DELETE", "/authenticatedSession"), ("POST", "/oauth2/v1/token")}
UNLIMITED = {("GET", "/pki/crl/{certId}.crl"), ("GET", "/pki/ca/{certId}.crt")}  # api.md §4.8: never limited


def spec(method: str, template: str) -> RateClass | None:
    if (method, template) in UNLIMITED:
        return None
    if method == "GET" or (method, template) in READ:
        return RateClass.READ
    if (method, template) in CHANGE:
        return RateClass.CHANGE
    assert (method, template) in HEAVY, (method, template)
    return RateClass.HEAVY


def test_every_route_of_the_app_has_its_class(settings: Settings, services: Services) -> None:
    app = create_app(settings, services)
    seen = set()
    for route in api_routes(app.routes):
        for method in route.methods:
            endpoint = endpoint_of(method, route.path)
            template = endpoint.split(" ", 1)[1]
            assert declared_classes(route) == [spec(method, template)], endpoint
            seen.add((method, template))
    assert seen >= CHANGE | HEAVY | READ
    # rows 1-23, the session routes, the audit log, the token, the CRL and CA certificate, metrics
    assert len(seen) == 23 + 3 + 1 + 1 + 2 + 1


def test_both_prefixes_are_one_endpoint() -> None:
    assert endpoint_of("post", "/api/v1" + R + "/keyPair/{certId}") == f"POST {R}/keyPair/{{certId}}"
    assert endpoint_of("POST", "/zia/api/v1" + R + "/keyPair/{certId}") == f"POST {R}/keyPair/{{certId}}"
    assert endpoint_of("POST", "/oauth2/v1/token") == "POST /oauth2/v1/token"


def _router(*routes: tuple[str, str, list]) -> APIRouter:
    router = APIRouter()
    for method, path, deps in routes:
        router.add_api_route(path, lambda: None, methods=[method], dependencies=deps)
    return router


def test_a_route_without_a_class_stops_the_app() -> None:
    app = FastAPI()
    app.include_router(_router(("POST", R + "/somethingNew/{certId}", [])), prefix="/zia/api/v1")
    with pytest.raises(RuntimeError, match=r"somethingNew/\{certId\} declares 0 rate classes"):
        check_rate_classes(app.routes)


def test_a_class_other_than_the_spec_stops_the_app() -> None:
    router = _router(("POST", "/api/v1" + R + "/keyPair/{certId}", [rate_limited(RateClass.CHANGE)]))
    with pytest.raises(RuntimeError, match="declares rate class change, api.md §4.8 says heavy"):
        check_rate_classes(router.routes)
    router = _router(("POST", "/api/v1" + R + "/unknownStep/{certId}", [rate_limited(RateClass.HEAVY)]))
    with pytest.raises(RuntimeError, match="missing from api.md §4.8's table"):
        check_rate_classes(router.routes)


def test_public_rows_declare_no_limit() -> None:
    check_rate_classes(_router(("GET", "/pki/crl/{certId}.crl", [not_rate_limited()])).routes)
    with pytest.raises(RuntimeError, match="says None"):
        check_rate_classes(_router(("GET", "/pki/crl/{certId}.crl", [rate_limited(RateClass.READ)])).routes)
    check_rate_classes(_router(("GET", "/anything/new", [rate_limited(RateClass.READ)])).routes)  # every GET
