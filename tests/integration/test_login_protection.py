"""Failed-login protection of the legacy login over real HTTP (api.md §5.3): a growing delay of
at most 1 s, a lock of the username after `login_max_failures` failures (of the source address
after four times as many) that refuses correct logins too, audited once as `login_locked`, and
lifted after `login_lockout` seconds (a frozen clock is moved past it)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import Api, make_settings

from interca.auth.apikey import obfuscate
from interca.clock import FrozenClock
from interca.config import Settings
from interca.domain.principal import Role
from interca.errors import LoginFailed

LOCKOUT = 60
MAX_FAILURES = 3
USER = "locked@example.com"
PASSWORD = "correct horse battery staple"
BAD_LOGIN = {"code": "INVALID_USERNAME_OR_PASSWORD", "message": "Invalid email or password"}


@pytest.fixture
def clock() -> FrozenClock:  # the services of this module run on a clock the tests move
    return FrozenClock()


@pytest.fixture
def max_failures() -> int:
    return MAX_FAILURES


@pytest.fixture
def settings(data_dir: Path, max_failures: int) -> Settings:
    return make_settings(data_dir, login_max_failures=max_failures, login_lockout=LOCKOUT)


@pytest.fixture
def key(api: Api) -> str:
    api.services.auth.add_user(USER, Role.ADMIN, PASSWORD)
    return api.services.auth.api_key()


def login(api: Api, clock: FrozenClock, key: str, username: str = USER, password: str = PASSWORD,
          prefix: str = "/api/v1") -> tuple[httpx.Response, float]:  # fmt: skip
    """One login at the frozen clock's time; returns the response and how long it took."""
    ts = str(int(clock.now().timestamp() * 1000))
    body = {"apiKey": obfuscate(key, ts), "username": username, "password": password, "timestamp": ts}
    started = time.monotonic()
    resp = api.anon.post(f"{prefix}/authenticatedSession", json=body)
    return resp, time.monotonic() - started


def refused(resp: httpx.Response) -> bool:
    return (resp.status_code, resp.json()) == (400, BAD_LOGIN) and "set-cookie" not in resp.headers


def audit(api: Api, **query: Any) -> list[dict[str, Any]]:
    resp = api.admin.get("/api/v1/auditLog", params=query)
    assert resp.status_code == 200, resp.text
    entries: list[dict[str, Any]] = resp.json()
    return entries


def test_failures_lock_the_username_even_for_the_right_password(
    api: Api, clock: FrozenClock, key: str
) -> None:
    took = []
    for _ in range(MAX_FAILURES):
        resp, seconds = login(api, clock, key, password="wrong password")
        assert refused(resp)
        took.append(seconds)
    # The delay grows (0.1 s, 0.2 s, ...), and the failure that locks waits the full 1 s. Lower
    # bounds only: a sleep never ends early; the upper bound just catches a hang.
    assert took[1] >= 0.2 and took[2] >= 1.0 and max(took) < 10, took

    for prefix in ("/api/v1", "/zia/api/v1"):
        resp, seconds = login(api, clock, key, prefix=prefix)  # the right password, refused alike
        assert refused(resp), resp.text
        assert 1.0 <= seconds < 10

    # Audited once per lock, by the failure that set it; each refusal is a login_failed.
    (locked,) = audit(api, action="login_locked")
    assert (locked["actor"], locked["actorType"], locked["outcome"], locked["sourceAddress"]) == (
        USER, "USER", "FAILURE", "127.0.0.1",
    )  # fmt: skip
    assert locked["detail"] == f"username locked for {LOCKOUT} s after {MAX_FAILURES} failed logins"
    failed = audit(api, action="login_failed", actor=USER)
    assert [e["detail"] for e in failed] == ["wrong password"] * MAX_FAILURES + ["locked"] * 2

    # The wait happens on the event loop: the authenticator itself answers at once.
    started = time.monotonic()
    ts = str(int(clock.now().timestamp() * 1000))
    with pytest.raises(LoginFailed) as caught:
        api.services.auth.login({"apiKey": obfuscate(key, ts), "username": USER, "password": PASSWORD,
                                 "timestamp": ts}, "127.0.0.1")  # fmt: skip
    assert caught.value.delay == 1.0 and time.monotonic() - started < caught.value.delay

    clock.advance(LOCKOUT - 1)
    assert refused(login(api, clock, key)[0])
    clock.advance(1)
    resp, _ = login(api, clock, key)
    assert resp.status_code == 200, resp.text
    assert len(audit(api, action="login_locked")) == 1


def test_a_lock_does_not_tell_whether_the_user_exists(api: Api, clock: FrozenClock, key: str) -> None:
    for _ in range(MAX_FAILURES):
        assert refused(login(api, clock, key, username="ghost@example.com")[0])
    ghost, _ = login(api, clock, key, username="ghost@example.com")
    assert refused(ghost)
    (locked,) = audit(api, action="login_locked")
    assert locked["actor"] == "ghost@example.com"
    assert login(api, clock, key)[0].status_code == 200  # another username is not locked


def test_a_successful_login_clears_the_count(api: Api, clock: FrozenClock, key: str) -> None:
    for _ in range(2):
        for _ in range(MAX_FAILURES - 1):
            assert refused(login(api, clock, key, password="wrong password")[0])
        assert login(api, clock, key)[0].status_code == 200
    assert audit(api, action="login_locked") == []


@pytest.mark.parametrize("max_failures", [2])
def test_the_source_address_locks_at_four_times(
    api: Api, clock: FrozenClock, key: str, max_failures: int
) -> None:
    # One failure each for many usernames: no username reaches its threshold, the address does.
    for i in range(4 * max_failures - 1):
        assert refused(login(api, clock, key, username=f"spray{i}@example.com")[0])
    assert login(api, clock, key)[0].status_code == 200  # one short of the lock
    assert refused(login(api, clock, key, username="last@example.com")[0])
    assert refused(login(api, clock, key)[0])  # now a correct login from that address is refused
    (locked,) = audit(api, action="login_locked")
    assert locked["actor"] == "last@example.com"
    assert (
        locked["detail"]
        == f"source address 127.0.0.1 locked for {LOCKOUT} s after {4 * max_failures} failed logins"
    )
    clock.advance(LOCKOUT)
    assert login(api, clock, key)[0].status_code == 200
