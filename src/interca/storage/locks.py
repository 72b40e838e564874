"""Lease locks in the database (api.md §4.6): the edit lock of a certificate and the org lock.

A lock is a row with a holder and an expiry. Taking it is one short write transaction, so locks
hold across processes; a crashed holder's lease simply runs out. Slow work runs while the lock
is held but outside any write transaction (SQLite has one writer).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from interca.clock import Clock
from interca.errors import EditLockBusy
from interca.storage.db import Database
from interca.storage.tables import LockRow

# Longest any holder may keep a lock before others may take it over. It must exceed the slowest
# work done under a lock (RSA-4096 in a slow HSM takes a few seconds).
LEASE_SECONDS = 120
_POLL = 0.05


class Locks:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def _try(self, name: str, holder: str) -> bool:
        now = self._clock.now()
        try:
            with self._db.write() as s:
                row = s.get(LockRow, name)
                if row is None:
                    s.add(
                        LockRow(
                            name=name, holder=holder, expires_at=now + dt.timedelta(seconds=LEASE_SECONDS)
                        )
                    )
                    return True
                if row.expires_at <= now:
                    row.holder = holder
                    row.expires_at = now + dt.timedelta(seconds=LEASE_SECONDS)
                    return True
                return False
        except IntegrityError:
            return False  # another process inserted it between our read and write

    @contextmanager
    def hold(self, *names: str, wait: float) -> Iterator[None]:
        """Hold every named lock (taken in sorted order, so two callers cannot deadlock), waiting
        at most `wait` seconds in all; `EditLockBusy` when they cannot be had in time."""
        holder = uuid.uuid4().hex
        deadline = time.monotonic() + wait
        taken: list[str] = []
        try:
            for name in sorted(set(names)):
                while not self._try(name, holder):
                    if time.monotonic() >= deadline:
                        raise EditLockBusy()
                    time.sleep(_POLL)
                taken.append(name)
            yield
        finally:
            if taken:
                with self._db.write() as s:
                    s.execute(delete(LockRow).where(LockRow.name.in_(taken), LockRow.holder == holder))

    def held(self, name: str) -> bool:
        with self._db.read() as s:
            row = s.scalar(select(LockRow).where(LockRow.name == name))
            return row is not None and row.expires_at > self._clock.now()
