"""Software keys, encrypted at rest under the master key.

Each key is a file `$DATA/keys/<id>.key` holding the PKCS#8 DER sealed with AES-256-GCM, the key
id as associated data (so swapping two files makes both fail to open). Files are written
atomically (temp file, fsync, rename) with mode 0600. A key generated for a request that then
fails is an orphan sealed file: harmless, since nothing references it.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PrivateKeyTypes,
    PublicKeyTypes,
)

from interca.domain.models import KeyType
from interca.errors import KeyStoreError
from interca.keystore.master_key import MasterKey

SCHEME = "software"


def generate_private_key(key_type: KeyType) -> PrivateKeyTypes:
    if key_type is KeyType.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if key_type is KeyType.EC_P384:
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=key_type.bits)


class SoftwareKeyStore:
    """`KeyStore` over sealed files in one directory."""

    scheme = SCHEME

    def __init__(self, directory: Path, master_key: MasterKey) -> None:
        self._dir = directory
        self._master = master_key
        self._loaded: dict[str, CertificateIssuerPrivateKeyTypes] = {}
        self._lock = threading.Lock()

    def new_ref(self, label: str) -> str:
        return f"{SCHEME}:{uuid.uuid4().hex}"

    def create_key(self, key_type: KeyType, label: str, ref: str | None = None) -> str:
        return self.import_key(generate_private_key(key_type), ref)

    def import_key(self, key: PrivateKeyTypes, ref: str | None = None) -> str:
        """Seal an existing key (the built-in CA's keys at first start) under `ref` (from
        `new_ref`; a file an earlier attempt left there is replaced) or a fresh reference."""
        key_id = self._key_id(ref) if ref is not None else uuid.uuid4().hex
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self._write(key_id, self._master.seal(der, key_id.encode()))
        with self._lock:
            self._loaded.pop(key_id, None)
        return f"{SCHEME}:{key_id}"

    def signer(self, ref: str) -> CertificateIssuerPrivateKeyTypes:
        key_id = self._key_id(ref)
        with self._lock:
            key = self._loaded.get(key_id)
        if key is None:
            der = self._master.open(self._read(key_id), key_id.encode())
            loaded = serialization.load_der_private_key(der, password=None)
            if not isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
                raise KeyStoreError("key_type_unsupported", "A stored key has an unsupported type.")
            key = loaded
            with self._lock:
                self._loaded[key_id] = key
        return key

    def public_key(self, ref: str) -> PublicKeyTypes:
        return self.signer(ref).public_key()

    def destroy(self, ref: str) -> None:
        key_id = self._key_id(ref)
        with self._lock:
            self._loaded.pop(key_id, None)
        (self._dir / f"{key_id}.key").unlink(missing_ok=True)

    def _key_id(self, ref: str) -> str:
        scheme, _, key_id = ref.partition(":")
        if scheme != SCHEME or len(key_id) != 32 or not all(c in "0123456789abcdef" for c in key_id):
            raise KeyStoreError("key_not_found", "The key reference is not a software key reference.")
        return key_id

    def _read(self, key_id: str) -> bytes:
        try:
            return (self._dir / f"{key_id}.key").read_bytes()
        except FileNotFoundError:
            raise KeyStoreError("key_not_found", "The certificate's software key is missing.") from None

    def _write(self, key_id: str, blob: bytes) -> None:
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        final = self._dir / f"{key_id}.key"
        tmp = self._dir / f".{key_id}.tmp"
        tmp.unlink(missing_ok=True)  # left by a write cut short
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        dir_fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename durable before the database points at the key
        finally:
            os.close(dir_fd)
