"""The engine's metrics (prometheus_client), in a registry of its own per engine: leaves minted,
cache hits and misses and mint latency per CA (label `ca_id`), key-pool depth, pool overuse,
refusals by id, cache size.

The per-leaf counters are `itertools.count` objects (one C call, atomic under the GIL) and the
latency histogram is a bisect and one lock, all read when the registry is scraped: a prometheus
`Counter.inc()` takes a lock and costs about as much as the rest of a cache hit, and its
`Histogram.observe()` walks the buckets in Python.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# A leaf takes ~0.1 ms (P-256 CA) to ~1 ms (RSA-2048) in software, ~10 ms or more in an HSM.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


def count_value(counter: itertools.count[int]) -> int:
    """How many times `next` was called on a `count()` started at 0 (its repr is `count(N)`)."""
    return int(repr(counter)[len("count(") : -1])


class Latency:
    """A histogram of mint times (seconds) with `LATENCY_BUCKETS`."""

    def __init__(self) -> None:
        self._counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        slot = bisect.bisect_left(LATENCY_BUCKETS, seconds)  # the first bound >= seconds: `le`
        with self._lock:
            self._counts[slot] += 1
            self._sum += seconds

    def snapshot(self) -> tuple[list[tuple[str, float]], float]:
        """(cumulative buckets as prometheus writes them, sum)."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        bounds = [*(repr(float(b)) for b in LATENCY_BUCKETS), "+Inf"]
        return list(zip(bounds, itertools.accumulate(counts), strict=True)), total


@dataclass
class CaMetrics:
    """The per-CA figures, bound once per CA so the hot path never looks labels up: `next()`
    on a counter counts one."""

    ca_id: str
    latency: Latency = field(default_factory=Latency)
    hits: itertools.count[int] = field(default_factory=itertools.count)
    misses: itertools.count[int] = field(default_factory=itertools.count)
    minted: itertools.count[int] = field(default_factory=itertools.count)


class EngineMetrics:
    """Metrics of one engine. `registry` is its own `CollectorRegistry` (never the global one),
    so several engines in a process (tests, benchmarks) do not collide.

    Names: `interca_leaves_minted_total`, `interca_leaf_cache_hits_total`,
    `interca_leaf_cache_misses_total`, `interca_leaf_mint_seconds` (all with `ca_id`),
    `interca_leaf_key_pool_depth`, `interca_leaf_key_pool_overuse_total`,
    `interca_leaf_refusals_total` (`reason`), `interca_leaf_cache_entries`.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.refusals = Counter(
            "interca_leaf_refusals",
            "Mint requests refused, by refusal id",
            ["reason"],
            registry=self.registry,
        )
        self._pool_depth = Gauge(
            "interca_leaf_key_pool_depth", "Usable leaf keys in the pool", registry=self.registry
        )
        self._cache_entries = Gauge(
            "interca_leaf_cache_entries", "Leaves held in the cache", registry=self.registry
        )
        self._lock = threading.Lock()
        self._per_ca: dict[str, CaMetrics] = {}
        self._overuse: Callable[[], int] = lambda: 0
        self.registry.register(_Derived(self))

    def for_ca(self, ca_id: int) -> CaMetrics:
        """The bound children of `ca_id` (made on first use, then the same object)."""
        label = str(ca_id)
        with self._lock:
            found = self._per_ca.get(label)
            if found is None:
                found = self._per_ca[label] = CaMetrics(label)
            return found

    def watch(
        self, pool_depth: Callable[[], int], pool_overuse: Callable[[], int], cache_size: Callable[[], int]
    ) -> None:
        """Read the pool and cache figures at scrape time (nothing on the hot path)."""
        self._pool_depth.set_function(lambda: float(pool_depth()))
        self._cache_entries.set_function(lambda: float(cache_size()))
        self._overuse = pool_overuse

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0 when absent): for tests, benchmarks and status pages."""
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def _derived(self) -> Iterator[Metric]:
        with self._lock:
            per_ca = list(self._per_ca.values())
        for name, text, attribute in _PER_CA_COUNTERS:
            family = CounterMetricFamily(name, text, labels=["ca_id"])
            for ca in per_ca:
                family.add_metric([ca.ca_id], count_value(getattr(ca, attribute)))
            yield family
        latency = HistogramMetricFamily(
            "interca_leaf_mint_seconds",
            "Time to mint one leaf on a cache miss (plan, encode, sign)",
            labels=["ca_id"],
        )
        for ca in per_ca:
            buckets, total = ca.latency.snapshot()
            latency.add_metric([ca.ca_id], buckets, total)
        yield latency
        overuse = CounterMetricFamily(
            "interca_leaf_key_pool_overuse",
            "Leaves minted with an RSA pool key past its age because no fresh key was ready",
        )
        overuse.add_metric([], self._overuse())
        yield overuse


_PER_CA_COUNTERS = (
    ("interca_leaves_minted", "Leaves minted and signed", "minted"),
    ("interca_leaf_cache_hits", "Mint requests answered from the leaf cache", "hits"),
    (
        "interca_leaf_cache_misses",
        "Mint requests the leaf cache could not answer (each waits for or makes a new leaf)",
        "misses",
    ),
)


class _Derived(Collector):
    def __init__(self, metrics: EngineMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics._derived()
