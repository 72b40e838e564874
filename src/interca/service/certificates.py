"""Certificate records: list, read, create, update, delete and makeDefault (api.md §4.2-4.5)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from interca.domain import fields, limits
from interca.domain.models import IntermediateCa, Status
from interca.domain.principal import Principal
from interca.domain.states import State
from interca.errors import BuiltinGuard, InvalidInput, KeyStoreError
from interca.service.audit import AuditLog
from interca.service.context import ORG_LOCK, ServiceContext, guard
from interca.storage.certificates import CertificateRepository

log = logging.getLogger(__name__)


class CertificateService:
    def __init__(self, ctx: ServiceContext, audit: AuditLog) -> None:
        self._ctx = ctx
        self._audit = audit

    # reads ----------------------------------------------------------------------------------

    def list_all(self, search: str | None, page: int, page_size: int) -> list[IntermediateCa]:
        with self._ctx.db.read() as s:
            return CertificateRepository(s).list(search or None, (page - 1) * page_size, page_size)

    def list_ready(self, search: str | None, page: int, page_size: int) -> list[IntermediateCa]:
        """readyToUse: CERT_READY and ENABLED, filtered and paged like the other lists."""
        with self._ctx.db.read() as s:
            every = CertificateRepository(s).list(search or None, 0, 2**31)
        ready = [c for c in every if c.state is State.CERT_READY and c.status is Status.ENABLED]
        start = (page - 1) * page_size
        return ready[start : start + page_size]

    def get(self, ca_id: int) -> IntermediateCa:
        return self._ctx.load(ca_id)

    # changes --------------------------------------------------------------------------------

    def create(self, principal: Principal, body: Mapping[str, Any]) -> IntermediateCa:
        subscription = limits.SUBSCRIPTIONS[self._ctx.settings.subscription]
        with self._audit.action(principal, "create") as entry:
            org_lock = self._ctx.locks.hold(ORG_LOCK, wait=self._ctx.settings.edit_lock_wait)
            with org_lock, self._ctx.db.write() as s:
                repo = CertificateRepository(s)
                new = fields.validate_create(body, repo.name_taken)
                limits.check_type(subscription, new.type)
                total, enabled = repo.custom_counts()
                limits.check_create(subscription, total, enabled, new.status is Status.ENABLED)
                ca = IntermediateCa(
                    id=0,
                    name=new.name,
                    type=new.type,
                    region=new.region,
                    status=new.status,
                    key_type=new.key_type,
                    description=new.description,
                    state=State.GENERAL_DONE,
                )
                repo.add(ca, self._ctx.clock.now())
                entry.success(s, f"{ca.type.value} {ca.key_type.value} {ca.region.value}", cert_id=ca.id)
            return ca

    def update(self, principal: Principal, ca_id: int, body: Mapping[str, Any]) -> IntermediateCa:
        # Enabling counts against the subscription, so a status change takes the org lock too.
        with (
            self._audit.action(principal, "update", ca_id) as entry,
            self._ctx.editing(ca_id, org="status" in body) as ca,
        ):
            if ca.is_builtin:
                raise BuiltinGuard()
            with self._ctx.db.write() as s:
                repo = CertificateRepository(s)
                changes = fields.validate_update(ca, body, repo.name_taken)
                if changes.status is Status.ENABLED:
                    subscription = limits.SUBSCRIPTIONS[self._ctx.settings.subscription]
                    limits.check_enable(subscription, repo.custom_counts()[1])
                ca.name = changes.name or ca.name
                ca.description = ca.description if changes.description is None else changes.description
                ca.status = changes.status or ca.status
                repo.save(ca, self._ctx.clock.now())
                changed = [n for n in ("name", "description", "status") if getattr(changes, n) is not None]
                entry.success(s, "changed: " + (", ".join(changed) or "nothing"))
            return ca

    def delete(self, principal: Principal, ca_id: int) -> None:
        """Remove the record, then destroy its private key."""
        with (
            self._audit.action(principal, "delete", ca_id) as entry,
            self._ctx.editing(ca_id, org=True) as ca,
        ):
            if ca.is_builtin:
                raise BuiltinGuard()
            if ca.is_default:
                raise InvalidInput(
                    "The default certificate cannot be deleted; make another certificate default first."
                )
            with self._ctx.db.write() as s:
                CertificateRepository(s).delete(ca_id)
                entry.success(s, f"{ca.name}; key destroyed" if ca.key else ca.name)
            # After the commit: a crash here leaves an orphan key, never a record without its key.
            ref = ca.key.ref if ca.key is not None else ca.pending_key_ref  # also a cut-short keyPair's
            if ref is not None:
                try:
                    self._ctx.keystores.for_ref(ref).destroy(ref)
                except KeyStoreError:
                    log.warning("certificate %s deleted; its key could not be destroyed now", ca_id)

    def make_default(self, principal: Principal, ca_id: int) -> IntermediateCa:
        with (
            self._audit.action(principal, "make_default", ca_id) as entry,
            self._ctx.editing(ca_id, org=True) as ca,
        ):
            guard(ca, "makeDefault", builtin_ok=True)
            if not ca.is_default and ca.status is not Status.ENABLED:
                raise InvalidInput("Only an enabled certificate can be made default.")
            with self._ctx.db.write() as s:
                repo = CertificateRepository(s)
                old = repo.default_id()
                repo.set_default(ca_id)
                entry.success(
                    s, f"default {old} -> {ca_id}" if old != ca_id else f"{ca_id} was already the default"
                )
            ca.is_default = True
            return ca
