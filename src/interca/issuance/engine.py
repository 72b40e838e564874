"""The issuing engine (certificates.md §6): `Engine.mint(names)` returns a leaf for the hosts,
signed by the default CA, with the chain to serve and its key.

A mint is, in order: re-read the default pointer when `default_poll_seconds` have passed (never
per handshake); look the raw names up in the cache (the hit path: a dict lookup and a time
comparison); else normalise the names, look again under the canonical key, and mint once per key
however many threads ask at the same time (single-flight): plan (validity, names, constraints),
take a pool key, encode the TBSCertificate from the CA's template, sign, store.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Sequence

from interca.domain.x509.hostnames import HostName
from interca.domain.x509.leaf import normalize_hosts, plan_leaf
from interca.domain.x509.leaf_refusal import LeafRefused
from interca.errors import IntercaError, KeyStoreError
from interca.issuance.cache import Entry, FastKey, Key, LeafCache, SingleFlight
from interca.issuance.default_ca import build_template, read_default
from interca.issuance.keypool import LeafKeyPool
from interca.issuance.metrics import CaMetrics, EngineMetrics
from interca.issuance.minted import Minted
from interca.issuance.template import LeafTemplate
from interca.service.context import ServiceContext
from interca.service.validation import Validator

log = logging.getLogger(__name__)

Host = HostName


class Engine:
    """Mints leaves with the default CA for one process (API, proxy, edge).

    `key_pool`: default a pool of `settings.leaf_key_type`, owned (and closed) by the engine.
    `cache_size`: the most leaves kept. `default_poll_seconds`: how old the engine's idea of the
    default CA may get; a switch, a disabled or a deleted CA reaches new mints after at most this
    long, and the cached leaves of a CA that is no longer the default are unreachable from then.
    `metrics` has its own prometheus registry. Thread-safe; `close()` stops the pool's thread.
    """

    def __init__(
        self,
        ctx: ServiceContext,
        *,
        key_pool: LeafKeyPool | None = None,
        cache_size: int = 10_000,
        default_poll_seconds: float = 1.0,
    ) -> None:
        self._ctx = ctx
        self._clock = ctx.clock
        self._validator = Validator(ctx)
        self._own_pool = key_pool is None
        self._pool = key_pool if key_pool is not None else LeafKeyPool(ctx.settings.leaf_key_type)
        self._cache = LeafCache(cache_size)
        self._flights: SingleFlight[Entry] = SingleFlight()
        self._poll = default_poll_seconds
        self._next_poll = float("-inf")
        self._refresh_lock = threading.Lock()
        self._current: tuple[LeafTemplate, CaMetrics] | None = None
        self._identity = ""
        self._reason = "No certificate is the default."
        self.metrics = EngineMetrics()
        self.metrics.watch(lambda: self._pool.depth, lambda: self._pool.overused, lambda: len(self._cache))

    def mint(self, names: Sequence[Host], *, wildcard_ok: bool = False) -> Minted:
        """A leaf for `names` (SNI strings as received, or IP addresses; the first one is the
        CN when it fits) with the default CA, from the cache while it has more than a quarter of
        its span left.

        Raises `LeafRefused`: `invalid_host` (a name is not a valid host, a wildcard without
        `wildcard_ok`, or no name at all), `outside_name_constraints`, `ca_not_valid` (a
        certificate of the CA path is outside its validity), `no_default_ca` (no default, or it
        is disabled, deleted, not finalized, or its key store cannot sign). `TypeError` when
        `names` is a single string.
        """
        if time.monotonic() >= self._next_poll:
            self._refresh()
        current = self._current
        if current is None:
            raise self._refuse(LeafRefused("no_default_ca", self._reason))
        template, stats = current
        raw = names if type(names) is tuple else tuple(names)
        fast: FastKey = (template.cache_id, wildcard_ok, raw)
        now = self._clock.now()
        minted = self._cache.get(fast, now)
        if minted is not None:
            next(stats.hits)
            return minted
        return self._miss(template, stats, fast, names, now)

    @property
    def ca_id(self) -> int | None:
        """The CA new leaves are minted with, as last read (None: no usable default)."""
        current = self._current
        return None if current is None else current[0].ca_id

    def close(self) -> None:
        """Stop the background work (the key pool's thread, when the engine made the pool)."""
        if self._own_pool:
            self._pool.close()

    # the slow path ---------------------------------------------------------------------------

    def _miss(
        self, template: LeafTemplate, stats: CaMetrics, fast: FastKey, names: Sequence[Host], now: dt.datetime
    ) -> Minted:
        if isinstance(names, str):
            raise TypeError("mint() takes a sequence of names, not one string")
        try:
            if not names:
                raise LeafRefused("invalid_host", "No host name was given.")
            hosts = normalize_hosts(names, wildcard_ok=fast[1])
            key: Key = (template.cache_id, hosts if len(hosts) == 1 else tuple(sorted(hosts, key=_order)))
            entry = self._cache.lookup(key, now)  # another spelling of names already minted
            if entry is not None:
                next(stats.hits)
                self._cache.alias(entry, fast)
                return entry.minted
            next(stats.misses)
            entry, shared = self._flights.do(key, self._mint, template, stats, key, hosts, fast, now)
            if shared:  # the leader stored it under its own spelling of the names
                self._cache.alias(entry, fast)
            return entry.minted
        except LeafRefused as refused:
            self._refuse(refused)
            raise

    def _mint(
        self,
        template: LeafTemplate,
        stats: CaMetrics,
        key: Key,
        hosts: tuple[Host, ...],
        fast: FastKey,
        now: dt.datetime,
    ) -> Entry:
        """The one mint of a single-flight call: store and return the entry for `key`."""
        entry = self._cache.lookup(key, now)
        if entry is not None:  # a flight for this key finished just before ours began
            return entry
        started = time.perf_counter()
        plan = plan_leaf(hosts, template.ca_path, now=now, profile=template.profile)
        pool_key = self._pool.take()
        try:
            leaf = template.mint(plan, pool_key.spki, pool_key.extensions)
        except KeyStoreError as exc:
            # The proxy passes such connections through (§6.3) instead of failing them; the
            # key store's message already names the error id and never the key.
            raise LeafRefused("no_default_ca", f"The default CA's key could not sign: {exc.message}") from exc
        minted = Minted(template.ca_id, (leaf, *template.served), pool_key.private, plan.not_after)
        entry = Entry(key, minted, template.refresh_at(plan))
        self._cache.put(entry, fast)
        next(stats.minted)
        stats.latency.observe(time.perf_counter() - started)
        return entry

    def _refuse(self, refused: LeafRefused) -> LeafRefused:
        self.metrics.refusals.labels(reason=refused.id).inc()
        return refused

    # the default pointer -----------------------------------------------------------------------

    def _refresh(self) -> None:
        """Re-read the default pointer, and rebuild the template when the CA or its record
        changed. Threads arriving meanwhile wait (milliseconds: one read), then use the result."""
        with self._refresh_lock:
            if time.monotonic() < self._next_poll:
                return  # another thread refreshed while this one waited
            try:
                self._reread()
            finally:
                self._next_poll = time.monotonic() + self._poll

    def _reread(self) -> None:
        try:
            found = read_default(self._ctx)
        except IntercaError as exc:  # database unavailable: keep minting with what we know
            log.warning("the default CA could not be read; minting goes on unchanged: %s", exc.message)
            return
        if found.ca is None:
            self._use(None, found.reason)
            return
        if found.identity == self._identity:
            return
        try:
            template = build_template(self._ctx, self._validator, found.ca)
        except (IntercaError, TypeError, ValueError) as exc:
            text = exc.message if isinstance(exc, IntercaError) else str(exc)
            self._use(None, f"The default certificate {found.ca.id} cannot mint now: {text}")
            return
        self._use(template, "", found.identity)

    def _use(self, template: LeafTemplate | None, reason: str, identity: str = "") -> None:
        previous = self._current[0].ca_id if self._current is not None else None
        if template is None:
            self._current, self._identity, self._reason = None, "", reason
            self._cache.retain("")  # §6.4: a disabled or deleted CA's leaves are dropped
            if previous is not None:
                log.warning("minting stopped: %s", reason)
            return
        self._pool.forbid(template.ca_spki)
        self._current = (template, self.metrics.for_ca(template.ca_id))
        self._identity = identity
        self._cache.retain(template.cache_id)
        log.info("minting with certificate %s (was %s)", template.ca_id, previous)


def _order(host: Host) -> tuple[int, str]:
    # Names of different kinds do not compare; sort DNS names, then IPv4, then IPv6.
    return (0 if isinstance(host, str) else host.version, str(host))
