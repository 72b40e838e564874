"""`interca proxy` and `interca edge`: the TLS-inspection edges, each a process running its own
issuing engine over the data directory and database (certificates.md §6.3-§6.4, §7).

`interca proxy` needs mitmproxy, which cannot share a virtualenv with the test extra: it runs
from `.venv-proxy` (`make proxy`, the `proxy` extra). `interca edge` needs nothing extra.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from interca.cli import serving
from interca.cli.output import console, fail, refusals

if TYPE_CHECKING:
    from interca.config import Settings
    from interca.proxy.minter import OpenEngine, Outcomes

DEFAULT_PROXY_LISTEN = "127.0.0.1:8081"
METRICS_HELP = "Serve this process's metrics there (Prometheus text format); off by default."


def proxy(
    listen: str = typer.Option(
        DEFAULT_PROXY_LISTEN, "--listen", metavar="HOST:PORT", help="Address of the HTTP proxy."
    ),
    metrics_listen: str = typer.Option(None, "--metrics-listen", metavar="HOST:PORT", help=METRICS_HELP),
    upstream_ca: Path = typer.Option(
        None,
        "--upstream-ca",
        metavar="PEM",
        help="PEM file of the CA certificates upstream servers are verified against, instead of "
        "mitmproxy's default bundle (certifi).",
    ),
    host_map: list[str] = typer.Option(
        [],
        "--map",
        metavar="HOST=ADDRESS",
        help="Connect to ADDRESS instead of resolving HOST (also '*.example.test'); "
        "repeatable. For labs and tests.",
    ),
) -> None:
    """Run the inspecting HTTP proxy: TLS through CONNECT gets a leaf minted with the default CA;
    names the engine refuses (invalid, outside name constraints, no usable CA) pass through
    uninspected."""
    if importlib.util.find_spec("mitmproxy") is None:
        fail(
            "interca proxy needs mitmproxy, which lives in its own virtualenv: install interca[proxy] "
            "there, e.g. `make proxy` (builds .venv-proxy and runs the proxy from it)."
        )
    host, port = serving.listen_address(listen, "--listen")
    metrics = serving.listen_address(metrics_listen, "--metrics-listen") if metrics_listen else None
    mapping = _host_map(host_map)
    if upstream_ca is not None:
        try:
            upstream_ca.read_bytes()
        except OSError as exc:
            fail(f"Cannot read --upstream-ca {upstream_ca}: {exc.strerror or exc}.")
    from interca.config import load_settings
    from interca.proxy.run import run_proxy

    settings = load_settings()
    with _engine(settings, metrics, "proxy") as (engine, outcomes):
        run_proxy(
            engine.minter,
            host=host,
            port=port,
            data_dir=settings.data_dir,
            outcomes=outcomes,
            upstream_ca=upstream_ca,
            host_map=mapping,
        )


def edge(
    listen: str = typer.Option(..., "--listen", metavar="HOST:PORT", help="Address of the TLS listener."),
    metrics_listen: str = typer.Option(None, "--metrics-listen", metavar="HOST:PORT", help=METRICS_HELP),
) -> None:
    """Run a TLS listener that serves a minted leaf for any SNI (without SNI: the address the
    client connected to) and answers HTTP with 'OK-MARKER <host>'. Refused names are closed."""
    from interca.config import load_settings
    from interca.proxy.edge import Edge

    host, port = serving.listen_address(listen, "--listen")
    metrics = serving.listen_address(metrics_listen, "--metrics-listen") if metrics_listen else None
    settings = load_settings()
    with _engine(settings, metrics, "edge") as (engine, outcomes):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            server = Edge(engine.minter, host=host, port=port, outcomes=outcomes)
        except OSError as exc:
            fail(f"Cannot listen on {host}:{port} (--listen): {exc.strerror or exc}.")
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: server.stop())
        bound_host, bound_port = server.address
        console.print(f"interca edge listening on {bound_host}:{bound_port} (data: {settings.data_dir})")
        server.serve_forever()


@contextlib.contextmanager
def _engine(
    settings: Settings, metrics: tuple[str, int] | None, edge: str
) -> Iterator[tuple[OpenEngine, Outcomes]]:
    """The engine for `settings`, its metrics served on `metrics` when given; closed on exit."""
    from interca.proxy.minter import EngineUnavailable, Outcomes, open_engine, serve_metrics

    with refusals():
        try:
            engine = open_engine(settings)
        except EngineUnavailable as exc:
            fail(exc.message)
    stop_metrics = None
    try:
        outcomes = Outcomes(engine.registry, edge)
        if metrics is not None:
            try:
                stop_metrics = serve_metrics(engine.registry, *metrics)
            except OSError as exc:
                fail(f"Cannot listen on {metrics[0]}:{metrics[1]} (--metrics-listen): {exc.strerror or exc}.")
        yield engine, outcomes
    finally:
        if stop_metrics is not None:
            stop_metrics()
        engine.close()


def _host_map(values: list[str]) -> dict[str, str]:
    mapping = {}
    for value in values:
        host, sep, address = value.partition("=")
        if not sep or not host or not address:
            fail(f"--map must be HOST=ADDRESS, e.g. good.example.test=127.0.0.1; got {value!r}.")
        mapping[host] = address
    return mapping
