"""`interca audit list|verify`: read the audit log and check its hash chain, on the database
directly (so a verifier needs no API credentials, only access to the database)."""

from __future__ import annotations

import datetime as dt

import typer
from rich.markup import escape
from rich.table import Table

from interca.cli.output import console, fail

audit_app = typer.Typer(help="The audit log: who did what, hash-chained.", no_args_is_help=True)


@audit_app.command("list")
def audit_list(
    action: str = typer.Option(None, help="Only this action (e.g. upload_cert, login_failed)."),
    cert_id: int = typer.Option(None, "--cert-id", help="Only entries about this certificate."),
    actor: str = typer.Option(None, help="Only this actor (exact)."),
    since: int = typer.Option(None, help="Epoch seconds, inclusive."),
    until: int = typer.Option(None, help="Epoch seconds, inclusive."),
    page: int = typer.Option(1, min=1),
    page_size: int = typer.Option(100, min=1, max=1000),
) -> None:
    """List audit entries, oldest first."""
    from interca.cli.admin import _services
    from interca.storage.audit import AuditQuery

    def at(epoch: int | None) -> dt.datetime | None:
        return dt.datetime.fromtimestamp(epoch, dt.UTC) if epoch is not None else None

    query = AuditQuery(at(since), at(until), action, cert_id, actor)
    entries = _services().audit.query(query, page, page_size)
    table = Table("id", "time (UTC)", "actor", "type", "source", "action", "cert", "outcome", "detail")
    for e in entries:
        table.add_row(
            str(e.id), f"{e.time:%Y-%m-%d %H:%M:%S}", escape(e.actor), e.actor_type, e.source_address or "",
            e.action, str(e.cert_id or ""), e.outcome, escape(e.detail),
        )  # fmt: skip
    console.print(table)


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the hash chain; exit 1 if any entry was changed, removed or reordered."""
    from interca.cli.admin import _services

    count, problem = _services().audit.verify()
    if problem:
        fail(f"The audit log is broken: {problem}.")
    console.print(f"The audit log is intact: {count} entries verified.")
