"""Walk every route of the application with no credentials, an auditor and an admin (api.md §5).

Every route must be declared in ROLES below; a route added without a declaration fails
`test_every_route_declares_its_role`, so nobody adds an endpoint without deciding who may call it.
"""

from __future__ import annotations

import re

import pytest
from tests.conftest import Api

from interca.app import PREFIXES, create_app

ANY, ADMIN, PUBLIC = "any role", "admin only", "no credentials"
OPEN = "no credentials, public read"  # api.md rows 24-25: answers anyone, credentials or not
R = "/intermediateCaCertificate"
ROLES: dict[tuple[str, str], str] = {
    ("GET", R): ANY,
    ("POST", R): ADMIN,
    ("GET", R + "/{certId}"): ANY,
    ("PUT", R + "/{certId}"): ADMIN,
    ("DELETE", R + "/{certId}"): ADMIN,
    ("GET", R + "/lite"): ANY,
    ("GET", R + "/lite/{certId}"): ANY,
    ("GET", R + "/readyToUse"): ANY,
    ("POST", R + "/keyPair/{certId}"): ADMIN,
    ("GET", R + "/downloadPublicKey/{certId}"): ANY,
    ("POST", R + "/verifyKeyAttestation/{certId}"): ADMIN,
    ("GET", R + "/downloadAttestation/{certId}"): ANY,
    ("POST", R + "/generateCsr/{certId}"): ADMIN,
    ("GET", R + "/downloadCsr/{certId}"): ANY,
    ("GET", R + "/showCsr/{certId}"): ANY,
    ("GET", R + "/showCert/{certId}"): ANY,
    ("POST", R + "/uploadCert/{certId}"): ADMIN,
    ("POST", R + "/uploadCertChain/{certId}"): ADMIN,
    ("PUT", R + "/deleteCertChain/{certId}"): ADMIN,
    ("POST", R + "/finalizeCert/{certId}"): ADMIN,
    ("PUT", R + "/makeDefault/{certId}"): ADMIN,
    ("GET", R + "/downloadCertChain/{certId}"): ANY,
    ("POST", R + "/validateCert/{certId}"): ADMIN,
    ("GET", "/auditLog"): ANY,
    ("POST", "/authenticatedSession"): PUBLIC,
    ("GET", "/authenticatedSession"): ANY,
    ("DELETE", "/authenticatedSession"): ANY,
}
UNPREFIXED = {
    ("POST", "/oauth2/v1/token"): PUBLIC,
    ("GET", "/pki/crl/{certId}.crl"): OPEN,
    ("GET", "/pki/ca/{certId}.crt"): OPEN,
    ("GET", "/metrics"): ANY,
}
NOT_AUTHORIZED = {"code": "NOT_AUTHORIZED", "message": "This operation requires the admin role."}


def declared() -> dict[tuple[str, str], str]:
    table = {(m, prefix + path): role for (m, path), role in ROLES.items() for prefix in PREFIXES}
    return {**table, **UNPREFIXED}


def served(api: Api) -> set[tuple[str, str]]:
    """Every (method, path template) the app serves, read from the app's own route table."""
    schema = create_app(api.services.ctx.settings, api.services).openapi()
    return {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}


def concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", template)


def test_every_route_declares_its_role(api: Api) -> None:
    assert served(api) == set(declared())


@pytest.mark.parametrize(("method", "route"), sorted(declared()), ids=lambda v: str(v))
def test_route_by_role(api: Api, method: str, route: str) -> None:
    role = declared()[(method, route)]
    path = concrete(route)

    anon = api.anon.request(method, path)
    if role == PUBLIC:
        assert anon.status_code == 400, anon.text  # no body: refused, but not for want of credentials
    elif role == OPEN:
        assert_reached(anon)
    else:
        assert anon.status_code == 401 and anon.json()["code"] == "SESSION_NOT_VALID", anon.text

    auditor = api.auditor.request(method, path)
    if role == ADMIN:
        assert (auditor.status_code, auditor.json()) == (403, NOT_AUTHORIZED), auditor.text
    else:
        assert_reached(auditor)
    assert_reached(api.admin.request(method, path))


def assert_reached(resp) -> None:  # noqa: ANN001
    """The request got past routing, authentication and the role check (a built-in guard's 403
    or a validation 400 is the route itself answering)."""
    assert resp.status_code not in (401, 404, 405), resp.text
    assert resp.status_code != 403 or resp.json()["code"] != "NOT_AUTHORIZED", resp.text


def test_auditor_can_read_everything_an_admin_built(api: Api, pki) -> None:  # noqa: ANN001
    """An auditor's GETs of a finalized certificate all succeed and change nothing."""
    from tests.integration.helpers import new_ca, snapshot

    ca_id = new_ca(api, pki, "CERT_READY")
    before = snapshot(api, ca_id)
    for (method, template), role in declared().items():
        if method == "GET" and role == ANY and "{certId}" in template and "Attestation" not in template:
            resp = api.auditor.get(template.replace("{certId}", str(ca_id)))
            assert resp.status_code == 200, (template, resp.text)
    assert snapshot(api, ca_id) == before
