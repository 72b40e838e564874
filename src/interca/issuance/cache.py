"""The leaf cache (certificates.md §6.2): a bounded LRU of minted leaves, keyed by (the CA
template's `cache_id`, the sorted normalised names), and single-flight so a burst of handshakes
for one new host mints once.

Two keys lead to an entry. The canonical key is the spec's; the *fast* key is (cache_id,
wildcard_ok, the raw names tuple as the caller passed it), so a repeat handshake finds its leaf
with one dict lookup and no normalisation (an SNI arrives spelt the same way again and again).
Every entry remembers its fast keys (a few at most: random-case spellings must not grow the map
without bound) and they leave with it.

`cache_id` digests the CA certificate, path, key reference and profile version, so the entries
of a CA that stopped being the default are unreachable at once; `retain` drops them.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from interca.domain.x509.hostnames import HostName
from interca.issuance.minted import Minted

MAX_ALIASES = 4
Key = tuple[str, tuple[HostName, ...]]
"""(template cache_id, the sorted normalised names)"""
FastKey = tuple[str, bool, tuple[HostName, ...]]
"""(template cache_id, wildcard_ok, the names as the caller passed them)"""
T = TypeVar("T")


class Entry:
    """A cached leaf. `refresh_at`: after it the leaf is minted again (a quarter of its span
    before notAfter, §6.2), so a client never gets a leaf about to expire. `aliases`: the fast
    keys that reach it."""

    __slots__ = ("key", "minted", "refresh_at", "aliases")

    def __init__(self, key: Key, minted: Minted, refresh_at: dt.datetime) -> None:
        self.key = key
        self.minted = minted
        self.refresh_at = refresh_at
        self.aliases: list[FastKey] = []


def refresh_time(not_before: dt.datetime, not_after: dt.datetime) -> dt.datetime:
    return not_after - (not_after - not_before) / 4


class LeafCache:
    """Bounded LRU, O(1) per operation. `get` (the hit path) takes no lock: it is a dict lookup,
    a time comparison and an `OrderedDict.move_to_end`, each one atomic under the GIL; writers
    (`put`, `alias`, `retain`) serialise on the cache's lock."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("The leaf cache needs room for at least one leaf")
        self.capacity = capacity
        self._lru: OrderedDict[Key, Entry] = OrderedDict()
        self._fast: dict[FastKey, Entry] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._lru)

    def get(self, fast_key: FastKey, now: dt.datetime) -> Minted | None:
        """The fresh leaf under `fast_key`, or None."""
        entry = self._fast.get(fast_key)
        if entry is None or not now < entry.refresh_at:
            return None
        try:
            self._lru.move_to_end(entry.key)
        except KeyError:  # evicted by another thread since the lookup
            return None
        return entry.minted

    def lookup(self, key: Key, now: dt.datetime) -> Entry | None:
        """The fresh entry under the canonical `key`, or None."""
        entry = self._lru.get(key)
        if entry is None or not now < entry.refresh_at:
            return None
        try:
            self._lru.move_to_end(key)
        except KeyError:
            return None
        return entry

    def put(self, entry: Entry, fast_key: FastKey) -> None:
        """Store a new `entry` (replacing a stale one under its key), reachable by `fast_key`
        too; evicts the least recently used entries beyond `capacity`."""
        # Once per minted leaf, so the alias bookkeeping is written out here rather than called.
        lru, fast = self._lru, self._fast
        with self._lock:
            old = lru.pop(entry.key, None)
            if old is not None:
                self._forget(old)
            lru[entry.key] = entry
            previous = fast.get(fast_key)
            if previous is not None:
                previous.aliases.remove(fast_key)
            entry.aliases.append(fast_key)
            fast[fast_key] = entry
            while len(lru) > self.capacity:
                self._forget(lru.popitem(last=False)[1])

    def alias(self, entry: Entry, fast_key: FastKey) -> None:
        """Make `entry` reachable by another spelling of its names."""
        with self._lock:
            if self._lru.get(entry.key) is entry:
                self._add_alias(entry, fast_key)

    def retain(self, cache_id: str) -> None:
        """Drop every entry of another CA template (a default switch or a disabled CA)."""
        with self._lock:
            for key in [k for k in self._lru if k[0] != cache_id]:
                self._forget(self._lru.pop(key))

    def _add_alias(self, entry: Entry, fast_key: FastKey) -> None:
        aliases = entry.aliases
        if len(aliases) >= MAX_ALIASES or fast_key in aliases:
            return
        previous = self._fast.get(fast_key)
        if previous is not None and previous is not entry:
            previous.aliases.remove(fast_key)
        aliases.append(fast_key)
        self._fast[fast_key] = entry

    def _forget(self, entry: Entry) -> None:
        fast = self._fast
        for alias in entry.aliases:
            found = fast.pop(alias, None)
            if found is not None and found is not entry:  # the alias moved on to a newer entry
                fast[alias] = found
        entry.aliases.clear()


class _Call(Generic[T]):
    """One run of a single-flight call. `done` exists only once a second caller waits: it is
    made (locked) under the flight's lock, and the leader releases it when the result is in, so
    a run nobody waits for costs no lock of its own."""

    __slots__ = ("done", "value", "error")

    def __init__(self) -> None:
        self.done: threading.Lock | None = None
        self.value: T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[T]):
    """At most one call per key at a time: the first caller runs `fn`, the others arriving
    meanwhile wait for its result (or its exception) instead of repeating the work."""

    def __init__(self) -> None:
        self._calls: dict[Hashable, _Call[T]] = {}
        # Keys may hold ipaddress objects, whose hash and == are Python code (a thread switch
        # can fall inside a dict operation), so the map is only touched under this lock.
        self._lock = threading.Lock()

    def do(self, key: Hashable, fn: Callable[..., T], *args: object) -> tuple[T, bool]:
        """(`fn(*args)`, whether it was shared from another caller's run). Re-raises `fn`'s
        exception in every caller that waited for it."""
        with self._lock:
            call = self._calls.get(key)
            if call is None:
                mine = self._calls[key] = _Call()
            elif call.done is None:
                call.done = threading.Lock()
                call.done.acquire()
        if call is not None:
            assert call.done is not None
            with call.done:  # released by the leader once value or error is set
                pass
            if call.error is not None:
                raise call.error
            assert call.value is not None
            return call.value, True
        try:
            mine.value = fn(*args)
        except BaseException as exc:
            mine.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]  # later callers start a new run (and find the cache first)
                done = mine.done
            if done is not None:
                done.release()
        return mine.value, False
