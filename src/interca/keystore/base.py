"""The key store protocol and the registry that picks a store for a key.

A CA record stores a key *reference* (a URI such as `software:<id>` or an RFC 7512
`pkcs11:` URI), never a key. Services depend on this module only; the composition root
(`interca.app`) decides which concrete stores exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PublicKeyTypes,
)

from interca.domain.models import CaType, KeyType, Region
from interca.errors import KeyStoreError


class KeyStore(Protocol):
    """A place that generates keys and signs with them without giving them away."""

    scheme: str
    """The URI scheme of the references this store hands out (`software`, `pkcs11`)."""

    def new_ref(self, label: str) -> str:
        """A fresh reference for a key not generated yet (hsm.md §4: the record stores it before
        generation, so a retry after a crash can destroy what a cut-short attempt left). Raises
        `KeyStoreError` when the store is unavailable."""
        ...

    def create_key(self, key_type: KeyType, label: str, ref: str | None = None) -> str:
        """Generate a new key pair of `key_type` and return its reference: `ref` (from `new_ref`,
        whatever an earlier attempt left under it destroyed first) or a fresh one.

        Slow (RSA-4096 takes about a second): call it from a worker thread, never on the event
        loop, and outside any open write transaction. Raises `KeyStoreError` when the store is
        unavailable; nothing is left behind that a later call could mistake for a key."""
        ...

    def signer(self, ref: str) -> CertificateIssuerPrivateKeyTypes:
        """A private-key object that `cryptography`'s builders can sign with. For hardware stores
        it only implements `sign`, `public_key` and `key_size`. Raises `KeyStoreError`."""
        ...

    def public_key(self, ref: str) -> PublicKeyTypes:
        """The key's public half. Raises `KeyStoreError` if the reference is unknown."""
        ...

    def destroy(self, ref: str) -> None:
        """Destroy the key for good. Destroying an unknown reference is not an error (idempotent)."""
        ...


class KeyStores:
    """The key stores of this deployment, looked up by reference scheme or by CA type and region."""

    def __init__(self, software: KeyStore, hsm_by_region: Mapping[Region, KeyStore] | None = None) -> None:
        self._software = software
        self._hsm = dict(hsm_by_region or {})

    def for_new_key(self, ca_type: CaType, region: Region) -> KeyStore:
        """The store a new key of this CA goes to."""
        if ca_type is CaType.CUSTOM_HSM:
            try:
                return self._hsm[region]
            except KeyError:
                raise KeyStoreError(
                    "hsm_module_not_loadable",
                    f"No HSM is configured for region {region.value}; set INTERCA_HSM_MODULE "
                    f"(or INTERCA_HSM_{region.value}_MODULE) to a PKCS#11 module and restart.",
                ) from None
        return self._software

    def for_ref(self, ref: str) -> KeyStore:
        """The store that owns an existing reference."""
        scheme = ref.split(":", 1)[0]
        for store in (self._software, *self._hsm.values()):
            if store.scheme == scheme and (scheme != "pkcs11" or _same_token(store, ref)):
                return store
        raise KeyStoreError(
            "key_not_found", "The key store holding this certificate's key is not configured."
        )


def _same_token(store: KeyStore, ref: str) -> bool:
    owns = getattr(store, "owns", None)
    return bool(owns(ref)) if owns else True


class KeyAttestor(Protocol):
    """The emulated HSM attestor's narrow interface (hsm.md §8.1). Raises `KeyStoreError`
    (`attestation_wrong_device`, `attestation_pairing_failed`, `hsm_attestation_unavailable`, ...)."""

    def attest(self, region: str, key_id: bytes, nonce: bytes | None = None) -> bytes:
        """A PEM bundle (hsm.md §8.5) for the key with CKA_ID `key_id` in `region`'s token."""
        ...

    def key_id_of(self, ref: str) -> bytes:
        """The CKA_ID a key reference names."""
        ...


@dataclass(frozen=True)
class Attestation:
    """Key attestation as wired by the composition root: the attestor, the pins file the
    verifier trusts (`pin <hex>` and `deny <hex>` lines, hsm.md §8.2) and the regions the
    attestor vouches for."""

    attestor: KeyAttestor
    pins_file: Path
    regions: frozenset[str]

    def covers(self, region: str) -> bool:
        return region in self.regions
