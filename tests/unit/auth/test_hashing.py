from __future__ import annotations

import re

from interca.auth import apikey, hashing


def test_password_hashes_are_salted_and_verify() -> None:
    a, b = hashing.hash_password("secret words"), hashing.hash_password("secret words")
    assert a != b and a.startswith("$argon2id$")
    assert hashing.verify_password(a, "secret words")
    assert not hashing.verify_password(a, "other words")
    assert not hashing.verify_password(None, "secret words")
    assert not hashing.verify_password("not a hash", "x")


def test_random_values() -> None:
    assert re.fullmatch(r"[0-9A-F]{32}", hashing.new_session_id())
    assert len(hashing.new_token()) >= 43
    assert hashing.digest("x") == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    key = apikey.new_api_key()
    assert len(key) >= 12 and key.isalnum()


def test_obfuscation_matches() -> None:
    assert apikey.matches("abcdefghijklmnop", "1795763068920", "agijcacfggic")
    assert not apikey.matches("abcdefghijklmnop", "1795763068920", "agijcacfggid")
    assert not apikey.matches("abcdefghijklmnop", "1795763068920", "\u00e9" * 12)
