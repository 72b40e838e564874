"""`GET /metrics` (api.md row 27): the API process's metrics in Prometheus text format, for any
role, plus those of any issuing engine running in the process (`ApiMetrics.attach`).

Each app has its own `CollectorRegistry` (never prometheus_client's global one: several apps live
in one test process, and nothing is registered at import). Request metrics are labelled by route
template, never by raw path, so ids and junk URLs cannot blow up the series count.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Depends
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from interca.api.deps import principal, rate_limited
from interca.auth.ratelimit import RateClass
from interca.domain.principal import Principal
from interca.service.registry import Services

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "unmatched"  # requests no route answered (404s of unknown paths, 405s)

router = APIRouter()


class ApiMetrics:
    """The API process's registry: requests by method, route template and status, their
    latency, and the certificate inventory read at scrape time."""

    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "interca_http_requests", "API requests answered.", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "interca_http_request_seconds", "API request latency.", ["route"], registry=self.registry
        )
        self.registry.register(_Inventory(services))
        self._attached: list[CollectorRegistry] = []

    def observe(self, method: str, route: str | None, status: int, seconds: float) -> None:
        template = route or UNMATCHED
        self.requests.labels(method, template, str(status)).inc()
        self.latency.labels(template).observe(seconds)

    def attach(self, registry: CollectorRegistry) -> None:
        """Report `registry` (an issuing engine's) too."""
        self._attached.append(registry)

    def render(self) -> bytes:
        return b"".join(generate_latest(r) for r in (self.registry, *self._attached))


class _Inventory(Collector):
    """Certificates by type and lifecycle state and the default's id, from the database; the
    HSM health check's last results."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        cas = self._services.certificates.list_all(None, 1, 10_000)
        states = GaugeMetricFamily(
            "interca_certificates", "Intermediate CA records by type and state.", labels=["type", "state"]
        )
        counts: dict[tuple[str, str], int] = {}
        for ca in cas:
            key = (ca.type.value, ca.state.name)
            counts[key] = counts.get(key, 0) + 1
        for (ca_type, state), n in sorted(counts.items()):
            states.add_metric([ca_type, state], n)
        yield states
        default = next((ca.id for ca in cas if ca.is_default), 0)
        yield GaugeMetricFamily("interca_default_certificate_id", "The default's id.", value=default)
        healthy = GaugeMetricFamily(
            "interca_hsm_key_healthy",
            "1 when the CA's HSM key signed and verified at the last health check (hsm.md 6.5).",
            labels=["ca_id", "region"],
        )
        checked = GaugeMetricFamily(
            "interca_hsm_key_checked_timestamp_seconds", "When the key was last checked.", labels=["ca_id"]
        )
        for result in self._services.hsm_health.results():
            healthy.add_metric([str(result.ca_id), result.region], 1.0 if result.healthy else 0.0)
            checked.add_metric([str(result.ca_id)], result.checked_at.timestamp())
        yield healthy
        yield checked


@router.get("/metrics", dependencies=[rate_limited(RateClass.READ)])
def metrics(request: Request, caller: Principal = Depends(principal)) -> Response:
    registry: ApiMetrics = request.app.state.metrics
    return Response(registry.render(), media_type=CONTENT_TYPE)
