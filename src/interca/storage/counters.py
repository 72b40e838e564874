"""Event counters for sliding windows (api.md §4.8 rate limits, §5.3 failed logins).

A counter is a set of `rate_events` rows sharing a `key`; a window is "the events of a key after
a time". Counting rows instead of keeping fixed buckets makes every window slide exactly. The
index (key, at) serves every query here. The caller owns the transaction: a check and the event
it adds belong in one short write transaction, after `serialize(key)`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from interca.storage.tables import RateEventRow


class Counters:
    def __init__(self, session: Session) -> None:
        self._s = session

    def serialize(self, key: str) -> None:
        """Make concurrent check-then-add transactions on `key` run one after another.

        SQLite needs nothing: write transactions start with BEGIN IMMEDIATE, so there is one
        writer at a time. PostgreSQL (READ COMMITTED) would let two transactions count the same
        rows and both add; a transaction-scoped advisory lock on the key's hash queues them."""
        if self._s.get_bind().dialect.name == "postgresql":
            self._s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})

    def count_since(self, key: str, since: dt.datetime) -> int:
        """How many events of `key` happened after `since` (strictly)."""
        query = select(func.count()).select_from(RateEventRow)
        return int(self._s.scalar(query.where(RateEventRow.key == key, RateEventRow.at > since)) or 0)

    def oldest_since(self, key: str, since: dt.datetime, skip: int = 0) -> dt.datetime | None:
        """The time of the oldest event of `key` after `since`, or of the (`skip`+1)-th oldest;
        None when there are not that many."""
        query = (
            select(RateEventRow.at)
            .where(RateEventRow.key == key, RateEventRow.at > since)
            .order_by(RateEventRow.at)
            .offset(skip)
            .limit(1)
        )
        return self._s.scalar(query)

    def add(self, key: str, at: dt.datetime) -> None:
        self._s.add(RateEventRow(key=key, at=at))
        self._s.flush()

    def clear(self, key: str) -> None:
        """Forget every event of `key`."""
        self._s.execute(delete(RateEventRow).where(RateEventRow.key == key))

    def prune(self, before: dt.datetime, prefix: str = "") -> int:
        """Delete the events at or before `before` whose key starts with `prefix`; how many went."""
        query = delete(RateEventRow).where(RateEventRow.at <= before)
        if prefix:
            query = query.where(RateEventRow.key.startswith(prefix, autoescape=True))
        result = self._s.execute(query)
        return int(getattr(result, "rowcount", 0) or 0)
