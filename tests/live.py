"""A real `interca serve` process on a free loopback port, with a fresh data directory and
ready credentials: what the official SDK and the CLI talk to in the integration tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from interca.app import build_services
from interca.config import load_settings
from interca.domain.principal import Role


@dataclass
class LiveServer:
    """`base` is `http://127.0.0.1:PORT`; `env` runs CLI commands against the same data dir."""

    base: str
    data_dir: Path
    env: dict[str, str]
    username: str
    password: str
    api_key: str
    client_id: str
    client_secret: str
    auditor_id: str
    auditor_secret: str
    log_file: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None

    def bearer(self) -> httpx.Client:
        """An httpx client holding a fresh OAuth2 token of the admin client."""
        token = httpx.post(
            f"{self.base}/oauth2/v1/token",
            data={"grant_type": "client_credentials", "client_id": self.client_id,
                  "client_secret": self.client_secret},
            timeout=30,
        ).json()["access_token"]  # fmt: skip
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=120)

    def start(self) -> None:
        """(Re)start the server process on the same port and data directory."""
        port = self.base.rsplit(":", 1)[1]
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "interca", "serve", "--port", port],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"interca serve exited: {self.log_file.read_text()[-2000:]}")
            try:
                httpx.get(self.base + "/api/v1/authenticatedSession", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("interca serve did not start in 60 s")


def start_live_server(template_data_dir: Path, workdir: Path, port: int, **settings: str) -> LiveServer:
    data = workdir / "data"
    shutil.copytree(template_data_dir, data)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTERCA_", "ZIA_", "ZSCALER_"))}
    env.update({"INTERCA_DATA_DIR": str(data), "INTERCA_RATE_LIMIT_PROFILE": "off"})
    env.update({f"INTERCA_{k.upper()}": v for k, v in settings.items()})
    services = build_services(load_settings(data_dir=data, **settings))
    username = "admin@example.com"
    password = services.auth.add_user(username, Role.ADMIN)
    client_id, secret = services.auth.add_client("sdk", Role.ADMIN)
    auditor_id, auditor_secret = services.auth.add_client("auditor", Role.AUDITOR)
    api_key = services.auth.api_key()
    services.ctx.db.dispose()
    assert secret and auditor_secret
    server = LiveServer(
        f"http://127.0.0.1:{port}", data, env, username, password, api_key, client_id, secret,
        auditor_id, auditor_secret, workdir / "server.log",
    )  # fmt: skip
    server.start()
    return server


def live_server_fixture(
    template_data_dir: Path, workdir: Path, port: int, **settings: str
) -> Iterator[LiveServer]:
    server = start_live_server(template_data_dir, workdir, port, **settings)
    try:
        yield server
    finally:
        server.stop()
