"""The composition root: the only place that picks concrete backends from settings.

`build_services(settings)` wires storage, key stores and services; `create_app(settings)`
puts the HTTP edge on top. Nothing here runs at import time.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from interca.api import audit, certificates, metrics, pki, sessions, upkeep
from interca.api.bodies import UnsupportedMediaType
from interca.api.deps import check_rate_classes
from interca.api.errors import error_response, not_found
from interca.api.middleware import EdgeMiddleware
from interca.api.pki_listener import PkiOnly
from interca.auth.authenticator import Authenticator
from interca.clock import Clock, SystemClock
from interca.config import ENV_PREFIX, Settings
from interca.domain.models import Region
from interca.errors import IntercaError
from interca.keystore.attestor import EmulatedAttestor, ak_token_serial, pins_path, root_path
from interca.keystore.attestor_provisioning import provision_attestation, rotate_root
from interca.keystore.attestor_socket import SocketAttestor
from interca.keystore.base import Attestation, KeyStores
from interca.keystore.master_key import load_master_key
from interca.keystore.pkcs11 import Pkcs11KeyStore
from interca.keystore.pkcs11_token import TokenConfig
from interca.keystore.provisioning import provision_embedded, recorded_serials
from interca.keystore.software import SoftwareKeyStore
from interca.service.audit import AuditLog
from interca.service.context import ServiceContext
from interca.service.registry import Services
from interca.storage import migrate
from interca.storage.db import Database
from interca.storage.locks import Locks

log = logging.getLogger(__name__)
PREFIXES = ("/api/v1", "/zia/api/v1")


def build_services(
    settings: Settings, clock: Clock | None = None, *, create_master_key: bool = False
) -> Services:
    """Open the database and key stores for `settings` (the schema must be current; see
    `interca.storage.migrate`)."""
    clock = clock or SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    master_key = load_master_key(settings.master_key_path, create=create_master_key)
    db = Database.from_url(settings.database_url)
    stores = hsm_stores(settings)
    keystores = KeyStores(SoftwareKeyStore(settings.keys_dir, master_key), stores)
    ctx = ServiceContext(
        db=db,
        locks=Locks(db, clock),
        clock=clock,
        settings=settings,
        keystores=keystores,
        attestation=attestation_for(settings, stores),
    )
    audit = AuditLog(ctx)
    return Services.build(ctx, Authenticator(db, clock, settings, master_key, audit), audit)


def hsm_stores(settings: Settings) -> dict[Region, Pkcs11KeyStore]:
    """One PKCS#11 key store per region with a module (hsm.md §2). Nothing is loaded here: a
    module that cannot load answers 503 `hsm_module_not_loadable` at the first key operation."""
    serials = recorded_serials(settings)
    stores = {}
    for region in Region:
        hs = settings.hsm_region(region.value)
        if hs.module:
            stores[region] = Pkcs11KeyStore.from_settings(
                hs, serials.get(region.value) if hs.embedded else None
            )
    return stores


def attested_tokens(settings: Settings, stores: dict[Region, Pkcs11KeyStore]) -> dict[str, TokenConfig]:
    """The regions the emulated attestor vouches for: those sharing the first region's module
    and configuration (one attestor process, one PKCS#11 initialisation) whose AK certificate
    names the token the region is configured with. A region re-pointed at another token since
    provisioning is not attested (a warning), rather than attested with the wrong device."""
    if not stores or not root_path(settings.data_dir).exists():
        return {}
    first = next(iter(stores.values()))
    tokens = {}
    for region, store in stores.items():
        if (store.module, store.softhsm2_conf) != (first.module, first.softhsm2_conf):
            continue
        vouched = ak_token_serial(settings.data_dir, region.value)
        if vouched is None or (store.token.serial and store.token.serial != vouched):
            log.warning("attestation: region %s's token has no attestation key; not attested", region.value)
            continue
        tokens[region.value] = store.token
    return tokens


def attestation_for(settings: Settings, stores: dict[Region, Pkcs11KeyStore]) -> Attestation | None:
    """Key attestation through the attestor process on `attestor_socket` (hsm.md §8.1). For the
    embedded SoftHSM2 the service starts that process itself on first need."""
    regions = attested_tokens(settings, stores)
    if not regions:
        return None
    embedded = all(settings.hsm_region(r).embedded for r in regions)
    path = settings.attestor_socket_path
    start = (lambda: start_attestor(settings)) if embedded else None
    return Attestation(SocketAttestor(path, start), pins_path(settings.data_dir), frozenset(regions))


def emulated_attestor(settings: Settings, clock: Clock | None = None) -> EmulatedAttestor | None:
    """The attestor itself, for `interca attestor serve` (None when nothing is provisioned)."""
    stores = hsm_stores(settings)
    regions = attested_tokens(settings, stores)
    if not regions:
        return None
    first = stores[Region(next(iter(regions)))]
    clock = clock or SystemClock()
    return EmulatedAttestor(first.module, first.softhsm2_conf, settings.data_dir, regions, clock)


def attestor_command(settings: Settings, *args: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of `interca attestor <args>` for these settings."""
    env = {**os.environ, **settings.as_env()}
    env.pop(ENV_PREFIX + "DATABASE_URL", None)  # the attestor needs no database (nor its password)
    return [sys.executable, "-m", "interca", "attestor", *args], env


def start_attestor(settings: Settings) -> None:
    """Launch the embedded attestor as a child of this process; it exits when this process does."""
    command, env = attestor_command(settings, "serve", "--parent", str(os.getpid()))
    log.info("attestation: starting the embedded attestor on %s", settings.attestor_socket_path)
    subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)  # noqa: S603 (our own interpreter)


def provision_embedded_attestation(
    settings: Settings, clock: Clock | None = None, *, rotate: bool = False
) -> bool:
    """hsm.md §8.2 for the embedded SoftHSM2 regions: True when made now (idempotent), or with
    `rotate` a new manufacturer root for them (`interca attestor rotate-root`). Runs in
    `interca attestor ...`, never in the service: loading the PKCS#11 module fixes the process's
    SoftHSM2 configuration (hsm.md §2). Raises `KeyStoreError`."""
    stores = {
        region: store
        for region, store in hsm_stores(settings).items()
        if settings.hsm_region(region.value).embedded and store.softhsm2_conf
    }
    if not stores:
        return False
    first = next(iter(stores.values()))
    assert first.softhsm2_conf is not None
    make = rotate_root if rotate else provision_attestation
    made = make(
        settings.data_dir,
        first.module,
        Path(first.softhsm2_conf),
        {region.value: store.token for region, store in stores.items()},
        secrets.token_hex(4),
        (clock or SystemClock()).now(),
    )
    return bool(made)


def _provision_attestation_in_child(settings: Settings) -> None:
    """Run `interca attestor provision` (a failure leaves attestation unavailable: a warning)."""
    if not any(settings.hsm_region(r.value).embedded for r in Region):
        return
    command, env = attestor_command(settings, "provision")
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=300)  # noqa: S603
    for line in (result.stdout + result.stderr).splitlines():
        log.info("attestor provision: %s", line)
    if result.returncode != 0:
        log.warning("embedded HSM attestation is not provisioned (exit status %d)", result.returncode)


def prepare(settings: Settings, clock: Clock | None = None) -> Services:
    """Everything `serve` and `init` need before the first request: the master key, the
    embedded HSM's tokens, the current schema, the deployment and its built-in CA (all
    idempotent). Refuses to start when a PIN file exists but others may read it."""
    from interca.service import bootstrap

    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    provision_embedded(settings)
    _provision_attestation_in_child(settings)
    for store in hsm_stores(settings).values():
        store.check_pin_file()
    services = build_services(settings, clock, create_master_key=True)
    migrate.upgrade(services.ctx.db.engine)
    bootstrap.initialise(services.ctx, services.auth)
    return services


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    services = services or build_services(settings)
    app = FastAPI(title="interca", docs_url=None, redoc_url=None, openapi_url=None, lifespan=upkeep.lifespan)
    app.state.services = services
    app.state.metrics = metrics.ApiMetrics(services)
    app.router.redirect_slashes = False
    for prefix in PREFIXES:
        app.include_router(certificates.router, prefix=prefix)
        app.include_router(sessions.router, prefix=prefix)
        app.include_router(audit.router, prefix=prefix)
    app.include_router(sessions.token_router)
    app.include_router(pki.router)
    app.include_router(metrics.router)
    check_rate_classes(app.routes)  # a route without its api.md §4.8 rate class stops the app here

    @app.exception_handler(IntercaError)
    async def _core_error(request: Request, exc: IntercaError) -> Response:
        return error_response(exc)

    @app.exception_handler(UnsupportedMediaType)
    async def _unsupported(request: Request, exc: UnsupportedMediaType) -> Response:
        return Response(status_code=415)

    @app.exception_handler(StarletteHTTPException)
    async def _routing(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            return Response(status_code=405, headers={"Allow": _allowed_methods(app, request)})
        return not_found()

    app.add_middleware(EdgeMiddleware)
    return app


def create_pki_app(app: FastAPI) -> PkiOnly:
    """The app of the plain-HTTP listener beside HTTPS: `app`'s `/pki/*` only (certificates.md §6.4)."""
    return PkiOnly(app)


def _allowed_methods(app: FastAPI, request: Request) -> str:
    """The methods that would route for this path: each is probed as routing itself would."""
    allowed = []
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)
