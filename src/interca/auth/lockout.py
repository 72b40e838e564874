"""Failed-login protection of the legacy login (api.md §5.3): a growing delay, and a lock.

`max_failures` failures within `lockout` seconds for one username, or four times as many from
one source address, lock that username or address for `lockout` seconds. The lock is a marker
event of its own (`login:lock:user:<name>`, `login:lock:addr:<ip>`), so it lasts the full
`lockout` from the failure that set it, however the failures that caused it were spread. Attempts
refused by a lock are not counted as failures: hammering a locked account does not extend its
lock. Unknown usernames count like known ones, so a lock never tells whether a user exists.

Failures are counted per username and per address as events (`login:user:<name>`,
`login:addr:<ip>`); a successful login clears the username's events, not the address's. The
caller owns the transaction, so a failure, the lock it sets and their audit entries commit
together.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from interca.clock import Clock
from interca.storage.counters import Counters

ADDRESS_FACTOR = 4
MAX_DELAY = 1.0  # seconds; also the delay of every refusal while locked
_FIRST_DELAY = 0.1
_PRUNE_EVERY = 60.0
KEY_PREFIX = "login:"


def failure_delay(failures: int) -> float:
    """0.1 s after the first failure, doubling with each further one, at most `MAX_DELAY`."""
    return min(MAX_DELAY, _FIRST_DELAY * 2 ** max(0, min(failures, 16) - 1))


@dataclass(frozen=True)
class Failure:
    """What one recorded failure led to: the delay before answering, and the locks it set
    (each a sentence for the `login_locked` audit entry)."""

    delay: float
    locks: list[str] = field(default_factory=list)


class LoginGuard:
    def __init__(self, clock: Clock, max_failures: int, lockout_seconds: int) -> None:
        self._clock = clock
        self._max = max_failures
        self._lockout = dt.timedelta(seconds=lockout_seconds)
        self._next_prune = 0.0

    def is_locked(self, s: Session, username: str, address: str | None) -> bool:
        """Whether the username or the address is locked now."""
        since = self._clock.now() - self._lockout
        counters = Counters(s)
        subjects = _subjects(username, address)
        return any(counters.count_since(_lock(kind, who), since) for kind, who in subjects)

    def record_failure(self, s: Session, username: str, address: str | None) -> Failure:
        """Count a failed login (inside the caller's write transaction) and lock what reached
        its threshold; a lock is set once, by the failure that reaches it."""
        now = self._clock.now()
        since = now - self._lockout
        counters = Counters(s)
        locks: list[str] = []
        user_failures = 0
        for kind, who in _subjects(username, address):
            key = f"{KEY_PREFIX}{kind}:{who}"
            counters.serialize(key)
            counters.add(key, now)
            failures = counters.count_since(key, since)
            threshold = self._max * (ADDRESS_FACTOR if kind == "addr" else 1)
            if kind == "user":
                user_failures = failures
            if failures >= threshold and not counters.count_since(_lock(kind, who), since):
                counters.add(_lock(kind, who), now)
                subject = "username" if kind == "user" else f"source address {who}"
                locks.append(
                    f"{subject} locked for {int(self._lockout.total_seconds())} s after {failures} "
                    f"failed logins"
                )
        self._prune(s, now)
        return Failure(MAX_DELAY if locks else failure_delay(user_failures), locks)

    def clear(self, s: Session, username: str) -> None:
        """A successful login: forget the username's failures."""
        Counters(s).clear(f"{KEY_PREFIX}user:{username}")

    def _prune(self, s: Session, now: dt.datetime) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + _PRUNE_EVERY
        Counters(s).prune(now - self._lockout, KEY_PREFIX)


def _subjects(username: str, address: str | None) -> list[tuple[str, str]]:
    return [("user", username), *([("addr", address)] if address else [])]


def _lock(kind: str, who: str) -> str:
    return f"{KEY_PREFIX}lock:{kind}:{who}"
