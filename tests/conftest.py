"""Shared fixtures: settings in temporary directories, a real SQLite database per test (copied
from one initialised template so the built-in CA's RSA keys are made once per session), the
test PKI, and a real HTTP server on a loopback port that serves each test's own app."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from tests.pki import TestPKI
from tests.secret_watch import WATCH
from tests.secret_watch import install as _watch_secrets

from interca.app import build_services, create_app, prepare
from interca.clock import FrozenClock, SystemClock
from interca.config import Settings, load_settings
from interca.domain.principal import Role
from interca.service.registry import Services

R = "/api/v1/intermediateCaCertificate"


def pytest_configure(config: pytest.Config) -> None:
    _watch_secrets()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No log line of the whole run may carry a secret or a private key (issue 4, item 6)."""
    leaked = WATCH.leaked_lines()
    if leaked:
        print("\nSECRETS IN LOG LINES:")
        for line, hits in leaked[:20]:
            print(f"  {hits}: {line}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _no_secret_in_response(response: httpx.Response) -> None:
    """Checked on every response the test clients receive. The token endpoint answers with its
    token and a login sets its session cookie: those are the credentials being handed out."""
    if response.request.url.path == "/oauth2/v1/token":
        return
    response.read()
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items() if k.lower() != "set-cookie")
    leaks = WATCH.leaks(headers + "\n" + response.content.decode("utf-8", "replace"))
    assert not leaks, f"{response.request.method} {response.request.url.path} answered with {leaks}"


ZR = "/zia/api/v1/intermediateCaCertificate"


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set their settings explicitly; a developer's INTERCA_* variables must not leak in."""
    import os

    for name in list(os.environ):
        if name.startswith("INTERCA_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def pki() -> TestPKI:
    return TestPKI()


@dataclass(frozen=True)
class Credentials:
    """What the template deployment was given: an admin and an auditor OAuth client with
    tokens already issued (password hashing is deliberately slow, so it is done once)."""

    admin_id: str
    admin_secret: str
    admin_token: str
    auditor_token: str


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Credentials]:
    """A data directory initialised once: master key, schema, deployment, built-in CA, clients."""
    data = tmp_path_factory.mktemp("template") / "data"
    services = prepare(load_settings(data_dir=data))
    tokens = []
    for role in (Role.ADMIN, Role.AUDITOR):
        client_id, secret = services.auth.add_client(f"test {role.value}", role)
        assert secret is not None
        form = {"grant_type": ["client_credentials"], "client_id": [client_id], "client_secret": [secret]}
        tokens.append((client_id, secret, services.auth.issue_token(form, None).access_token))
    services.ctx.db.dispose()
    (admin_id, admin_secret, admin_token), (_, _, auditor_token) = tokens
    return data, Credentials(admin_id, admin_secret, admin_token, auditor_token)


@pytest.fixture(scope="session")
def template_data_dir(template: tuple[Path, Credentials]) -> Path:
    return template[0]


@pytest.fixture(scope="session")
def credentials(template: tuple[Path, Credentials]) -> Credentials:
    return template[1]


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Test settings: rate limits off unless a test asks for a profile."""
    return load_settings(data_dir=data_dir, **{"rate_limit_profile": "off", **overrides})


@pytest.fixture
def data_dir(template_data_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(template_data_dir, target)
    return target


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return make_settings(data_dir)


@pytest.fixture
def clock() -> SystemClock:
    return SystemClock()


@pytest.fixture
def frozen_clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def services(settings: Settings, clock: SystemClock) -> Iterator[Services]:
    svc = build_services(settings, clock)
    yield svc
    svc.ctx.db.dispose()


class _AppHolder:
    """One uvicorn server for the whole session; each test plugs its own app in."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            return
        await self.app(scope, receive, send)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def http_server() -> Iterator[tuple[str, _AppHolder]]:
    holder = _AppHolder()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(holder, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    yield f"http://127.0.0.1:{port}", holder
    server.should_exit = True
    thread.join(5)


@dataclass
class Api:
    """A test's view of a running server: its base URL, services, and ready credentials."""

    base: str
    services: Services
    admin: httpx.Client  # bearer token of an admin OAuth client
    auditor: httpx.Client
    anon: httpx.Client
    client_id: str
    client_secret: str

    def create(self, name: str = "Branch CA", **fields: Any) -> dict[str, Any]:
        resp = self.admin.post(R, json={"name": name, "type": "CUSTOM_SW", **fields})
        assert resp.status_code == 200, resp.text
        return resp.json()


def _bearer(base: str, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=base,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
        event_hooks={"response": [_no_secret_in_response]},
    )


@pytest.fixture
def api(
    http_server: tuple[str, _AppHolder], settings: Settings, services: Services, credentials: Credentials
) -> Iterator[Api]:
    base, holder = http_server
    holder.app = create_app(settings, services)
    admin = _bearer(base, credentials.admin_token)
    auditor = _bearer(base, credentials.auditor_token)
    anon = httpx.Client(base_url=base, timeout=60, event_hooks={"response": [_no_secret_in_response]})
    yield Api(base, services, admin, auditor, anon, credentials.admin_id, credentials.admin_secret)
    for c in (admin, auditor, anon):
        c.close()
    holder.app = None


@pytest.fixture
def live_server(template_data_dir: Path, tmp_path: Path) -> Iterator[Any]:
    """A real `interca serve` process with a fresh data directory (see tests/live.py)."""
    from tests.live import live_server_fixture

    yield from live_server_fixture(template_data_dir, tmp_path, free_port())


# SoftHSM2 tokens for the PKCS#11 key store tests (hsm.md §3): `softhsm`, `hsm_token`, `fast_backoff`.
pytest_plugins = ["tests.hsm"]
