"""`GET /metrics` (api.md row 27): Prometheus text for any role, never without credentials;
requests counted by route template (never the raw path); the certificate inventory read from
the database at scrape time; an issuing engine's registry reported alongside."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import Api, R


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_need_credentials_and_serve_prometheus_text(api: Api) -> None:
    anon = api.anon.get("/metrics")
    assert anon.status_code == 401 and anon.json()["code"] == "SESSION_NOT_VALID"
    for _ in range(3):
        assert api.admin.get(f"{R}/7").status_code == 404
    assert api.admin.get("/no/such/path/12345").status_code == 404

    resp = api.auditor.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = samples(resp.text)
    route = "/intermediateCaCertificate/{certId}"  # both prefixes are one endpoint
    key = ("interca_http_requests_total", (("method", "GET"), ("route", route), ("status", "404")))
    assert got.get(key) == 3, sorted(k for k in got if k[0] == "interca_http_requests_total")
    unmatched = ("interca_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))
    assert got[unmatched] == 1
    assert "12345" not in resp.text and "/7" not in resp.text  # templates only
    assert got[("interca_http_request_seconds_count", (("route", route),))] == 3
    assert got[("interca_certificates", (("state", "CERT_READY"), ("type", "ZSCALER")))] == 1
    assert got[("interca_default_certificate_id", ())] == 1


def test_metrics_count_new_certificates_and_report_an_attached_engine(api: Api, http_server: Any) -> None:
    api.create("Metrics CA")
    engine = CollectorRegistry()
    Counter("interca_leaves_minted", "Leaves minted.", ["ca_id"], registry=engine).labels("1").inc(5)
    http_server[1].app.state.metrics.attach(engine)
    got = samples(api.admin.get("/metrics").text)
    assert got[("interca_certificates", (("state", "GENERAL_DONE"), ("type", "CUSTOM_SW")))] == 1
    assert got[("interca_leaves_minted_total", (("ca_id", "1"),))] == 5
