"""`interca ca verify-attestation`: check an emulated HSM key attestation bundle offline
(hsm.md §8.6), with the same code the server runs. No server, no settings, no data directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.markup import escape
from rich.table import Table

from interca.cli.output import console, fail
from interca.domain.attestation.report import VerificationReport
from interca.domain.attestation.statement import EMULATION_NOTICE, fingerprint
from interca.domain.attestation.verify import verify_bundle
from interca.domain.models import Region

_STYLES = {"passed": "green", "failed": "bold red", "skipped": "yellow"}


def verify_attestation(
    bundle: Path = typer.Argument(..., help="The attestation bundle (<name>-Attestation.pem)."),
    public_key: Path = typer.Option(
        ..., "--public-key", help="The certificate's public key (PEM or DER) from downloadPublicKey."
    ),
    root: Path = typer.Option(
        ...,
        "--root",
        help="The emulated HSM manufacturer root to pin (PEM or DER); check its SHA-256 fingerprint "
        "against the one interca printed when it was provisioned.",
    ),
    region: str = typer.Option(None, "--region", help="The certificate's region (GLOBAL, ASIA, EUROPE, US)."),
    key_id: str = typer.Option(None, "--key-id", help="The key's CKA_ID in hex."),
) -> None:
    """Verify an emulated HSM key attestation bundle offline (exit 0 only if every step passes)."""
    bundle_bytes = _read(bundle, "bundle")
    spki = _public_key_spki(_read(public_key, "public key"), public_key)
    pinned = _root_certificate(_read(root, "root"), root)
    expected_region = _region(region) if region is not None else None
    expected_key_id = _key_id(key_id) if key_id is not None else None

    report = verify_bundle(
        bundle_bytes,
        pinned_roots=pinned,
        expected_spki=spki,
        region=expected_region,
        key_id=expected_key_id,
        now=dt.datetime.now(dt.UTC),
    )
    console.print("[bold]Emulated HSM attestation[/bold]")
    console.print(escape(EMULATION_NOTICE), soft_wrap=True)
    console.print(f"Pinned root: SHA-256 {fingerprint(pinned).hex()}", soft_wrap=True, highlight=False)
    _print_checks(report)
    _print_claims(report)
    missing = [
        what
        for what, given in (("region (no --region)", region), ("key id (no --key-id)", key_id))
        if not given
    ]
    if missing:
        console.print(f"Not compared with the certificate: {', '.join(missing)}.", soft_wrap=True)
    if not report.ok:
        console.print(f"[bold red]{escape(report.message or '')}[/bold red]", soft_wrap=True)
        raise typer.Exit(1)
    skipped = [c.step for c in report.checks if c.status == "skipped"]
    suffix = f" ({', '.join(skipped)} skipped)" if skipped else ""
    console.print(
        f"[green]Every step passed{suffix}: emulated HSM attestation verified.[/green]",
        soft_wrap=True,
    )


def _print_checks(report: VerificationReport) -> None:
    table = Table(title="Verification steps (hsm.md §8.6)")
    table.add_column("Step", no_wrap=True)
    table.add_column("Id", no_wrap=True)  # the stable part; the API's message names it too
    table.add_column("Result", no_wrap=True)
    table.add_column("Detail")
    for c in report.checks:
        style = _STYLES[c.status]
        table.add_row(c.step, c.id, f"[{style}]{c.status}[/{style}]", escape(c.detail))
    console.print(table)


def _print_claims(report: VerificationReport) -> None:
    claims, device = report.decoded_claims, report.device_info
    if claims is None:
        return
    rows = [
        ("region", claims.region),
        ("tokenSerial", claims.token_serial),
        ("keyId", claims.key_id.hex()),
        ("keyLabel", claims.key_label),
        ("keyType / keyBits", f"{claims.key_type} / {claims.key_bits}"),
        ("attestedAt", claims.attested_at.isoformat()),
        ("generatedAt", claims.generated_at.isoformat() if claims.generated_at else "-"),
        ("nonce", claims.nonce.hex() if claims.nonce else "-"),
    ]
    if device is not None:
        rows += [("device", f"{device.model}, firmware {device.firmware}, emulated {device.emulated}")]
    title = "Claims" + ("" if report.ok else " (NOT verified)")
    table = Table(show_header=False, box=None, title=title)
    for name, value in rows:
        table.add_row(f"[bold]{name}[/bold]", escape(value))
    console.print(table)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"Cannot read the {what} file {path}: {exc.strerror or exc}.")


def _public_key_spki(data: bytes, path: Path) -> bytes:
    for load in (serialization.load_pem_public_key, serialization.load_der_public_key):
        try:
            key = load(data)
        except (ValueError, TypeError):
            continue
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    fail(f"{path} is not a public key (PEM or DER SubjectPublicKeyInfo).")


def _root_certificate(data: bytes, path: Path) -> x509.Certificate:
    for load in (x509.load_pem_x509_certificate, x509.load_der_x509_certificate):
        try:
            return load(data)
        except ValueError:
            continue
    fail(f"{path} is not a certificate (PEM or DER).")


def _region(value: str) -> Region:
    try:
        return Region(value.upper())
    except ValueError:
        fail(f"Unknown region {value!r}; use GLOBAL, ASIA, EUROPE or US.")


def _key_id(value: str) -> bytes:
    try:
        raw = bytes.fromhex(value.replace(":", ""))
    except ValueError:
        raw = b""
    if not raw:
        fail(f"--key-id must be the key's CKA_ID in hex, not {value!r}.")
    return raw
