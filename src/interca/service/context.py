"""What every service needs, and the steps every certificate operation shares: find the record
(404), take its edit lock (409), then apply the guards in the precedence of api.md §4.6."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from interca.clock import Clock
from interca.config import Settings
from interca.domain.models import CaType, IntermediateCa
from interca.domain.states import check_allowed
from interca.errors import BuiltinGuard, InvalidInput, KeyStoreError, NotFound
from interca.keystore.base import Attestation, KeyStores
from interca.storage.certificates import CertificateRepository
from interca.storage.db import Database
from interca.storage.locks import Locks

ORG_LOCK = "org"
HSM_ONLY = "This operation is applicable only to CUSTOM_HSM certificates."


def edit_lock(ca_id: int) -> str:
    return f"cert:{ca_id}"


@dataclass
class ServiceContext:
    db: Database
    locks: Locks
    clock: Clock
    settings: Settings
    keystores: KeyStores
    attestation: Attestation | None = None

    def load(self, ca_id: int) -> IntermediateCa:
        """The record, or `NotFound`."""
        with self.db.read() as s:
            ca = CertificateRepository(s).get(ca_id)
        if ca is None:
            raise NotFound(f"Certificate {ca_id} not found.")
        return ca

    def signer(self, ca: IntermediateCa) -> CertificateIssuerPrivateKeyTypes:
        """The CA's signing key from its key store. Raises `KeyStoreError`; a key the store
        cannot find is named by certificate (hsm.md §6.5: the message names the certificate
        and the key id), so an operator knows which record points at a missing key."""
        if ca.key is None:
            raise KeyStoreError("key_not_found", f"Certificate {ca.id} has no key pair.")
        try:
            return self.keystores.for_ref(ca.key.ref).signer(ca.key.ref)
        except KeyStoreError as exc:
            if exc.error_id not in ("hsm_key_not_found", "key_not_found"):
                raise
            detail = exc.message.removeprefix(f"[{exc.error_id}] ")
            raise KeyStoreError(exc.error_id, f"Certificate {ca.id}'s key: {detail}") from None

    @contextmanager
    def editing(self, ca_id: int, *, org: bool = False) -> Iterator[IntermediateCa]:
        """404 if absent, else hold the certificate's edit lock (and the org lock when `org`) and
        yield the record as read under the lock."""
        self.load(ca_id)
        names = [edit_lock(ca_id), *([ORG_LOCK] if org else [])]
        with self.locks.hold(*names, wait=self.settings.edit_lock_wait):
            yield self.load(ca_id)


def guard(ca: IntermediateCa, op: str, *, builtin_ok: bool = False, hsm_only: bool = False) -> None:
    """Built-in guard (403), HSM-only (400), then lifecycle order (400), in that precedence."""
    if ca.is_builtin and not builtin_ok:
        raise BuiltinGuard()
    if hsm_only and ca.type is not CaType.CUSTOM_HSM:
        raise InvalidInput(HSM_ONLY)
    check_allowed(op, ca.state)
