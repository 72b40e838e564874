"""Stored forms of secrets: slow salted hashes for passwords and client secrets (Argon2id), and
SHA-256 for high-entropy random values (session ids, access tokens), which need no slowing."""

from __future__ import annotations

import hashlib
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2-cffi's RFC 9106 low-memory profile


@cache
def _dummy_hash() -> str:
    """Verified against when a user does not exist, so a wrong username costs as much as a
    wrong password (made on first use, not at import)."""
    return _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def digest(value: str) -> str:
    """SHA-256 hex of a random bearer value (session id, token)."""
    return hashlib.sha256(value.encode()).hexdigest()


def new_session_id() -> str:
    """128 random bits as 32 upper-case hex characters (the ZIA JSESSIONID form)."""
    return secrets.token_hex(16).upper()


def new_token() -> str:
    """An opaque access token of 256 random bits."""
    return secrets.token_urlsafe(32)


def new_secret() -> str:
    return secrets.token_urlsafe(32)
