"""Authentication over real HTTP (api.md §5): legacy login with the obfuscated API key,
server-side sessions, the OAuth2 token endpoint, and 401s on every resource."""

from __future__ import annotations

import base64
import re
import time

import httpx
import pytest
from tests.conftest import ZR, Api, R, make_settings

from interca.app import build_services, create_app
from interca.auth.apikey import obfuscate
from interca.domain.principal import Role

SESSION_401 = {
    "code": "SESSION_NOT_VALID",
    "message": "The session is not valid or has expired; log in again.",
}
TOKEN_401 = {
    "code": "SESSION_NOT_VALID",
    "message": "The access token is not valid or has expired; request a new token.",
}
BAD_LOGIN = {"code": "INVALID_USERNAME_OR_PASSWORD", "message": "Invalid email or password"}


@pytest.fixture
def user(api: Api) -> tuple[str, str, str]:
    password = api.services.auth.add_user("Admin@Example.com", Role.ADMIN, "correct horse battery")
    return "admin@example.com", password, api.services.auth.api_key()


def login_body(username: str, password: str, key: str, ts: int | None = None) -> dict:
    ts = ts or int(time.time() * 1000)
    return {"apiKey": obfuscate(key, str(ts)), "username": username, "password": password, "timestamp": ts}


def test_obfuscation_worked_example() -> None:
    assert obfuscate("abcdefghijklmnop", "1795763068920") == "agijcacfggic"


def test_legacy_login_session_and_logout(api: Api, user: tuple[str, str, str]) -> None:
    username, password, key = user
    resp = api.anon.post("/api/v1/authenticatedSession", json=login_body("ADMIN@example.com", password, key))
    assert resp.status_code == 200
    assert resp.json() == {"authType": "ADMIN_LOGIN", "obfuscateApiKey": True}
    cookie = resp.headers["set-cookie"]
    assert re.fullmatch(r"JSESSIONID=[0-9A-F]{32}; Path=/; HttpOnly", cookie), cookie
    session = cookie.split(";")[0].split("=")[1]
    with httpx.Client(base_url=api.base, cookies={"JSESSIONID": session}) as legacy:
        assert legacy.get("/api/v1/authenticatedSession").json() == {
            "authType": "ADMIN_LOGIN",
            "obfuscateApiKey": True,
        }
        assert legacy.get(f"{ZR}/1").status_code == 200  # either credential works under either prefix
        assert legacy.delete("/api/v1/authenticatedSession").json() == {"status": "ACTIVE"}
        assert legacy.get(R).json() == SESSION_401
    second = api.anon.post("/api/v1/authenticatedSession", json=login_body(username, password, key))
    assert second.headers["set-cookie"].split(";")[0] != cookie.split(";")[0]  # every login a new session


def test_timestamp_may_be_a_string_of_digits(api: Api, user: tuple[str, str, str]) -> None:
    body = login_body(*user)
    body["timestamp"] = str(body["timestamp"])
    assert api.anon.post("/api/v1/authenticatedSession", json=body).status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        {"password": "wrong password!"},
        {"username": "nobody@example.com"},
        {"apiKey": "aaaaaaaaaaaa"},
        {"timestamp": int(time.time() * 1000) - 3 * 3600 * 1000},
    ],
    ids=["password", "user", "apikey", "stale-timestamp"],
)
def test_failed_logins_look_alike(api: Api, user: tuple[str, str, str], change: dict) -> None:
    body = {**login_body(*user), **change}
    if "timestamp" in change:
        body["apiKey"] = obfuscate(user[2], str(change["timestamp"]))
    resp = api.anon.post("/api/v1/authenticatedSession", json=body)
    assert (resp.status_code, resp.json()) == (400, BAD_LOGIN)
    assert "set-cookie" not in resp.headers


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"{bad",
        b'{"username":"a@b.c"}',
        b'{"username":1,"password":"x","apiKey":"y","timestamp":5}',
    ],
)
def test_malformed_login_body(api: Api, body: bytes) -> None:
    resp = api.anon.post(
        "/api/v1/authenticatedSession", content=body, headers={"Content-Type": "application/json"}
    )
    assert resp.json() == {"code": "INVALID_INPUT_ARGUMENT", "message": "Request body is invalid."}


def test_session_idle_timeout_and_key_rotation(
    api: Api, user: tuple[str, str, str], http_server, settings
) -> None:  # noqa: ANN001
    _, holder = http_server
    short = build_services(make_settings(settings.data_dir, session_idle_timeout=1))
    holder.app = create_app(short.ctx.settings, short)
    resp = api.anon.post("/api/v1/authenticatedSession", json=login_body(*user))
    cookies = {"JSESSIONID": resp.headers["set-cookie"].split(";")[0].split("=")[1]}
    with httpx.Client(base_url=api.base, cookies=cookies) as legacy:
        assert legacy.get(R).status_code == 200
        time.sleep(1.2)
        assert legacy.get(R).json() == SESSION_401
    resp = api.anon.post("/api/v1/authenticatedSession", json=login_body(*user))
    cookies = {"JSESSIONID": resp.headers["set-cookie"].split(";")[0].split("=")[1]}
    new_key = short.auth.rotate_api_key()
    assert new_key != user[2] and len(new_key) >= 12 and new_key.isalnum()
    with httpx.Client(base_url=api.base, cookies=cookies) as legacy:
        assert legacy.get(R).status_code == 401
    assert (
        api.anon.post("/api/v1/authenticatedSession", json=login_body(user[0], user[1], new_key)).status_code
        == 200
    )
    short.ctx.db.dispose()


def test_every_resource_requires_credentials(api: Api) -> None:
    for prefix in ("/api/v1", "/zia/api/v1"):
        resp = api.anon.get(f"{prefix}/intermediateCaCertificate")
        assert (resp.status_code, resp.json()) == (401, SESSION_401)
        assert resp.headers["content-type"] == "application/json"


def test_bad_bearer_tokens(api: Api) -> None:
    resp = api.anon.get(R, headers={"Authorization": "Bearer not-a-token"})
    assert (resp.status_code, resp.json()) == (401, TOKEN_401)
    assert resp.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    basic = api.anon.get(R, headers={"Authorization": "Basic " + base64.b64encode(b"a:b").decode()})
    assert basic.status_code == 401


def test_authorization_header_decides_alone(api: Api, user: tuple[str, str, str]) -> None:
    resp = api.anon.post("/api/v1/authenticatedSession", json=login_body(*user))
    session = resp.headers["set-cookie"].split(";")[0].split("=")[1]
    with httpx.Client(base_url=api.base, cookies={"JSESSIONID": session}) as both:
        assert both.get(R, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert both.get(R).status_code == 200


def test_bearer_validate_and_logout_keep_the_token(api: Api) -> None:
    assert api.admin.get("/zia/api/v1/authenticatedSession").json() == {"authType": "OAUTH2_CLIENT"}
    assert api.admin.delete("/zia/api/v1/authenticatedSession").json() == {"status": "ACTIVE"}
    assert api.admin.get(R).status_code == 200


def token(api: Api, **form: str) -> httpx.Response:
    return api.anon.post("/oauth2/v1/token", data=form)


def test_token_endpoint(api: Api) -> None:
    resp = token(api, grant_type="client_credentials", client_id=api.client_id, client_secret=api.client_secret,
                 audience="https://api.zscaler.com", scope="ignored")  # fmt: skip
    assert resp.status_code == 200 and resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert list(body) == ["access_token", "token_type", "expires_in"]
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and len(body["access_token"]) >= 43
    with httpx.Client(base_url=api.base, headers={"Authorization": f"Bearer {body['access_token']}"}) as c:
        assert c.get(R).status_code == 200
    basic = base64.b64encode(f"{api.client_id}:{api.client_secret}".encode()).decode()
    via_basic = api.anon.post("/oauth2/v1/token", data={"grant_type": "client_credentials"},
                              headers={"Authorization": f"Basic {basic}"})  # fmt: skip
    assert via_basic.status_code == 200


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"client_id": "x", "client_secret": "y"}, 400, "invalid_request"),
        ({"grant_type": "password", "client_id": "x", "client_secret": "y"}, 400, "unsupported_grant_type"),
        (
            {
                "grant_type": "client_credentials",
                "client_id": "ID",
                "client_secret": "SECRET",
                "audience": "x",
            },
            400,
            "invalid_request",
        ),
        (
            {"grant_type": "client_credentials", "client_id": "ID", "client_secret": "wrong"},
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"},
            401,
            "invalid_client",
        ),
        ({"grant_type": "client_credentials", "client_id": "ID"}, 400, "invalid_request"),
    ],
)
def test_token_errors(api: Api, form: dict, status: int, error: str) -> None:
    form = {k: {"ID": api.client_id, "SECRET": api.client_secret}.get(v, v) for k, v in form.items()}
    resp = token(api, **form)
    assert (resp.status_code, resp.json()["error"]) == (status, error)
    assert list(resp.json()) == ["error", "error_description"]


def test_duplicated_token_parameter(api: Api) -> None:
    body = f"grant_type=client_credentials&client_id={api.client_id}&client_id=x&client_secret={api.client_secret}"
    resp = api.anon.post(
        "/oauth2/v1/token", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert resp.json()["error"] == "invalid_request"


def test_auditor_cannot_change_anything(api: Api) -> None:
    ca_id = api.create("Audited")["id"]
    assert api.admin.post(f"{R}/keyPair/{ca_id}").status_code == 200
    assert api.auditor.get(f"{R}/downloadPublicKey/{ca_id}").status_code == 200
    assert api.admin.get(f"{R}/{ca_id}").json()["currentState"] == "KEYGEN_DONE"  # auditors never move state
    for method, path in (("POST", R), ("PUT", f"{R}/{ca_id}"), ("DELETE", f"{R}/{ca_id}"),
                         ("POST", f"{R}/generateCsr/{ca_id}"), ("PUT", f"{R}/makeDefault/1")):  # fmt: skip
        resp = api.auditor.request(method, path, json={"name": "x", "type": "CUSTOM_SW"})
        assert resp.status_code == 403
        assert resp.json() == {"code": "NOT_AUTHORIZED", "message": "This operation requires the admin role."}


def test_security_headers_on_every_response(api: Api) -> None:
    for resp in (
        api.admin.get(R),
        api.anon.get(R),
        api.admin.get(f"{R}/downloadPublicKey/1"),
        api.admin.post(f"{R}/1"),
    ):
        assert resp.headers["cache-control"] == "no-store, no-cache"
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["x-frame-options"] == "DENY"
        assert resp.headers["referrer-policy"] == "no-referrer"
        assert resp.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert re.fullmatch(r"[0-9a-f-]{36}", resp.headers["x-transaction-id"])
        assert "strict-transport-security" not in resp.headers  # plain HTTP
    assert api.admin.get(R).headers["content-disposition"] == 'attachment; filename="api.json"'
