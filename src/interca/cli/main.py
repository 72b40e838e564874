"""The `interca` command: `ca` talks to a running server; the others act on the data directory."""

from __future__ import annotations

import typer

from interca.cli import admin
from interca.cli.attestor import attestor_app
from interca.cli.audit import audit_app
from interca.cli.ca import ca_app
from interca.cli.lab import lab
from interca.cli.proxy import edge, proxy

app = typer.Typer(
    help="interca: custom intermediate CA certificates for TLS inspection.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # never print secrets held in local variables
)
app.command()(admin.serve)
app.command()(admin.init)
app.command()(proxy)
app.command()(edge)
app.add_typer(admin.db_app, name="db")
app.add_typer(admin.users_app, name="users")
app.add_typer(admin.clients_app, name="clients")
app.add_typer(admin.apikey_app, name="apikey")
app.add_typer(audit_app, name="audit")
app.add_typer(ca_app, name="ca")
app.add_typer(lab, name="lab")
app.add_typer(attestor_app, name="attestor")
