"""Walk every route of the application: nothing answers without credentials, except the login
and token endpoints (api.md §5.2). A new route is covered the moment it is added."""

from __future__ import annotations

import re

from tests.conftest import Api

from interca.app import create_app

PUBLIC = {("POST", "/api/v1/authenticatedSession"), ("POST", "/zia/api/v1/authenticatedSession"),
          ("POST", "/oauth2/v1/token")}  # fmt: skip


def routes(api: Api) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves, read from the app's own route table."""
    schema = create_app(api.services.ctx.settings, api.services).openapi()
    return sorted((method.upper(), path) for path, ops in schema["paths"].items() for method in ops)


def test_route_table_is_complete(api: Api) -> None:
    found = routes(api)
    # 23 certificate routes (rows 1-23), 3 session routes and the audit log under each prefix, and the token endpoint.
    assert len(found) == 2 * (23 + 3 + 1) + 1, found


def test_no_route_answers_without_credentials(api: Api) -> None:
    for method, template in routes(api):
        path = re.sub(r"\{[^}]+\}", "1", template)
        resp = api.anon.request(method, path)
        if (method, template) in PUBLIC:
            assert resp.status_code == 400, (method, path)  # no body: refused, but not for credentials
        else:
            assert resp.status_code == 401, (method, path, resp.status_code)
            assert resp.json()["code"] == "SESSION_NOT_VALID"


def test_every_route_answers_an_admin(api: Api) -> None:
    """With credentials every route is reachable: no 401 or 404 from the routing itself."""
    for method, template in routes(api):
        path = re.sub(r"\{[^}]+\}", "1", template)
        resp = api.admin.request(method, path)
        assert resp.status_code not in (401, 404, 405), (method, path, resp.status_code, resp.text)
