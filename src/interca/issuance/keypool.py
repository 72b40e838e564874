"""The leaf-key pool (certificates.md §6.1): a few leaf keys, each used for many leaves until it
retires, made ahead of need by a background thread so no handshake waits for RSA key generation.

Rules: `ec-p256` keeps 4 keys, each retired after 24 hours (P-256 keys are cheap, so a dry pool
makes one on the spot); `rsa-2048` keeps the same shape but only the background thread makes
keys (about 22/s per core), and when every key has aged out before a replacement is ready it
keeps using the newest one and counts each such use (`overused`, a metric). A pool never hands
out a key whose SPKI is a CA's (`forbid`). Leaf private keys live only in this process's memory.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from interca.issuance.template import leaf_key_parts

log = logging.getLogger(__name__)

LeafKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
KEY_TYPES = ("ec-p256", "rsa-2048")
POOL_SIZE = 4
MAX_AGE_SECONDS = 24 * 3600.0
# Replacements are made this long before a key retires, so a pool that keeps up never runs dry
# at the moment every key of one generation retires together.
LEAD_FRACTION = 0.05


@dataclass(frozen=True, eq=False)
class PoolKey:
    """One leaf key and what every leaf minted with it repeats: its SPKI and its keyUsage ..
    subjectKeyIdentifier extensions (`template.leaf_key_parts`), computed once. `born`: the
    pool clock's reading when it was made."""

    private: LeafKey = field(repr=False)
    spki: bytes
    extensions: bytes
    born: float

    @classmethod
    def of(cls, private: LeafKey, born: float = 0.0) -> PoolKey:
        spki, extensions = leaf_key_parts(private.public_key())
        return cls(private, spki, extensions, born)

    @cached_property
    def key_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted: for TLS libraries that load keys from memory. Never log it."""
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def new_leaf_key(key_type: str) -> LeafKey:
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"Unknown leaf key type {key_type!r}; expected one of {', '.join(KEY_TYPES)}")


class LeafKeyPool:
    """Leaf keys for one engine process.

    `take()` returns a live key (round robin over the active keys); it never blocks on RSA key
    generation after the first key. `depth` is the number of usable keys (active and unexpired,
    plus ready spares); `overused` counts the leaves that got an RSA key past `max_age` because
    no replacement was ready. `close()` stops the background thread (idempotent).

    `clock` (monotonic seconds) and `background=False` are for tests: without the thread, spares
    are made only by `refill()`.
    """

    def __init__(
        self,
        key_type: str = "ec-p256",
        *,
        size: int = POOL_SIZE,
        max_age: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
    ) -> None:
        if key_type not in KEY_TYPES:
            raise ValueError(f"Unknown leaf key type {key_type!r}; expected one of {', '.join(KEY_TYPES)}")
        if size < 1 or max_age <= 0:
            raise ValueError("A key pool needs at least one key and a positive maximum age")
        self.key_type = key_type
        self._size = size
        self._max_age = max_age
        self._lead = max_age * LEAD_FRACTION
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._forbidden: set[bytes] = set()
        self._spares: list[PoolKey] = []
        self._turn = itertools.count()
        self.overused = 0
        # The first key is made now, so `take` always has one; EC fills the pool at once.
        first = 1 if key_type == "rsa-2048" else size
        self._active: tuple[PoolKey, ...] = tuple(self._make() for _ in range(first))
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name=f"leaf-key-pool-{key_type}", daemon=True)
            self._thread.start()

    # the hot path ----------------------------------------------------------------------------

    def take(self) -> PoolKey:
        """A key for the next leaf. Never a forbidden (CA) key."""
        keys = self._active  # replaced whole under the lock, so this read is always consistent
        key = keys[next(self._turn) % len(keys)]
        if self._clock() - key.born < self._max_age:
            return key
        return self._retire_and_take()

    # bookkeeping ----------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        now = self._clock()
        return sum(1 for k in (*self._active, *self._spares) if now - k.born < self._max_age)

    def forbid(self, spki: bytes) -> None:
        """Never hand out a key with this SubjectPublicKeyInfo (a CA's); drops one if held."""
        with self._lock:
            self._forbidden.add(spki)
            self._spares = [k for k in self._spares if k.spki != spki]
            active = tuple(k for k in self._active if k.spki != spki)
            self._active = active or (self._make(),)

    def refill(self) -> None:
        """Make the keys the pool is short of now (the background thread's work, callable from
        tests): up to `size` active keys, plus a spare for each key close to retiring."""
        while not self._closed.is_set():
            with self._lock:
                now = self._clock()
                fresh = [k for k in self._active if now - k.born < self._max_age - self._lead]
                retiring = len(self._active) - len(fresh)
                short_active = len(self._active) < self._size
                short_spares = len(self._spares) < retiring
            if not (short_active or short_spares):
                return
            key = self._make()  # slow for RSA: outside the lock
            with self._lock:
                if len(self._active) < self._size:
                    self._active = (*self._active, key)
                else:
                    self._spares.append(key)

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _retire_and_take(self) -> PoolKey:
        with self._lock:
            now = self._clock()
            live = [k for k in self._active if now - k.born < self._max_age]
            while len(live) < self._size and self._spares:
                live.append(self._spares.pop())
            if not live and self.key_type == "ec-p256":
                live = [self._make()]  # ~20 µs: cheaper than ever serving a retired EC key
            if live:
                self._active = tuple(live)
                self._wake.set()
                return live[next(self._turn) % len(live)]
            # RSA and dry: keep the newest key past its age (§6.1) and count it.
            newest = max(self._active, key=lambda k: k.born)
            self._active = (newest,)
            self.overused += 1
            self._wake.set()
            return newest

    def _make(self) -> PoolKey:
        while True:
            key = PoolKey.of(new_leaf_key(self.key_type), self._clock())
            if key.spki not in self._forbidden:  # astronomically unlikely; the rule is absolute
                return key

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                self.refill()
            except Exception:  # keep the pool alive; `take` still serves the keys it has
                log.exception("the leaf key pool could not make a key")
            with self._lock:
                now = self._clock()
                due = [k.born + self._max_age - self._lead - now for k in self._active]
            # Sleep until the next key nears retirement (a retiring key with its spare made needs
            # nothing more; `take` wakes the thread when one retires), at most an hour.
            wait = min([3600.0, *(d for d in due if d > 0)])
            self._wake.wait(wait)
            self._wake.clear()
