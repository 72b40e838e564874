"""The leaf-key pool (certificates.md §6.1): 4 keys retired after 24 hours, RSA made ahead by a
background thread and overused (and counted) when dry, never a CA's key."""

from __future__ import annotations

import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from tests.pki import new_key

from interca.issuance.keypool import MAX_AGE_SECONDS, LeafKeyPool, PoolKey


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ec_pool_keeps_four_p256_keys_and_round_robins():
    pool = LeafKeyPool("ec-p256", background=False)
    taken = [pool.take() for _ in range(8)]
    assert len({id(k) for k in taken}) == 4 and pool.depth == 4
    assert all(isinstance(k.private, ec.EllipticCurvePrivateKey) for k in taken)
    assert all(isinstance(k.private.curve, ec.SECP256R1) for k in taken)
    assert taken[:4] == taken[4:]


def test_ec_keys_retire_after_24_hours():
    clock = Clock()
    pool = LeafKeyPool("ec-p256", clock=clock, background=False)
    first = [pool.take() for _ in range(4)]
    clock.now += MAX_AGE_SECONDS - 1
    assert [pool.take() for _ in range(4)] == first  # still young enough
    clock.now += 1
    fresh = pool.take()
    assert fresh not in first and clock.now - fresh.born < MAX_AGE_SECONDS  # made on the spot
    assert pool.overused == 0
    pool.refill()
    assert pool.depth == 4 and all(pool.take() not in first for _ in range(8))


def test_ec_replacements_are_made_ahead_and_swapped_in():
    clock = Clock()
    pool = LeafKeyPool("ec-p256", clock=clock, background=False)
    old = [pool.take() for _ in range(4)]
    clock.now += MAX_AGE_SECONDS * 0.97  # within the lead time: spares are made now
    pool.refill()
    assert pool.depth == 8
    clock.now += MAX_AGE_SECONDS * 0.05
    new = [pool.take() for _ in range(8)]
    assert not any(k in old for k in new) and len({id(k) for k in new}) == 4


def test_rsa_pool_fills_in_the_background():
    pool = LeafKeyPool("rsa-2048")
    try:
        assert isinstance(pool.take().private, rsa.RSAPrivateKey)
        deadline = time.monotonic() + 60  # a generous hang bound, not a timing assertion
        while pool.depth < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.depth == 4
        assert all(k.private.key_size == 2048 for k in (pool.take() for _ in range(4)))
    finally:
        pool.close()


def test_dry_rsa_pool_keeps_the_newest_key_and_counts_each_use():
    clock = Clock()
    pool = LeafKeyPool("rsa-2048", size=2, clock=clock, background=False)
    pool.refill()
    keys = [pool.take(), pool.take()]
    newest = max(keys, key=lambda k: k.born)
    clock.now += MAX_AGE_SECONDS + 5
    assert pool.take() is newest and pool.take() is newest  # no replacement ready: overused
    assert pool.overused == 2
    pool.refill()  # what the background thread does when woken
    fresh = pool.take()
    assert fresh is not newest and pool.overused == 2


def test_pool_never_hands_out_a_forbidden_ca_key():
    pool = LeafKeyPool("ec-p256", background=False)
    victim = pool.take()
    pool.forbid(victim.spki)  # as if a CA's key were in the pool
    assert all(pool.take().spki != victim.spki for _ in range(20))
    assert pool.depth >= 1

    ca_key = new_key("ec")
    ca_spki = PoolKey.of(ca_key).spki
    pool.forbid(ca_spki)
    pool.refill()
    assert all(pool.take().spki != ca_spki for _ in range(20))


def test_forbidding_every_key_still_leaves_a_key():
    pool = LeafKeyPool("ec-p256", size=1, background=False)
    only = pool.take()
    pool.forbid(only.spki)
    assert pool.take().spki != only.spki


def test_pool_is_thread_safe_under_concurrent_takes():
    clock = Clock()
    pool = LeafKeyPool("ec-p256", clock=clock, background=False)
    seen: list[PoolKey] = []
    errors: list[BaseException] = []

    def worker():
        try:
            for _ in range(200):
                seen.append(pool.take())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    clock.now += MAX_AGE_SECONDS  # every take starts by retiring keys
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(seen) == 1600
    assert all(clock.now - k.born < MAX_AGE_SECONDS for k in seen)


def test_key_pem_is_pkcs8_and_close_is_idempotent():
    pool = LeafKeyPool("ec-p256")
    key = pool.take()
    assert key.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert "private" not in repr(key) or "EllipticCurvePrivateKey" not in repr(key)
    pool.close()
    pool.close()


@pytest.mark.parametrize("bad", [{"key_type": "ec-p384"}, {"size": 0}, {"max_age": 0}])
def test_bad_pool_settings_are_refused(bad):
    with pytest.raises(ValueError):
        LeafKeyPool(**{"background": False, **bad})
