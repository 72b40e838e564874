"""Injectable time source, so tests can freeze or move time."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FrozenClock:
    """A clock that stands still until moved (tests)."""

    def __init__(self, at: dt.datetime | None = None) -> None:
        self._at = at or dt.datetime.now(dt.UTC)

    def now(self) -> dt.datetime:
        return self._at

    def advance(self, seconds: float) -> None:
        self._at += dt.timedelta(seconds=seconds)

    def set(self, at: dt.datetime) -> None:
        self._at = at


def epoch(at: dt.datetime) -> int:
    """Whole epoch seconds (the wire's timestamp unit)."""
    return int(at.timestamp())
