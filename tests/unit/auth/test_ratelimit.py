"""Rate limits in sliding windows (api.md §4.8), on a real SQLite database and a frozen clock;
the event counters under them; and the login guard of §5.3."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from interca.auth.lockout import MAX_DELAY, LoginGuard, failure_delay
from interca.auth.ratelimit import PROFILES, RateLimiter, Window
from interca.clock import FrozenClock
from interca.errors import RateLimited
from interca.service.registry import Services
from interca.storage.counters import Counters
from interca.storage.db import Database
from interca.storage.tables import RateEventRow

KEYPAIR = "POST /intermediateCaCertificate/keyPair/{certId}"
LIST = "GET /intermediateCaCertificate"


@pytest.fixture
def db(services: Services) -> Database:
    return services.ctx.db


def limiter(db: Database, clock: FrozenClock, profile: str = "zia") -> RateLimiter:
    return RateLimiter(db, clock, profile)


def refused(rl: RateLimiter, credential: str, endpoint: str, rate_class: str) -> RateLimited:
    with pytest.raises(RateLimited) as caught:
        rl.check_and_count(credential, endpoint, rate_class)
    return caught.value


def events(db: Database) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(RateEventRow)) or 0)


# --- the tables -----------------------------------------------------------------------------------


def test_profiles_are_the_tables_of_the_spec() -> None:
    assert PROFILES["zia"] == {
        "read": (Window(2, "SECOND"), Window(1000, "HOUR")),
        "change": (Window(1, "SECOND"), Window(400, "HOUR")),
        "heavy": (Window(1, "MINUTE"), Window(4, "HOUR")),
    }
    assert PROFILES["standard"] == {
        "read": (Window(20, "SECOND"),),
        "change": (Window(5, "SECOND"),),
        "heavy": (Window(30, "MINUTE"),),
    }
    assert PROFILES["off"] == {}


def test_unknown_profile_is_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="profile"):
        RateLimiter(db, FrozenClock(), "fast")


# --- sliding windows ------------------------------------------------------------------------------


def test_heavy_window_slides_and_refusals_are_not_counted(db: Database) -> None:
    clock = FrozenClock()
    rl = limiter(db, clock)
    rl.check_and_count("client:a", KEYPAIR, "heavy")
    clock.advance(20)
    err = refused(rl, "client:a", KEYPAIR, "heavy")
    assert (err.limit, err.unit, err.retry_after, err.message) == (
        1,
        "MINUTE",
        40,
        "Rate Limit (1/MINUTE) exceeded",
    )
    clock.advance(39.5)
    assert refused(rl, "client:a", KEYPAIR, "heavy").retry_after == 1  # 0.5 s left: rounded up, never 0
    clock.advance(0.5)
    rl.check_and_count("client:a", KEYPAIR, "heavy")  # the two 429s did not count
    assert events(db) == 2


def test_the_hour_window_trips_with_its_own_limit(db: Database) -> None:
    clock = FrozenClock()
    rl = limiter(db, clock)
    for _ in range(4):
        rl.check_and_count("client:a", KEYPAIR, "heavy")
        clock.advance(61)
    err = refused(rl, "client:a", KEYPAIR, "heavy")
    assert (err.limit, err.unit) == (4, "HOUR")
    assert err.retry_after == 3600 - 4 * 61  # until the oldest of the four leaves the hour


def test_when_both_windows_are_full_the_longer_wait_is_named(db: Database) -> None:
    clock = FrozenClock()
    rl = limiter(db, clock)
    for _ in range(3):
        rl.check_and_count("client:a", KEYPAIR, "heavy")
        clock.advance(61)
    rl.check_and_count("client:a", KEYPAIR, "heavy")
    err = refused(rl, "client:a", KEYPAIR, "heavy")  # the minute (60 s to go) and the hour are full
    assert (err.limit, err.unit, err.retry_after) == (4, "HOUR", 3600 - 3 * 61)


def test_counters_are_per_credential_and_per_endpoint(db: Database) -> None:
    clock = FrozenClock()
    rl = limiter(db, clock)
    rl.check_and_count("user:a@example.com", LIST, "read")
    rl.check_and_count("user:a@example.com", LIST, "read")
    assert refused(rl, "user:a@example.com", LIST, "read").message == "Rate Limit (2/SECOND) exceeded"
    rl.check_and_count("user:b@example.com", LIST, "read")
    rl.check_and_count("client:a@example.com", LIST, "read")
    rl.check_and_count("user:a@example.com", "GET /intermediateCaCertificate/lite", "read")
    clock.advance(1)
    rl.check_and_count("user:a@example.com", LIST, "read")


def test_standard_profile(db: Database) -> None:
    clock = FrozenClock()
    rl = limiter(db, clock, "standard")
    for _ in range(5):
        rl.check_and_count("client:a", "PUT /x", "change")
    assert refused(rl, "client:a", "PUT /x", "change").message == "Rate Limit (5/SECOND) exceeded"
    for _ in range(30):
        rl.check_and_count("client:a", KEYPAIR, "heavy")
    assert refused(rl, "client:a", KEYPAIR, "heavy").message == "Rate Limit (30/MINUTE) exceeded"


def test_off_counts_nothing(db: Database) -> None:
    rl = limiter(db, FrozenClock(), "off")
    assert not rl.enabled
    for _ in range(50):
        rl.check_and_count("client:a", KEYPAIR, "heavy")
    assert events(db) == 0


def test_old_events_are_pruned(db: Database) -> None:
    clock = FrozenClock()
    rl = limiter(db, clock)
    rl.check_and_count("client:a", LIST, "read")
    with db.write() as s:
        Counters(s).add("login:user:x@example.com", clock.now())  # not the limiter's to prune
    clock.advance(3601)
    limiter(db, clock).check_and_count("client:b", LIST, "read")  # a fresh limiter sweeps at once
    with db.read() as s:
        assert Counters(s).count_since("rate:client:a|" + LIST, clock.now() - dt.timedelta(days=1)) == 0
        assert Counters(s).count_since("login:user:x@example.com", clock.now() - dt.timedelta(days=1)) == 1


# --- counters --------------------------------------------------------------------------------------


def test_counters_windows_are_open_at_the_start(db: Database) -> None:
    t0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    with db.write() as s:
        c = Counters(s)
        for seconds in (0, 1, 2, 3):
            c.add("k", t0 + dt.timedelta(seconds=seconds))
        c.add("k_other", t0)
    with db.read() as s:
        c = Counters(s)
        assert c.count_since("k", t0) == 3  # strictly after
        assert c.count_since("k", t0 - dt.timedelta(microseconds=1)) == 4
        assert c.oldest_since("k", t0) == t0 + dt.timedelta(seconds=1)
        assert c.oldest_since("k", t0, skip=2) == t0 + dt.timedelta(seconds=3)
        assert c.oldest_since("k", t0, skip=3) is None
    with db.write() as s:
        assert Counters(s).prune(t0 + dt.timedelta(seconds=1), prefix="k_") == 1
        Counters(s).clear("k")
    with db.read() as s:
        assert Counters(s).count_since("k", t0 - dt.timedelta(days=1)) == 0


def test_prune_prefix_is_literal(db: Database) -> None:
    t0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    with db.write() as s:
        Counters(s).add("a_b", t0)
        Counters(s).add("axb", t0)
        assert Counters(s).prune(t0, prefix="a_") == 1  # `_` is not a LIKE wildcard here


# --- login guard (api.md §5.3) --------------------------------------------------------------------


def test_failure_delay_grows_and_is_capped() -> None:
    delays = [failure_delay(n) for n in range(1, 40)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays == sorted(delays)
    assert max(delays) == MAX_DELAY == 1.0


def test_guard_locks_the_username_once_and_for_the_lockout(db: Database) -> None:
    clock = FrozenClock()
    guard = LoginGuard(clock, max_failures=3, lockout_seconds=100)
    with db.write() as s:
        first = guard.record_failure(s, "a@example.com", "10.0.0.1")
        second = guard.record_failure(s, "a@example.com", "10.0.0.1")
        assert (first.delay, second.delay, first.locks, second.locks) == (0.1, 0.2, [], [])
        assert not guard.is_locked(s, "a@example.com", None)
        third = guard.record_failure(s, "a@example.com", "10.0.0.1")
        assert third.locks == ["username locked for 100 s after 3 failed logins"]
        assert third.delay == MAX_DELAY
        assert guard.is_locked(s, "a@example.com", None)
        assert not guard.is_locked(s, "b@example.com", "10.0.0.2")
        assert guard.record_failure(s, "a@example.com", "10.0.0.1").locks == []  # set once
    clock.advance(99)
    with db.read() as s:
        assert guard.is_locked(s, "a@example.com", None)
    clock.advance(1)
    with db.read() as s:
        assert not guard.is_locked(s, "a@example.com", None)


def test_guard_locks_an_address_at_four_times(db: Database) -> None:
    guard = LoginGuard(FrozenClock(), max_failures=2, lockout_seconds=100)
    with db.write() as s:
        for i in range(7):
            assert guard.record_failure(s, f"u{i}@example.com", "10.0.0.9").locks == []
        assert not guard.is_locked(s, "new@example.com", "10.0.0.9")
        assert guard.record_failure(s, "u7@example.com", "10.0.0.9").locks == [
            "source address 10.0.0.9 locked for 100 s after 8 failed logins"
        ]
        assert guard.is_locked(s, "new@example.com", "10.0.0.9")
        assert not guard.is_locked(s, "new@example.com", "10.0.0.10")


def test_success_clears_the_username_count(db: Database) -> None:
    guard = LoginGuard(FrozenClock(), max_failures=3, lockout_seconds=100)
    with db.write() as s:
        guard.record_failure(s, "a@example.com", None)
        guard.record_failure(s, "a@example.com", None)
        guard.clear(s, "a@example.com")
        assert guard.record_failure(s, "a@example.com", None).delay == 0.1  # counting from one again
        assert guard.record_failure(s, "a@example.com", None).locks == []
