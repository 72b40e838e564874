"""What `interca proxy` and `interca edge` need from the issuing engine, and nothing more.

- `Minter` / `Minted`: the engine's `mint()` as the edges call it (`interca.issuance.Engine`
  implements it; tests may plug in any object of this shape).
- `names_for`: the names a connection is minted for (certificates.md §6.3).
- `Outcomes`, `serve_metrics`: handshakes counted by outcome on the engine's metrics registry,
  served on `--metrics-listen` (§6.4).
- `open_engine`: the engine over the database and key stores that the settings name, built
  through the composition root. Neither edge ever caches a leaf itself: the engine's cache is
  keyed by the signing CA, and a default switch reaches it within `default_poll_seconds`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from prometheus_client import CollectorRegistry, Counter, start_http_server

from interca.domain.x509.hostnames import HostName
from interca.domain.x509.leaf_refusal import LeafRefused

if TYPE_CHECKING:
    from interca.config import Settings

REFUSALS = ("invalid_host", "outside_name_constraints", "ca_not_valid", "no_default_ca")
"""The engine outcomes that pass a connection through (proxy) or close it (edge), §6.3."""


class Minted(Protocol):
    """One minted leaf: `chain` is DER, leaf first, then the intermediate and the CAs above it,
    never the root (§6.4); `key` is the leaf's private key, which exists only in memory."""

    @property
    def ca_id(self) -> int: ...

    @property
    def chain(self) -> tuple[bytes, ...]: ...

    @property
    def key(self) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey: ...

    @property
    def not_after(self) -> dt.datetime: ...


class Minter(Protocol):
    """Mints (or serves from its cache) a leaf for `names` under the current default CA.

    Thread-safe: the edges call it from worker threads. Raises `LeafRefused` with id
    `invalid_host`, `outside_name_constraints`, `ca_not_valid` or `no_default_ca`; anything else
    it raises is a fault, and the edges close that connection rather than pass it through.
    """

    def mint(self, names: Sequence[HostName], *, wildcard_ok: bool = False) -> Minted: ...


def names_for(sni: str | None, destination: str | None) -> list[HostName]:
    """The names to mint for: the SNI as the client sent it (the engine normalises and checks it),
    else the destination: an IP literal becomes an address (iPAddress SAN); through an HTTP proxy
    the destination is the CONNECT host, which may be a name. Raises `LeafRefused("invalid_host")`
    when there is neither."""
    if sni:
        return [sni]
    if destination:
        try:
            return [ipaddress.ip_address(destination.strip("[]"))]
        except ValueError:
            return [destination]
    raise LeafRefused("invalid_host", "The connection names no host: no SNI and no destination address.")


def shown(names: Sequence[HostName]) -> str:
    """`names` for a log line: escaped (`ascii`) and cut short, since an SNI is raw client input."""
    return ascii(", ".join(str(n) for n in names))[1:-1][:300]


class Outcomes:
    """`interca_<edge>_handshakes_total{outcome}`: `minted`, a refusal id (§6.3), or `error` (the
    engine failed and the connection was closed)."""

    OUTCOMES = ("minted", *REFUSALS, "error")

    def __init__(self, registry: CollectorRegistry, edge: str) -> None:
        self._counter = Counter(
            f"interca_{edge}_handshakes",
            f"TLS handshakes seen by interca {edge}, by outcome: minted, a refusal id, or error.",
            ["outcome"],
            registry=registry,
        )
        for outcome in self.OUTCOMES:
            self._counter.labels(outcome)

    def count(self, outcome: str) -> None:
        self._counter.labels(outcome if outcome in self.OUTCOMES else "error").inc()


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> Callable[[], None]:
    """Serve `registry` in the Prometheus text format (api.md row 27) on `host:port` from a daemon
    thread (`--metrics-listen`); returns the function that stops it. Raises `OSError` when the
    address cannot be bound."""
    server, thread = start_http_server(port, host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop


class EngineUnavailable(Exception):
    """The engine cannot run over these settings; `message` says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class OpenEngine:
    """An engine ready for an edge: the minter, the registry its metrics live on, and `close`."""

    minter: Minter
    registry: CollectorRegistry
    close: Callable[[], None]


def open_engine(settings: Settings) -> OpenEngine:
    """The issuing engine over the database and key stores of `settings`, as a separate process
    (`interca proxy`, `interca edge`) runs it.

    Pre: the data directory is initialised (`interca init`, `interca db upgrade` or `serve`).
    Raises: `EngineUnavailable` when the schema is not current or this build has no engine;
    `IntercaError` when the key stores cannot open (e.g. no master key).
    """
    from interca.app import build_services
    from interca.storage import migrate

    services = build_services(settings)
    try:
        if not migrate.is_current(services.ctx.db.engine):
            raise EngineUnavailable(
                f"The database of {settings.data_dir} is not initialised or not current: "
                "run 'interca init' (or 'interca db upgrade') first."
            )
        try:
            from interca.issuance import Engine
        except ImportError as exc:
            raise EngineUnavailable(f"This build has no issuing engine (interca.issuance): {exc}.") from exc
        engine = Engine(services.ctx)
    except BaseException:
        services.ctx.db.dispose()
        raise

    def close() -> None:
        engine.close()
        services.ctx.db.dispose()

    return OpenEngine(engine, engine.metrics.registry, close)
