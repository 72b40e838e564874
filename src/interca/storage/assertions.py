"""The ids (`jti`) of client assertions already used, each kept until the assertion's `exp` so
it cannot be replayed while it is still valid (api.md §5.4, RFC 7523 §3 item 7)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from interca.storage.tables import UsedAssertionRow


class UsedAssertionRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def use(self, key: str, expires_at: dt.datetime, now: dt.datetime) -> bool:
        """Record `key` as used until `expires_at`; False when it is recorded and not yet
        expired (a replay). Expired keys are pruned first, so the table stays small.

        Pre: inside a write transaction. The primary key settles a race between two writers
        (PostgreSQL): the second insert fails and is reported as a replay."""
        self._s.execute(delete(UsedAssertionRow).where(UsedAssertionRow.expires_at <= now))
        if self._s.get(UsedAssertionRow, key) is not None:
            return False
        try:
            with self._s.begin_nested():
                self._s.add(UsedAssertionRow(key=key, expires_at=expires_at))
        except IntegrityError:
            return False
        return True
