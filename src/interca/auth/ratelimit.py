"""Rate limits (api.md §4.8): per credential and per endpoint, in sliding windows kept in the
database so every process shares them.

The tables below are §4.8 as data: which class each endpoint belongs to (`SPEC_CLASSES`) and
the windows of each class in each profile (`PROFILES`).

The endpoint is the method plus the route template *without* the prefix: `/api/v1/...` and
`/zia/api/v1/...` serve the same endpoint (api.md §1, "identically"), so they share one counter.
Separate counters would let a client double its allowance by alternating prefixes, and either
credential kind works under either prefix, so the prefix says nothing about the caller.
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


_R = "/intermediateCaCertificate"
# §4.8's class table by endpoint ("<METHOD> <route template>", without the /api/v1 or
# /zia/api/v1 prefix). Every GET not listed is `read`; None marks the public rows 24-25, which
# are never limited. The routes declare their class themselves (`api.deps.rate_limited`); the
# app refuses to start when a declaration is missing or disagrees with this table.
SPEC_CLASSES: dict[str, RateClass | None] = {
    "POST /authenticatedSession": RateClass.READ,
    "DELETE /authenticatedSession": RateClass.READ,
    "POST /oauth2/v1/token": RateClass.READ,
    f"POST {_R}": RateClass.CHANGE,  # create
    f"PUT {_R}/{{certId}}": RateClass.CHANGE,  # update
    f"PUT {_R}/deleteCertChain/{{certId}}": RateClass.CHANGE,
    f"PUT {_R}/makeDefault/{{certId}}": RateClass.CHANGE,
    f"POST {_R}/validateCert/{{certId}}": RateClass.CHANGE,
    f"DELETE {_R}/{{certId}}": RateClass.HEAVY,
    f"POST {_R}/keyPair/{{certId}}": RateClass.HEAVY,
    f"POST {_R}/verifyKeyAttestation/{{certId}}": RateClass.HEAVY,
    f"POST {_R}/generateCsr/{{certId}}": RateClass.HEAVY,
    f"POST {_R}/uploadCert/{{certId}}": RateClass.HEAVY,
    f"POST {_R}/uploadCertChain/{{certId}}": RateClass.HEAVY,
    f"POST {_R}/finalizeCert/{{certId}}": RateClass.HEAVY,
    "GET /pki/crl/{certId}.crl": None,
    "GET /pki/ca/{certId}.crt": None,
}


def spec_class(endpoint: str) -> RateClass | None:
    """The class §4.8 gives `endpoint`; KeyError for a non-GET endpoint the table lacks."""
    if endpoint in SPEC_CLASSES:
        return SPEC_CLASSES[endpoint]
    if endpoint.startswith("GET "):
        return RateClass.READ
    raise KeyError(endpoint)


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
