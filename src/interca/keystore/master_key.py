"""The master key: the one clear secret on disk (a 0600 file) that seals every other secret.

Sealing is AES-256-GCM with a fresh 96-bit nonce and caller-given associated data, so a sealed
blob moved to another record (another key id, another purpose) fails to open.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from interca.errors import IntercaError

_MAGIC = b"ICS1"  # interca sealed blob, version 1
_NONCE = 12


class MasterKeyError(IntercaError):
    code = "SERVICE_UNAVAILABLE"


class MasterKey:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise MasterKeyError("The master key must be 32 bytes.")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return _MAGIC + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        if not blob.startswith(_MAGIC) or len(blob) < len(_MAGIC) + _NONCE + 16:
            raise MasterKeyError("A sealed secret is damaged.")
        nonce = blob[len(_MAGIC) : len(_MAGIC) + _NONCE]
        try:
            return self._aead.decrypt(nonce, blob[len(_MAGIC) + _NONCE :], aad)
        except InvalidTag:
            raise MasterKeyError(
                "A sealed secret cannot be opened with this master key (wrong INTERCA_MASTER_KEY_FILE?)."
            ) from None

    def __repr__(self) -> str:  # never show key material, even in a debugger or a traceback
        return "MasterKey(<hidden>)"


def load_master_key(path: Path, create: bool = False) -> MasterKey:
    """Read the master key file (32 random bytes), creating it with mode 0600 when `create` is set
    and it does not exist. Refuses a file that group or others can read."""
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first; read theirs
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(os.urandom(32))
                fh.flush()
                os.fsync(fh.fileno())
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise MasterKeyError(
            f"The master key file {path} does not exist; run 'interca init' first "
            "or set INTERCA_MASTER_KEY_FILE."
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MasterKeyError(f"The master key file {path} must be readable by its owner only (chmod 600).")
    return MasterKey(path.read_bytes())
