"""Rate limits over real HTTP (api.md §4.8, §6 rule 8): the 429 header and body, sliding windows
per credential and per endpoint, refused requests counted but 429s not, the profiles, the
official SDK honouring Retry-After, and one limit shared by two server processes.

In-process tests run the services on a frozen clock, so windows move only when a test moves them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import ZR, Api, R, free_port
from tests.integration.sdk_support import assert_json_headers, compact, isolate_sdk, oneapi_client
from tests.live import LiveServer, start_live_server

from interca.auth.apikey import obfuscate
from interca.clock import FrozenClock
from interca.config import Settings, load_settings

TOKEN = "/oauth2/v1/token"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def profile() -> str:
    return "zia"


@pytest.fixture
def settings(data_dir: Path, profile: str) -> Settings:
    return load_settings(data_dir=data_dir, rate_limit_profile=profile)


def assert_429(resp: httpx.Response, limit: str, retry_after: int) -> None:
    """api.md §4.8: integer `Retry-After` header, and the body naming the limit that tripped."""
    assert resp.status_code == 429, (resp.status_code, resp.text)
    assert resp.headers["Retry-After"] == str(retry_after)
    assert resp.content == compact(
        {"message": f"Rate Limit ({limit}) exceeded", "Retry-After": f"{retry_after} seconds"}
    )
    assert_json_headers(resp.headers)


def new_cas(api: Api, clock: FrozenClock, count: int) -> list[int]:
    """`count` certificates, one per (frozen) second: create is `change`, 1/SECOND under zia."""
    ids = []
    for i in range(count):
        ids.append(api.create(f"Rate CA {i}", keyType="EC_P256")["id"])
        clock.advance(1)
    return ids


def test_second_key_pair_within_a_minute(api: Api, clock: FrozenClock) -> None:
    first, second = new_cas(api, clock, 2)
    assert api.admin.post(f"{R}/keyPair/{first}").status_code == 200  # counted
    clock.advance(20)
    assert_429(api.admin.post(f"{R}/keyPair/{second}"), "1/MINUTE", 40)
    # The other prefix is the same endpoint, and shares the counter.
    assert_429(api.admin.post(f"{ZR}/keyPair/{second}"), "1/MINUTE", 40)
    clock.advance(39.5)
    assert_429(api.admin.post(f"{R}/keyPair/{second}"), "1/MINUTE", 1)  # never 0
    assert api.admin.get(f"{R}/{second}").json()["currentState"] == "GENERAL_DONE"  # a 429 changes nothing
    clock.advance(0.5)
    # One minute after the first: passes, so none of the three 429s was counted.
    assert api.admin.post(f"{R}/keyPair/{second}").status_code == 200


def test_refused_requests_are_counted_but_401s_are_not(api: Api, clock: FrozenClock) -> None:
    # A role refusal (403) is counted against the auditor, and the rate limit comes before it.
    assert api.auditor.post(f"{R}/keyPair/2").status_code == 403
    assert_429(api.auditor.post(f"{R}/keyPair/2"), "1/MINUTE", 60)
    # A built-in guard refusal (403) and a validation refusal (400) are counted against the admin.
    assert api.admin.post(f"{R}/keyPair/1").json()["code"] == "INVALID_INPUT_ARGUMENT"
    assert_429(api.admin.post(f"{R}/keyPair/1"), "1/MINUTE", 60)
    assert api.admin.post(R, json={"name": "No type"}).status_code == 400
    assert_429(api.admin.post(R, json={"name": "No type", "type": "CUSTOM_SW"}), "1/SECOND", 1)
    # Without credentials nothing is counted (there is no one to count against): always 401.
    for _ in range(3):
        assert api.anon.post(f"{R}/keyPair/1").status_code == 401


def test_limits_are_per_credential_and_per_endpoint(api: Api, clock: FrozenClock) -> None:
    for _ in range(2):
        assert api.admin.get(R).status_code == 200
    assert_429(api.admin.get(R), "2/SECOND", 1)
    assert_429(api.admin.get(ZR), "2/SECOND", 1)
    assert api.auditor.get(R).status_code == 200  # another credential
    assert api.admin.get(f"{R}/lite").status_code == 200  # another endpoint
    assert api.admin.get(f"{R}/1").status_code == 200  # another template
    clock.advance(1)
    assert api.admin.get(R).status_code == 200


def test_login_and_token_count_against_what_they_present(api: Api, clock: FrozenClock) -> None:
    form = {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "wrong"}
    for _ in range(2):
        assert api.anon.post(TOKEN, data=form).status_code == 401
    assert_429(api.anon.post(TOKEN, data=form), "2/SECOND", 1)
    basic = httpx.BasicAuth("nobody", "wrong")
    assert_429(api.anon.post(TOKEN, data={"grant_type": "client_credentials"}, auth=basic), "2/SECOND", 1)
    ok = {"grant_type": "client_credentials", "client_id": api.client_id, "client_secret": api.client_secret}
    assert api.anon.post(TOKEN, data=ok).status_code == 200  # another client_id

    key = api.services.auth.api_key()
    ts = str(int(clock.now().timestamp() * 1000))
    body = {"apiKey": obfuscate(key, ts), "username": "Someone@example.com", "password": "x", "timestamp": ts}
    for _ in range(2):
        assert api.anon.post("/api/v1/authenticatedSession", json=body).status_code == 400
    body["username"] = " someone@EXAMPLE.com"  # the same username, as the login would read it
    assert_429(api.anon.post("/zia/api/v1/authenticatedSession", json=body), "2/SECOND", 1)
    body["username"] = "other@example.com"
    assert api.anon.post("/api/v1/authenticatedSession", json=body).status_code == 400


@pytest.mark.parametrize("profile", ["standard"])
def test_standard_profile(api: Api, clock: FrozenClock) -> None:
    for _ in range(20):
        assert api.admin.get(R).status_code == 200
    assert_429(api.admin.get(R), "20/SECOND", 1)
    for i in range(5):
        assert api.admin.post(R, json={"name": f"Std {i}", "type": "CUSTOM_SW"}).status_code != 429
    assert_429(api.admin.post(R, json={"name": "Std 5", "type": "CUSTOM_SW"}), "5/SECOND", 1)


@pytest.mark.parametrize("profile", ["off"])
def test_off_disables_rate_limits(api: Api, clock: FrozenClock) -> None:
    for _ in range(30):
        assert api.admin.get(R).status_code == 200
    for _ in range(3):
        assert api.admin.post(f"{R}/keyPair/1").status_code == 403


# --- real server processes ------------------------------------------------------------------------


@pytest.fixture
def zia_server(template_data_dir: Path, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_live_server(template_data_dir, tmp_path, free_port(), rate_limit_profile="zia")
    try:
        yield server
    finally:
        server.stop()


def test_official_sdk_retries_after_retry_after(
    zia_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """api.md §6: the OneAPI client retries a 429 after `Retry-After` + 1 s. Two `change` calls
    (1/SECOND) in quick succession: the second is refused once and then succeeds, about 2 s later."""
    from zscaler.request_executor import RequestExecutor

    isolate_sdk(monkeypatch, tmp_path)
    backoffs: list[tuple[Any, Any]] = []
    original = RequestExecutor.get_retry_after

    def spy(self: Any, headers: Any, logger: Any) -> Any:
        backoff = original(self, headers, logger)
        backoffs.append((headers.get("Retry-After"), backoff))
        return backoff

    monkeypatch.setattr(RequestExecutor, "get_retry_after", spy)
    srv = zia_server
    with oneapi_client(monkeypatch, srv.base, srv.client_id, srv.client_secret) as z:
        ica = z.zia.intermediate_certificates
        _, _, err = ica.add_ca_certificate(name="First", type="CUSTOM_SW")
        assert err is None, repr(err)
        started = time.monotonic()
        _, resp, err = ica.add_ca_certificate(name="Second", type="CUSTOM_SW")
        waited = time.monotonic() - started
        assert err is None, repr(err)
        assert resp.get_body()["name"] == "Second"
    assert backoffs == [("1", 2)]  # one 429 with `Retry-After: 1`, retried after 2 s
    assert 2 <= waited < 30


def test_the_limit_holds_across_two_processes(zia_server: LiveServer, tmp_path: Path) -> None:
    """Two `interca serve` processes on one data directory and database share the counters."""
    first = zia_server
    second = dataclasses.replace(
        first, base=f"http://127.0.0.1:{free_port()}", log_file=tmp_path / "second.log", process=None
    )
    second.start()
    try:
        form = {
            "grant_type": "client_credentials",
            "client_id": first.client_id,
            "client_secret": first.client_secret,
        }
        token = httpx.post(first.base + TOKEN, data=form, timeout=30).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        with (
            httpx.Client(base_url=first.base, headers=headers, timeout=30) as a,
            httpx.Client(base_url=second.base, headers=headers, timeout=30) as b,
        ):
            one = a.post(ZR, json={"name": "One", "type": "CUSTOM_SW"}).json()["id"]
            time.sleep(1.1)  # create is `change`, 1/SECOND
            two = b.post(ZR, json={"name": "Two", "type": "CUSTOM_SW"}).json()["id"]
            assert a.post(f"{ZR}/keyPair/{one}").status_code == 200
            refused = b.post(f"{ZR}/keyPair/{two}")
            assert refused.status_code == 429, refused.text
            assert 50 <= int(refused.headers["Retry-After"]) <= 60
            assert refused.json()["message"] == "Rate Limit (1/MINUTE) exceeded"
    finally:
        second.stop()
