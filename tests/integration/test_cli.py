"""The `interca` command line run as real processes, exactly as an administrator would, against a
real `interca serve` (tests/live.py): the `ca` lifecycle through the server, the commands that act
on the data directory, and `make serve`'s entry (`init` then `serve`)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from tests.conftest import R, free_port
from tests.live import LiveServer
from tests.pki import TestPKI, new_key, openssl_sign_csr

_SCRIPT = Path(sys.executable).with_name("interca")
INTERCA = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "interca"]
SESSION = "/api/v1/authenticatedSession"
TOKEN = "/oauth2/v1/token"

CSR_OPTIONS = [
    "--cn", "Branch Inspection CA", "--org", "Example Org", "--dept", "Security",
    "--city", "Springfield", "--state", "Illinois", "--country", "COUNTRY_US",
]  # fmt: skip


# helpers -----------------------------------------------------------------------------------


def interca(
    *args: str, env: dict[str, str], stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INTERCA, *args], env=env, input=stdin, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def flat(text: str) -> str:
    """Output with Rich's line wrapping undone (terminal width varies)."""
    return " ".join(text.split())


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    assert "Traceback" not in result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 1 with a message on stderr and no traceback; returns the flattened stderr."""
    assert result.returncode == 1, (
        f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.stderr.strip(), "a refusal must say why on stderr"
    return flat(result.stderr)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INTERCA_", "ZIA_", "ZSCALER_"))}
    env.update(extra)
    return env


def ca_env(server: LiveServer, **extra: str) -> dict[str, str]:
    """What an administrator on another machine has: the URL and an OAuth client, no data dir."""
    given = {
        "INTERCA_URL": server.base,
        "INTERCA_CLIENT_ID": server.client_id,
        "INTERCA_CLIENT_SECRET": server.client_secret,
    }
    return clean_env(**{**given, **extra})


def record_id(output: str) -> int:
    match = re.search(r"^\s*id\s+(\d+)\s*$", output, re.M)
    assert match, output
    return int(match.group(1))


def field(output: str, name: str) -> str:
    match = re.search(rf"^\s*{name}\s+(\S+)\s*$", output, re.M)
    assert match, f"{name} not in:\n{output}"
    return match.group(1)


def bearer(base: str, client_id: str, secret: str) -> httpx.Client:
    resp = httpx.post(
        base + TOKEN,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "Bearer"
    return httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {resp.json()['access_token']}"}, timeout=30
    )


def server_record(server: LiveServer, cert_id: int) -> dict[str, Any]:
    with bearer(server.base, server.auditor_id, server.auditor_secret) as api:
        resp = api.get(f"{R}/{cert_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def obfuscate(api_key: str, timestamp: str) -> str:
    """api.md §5.3: key[d] for each digit d of n (the last 6 digits of the ms timestamp), then
    key[d+2] for each digit d of int(n) >> 1 padded to 6 digits."""
    n = timestamp[-6:]
    r = str(int(n) >> 1).zfill(6)
    return "".join(api_key[int(d)] for d in n) + "".join(api_key[int(d) + 2] for d in r)


def test_obfuscation_matches_the_worked_example_of_the_spec() -> None:
    assert obfuscate("abcdefghijklmnop", "1795763068920") == "agijcacfggic"


def legacy_login(base: str, api_key: str, username: str, password: str) -> httpx.Response:
    ts = str(int(time.time() * 1000))
    body = {
        "apiKey": obfuscate(api_key, ts),
        "username": username,
        "password": password,
        "timestamp": int(ts),
    }
    return httpx.post(base + SESSION, json=body, timeout=30)


def session_cookie(resp: httpx.Response) -> str:
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"authType": "ADMIN_LOGIN", "obfuscateApiKey": True}
    match = re.search(r"JSESSIONID=(.*?);", resp.headers["set-cookie"])
    assert match, resp.headers["set-cookie"]
    return match.group(1)


def session_valid(base: str, cookie: str) -> int:
    return httpx.get(base + SESSION, cookies={"JSESSIONID": cookie}, timeout=30).status_code


def create_with_csr(env: dict[str, str], name: str, workdir: Path) -> tuple[int, Path]:
    """`ca create` -> `ca keypair` -> `ca csr --out`; returns the id and the saved CSR."""
    cert_id = record_id(ok(interca("ca", "create", name, "--key-type", "EC_P256", env=env)))
    out = flat(ok(interca("ca", "keypair", str(cert_id), env=env)))
    assert f"Key pair generated for certificate {cert_id}." in out
    assert "-----BEGIN PUBLIC KEY-----" in out
    csr = workdir / f"{cert_id}.pem"
    out = flat(ok(interca("ca", "csr", str(cert_id), *CSR_OPTIONS, "--out", str(csr), env=env)))
    assert f"CSR generated for certificate {cert_id}." in out
    assert x509.load_pem_x509_csr(csr.read_bytes()).is_signature_valid
    return cert_id, csr


# 1. `interca ca` through a running server --------------------------------------------------------


def test_ca_lifecycle_signed_by_the_lab_root(live_server: LiveServer, tmp_path: Path) -> None:
    env = ca_env(live_server)

    # Piped, the list is one tab-separated line per certificate, nothing cut short.
    listed = ok(interca("ca", "list", env=env))
    assert listed.splitlines() == [
        "1\tBuilt-in Intermediate CA Certificate\tZSCALER\tGLOBAL\tENABLED\tTrue\tRSA_2K\tCERT_READY"
    ]

    created = ok(interca("ca", "create", "Branch CA", "--key-type", "EC_P256", env=env))
    cert_id = record_id(created)
    assert cert_id >= 2
    assert re.search(r"^\s*name\s+Branch CA\s*$", created, re.M), created
    assert field(created, "keyType") == "EC_P256"
    assert field(created, "currentState") == "GENERAL_DONE"
    assert field(created, "defaultCertificate") == "False"

    keypair = ok(interca("ca", "keypair", str(cert_id), env=env))
    assert f"Key pair generated for certificate {cert_id}." in flat(keypair)
    public_pem = keypair[keypair.index("-----BEGIN PUBLIC KEY-----") :]
    assert public_pem.strip() == server_record(live_server, cert_id)["publicKey"].strip()

    out = flat(
        ok(interca("ca", "csr", str(cert_id), *CSR_OPTIONS, "--out", "csr.pem", env=env, cwd=tmp_path))
    )
    assert f"CSR generated for certificate {cert_id}. Saved to csr.pem." in out
    out = flat(ok(interca("ca", "download-csr", str(cert_id), "--out", "x.csr", env=env, cwd=tmp_path)))
    assert "Saved x.csr." in out
    assert (tmp_path / "x.csr").read_bytes() == (tmp_path / "csr.pem").read_bytes()
    csr = x509.load_pem_x509_csr((tmp_path / "csr.pem").read_bytes())
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == (
        "CN=Branch Inspection CA,OU=Security,O=Example Org,L=Springfield,ST=Illinois,C=US"
    )
    assert server_record(live_server, cert_id)["currentState"] == "CSRGEN_DONE"

    # The lab helper plays the organisation's root.
    out = flat(ok(interca("lab", "init-root", "lab", env=clean_env(), cwd=tmp_path)))
    assert "Lab root created" in out
    out = flat(
        ok(interca("lab", "sign-csr", "lab", "csr.pem", "--out", "cert.pem", env=clean_env(), cwd=tmp_path))
    )
    assert "Signed (lab helper): CN=Branch Inspection CA" in out
    cert = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    assert cert.public_key().public_numbers() == csr.public_key().public_numbers()

    out = flat(ok(interca("ca", "upload-cert", str(cert_id), "cert.pem", env=env, cwd=tmp_path)))
    assert f"Certificate {cert_id} is now INTCERT_UPLOAD_DONE." in out
    out = flat(ok(interca("ca", "upload-chain", str(cert_id), str(tmp_path / "lab" / "root.pem"), env=env)))
    assert f"Certificate {cert_id} is now CERTCHAIN_UPLOAD_DONE." in out
    out = flat(ok(interca("ca", "finalize", str(cert_id), env=env)))
    assert f"Certificate {cert_id} is now CERT_READY." in out
    out = flat(ok(interca("ca", "make-default", str(cert_id), env=env)))
    assert f"Certificate {cert_id} is now the default." in out

    shown = ok(interca("ca", "show", str(cert_id), env=env))
    assert record_id(shown) == cert_id
    assert field(shown, "defaultCertificate") == "True"
    assert field(shown, "currentState") == "CERT_READY"
    assert field(shown, "uploadedCertFileName") == "cert.pem"
    assert field(shown, "uploadedCertChainFileName") == "root.pem"
    record = server_record(live_server, cert_id)
    assert record["defaultCertificate"] is True and record["currentState"] == "CERT_READY"
    assert server_record(live_server, 1)["defaultCertificate"] is False

    # CERT_READY is final: the server's refusal reaches the administrator, and nothing changes.
    msg = refused(interca("ca", "update", str(cert_id), "--description", "changed", env=env))
    assert "Operation update is not allowed in state CERT_READY: the certificate is finalized." in msg
    assert "INVALID_INPUT_ARGUMENT" in msg
    assert "description" not in server_record(live_server, cert_id)

    # The default cannot be deleted; another certificate can, once confirmed.
    msg = refused(interca("ca", "delete", str(cert_id), "--yes", env=env))
    assert "The default certificate cannot be deleted; make another certificate default first." in msg
    spare = record_id(ok(interca("ca", "create", "Spare CA", env=env)))
    out = flat(ok(interca("ca", "delete", str(spare), "--yes", env=env)))
    assert f"Certificate {spare} deleted." in out
    ids = [
        row["id"]
        for row in bearer(live_server.base, live_server.client_id, live_server.client_secret).get(R).json()
    ]
    assert ids == [1, cert_id]


def test_ca_refusals_then_a_csr_signed_with_openssl(
    live_server: LiveServer, pki: TestPKI, tmp_path: Path
) -> None:
    # Credentials given wrong: exit 1, a clear message, no secret echoed.
    wrong_secret = "Wr0ngSecretValueThatMustNotBeEchoed"
    for bad in (
        ca_env(live_server, INTERCA_CLIENT_SECRET=wrong_secret),
        ca_env(live_server, INTERCA_CLIENT_ID="no-such-client", INTERCA_CLIENT_SECRET=wrong_secret),
    ):
        result = interca("ca", "list", env=bad)
        msg = refused(result)
        assert "Client authentication failed." in msg and "invalid_client" in msg, msg
        assert wrong_secret not in result.stdout + result.stderr
        assert live_server.client_secret not in result.stdout + result.stderr
    missing = ca_env(live_server)
    del missing["INTERCA_CLIENT_SECRET"]
    assert "Set INTERCA_CLIENT_ID and INTERCA_CLIENT_SECRET" in refused(interca("ca", "list", env=missing))

    env = ca_env(live_server)
    cert_id, saved_csr = create_with_csr(env, "OpenSSL CA", tmp_path)

    # A certificate for another key: refused, with the finding's id in front, and nothing stored.
    other = pki.sign_ca(new_key("ec").public_key(), subject="CN=Branch Inspection CA")
    (tmp_path / "other.pem").write_bytes(pki.pem(other))
    msg = refused(interca("ca", "upload-cert", str(cert_id), "other.pem", env=env, cwd=tmp_path))
    assert "[public_key_mismatch]" in msg
    assert "The certificate's public key does not match the key pair generated for this certificate." in msg
    record = server_record(live_server, cert_id)
    assert record["currentState"] == "CSRGEN_DONE"
    assert "uploadedCertFileName" not in record

    # The downloaded CSR signed by the organisation's root with the openssl command line.
    ok(interca("ca", "download-csr", str(cert_id), env=env, cwd=tmp_path))  # under the server's file name
    downloaded = tmp_path / "intermediate.csr"
    assert downloaded.read_bytes() == saved_csr.read_bytes()
    cert_pem = openssl_sign_csr(
        downloaded.read_bytes(), pki.root.cert_pem, pki.root.key_pem, tmp_path / "ossl"
    )
    (tmp_path / "signed.pem").write_bytes(cert_pem)
    (tmp_path / "chain.pem").write_bytes(pki.root.cert_pem)

    # The dry-run validator: exit 1 with the finding for the wrong certificate, 0 for the signed one.
    bad = interca("ca", "validate", str(cert_id), "other.pem", env=env, cwd=tmp_path)
    assert bad.returncode == 1 and "public_key_mismatch" in flat(bad.stdout) and "Not valid." in bad.stdout
    good = flat(
        ok(
            interca(
                "ca", "validate", str(cert_id), "signed.pem", "--chain", "chain.pem", env=env, cwd=tmp_path
            )
        )
    )
    assert "Valid." in good and "crl_url_loopback" in good  # the self-test's warning, shown as a table
    assert server_record(live_server, cert_id)["currentState"] == "CSRGEN_DONE"  # nothing changed

    out = flat(ok(interca("ca", "upload-cert", str(cert_id), "signed.pem", env=env, cwd=tmp_path)))
    assert f"Certificate {cert_id} is now INTCERT_UPLOAD_DONE." in out
    assert "root_unknown" in out  # the validator's view of what is stored, printed after the upload
    out = flat(ok(interca("ca", "upload-chain", str(cert_id), "chain.pem", env=env, cwd=tmp_path)))
    assert f"Certificate {cert_id} is now CERTCHAIN_UPLOAD_DONE." in out
    out = flat(ok(interca("ca", "finalize", str(cert_id), env=env)))
    assert f"Certificate {cert_id} is now CERT_READY." in out
    record = server_record(live_server, cert_id)
    assert record["currentState"] == "CERT_READY"
    assert record["uploadedCertFileName"] == "signed.pem"
    not_after = x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc
    assert record["certExpDate"] == int(not_after.timestamp())


def test_ca_with_the_server_down_says_so_without_a_traceback() -> None:
    secret = "S3cretOfAClientThatMustNotBeEchoed"
    env = clean_env(INTERCA_CLIENT_ID="interca-0123456789abcdef", INTERCA_CLIENT_SECRET=secret)
    result = interca("ca", "--url", f"http://127.0.0.1:{free_port()}", "list", env=env)
    msg = refused(result)
    assert re.search(r"connect|reach|refused|unavailable|not running", msg, re.I), msg
    assert secret not in result.stdout + result.stderr


# 3. commands on the data directory ------------------------------------------------------------------


def test_users_clients_and_api_key_rotation(live_server: LiveServer) -> None:
    env = live_server.env  # the running server's own data directory, as an operator on its host has

    out = ok(interca("users", "add", "Bob@Example.com", "--role", "admin", env=env))
    assert "User bob@example.com added with role admin." in flat(out)
    match = re.search(r"Password \(shown once\): (\S+)", out)
    assert match, out
    bob_password = match.group(1)
    assert len(bob_password) >= 12

    carol_password = "correct horse battery staple"
    out = ok(
        interca("users", "add", "carol@example.com", "--password-stdin", env=env, stdin=carol_password + "\n")
    )
    assert "User carol@example.com added with role admin." in flat(out)
    assert carol_password not in out
    msg = refused(interca("users", "add", "dave@example.com", "--password-stdin", env=env, stdin="short\n"))
    assert "at least 12 characters" in msg

    out = ok(interca("clients", "add", "ci", "--role", "admin", "--json", env=env))
    made = json.loads(out)
    assert set(made) == {"clientId", "clientSecret"}
    with bearer(live_server.base, made["clientId"], made["clientSecret"]) as api:
        assert api.get(R).status_code == 200
        assert api.get(SESSION).json() == {"authType": "OAUTH2_CLIENT"}

    old_key = ok(interca("apikey", "show", env=env)).strip()
    assert re.fullmatch(r"[A-Za-z0-9]{12,}", old_key), old_key
    assert old_key == live_server.api_key

    bob = session_cookie(legacy_login(live_server.base, old_key, "bob@example.com", bob_password))
    carol = session_cookie(legacy_login(live_server.base, old_key, "carol@example.com", carol_password))
    assert session_valid(live_server.base, bob) == 200
    assert session_valid(live_server.base, carol) == 200
    no_user = legacy_login(live_server.base, old_key, "dave@example.com", "short")
    assert no_user.status_code == 400 and no_user.json()["code"] == "INVALID_USERNAME_OR_PASSWORD"

    out = ok(interca("apikey", "rotate", env=env))
    new_key = out.strip().splitlines()[-1].strip()
    assert re.fullmatch(r"[A-Za-z0-9]{12,}", new_key), out
    assert new_key != old_key

    assert session_valid(live_server.base, bob) == 401
    assert session_valid(live_server.base, carol) == 401
    stale = legacy_login(live_server.base, old_key, "bob@example.com", bob_password)
    assert stale.status_code == 400, stale.text
    assert (
        session_valid(
            live_server.base,
            session_cookie(legacy_login(live_server.base, new_key, "bob@example.com", bob_password)),
        )
        == 200
    )


def _db_snapshot(data_dir: Path) -> dict[str, Any]:
    with sqlite3.connect(f"file:{data_dir / 'interca.db'}?mode=ro", uri=True) as db:
        return {
            "schema": db.execute("SELECT version_num FROM alembic_version").fetchall(),
            "tables": db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"
            ).fetchall(),
            "deployment": db.execute("SELECT * FROM deployment").fetchall(),  # the sealed API key too
            "users": db.execute("SELECT username FROM users").fetchall(),
            "clients": db.execute("SELECT client_id FROM oauth_clients").fetchall(),
            "certificates": db.execute("SELECT id, name FROM certificates").fetchall(),
        }


# 3 and 5. `make serve`'s entry: `init --admin` on a fresh data dir, then `serve` --------------------


def test_init_twice_db_upgrade_then_serve_as_make_serve_does(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = clean_env(INTERCA_DATA_DIR=str(data))

    first = ok(interca("init", "--admin", "admin@example.com", env=env))
    assert "First admin created" in first
    login = re.search(r"username admin@example\.com\s+password (\S{12,})", first)
    client = re.search(r"INTERCA_CLIENT_ID=(\S+) INTERCA_CLIENT_SECRET=(\S+)", first)
    key = re.search(r"Org API key:\s+([A-Za-z0-9]{12,})\s", first)
    assert login and client and key, first
    password, (client_id, secret), api_key = login.group(1), client.groups(), key.group(1)
    # The emulated HSM's manufacturer root, made by the attestor provisioning child, and its pin.
    pinned = (data / "attestation" / "pins.txt").read_text().split("pin ")[1].strip()
    assert f"SHA-256 {pinned}" in flat(first) and "not hardware-backed" in flat(first)
    after_init = _db_snapshot(data)
    assert after_init["users"] == [("admin@example.com",)]
    assert len(after_init["clients"]) == 1 and after_init["certificates"][0][0] == 1

    # A second init (what every `make serve` runs) shows no secret again and adds no admin.
    second = ok(interca("init", "--admin", "other@example.com", env=env))
    assert "First admin created" not in second
    assert "Users exist already" in flat(second)
    for shown_once in (password, secret):
        assert shown_once not in second
    assert _db_snapshot(data) == after_init

    assert "Database schema is current." in ok(interca("db", "upgrade", env=env))
    assert _db_snapshot(data) == after_init

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [*INTERCA, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, log_path.read_text()
                try:
                    httpx.get(base + SESSION, timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "interca serve did not answer in 30 s"
                    time.sleep(0.1)

            with bearer(base, client_id, secret) as api:
                rows = api.get(R)
            assert rows.status_code == 200, rows.text
            assert [(r["id"], r["type"], r["defaultCertificate"]) for r in rows.json()] == [
                (1, "ZSCALER", True)
            ]

            cookie = session_cookie(legacy_login(base, api_key, "admin@example.com", password))
            assert session_valid(base, cookie) == 200
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)
    assert "interca listening on" in log_path.read_text()
