"""Commands that act on the data directory and database directly: serve, init, db, users,
clients, apikey. They get their services from the composition root."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import typer

from interca.cli import serving
from interca.cli.output import console, fail, refusals
from interca.domain.principal import Role

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="Admin users (legacy login).", no_args_is_help=True)
clients_app = typer.Typer(help="OAuth2 clients (API access, the CLI's 'ca' commands).", no_args_is_help=True)
apikey_app = typer.Typer(help="The organisation API key used by legacy logins.", no_args_is_help=True)


def _settings():  # type: ignore[no-untyped-def]
    from interca.config import load_settings

    return load_settings()


def _services():  # type: ignore[no-untyped-def]
    from interca.app import prepare

    with refusals():
        return prepare(_settings())


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        fail("--role must be admin or auditor.")


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    tls_cert: Path = typer.Option(
        None, "--tls-cert", help="Serve HTTPS with this PEM certificate (its chain after it, leaf first)."
    ),
    tls_key: Path = typer.Option(
        None, "--tls-key", help="The TLS certificate's private key (unencrypted PEM)."
    ),
    pki_listen: str = typer.Option(
        None,
        "--pki-listen",
        help="With --tls-cert: HOST:PORT of the plain-HTTP listener that answers /pki/* only "
        f"(default {serving.DEFAULT_PKI_LISTEN}).",
    ),
) -> None:
    """Run the API server (applies migrations and first-start set-up first). With --tls-cert and
    --tls-key it serves HTTPS, and a plain-HTTP listener for /pki/* (CRLs, CA certificates);
    pki_base_url must then be set."""
    import uvicorn

    from interca.app import create_app, create_pki_app

    settings = _settings()
    tls = serving.tls_files(tls_cert, tls_key)
    pki_address = None
    if tls is not None:
        pki_address = serving.listen_address(pki_listen or serving.DEFAULT_PKI_LISTEN, "--pki-listen")
        serving.check_pki_base_url(settings)
    elif pki_listen is not None:
        fail("--pki-listen goes with --tls-cert: over plain HTTP the API listener serves /pki/* itself.")
    services = _services()
    # interca's own request log carries each response's X-Transaction-Id, so uvicorn's is off.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings, services)
    common: dict[str, Any] = {"log_level": "info", "access_log": False, "server_header": False}
    if tls is None or pki_address is None:
        console.print(f"interca listening on http://{host}:{port} (data: {settings.data_dir})")
        uvicorn.run(app, host=host, port=port, **common)
        return
    config = uvicorn.Config(app, host=host, port=port, ssl_certfile=tls[0], ssl_keyfile=tls[1], **common)
    pki_host, pki_port = pki_address
    pki_config = uvicorn.Config(create_pki_app(app), host=pki_host, port=pki_port, lifespan="off", **common)
    banner = (
        f"interca listening on https://{host}:{port}, /pki/* also on http://{pki_host}:{pki_port} "
        f"(data: {settings.data_dir})"
    )
    if not serving.run_with_pki_listener(config, pki_config, banner):
        raise typer.Exit(1)


def init(
    admin: str = typer.Option(None, help="Create this first admin user when there is no user yet."),
) -> None:
    """Initialise the data directory and database (idempotent) and print how to log in."""
    from interca.storage.principals import UserRepository

    services = _services()
    settings = _settings()
    console.print(f"Data directory: {settings.data_dir}")
    _print_attestation_root(settings.data_dir)
    with services.ctx.db.read() as s:
        has_users = UserRepository(s).count() > 0
    if admin and not has_users:
        with refusals():
            password = services.auth.add_user(admin, Role.ADMIN)
            client_id, secret = services.auth.add_client("first admin client", Role.ADMIN)
        console.print("[bold]First admin created. These secrets are shown once; store them now.[/bold]")
        console.print(
            f"  Legacy login: username [cyan]{admin}[/cyan]  password [cyan]{password}[/cyan]", soft_wrap=True
        )
        console.print(f"  Org API key:  [cyan]{services.auth.api_key()}[/cyan]  (interca apikey show)")
        console.print(
            f"  OAuth client: INTERCA_CLIENT_ID=[cyan]{client_id}[/cyan] "
            f"INTERCA_CLIENT_SECRET=[cyan]{secret}[/cyan]",
            soft_wrap=True,
        )
    elif has_users:
        console.print("Users exist already; log in with yours ('interca users add' makes another).")
    else:
        console.print("No user yet: create one with 'interca users add EMAIL --role admin'.")


def _print_attestation_root(data_dir: Path) -> None:
    """hsm.md §8.2: print the emulated manufacturer root's fingerprint, the one to pin."""
    from cryptography import x509

    from interca.domain.attestation.statement import fingerprint
    from interca.keystore.attestor import root_path

    path = root_path(data_dir)
    if path.exists():
        digest = fingerprint(x509.load_pem_x509_certificate(path.read_bytes())).hex()
        console.print(f"Emulated HSM attestation root (not hardware-backed): {path}", soft_wrap=True)
        console.print(f"  SHA-256 {digest}  (customers pin this to verify key attestations)", soft_wrap=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations."""
    _services()
    console.print("Database schema is current.")


@users_app.command("add")
def users_add(
    username: str,
    role: str = typer.Option("admin", help="admin or auditor."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input."
    ),
) -> None:
    """Add an admin-portal user; prints a generated password unless one comes on stdin."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    services = _services()
    with refusals():
        made = services.auth.add_user(username, _role(role), password)
    console.print(f"User {username.lower()} added with role {role}.")
    if not password_stdin:
        console.print(f"Password (shown once): [cyan]{made}[/cyan]")


@clients_app.command("add")
def clients_add(
    name: str,
    role: str = typer.Option("admin", help="admin or auditor."),
    public_key: Path = typer.Option(
        None, "--public-key", help="RSA public key PEM: authenticate with signed JWTs."
    ),
    as_json: bool = typer.Option(False, "--json", help='Print {"clientId","clientSecret"} as JSON.'),
) -> None:
    """Register an OAuth2 client and print its id and secret (the secret is shown once)."""
    key_pem = None
    if public_key is not None:
        try:
            key_pem = public_key.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"Cannot read --public-key {public_key}: {getattr(exc, 'strerror', None) or exc}.")
    services = _services()
    with refusals():
        client_id, secret = services.auth.add_client(name, _role(role), key_pem)
    if as_json:
        print(
            json.dumps({"clientId": client_id, "clientSecret": secret} if secret else {"clientId": client_id})
        )
    else:
        console.print(f"Client [cyan]{client_id}[/cyan] added with role {role}.")
        if secret:
            console.print(f"Secret (shown once): [cyan]{secret}[/cyan]")


@apikey_app.command("show")
def apikey_show() -> None:
    """Print the org API key."""
    with refusals():
        print(_services().auth.api_key())


@apikey_app.command("rotate")
def apikey_rotate() -> None:
    """Replace the org API key; every session opened with the old key ends."""
    with refusals():
        key = _services().auth.rotate_api_key()
    console.print("API key rotated; sessions opened with the old key have ended.")
    print(key)
