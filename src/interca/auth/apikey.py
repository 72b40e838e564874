"""The ZIA legacy login's API-key obfuscation (api.md §5.3).

The client never sends the org API key itself, only 12 characters picked from it by the digits
of a millisecond timestamp; the server recomputes them from its stored key.
"""

from __future__ import annotations

import hmac
import secrets
import string

API_KEY_LENGTH = 16
_ALPHABET = string.ascii_letters + string.digits


def obfuscate(api_key: str, timestamp_ms: str) -> str:
    """The 12-character obfuscation of `api_key` for the decimal millisecond timestamp.

    >>> obfuscate("abcdefghijklmnop", "1795763068920")
    'agijcacfggic'
    """
    n = timestamp_ms[-6:]
    r = str(int(n) >> 1).zfill(6)
    return "".join(api_key[int(d)] for d in n) + "".join(api_key[int(d) + 2] for d in r)


def matches(api_key: str, timestamp_ms: str, sent: str) -> bool:
    """Constant-time comparison of what the client sent with the expected obfuscation."""
    expected = obfuscate(api_key, timestamp_ms)
    return hmac.compare_digest(expected.encode(), sent.encode("utf-8", "replace"))


def new_api_key() -> str:
    """A fresh org API key: 16 random alphanumeric characters (at least 12 are required)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(API_KEY_LENGTH))
