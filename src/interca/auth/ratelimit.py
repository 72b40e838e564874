"""Rate limits (api.md §4.8): per credential and per endpoint, in sliding windows kept in the
database so every process shares them.

The tables below are §4.8 as data. Which class an endpoint belongs to is declared next to each
route (`interca.api.deps.rate_limited`); `ENDPOINT_CLASSES` is the class table of the spec, by
DESIGN.md verb, that those declarations are tested against.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from enum import StrEnum

from interca.clock import Clock
from interca.errors import RateLimited
from interca.storage.counters import Counters
from interca.storage.db import Database


class RateClass(StrEnum):
    READ = "read"
    CHANGE = "change"
    HEAVY = "heavy"


_UNIT_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600}


@dataclass(frozen=True)
class Window:
    """At most `limit` requests in any `unit` (SECOND, MINUTE or HOUR), sliding."""

    limit: int
    unit: str

    @property
    def length(self) -> dt.timedelta:
        return dt.timedelta(seconds=_UNIT_SECONDS[self.unit])


# §4.8: every GET is `read`, and so are the session POST and DELETE and the token endpoint.
ENDPOINT_CLASSES: dict[str, RateClass] = {
    "login": RateClass.READ,
    "logout": RateClass.READ,
    "token": RateClass.READ,
    "create": RateClass.CHANGE,
    "update": RateClass.CHANGE,
    "delete_chain": RateClass.CHANGE,
    "make_default": RateClass.CHANGE,
    "validate": RateClass.CHANGE,
    "delete": RateClass.HEAVY,
    "generate_key_pair": RateClass.HEAVY,
    "verify_key_attestation": RateClass.HEAVY,
    "generate_csr": RateClass.HEAVY,
    "upload_cert": RateClass.HEAVY,
    "upload_chain": RateClass.HEAVY,
    "finalize": RateClass.HEAVY,
}

PROFILES: dict[str, dict[RateClass, tuple[Window, ...]]] = {
    "zia": {  # ZIA's published table
        RateClass.READ: (Window(2, "SECOND"), Window(1000, "HOUR")),
        RateClass.CHANGE: (Window(1, "SECOND"), Window(400, "HOUR")),
        RateClass.HEAVY: (Window(1, "MINUTE"), Window(4, "HOUR")),
    },
    "standard": {
        RateClass.READ: (Window(20, "SECOND"),),
        RateClass.CHANGE: (Window(5, "SECOND"),),
        RateClass.HEAVY: (Window(30, "MINUTE"),),
    },
    "off": {},
}

KEY_PREFIX = "rate:"
_PRUNE_EVERY = 60.0  # seconds between sweeps of expired events, per process


def counter_key(credential: str, endpoint: str) -> str:
    return f"{KEY_PREFIX}{credential}|{endpoint}"


class RateLimiter:
    """`check_and_count` before a request runs: refuse it (`RateLimited`) when any window of its
    class is full, else count it. A refused request is not counted; a request refused later
    (401 aside, which comes first) has been counted already, as §4.8 asks."""

    def __init__(self, db: Database, clock: Clock, profile: str) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown rate-limit profile {profile!r}")
        self._db = db
        self._clock = clock
        self._windows = PROFILES[profile]
        self._longest = max(
            (w.length for windows in self._windows.values() for w in windows), default=dt.timedelta(0)
        )
        self._next_prune = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self._windows)

    def check_and_count(self, credential: str, endpoint: str, rate_class: str) -> None:
        """`credential` names the caller (`user:<name>` or `client:<client_id>`), `endpoint`
        the method and route template (`POST /intermediateCaCertificate/keyPair/{certId}`)."""
        windows = self._windows.get(RateClass(rate_class), ())
        if not windows:
            return
        key = counter_key(credential, endpoint)
        now = self._clock.now()
        with self._db.write() as s:
            counters = Counters(s)
            counters.serialize(key)
            refusals = []
            for window in windows:
                since = now - window.length
                count = counters.count_since(key, since)
                if count >= window.limit:
                    # The request passes once enough events leave the window: the
                    # (count - limit + 1)-th oldest must be older than one window length.
                    leaving = counters.oldest_since(key, since, skip=count - window.limit) or now
                    wait = math.ceil((leaving + window.length - now).total_seconds())
                    refusals.append(RateLimited(window.limit, window.unit, wait))
            if refusals:  # every full window must empty; name the one that takes longest
                raise max(refusals, key=lambda r: r.retry_after)
            counters.add(key, now)
        self._prune(now)

    def _prune(self, now: dt.datetime) -> None:
        """Drop events older than the longest window, at most once a minute per process."""
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + _PRUNE_EVERY
        with self._db.write() as s:
            Counters(s).prune(now - self._longest, KEY_PREFIX)
