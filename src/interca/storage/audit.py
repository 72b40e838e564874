"""The audit log: appended in the caller's transaction, hash-chained, queried with filters.

Each entry's hash covers its fields and the previous entry's hash, so editing or removing an
entry breaks the chain; the head row records the newest entry, so removing the newest ones is
noticed too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from interca.storage.tables import AuditHeadRow, AuditRow

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    actor_type: str
    source_address: str | None
    action: str
    cert_id: int | None
    outcome: str
    detail: str
    time: dt.datetime
    id: int = 0


@dataclass(frozen=True)
class AuditQuery:
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    action: str | None = None
    cert_id: int | None = None
    actor: str | None = None


def entry_hash(prev_hash: str, entry: AuditEntry) -> str:
    fields = [
        entry.id,
        int(entry.time.timestamp()),
        entry.actor,
        entry.actor_type,
        entry.source_address,
        entry.action,
        entry.cert_id,
        entry.outcome,
        entry.detail,
    ]
    canonical = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        row.actor, row.actor_type, row.source_address, row.action, row.cert_id, row.outcome, row.detail,
        row.time, row.id,
    )  # fmt: skip


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def append(self, entry: AuditEntry) -> AuditEntry:
        """Add `entry` after the newest one, in the caller's write transaction."""
        head = self._s.scalar(select(AuditHeadRow).with_for_update())
        if head is None:
            head = AuditHeadRow(singleton=1, last_id=0, last_hash=GENESIS)
            self._s.add(head)
        row = AuditRow(
            time=entry.time.replace(microsecond=0),
            actor=entry.actor,
            actor_type=entry.actor_type,
            source_address=entry.source_address,
            action=entry.action,
            cert_id=entry.cert_id,
            outcome=entry.outcome,
            detail=entry.detail,
            prev_hash=head.last_hash,
            entry_hash="",
        )
        self._s.add(row)
        self._s.flush()  # allocates the id, which the hash covers
        stored = _entry(row)
        row.entry_hash = entry_hash(head.last_hash, stored)
        head.last_id, head.last_hash = row.id, row.entry_hash
        self._s.flush()
        return stored

    def query(self, q: AuditQuery, offset: int, limit: int) -> list[AuditEntry]:
        stmt = select(AuditRow).order_by(AuditRow.id)
        if q.start is not None:
            stmt = stmt.where(AuditRow.time >= q.start)
        if q.end is not None:
            stmt = stmt.where(AuditRow.time <= q.end)
        if q.action is not None:
            stmt = stmt.where(AuditRow.action == q.action)
        if q.cert_id is not None:
            stmt = stmt.where(AuditRow.cert_id == q.cert_id)
        if q.actor is not None:
            stmt = stmt.where(AuditRow.actor == q.actor)
        return [_entry(r) for r in self._s.scalars(stmt.offset(offset).limit(limit))]

    def chain(self) -> Iterator[tuple[AuditEntry, str, str]]:
        """Every entry in order, with its stored previous hash and its stored hash."""
        for row in self._s.scalars(select(AuditRow).order_by(AuditRow.id).execution_options(yield_per=500)):
            yield _entry(row), row.prev_hash, row.entry_hash

    def head(self) -> tuple[int, str]:
        head = self._s.get(AuditHeadRow, 1)
        return (head.last_id, head.last_hash) if head else (0, GENESIS)
