"""`interca serve --tls-cert --tls-key` as a real process (api.md §1, §5.3, §6 rule 11;
certificates.md §6.4): HTTPS verified against the test root, HSTS and the Secure session cookie,
no plain HTTP on the TLS port, the plain `/pki/*`-only listener beside it, and the refusals to
start. Every TLS check has a negative control: a client trusting another root, a wrong host."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.conftest import R, free_port
from tests.pki import CA, TestPKI, new_key

from interca.app import build_services
from interca.auth.apikey import obfuscate
from interca.config import load_settings
from interca.domain.principal import Role

HSTS = "max-age=31536000"


def server_certificate(issuer: CA, host: str = "127.0.0.1") -> tuple[bytes, bytes]:
    """A TLS server certificate for the IP address `host`, signed by `issuer`: (cert PEM, key PEM)."""
    key = new_key("ec")
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.cert.public_key()), critical=False
        )
        .sign(issuer.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@dataclass
class TlsServer:
    base: str  # https://127.0.0.1:PORT
    pki_base: str  # http://127.0.0.1:PKI_PORT
    root_file: Path
    other_root_file: Path
    username: str
    password: str
    api_key: str
    client_id: str
    client_secret: str

    def client(self, **kwargs: object) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.root_file))
        return httpx.Client(base_url=self.base, verify=context, timeout=30, **kwargs)  # type: ignore[arg-type]


def clean_env(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTERCA_", "ZIA_", "ZSCALER_"))}
    env.update({"INTERCA_DATA_DIR": str(data), "INTERCA_RATE_LIMIT_PROFILE": "off", **extra})
    return env


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory, pki: TestPKI) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert_pem, key_pem = server_certificate(pki.root)
    files = {
        "cert": folder / "server.crt",
        "key": folder / "server.key",
        "root": folder / "root.crt",
        "other_root": folder / "other-root.crt",
    }
    files["cert"].write_bytes(cert_pem)
    files["key"].write_bytes(key_pem)
    files["key"].chmod(0o600)
    files["root"].write_bytes(pki.root.cert_pem)
    files["other_root"].write_bytes(pki.new_root("Another Root CA").cert_pem)
    return files


@pytest.fixture(scope="module")
def tls_server(
    template_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, tls_files: dict[str, Path]
) -> Iterator[TlsServer]:
    workdir = tmp_path_factory.mktemp("tls-server")
    data = workdir / "data"
    shutil.copytree(template_data_dir, data)
    port, pki_port = free_port(), free_port()
    pki_base = f"http://127.0.0.1:{pki_port}"
    services = build_services(load_settings(data_dir=data))
    username = "admin@example.com"
    password = services.auth.add_user(username, Role.ADMIN)
    client_id, secret = services.auth.add_client("tls", Role.ADMIN)
    api_key = services.auth.api_key()
    services.ctx.db.dispose()
    assert secret is not None
    server = TlsServer(
        f"https://127.0.0.1:{port}", pki_base, tls_files["root"], tls_files["other_root"],
        username, password, api_key, client_id, secret,
    )  # fmt: skip
    log_file = workdir / "server.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "interca", "serve", "--port", str(port),
             "--tls-cert", str(tls_files["cert"]), "--tls-key", str(tls_files["key"]),
             "--pki-listen", f"127.0.0.1:{pki_port}"],
            env=clean_env(data, INTERCA_PKI_BASE_URL=pki_base),
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        with server.client() as probe:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"interca serve exited: {log_file.read_text()[-2000:]}")
                try:
                    probe.get("/api/v1/authenticatedSession")
                    httpx.get(pki_base + "/pki/", timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("interca serve did not start in 60 s") from None
                    time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def login_body(server: TlsServer) -> dict[str, object]:
    ts = int(time.time() * 1000)
    return {
        "apiKey": obfuscate(server.api_key, str(ts)),
        "username": server.username,
        "password": server.password,
        "timestamp": ts,
    }


def test_https_carries_hsts_on_every_response(tls_server: TlsServer) -> None:
    with tls_server.client() as c:
        token = c.post(
            "/oauth2/v1/token",
            data={
                "grant_type": "client_credentials",
                "client_id": tls_server.client_id,
                "client_secret": tls_server.client_secret,
            },
        )
        assert token.status_code == 200, token.text
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        for resp in (
            token,
            c.get(R, headers=bearer),  # 200
            c.get(R),  # 401
            c.get("/no/such/path"),  # 404
            c.delete("/oauth2/v1/token"),  # 405
        ):
            assert resp.headers["strict-transport-security"] == HSTS, (resp.status_code, resp.headers)
            assert resp.headers["x-content-type-options"] == "nosniff"
        assert c.get(R, headers=bearer).json()[0]["currentState"]  # the built-in default, over HTTPS


def test_login_cookie_is_secure_over_https(tls_server: TlsServer) -> None:
    with tls_server.client() as c:
        resp = c.post("/api/v1/authenticatedSession", json=login_body(tls_server))
        assert resp.status_code == 200, resp.text
        cookie = resp.headers["set-cookie"]
        assert re.fullmatch(r"JSESSIONID=[0-9A-F]{32}; Path=/; Secure; HttpOnly", cookie), cookie
        session = cookie.split(";")[0].split("=", 1)[1]
        assert resp.headers["strict-transport-security"] == HSTS
    with tls_server.client(cookies={"JSESSIONID": session}) as legacy:
        assert legacy.get("/api/v1/authenticatedSession").json() == {
            "authType": "ADMIN_LOGIN",
            "obfuscateApiKey": True,
        }
        assert legacy.get(R).status_code == 200


def test_plain_http_to_the_tls_port_fails(tls_server: TlsServer) -> None:
    plain = tls_server.base.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(plain + "/api/v1/authenticatedSession", timeout=10)


def test_negative_controls_other_root_and_wrong_host(tls_server: TlsServer) -> None:
    other = ssl.create_default_context(cafile=str(tls_server.other_root_file))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(tls_server.base + "/api/v1/authenticatedSession", verify=other, timeout=10)
    right = ssl.create_default_context(cafile=str(tls_server.root_file))
    localhost = tls_server.base.replace("127.0.0.1", "localhost")  # the certificate names only the IP
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(localhost + "/api/v1/authenticatedSession", verify=right, timeout=10)


def test_plain_pki_listener_answers_pki_only(tls_server: TlsServer) -> None:
    """The plain listener is no plain-HTTP door to the API: everything but /pki/* is 404 before
    any credential is looked at; /pki/* reaches the app (no CA 999999 exists, hence 404)."""
    with httpx.Client(base_url=tls_server.pki_base, timeout=10) as plain:
        not_found = {"code": "RESOURCE_NOT_FOUND", "message": "The requested resource was not found."}
        for method, path in (
            ("GET", "/api/v1/intermediateCaCertificate"),
            ("GET", "/zia/api/v1/authenticatedSession"),
            ("POST", "/api/v1/authenticatedSession"),
            ("POST", "/oauth2/v1/token"),
            ("GET", "/pki"),
            ("GET", "/"),
        ):
            resp = plain.request(method, path)
            assert (resp.status_code, resp.json()) == (404, not_found), (method, path)
            assert "strict-transport-security" not in resp.headers  # plain HTTP
            assert resp.headers["x-content-type-options"] == "nosniff"
        assert plain.get("/pki/crl/999999.crl").status_code == 404
    # The TLS port does not answer plain HTTP, and the PKI port does not answer TLS.
    context = ssl.create_default_context(cafile=str(tls_server.root_file))
    with pytest.raises(httpx.ConnectError):
        httpx.get(tls_server.pki_base.replace("http://", "https://") + "/pki/", verify=context, timeout=10)


# refusals to start ------------------------------------------------------------------------------


def test_serve_refuses_incomplete_or_unusable_tls(
    tmp_path: Path, tls_files: dict[str, Path], pki: TestPKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each refusal comes before the database or a socket is touched (in-process, through
    Typer's runner; reaching the services would be a failure here, not a server start)."""
    from typer.testing import CliRunner

    from interca.cli import admin
    from interca.cli.main import app

    def reached(*_: object) -> None:
        raise AssertionError("serve got past its checks")

    monkeypatch.setattr(admin, "_services", reached)
    cert, key = str(tls_files["cert"]), str(tls_files["key"])
    _, other_key = server_certificate(pki.root)
    (tmp_path / "other.key").write_bytes(other_key)
    (tmp_path / "garbage.crt").write_text("not a certificate\n")
    pki_url = {"INTERCA_PKI_BASE_URL": "http://127.0.0.1:8079"}
    cases = [
        (("--tls-cert", cert), pki_url, "--tls-cert and --tls-key go together"),
        (("--tls-key", key), pki_url, "--tls-cert and --tls-key go together"),
        (("--tls-cert", cert, "--tls-key", str(tmp_path / "absent.key")), pki_url, "Cannot read --tls-key"),
        (("--tls-cert", str(tmp_path), "--tls-key", key), pki_url, "Cannot read --tls-cert"),
        (("--tls-cert", cert, "--tls-key", str(tmp_path / "other.key")), pki_url, "do not load together"),
        (("--tls-cert", str(tmp_path / "garbage.crt"), "--tls-key", key), pki_url, "do not load together"),
        (
            ("--tls-cert", cert, "--tls-key", key, "--pki-listen", "8079"),
            pki_url,
            "--pki-listen must be HOST:PORT",
        ),
        (("--pki-listen", "127.0.0.1:8079"), pki_url, "--pki-listen goes with --tls-cert"),
        # HTTPS without pki_base_url: leaves would name the HTTPS listener for their CRL.
        (("--tls-cert", cert, "--tls-key", key), {}, "needs pki_base_url"),
        (
            ("--tls-cert", cert, "--tls-key", key),
            {"INTERCA_PKI_BASE_URL": "https://pki.example.com"},
            "must be an http:// URL",
        ),
    ]
    runner = CliRunner()
    for args, env, message in cases:
        result = runner.invoke(app, ["serve", *args], env={"INTERCA_DATA_DIR": str(tmp_path / "data"), **env})
        assert result.exit_code == 1, (args, result.output, result.exception)
        assert message in " ".join(result.stderr.split()), (args, result.stderr)
    assert not (tmp_path / "data").exists()  # nothing was initialised
