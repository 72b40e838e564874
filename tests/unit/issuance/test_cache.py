"""The leaf cache (bounded LRU, fast aliases, per-CA retention) and single-flight
(certificates.md §6.2), on their own."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from tests.pki import new_key

from interca.issuance.cache import MAX_ALIASES, Entry, LeafCache, SingleFlight, refresh_time
from interca.issuance.minted import Minted

NOW = dt.datetime(2026, 3, 14, 12, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=60)
KEY = new_key("ec")


def entry(name: str, cache_id: str = "ca-a", refresh_at: dt.datetime = LATER) -> Entry:
    minted = Minted(1, (name.encode(),), KEY, refresh_at + dt.timedelta(days=30))
    return Entry((cache_id, (name,)), minted, refresh_at)


def fast(name: str, cache_id: str = "ca-a", spelling: str | None = None) -> tuple:
    return (cache_id, False, (spelling or name,))


def test_hit_by_fast_key_and_by_canonical_key():
    cache = LeafCache(10)
    e = entry("a.example.test")
    cache.put(e, fast("a.example.test", spelling="A.Example.TEST"))
    assert cache.get(fast("a.example.test", spelling="A.Example.TEST"), NOW) is e.minted
    assert cache.get(fast("a.example.test"), NOW) is None  # another spelling: not yet an alias
    assert cache.lookup(("ca-a", ("a.example.test",)), NOW) is e
    cache.alias(e, fast("a.example.test"))
    assert cache.get(fast("a.example.test"), NOW) is e.minted


def test_entries_are_stale_from_their_refresh_time():
    cache = LeafCache(10)
    e = entry("a.example.test", refresh_at=NOW + dt.timedelta(seconds=1))
    cache.put(e, fast("a.example.test"))
    assert cache.get(fast("a.example.test"), NOW) is e.minted
    assert cache.get(fast("a.example.test"), NOW + dt.timedelta(seconds=1)) is None
    assert cache.lookup(e.key, NOW + dt.timedelta(seconds=1)) is None


def test_refresh_time_is_three_quarters_into_the_span():
    start = NOW
    assert refresh_time(start, start + dt.timedelta(days=80)) == start + dt.timedelta(days=60)


def test_least_recently_used_is_evicted_with_its_aliases():
    cache = LeafCache(3)
    entries = [entry(f"h{i}.example.test") for i in range(3)]
    for e in entries:
        cache.put(e, fast(e.key[1][0]))
    assert cache.get(fast("h0.example.test"), NOW) is not None  # h0 is now the most recent
    cache.put(entry("h3.example.test"), fast("h3.example.test"))
    assert len(cache) == 3
    assert cache.get(fast("h1.example.test"), NOW) is None  # the least recently used went
    assert cache.lookup(("ca-a", ("h1.example.test",)), NOW) is None
    assert all(
        cache.get(fast(n), NOW) is not None for n in ("h0.example.test", "h2.example.test", "h3.example.test")
    )
    assert len(cache._fast) == 3  # its alias left with it


def test_aliases_per_entry_are_bounded():
    cache = LeafCache(10)
    e = entry("a.example.test")
    cache.put(e, fast("a.example.test"))
    for i in range(20):
        cache.alias(e, fast("a.example.test", spelling="A" * (i + 1) + ".example.test"))
    assert len(e.aliases) == MAX_ALIASES and len(cache._fast) == MAX_ALIASES


def test_replacing_an_entry_moves_its_aliases():
    cache = LeafCache(10)
    old, new = entry("a.example.test"), entry("a.example.test")
    cache.put(old, fast("a.example.test"))
    cache.put(new, fast("a.example.test", spelling="A.example.test"))
    assert cache.get(fast("a.example.test"), NOW) is None  # the old entry's alias went with it
    assert cache.get(fast("a.example.test", spelling="A.example.test"), NOW) is new.minted


def test_retain_drops_every_other_ca():
    cache = LeafCache(10)
    a, b = entry("x.example.test", "ca-a"), entry("x.example.test", "ca-b")
    cache.put(a, fast("x.example.test", "ca-a"))
    cache.put(b, fast("x.example.test", "ca-b"))
    cache.retain("ca-b")
    assert cache.get(fast("x.example.test", "ca-a"), NOW) is None
    assert cache.get(fast("x.example.test", "ca-b"), NOW) is b.minted
    cache.retain("")
    assert len(cache) == 0 and not cache._fast


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        LeafCache(0)


class CountingLock:
    """Wraps the flight's lock to tell when every waiter has reached it."""

    def __init__(self, lock) -> None:
        self.lock = lock
        self.entered = 0

    def __enter__(self):
        self.entered += 1
        return self.lock.__enter__()

    def __exit__(self, *exc):
        return self.lock.__exit__(*exc)

    def release(self):
        self.lock.release()


def wait_until(condition) -> None:
    for _ in range(30_000):  # a generous hang bound (30 s), not a timing assertion
        if condition():
            return
        threading.Event().wait(0.001)
    raise AssertionError("the threads never got there")


def test_single_flight_runs_once_for_concurrent_callers():
    flights: SingleFlight[str] = SingleFlight()
    gate = threading.Event()
    calls: list[int] = []
    results: list[tuple[str, bool]] = []

    def slow() -> str:
        calls.append(1)
        gate.wait(30)
        return "leaf"

    def caller() -> None:
        results.append(flights.do("k", slow))

    leader = threading.Thread(target=caller)
    leader.start()
    wait_until(lambda: calls)  # the leader is inside its run
    held = threading.Lock()
    held.acquire()
    counting = CountingLock(held)
    with flights._lock:  # as the first waiter would, but counting who waits on it
        flights._calls["k"].done = counting
    waiters = [threading.Thread(target=caller) for _ in range(19)]
    for t in waiters:
        t.start()
    wait_until(lambda: counting.entered == 19)  # every other caller waits on the run
    gate.set()
    for t in [leader, *waiters]:
        t.join(30)
    assert len(calls) == 1 and len(results) == 20
    assert all(value == "leaf" for value, _ in results)
    assert sum(1 for _, shared in results if not shared) == 1
    assert flights._calls == {}


def test_single_flight_shares_the_error_and_then_forgets_it():
    flights: SingleFlight[str] = SingleFlight()

    def boom() -> str:
        raise RuntimeError("nope")

    with pytest.raises(RuntimeError):
        flights.do("k", boom)
    assert flights.do("k", lambda: "ok") == ("ok", False)
