"""Recording who did what (api.md §3.6): exactly one entry per mutation, written in the same
transaction as the change when it succeeds, and in a transaction of its own when it fails.

Usage in a service method:

    with self._audit.action(principal, "upload_cert", ca_id) as entry:
        ... slow work, checks ...
        with db.write() as s:
            repo.save(...)
            entry.success(s, detail="sha256:...")

An exception leaving the block records a FAILURE entry naming the error (its code, or the ids
of the refusing findings) and propagates unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from interca.domain.principal import Principal
from interca.domain.x509.findings import FindingsError
from interca.errors import IntercaError
from interca.service.context import ServiceContext
from interca.storage.audit import AuditEntry, AuditQuery, AuditRepository, entry_hash

log = logging.getLogger(__name__)


@dataclass
class PendingEntry:
    """An entry being recorded; `success` writes it into the caller's transaction."""

    log: AuditLog
    principal: Principal
    action: str
    cert_id: int | None
    written: bool = field(default=False)

    def success(self, session: Session, detail: str = "", cert_id: int | None = None) -> None:
        if cert_id is not None:
            self.cert_id = cert_id
        self.log.append(session, self.principal, self.action, self.cert_id, "SUCCESS", detail)
        self.written = True


def failure_detail(exc: BaseException) -> str:
    """What a failure entry says: the refusing finding ids, or the error code (never the message,
    which may quote the request)."""
    if isinstance(exc, FindingsError):
        return " ".join(f"[{f.id}]" for f in exc.findings if f.severity == "error")
    if isinstance(exc, IntercaError):
        error_id = getattr(exc, "error_id", None)
        return f"{exc.code} [{error_id}]" if error_id else exc.code
    return "UNEXPECTED_ERROR"


class AuditLog:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def append(
        self,
        session: Session,
        principal: Principal,
        action: str,
        cert_id: int | None,
        outcome: str,
        detail: str,
    ) -> None:
        entry = AuditEntry(
            actor=principal.name,
            actor_type=principal.kind,
            source_address=principal.source_address,
            action=action,
            cert_id=cert_id,
            outcome=outcome,
            detail=detail,
            time=self._ctx.clock.now(),
        )
        AuditRepository(session).append(entry)

    def record(
        self, principal: Principal, action: str, cert_id: int | None, outcome: str, detail: str = ""
    ) -> None:
        """One entry in a transaction of its own (logins, failures)."""
        with self._ctx.db.write() as s:
            self.append(s, principal, action, cert_id, outcome, detail)

    @contextmanager
    def action(self, principal: Principal, action: str, cert_id: int | None = None) -> Iterator[PendingEntry]:
        pending = PendingEntry(self, principal, action, cert_id)
        try:
            yield pending
        except BaseException as exc:
            if not pending.written:
                try:
                    self.record(principal, action, pending.cert_id, "FAILURE", failure_detail(exc))
                except IntercaError:
                    log.exception("could not record the failure of %s", action)
            raise
        if not pending.written:
            raise AssertionError(f"{action} succeeded without an audit entry")  # a defect, never a user error

    # reading ---------------------------------------------------------------------------------

    def query(self, q: AuditQuery, page: int, page_size: int) -> list[AuditEntry]:
        with self._ctx.db.read() as s:
            return AuditRepository(s).query(q, (page - 1) * page_size, page_size)

    def verify(self) -> tuple[int, str | None]:
        """Walk the chain: (entries checked, None) when intact, else (position, what is wrong)."""
        from interca.storage.audit import GENESIS

        prev = GENESIS
        count = 0
        with self._ctx.db.read() as s:
            repo = AuditRepository(s)
            for entry, stored_prev, stored_hash in repo.chain():
                count += 1
                if stored_prev != prev:
                    return (
                        count,
                        f"entry {entry.id} does not follow the entry before it (removed or reordered)",
                    )
                if entry_hash(prev, entry) != stored_hash:
                    return count, f"entry {entry.id} was changed after it was written"
                prev = stored_hash
            last_id, last_hash = repo.head()
        if last_hash != prev:
            return count, f"the newest entries after {count} were removed (head says entry {last_id})"
        return count, None
