"""`interca ca ...`: the certificate lifecycle through a running server (`interca.client`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from interca.cli.attestation import verify_attestation
from interca.cli.output import console, refusals
from interca.client import IntercaClient

ca_app = typer.Typer(
    help="Intermediate CA certificates, through a running interca server.", no_args_is_help=True
)
_state: dict[str, Any] = {}

_COLUMNS = ("id", "name", "type", "region", "status", "defaultCertificate", "keyType", "currentState")


@ca_app.callback()
def _options(
    url: str = typer.Option(None, envvar="INTERCA_URL", help="Server URL (default http://127.0.0.1:8080)."),
) -> None:
    _state["url"] = url


def _client() -> IntercaClient:
    with refusals():
        return IntercaClient.from_env(_state.get("url"))


def _print_record(record: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None)
    for key, value in record.items():
        table.add_row(f"[bold]{key}[/bold]", str(value).rstrip())
    console.print(table)


@ca_app.command("list")
def list_(search: str = typer.Option(None, help="Keep names containing this text.")) -> None:
    """List certificates."""
    with refusals(), _client() as c:
        rows = c.list(search=search)
    if not console.is_terminal:  # piped: one tab-separated line per certificate, nothing cut short
        for row in rows:
            print("\t".join(str(row.get(col, "")) for col in _COLUMNS))
        return
    table = Table(*_COLUMNS)
    for row in rows:
        table.add_row(*(str(row.get(col, "")) for col in _COLUMNS))
    console.print(table)


@ca_app.command()
def show(cert_id: int) -> None:
    """Show one certificate record."""
    with refusals(), _client() as c:
        _print_record(c.get(cert_id))


@ca_app.command()
def create(
    name: str,
    type_: str = typer.Option("CUSTOM_SW", "--type", help="CUSTOM_SW or CUSTOM_HSM."),
    region: str = typer.Option("GLOBAL", help="GLOBAL, ASIA, EUROPE or US (HSM keys)."),
    key_type: str = typer.Option("RSA_2K", help="RSA_2K, RSA_3K, RSA_4K, EC_P256 or EC_P384."),
    description: str = typer.Option(None),
    disabled: bool = typer.Option(False, help="Create it DISABLED."),
) -> None:
    """Create a certificate record."""
    fields: dict[str, Any] = {"name": name, "type": type_, "region": region, "keyType": key_type}
    if description:
        fields["description"] = description
    if disabled:
        fields["status"] = "DISABLED"
    with refusals(), _client() as c:
        _print_record(c.create(**fields))


@ca_app.command()
def keypair(cert_id: int) -> None:
    """Generate the certificate's key pair (in its key store)."""
    with refusals(), _client() as c, console.status("Generating the key pair..."):
        result = c.generate_key_pair(cert_id)
    console.print(f"Key pair generated for certificate {cert_id}.")
    console.print(result["publicKey"], end="")


@ca_app.command()
def csr(
    cert_id: int,
    cn: str = typer.Option(..., "--cn", help="Common name."),
    org: str = typer.Option(..., help="Organisation (O)."),
    dept: str = typer.Option(..., help="Department (OU)."),
    city: str = typer.Option(..., help="City (L)."),
    state: str = typer.Option(..., help="State or province (ST)."),
    country: str = typer.Option(..., help="COUNTRY_<ISO code> or NONE."),
    file_name: str = typer.Option("intermediate", help="CSR file name (without .csr)."),
    signature_algorithm: str = typer.Option("SHA256", help="SHA256, SHA384 or SHA512."),
    path_length: int = typer.Option(None, help="pathLenConstraint to request (0 or 1)."),
    out: Path = typer.Option(None, help="Also save the CSR here."),
) -> None:
    """Generate a CSR for the certificate's key."""
    fields: dict[str, Any] = {
        "csrFileName": file_name,
        "commName": cn,
        "orgName": org,
        "deptName": dept,
        "city": city,
        "state": state,
        "country": country,
        "signatureAlgorithm": signature_algorithm,
    }
    if path_length is not None:
        fields["pathLengthConstraint"] = path_length
    with refusals(), _client() as c:
        c.generate_csr(cert_id, **fields)
        if out:
            out.write_bytes(c.download_csr(cert_id).content)
    console.print(f"CSR generated for certificate {cert_id}." + (f" Saved to {out}." if out else ""))


@ca_app.command("download-csr")
def download_csr(
    cert_id: int, out: Path = typer.Option(None, help="File to write (default: the server's name).")
) -> None:
    """Download the CSR."""
    with refusals(), _client() as c:
        file = c.download_csr(cert_id)
    target = out or Path(file.filename)
    target.write_bytes(file.content)
    console.print(f"Saved {target}.")


def _print_findings(findings: list[dict[str, str]]) -> None:
    table = Table("severity", "id", "subject", "message", show_lines=True)
    for f in findings:
        colour = "red" if f["severity"] == "error" else "yellow"
        table.add_row(
            f"[{colour}]{f['severity']}[/{colour}]", f["id"], escape(f["subject"]), escape(f["message"])
        )
    console.print(table)


def _print_state(c: IntercaClient, record: dict[str, Any]) -> None:
    """The new state, then what the validator says of the stored certificate now: the warnings
    kept with it, and any error finalizeCert would refuse on (the self-test's, for example)."""
    console.print(f"Certificate {record['id']} is now {record['currentState']}.")
    findings = c.validate(record["id"])["findings"]
    if findings:
        console.print("Findings (errors must be fixed before finalizeCert; warnings are kept):")
        _print_findings(findings)


@ca_app.command("upload-cert")
def upload_cert(cert_id: int, file: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Upload the certificate the organisation's CA signed."""
    with refusals(), _client() as c:
        _print_state(c, c.upload_cert(cert_id, file))


@ca_app.command("upload-chain")
def upload_chain(cert_id: int, file: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Upload the chain above the intermediate, up to and including the root."""
    with refusals(), _client() as c:
        _print_state(c, c.upload_chain(cert_id, file))


@ca_app.command("delete-chain")
def delete_chain(cert_id: int) -> None:
    """Remove the uploaded chain."""
    with refusals(), _client() as c:
        _print_state(c, c.delete_chain(cert_id))


@ca_app.command()
def finalize(cert_id: int) -> None:
    """Finalize the certificate (it becomes CERT_READY)."""
    with refusals(), _client() as c:
        _print_state(c, c.finalize(cert_id))


@ca_app.command()
def validate(
    cert_id: int,
    cert: Path = typer.Argument(
        None, exists=True, dir_okay=False, help="Candidate certificate (default: the stored one)."
    ),
    chain: Path = typer.Option(
        None, exists=True, dir_okay=False, help="Candidate chain (default: the stored one)."
    ),
) -> None:
    """Check a certificate and chain without changing anything; exit 0 when valid, 1 when not."""
    with refusals(), _client() as c:
        report = c.validate(cert_id, cert, chain)
    if report["findings"]:
        _print_findings(report["findings"])
    console.print("[green]Valid.[/green]" if report["valid"] else "[red]Not valid.[/red]")
    if not report["valid"]:
        raise typer.Exit(1)


@ca_app.command("make-default")
def make_default(cert_id: int) -> None:
    """Make the certificate the default: inspection leaves are minted with it from now on."""
    with refusals(), _client() as c:
        c.make_default(cert_id)
    console.print(f"Certificate {cert_id} is now the default.")


@ca_app.command()
def update(
    cert_id: int,
    name: str = typer.Option(None),
    description: str = typer.Option(None),
    status: str = typer.Option(None, help="ENABLED or DISABLED."),
) -> None:
    """Change a certificate's name, description or status."""
    fields = {
        k: v for k, v in {"name": name, "description": description, "status": status}.items() if v is not None
    }
    with refusals(), _client() as c:
        _print_record(c.update(cert_id, **fields))


@ca_app.command()
def delete(
    cert_id: int, yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation.")
) -> None:
    """Delete a certificate and destroy its private key."""
    if not yes:
        typer.confirm(f"Delete certificate {cert_id} and destroy its private key?", abort=True)
    with refusals(), _client() as c:
        c.delete(cert_id)
    console.print(f"Certificate {cert_id} deleted.")


ca_app.command("verify-attestation")(verify_attestation)
