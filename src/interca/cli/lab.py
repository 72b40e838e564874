"""`interca lab`: a throw-away root CA for demos and tests, playing the organisation's root.

Owns the lab directory layout (`root.pem` 0644, `root.key` 0600 in a 0700 directory) and the two
commands over it. The signing profile lives in `interca.domain.x509.subordinate`. The root key
is stored unencrypted: this is a lab helper, never a production CA.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from rich.console import Console
from rich.markup import escape

from interca.clock import SystemClock
from interca.domain.x509.subordinate import create_root, sign_subordinate
from interca.errors import IntercaError, InvalidInput

ROOT_CERT = "root.pem"
ROOT_KEY = "root.key"
_T = TypeVar("_T")

lab = typer.Typer(
    help=(
        "A throw-away root CA for demos and tests (plays the organisation's root; NOT for production). "
        "Lab helper: the root key is written unencrypted."
    ),
    no_args_is_help=True,
)


class RootKeyType(StrEnum):
    """The lab root key algorithms offered on the command line."""

    RSA_3072 = "rsa-3072"
    RSA_2048 = "rsa-2048"
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"


@lab.command("init-root")
def init_root(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Lab directory (created 0700 if missing).")
    ],
    cn: Annotated[
        str | None,
        typer.Option("--cn", help="Root common name (default: 'interca Lab Root CA' + random hex)."),
    ] = None,
    key_type: Annotated[
        RootKeyType, typer.Option("--key-type", help="Root key algorithm.")
    ] = RootKeyType.RSA_3072,
    days: Annotated[int, typer.Option("--days", min=1, help="Validity in days.")] = 3650,
) -> None:
    """Lab helper: create a self-signed root in DIR (root.pem 0644, root.key 0600, unencrypted).

    Refuses (exit 1) if DIR already holds a root.
    """
    with _refusals():
        # A random suffix keeps two lab roots apart in one trust store (like the deployment id).
        common_name = cn if cn is not None else f"interca Lab Root CA {secrets.token_hex(4)}"
        cert_path, key_path = directory / ROOT_CERT, directory / ROOT_KEY
        if cert_path.exists() or key_path.exists():
            raise InvalidInput(f"{directory} already holds a lab root; refusing to overwrite it.")
        key, cert = create_root(common_name, SystemClock().now(), key_type=key_type.value, days=days)
        lax = _make_private_dir(directory)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_new(key_path, key_pem, 0o600)
        try:
            _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        except BaseException:
            key_path.unlink(missing_ok=True)  # no half-made root that would block a retry
            raise
        until = f"{cert.not_valid_after_utc:%Y-%m-%d}"
        out = Console(soft_wrap=True)
        out.print(f"[green]Lab root created[/green] (lab helper, not for production): {escape(common_name)}")
        out.print(f"  certificate  {escape(str(cert_path))}  (0644, valid until {until})")
        out.print(f"  private key  {escape(str(key_path))}  (0600, {key_type.value}, unencrypted)")
        if lax:
            where = escape(str(directory))
            out.print(f"[yellow]Note:[/yellow] {where} is open to other users; consider chmod 700.")


@lab.command("sign-csr")
def sign_csr(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Lab directory made by init-root.")],
    csr_file: Annotated[Path, typer.Argument(metavar="CSR", help="The CSR, PEM or DER.")],
    out: Annotated[Path, typer.Option("--out", metavar="CERT", help="Where to write the certificate (PEM).")],
    days: Annotated[int, typer.Option("--days", min=1, help="Validity in days (cut at the root's).")] = 1825,
) -> None:
    """Lab helper: sign CSR as a subordinate CA under the lab root in DIR, as ZIA tells admins to.

    basicConstraints CA:TRUE (critical) with the CSR's requested pathLen, keyUsage keyCertSign +
    cRLSign (critical), SKI and AKI. Exit 1 if the CSR signature does not verify.
    """
    with _refusals():
        cert_path, key_path = directory / ROOT_CERT, directory / ROOT_KEY
        if not (cert_path.is_file() and key_path.is_file()):
            raise InvalidInput(
                f"{directory} holds no lab root; run `interca lab init-root {directory}` first."
            )
        root_cert = _load(
            lambda: x509.load_pem_x509_certificate(_read(cert_path)), cert_path, "a PEM certificate"
        )
        root_key = _load(
            lambda: _load_private_key(_read(key_path)), key_path, "an unencrypted PEM private key"
        )
        csr = _load(lambda: _load_csr(_read(csr_file)), csr_file, "a PEM or DER certificate request")
        cert = sign_subordinate(csr, root_cert, root_key, SystemClock().now(), days=days)
        try:
            out.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        except OSError as exc:
            raise InvalidInput(f"Cannot write {out}: {exc.strerror}.") from exc
        path_length = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
        clipped = cert.not_valid_after_utc == root_cert.not_valid_after_utc
        cut = " (cut at the root's notAfter)" if clipped else ""
        console = Console(soft_wrap=True)
        console.print(f"[green]Signed[/green] (lab helper): {escape(cert.subject.rfc4514_string())}")
        console.print(f"  issuer       {escape(cert.issuer.rfc4514_string())}")
        console.print(f"  pathLen      {path_length} (as the CSR requested)")
        console.print(f"  valid until  {cert.not_valid_after_utc:%Y-%m-%d}{cut}")
        console.print(f"  written to   {escape(str(out))}")


@contextmanager
def _refusals() -> Iterator[None]:
    """Turn expected failures (`IntercaError`) into a red message on stderr and exit status 1."""
    try:
        yield
    except IntercaError as exc:
        # escape(): messages start with "[id]", which rich would otherwise take for markup.
        Console(stderr=True, soft_wrap=True).print(f"[red]Refused:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from exc


def _make_private_dir(directory: Path) -> bool:
    """Create `directory` 0700 if missing; True when an existing one is open to group or others."""
    try:
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True)
            directory.chmod(0o700)  # mkdir's mode is masked by the umask
            return False
        return bool(directory.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError as exc:
        raise InvalidInput(f"Cannot create {directory}: {exc.strerror}.") from exc


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never overwrite, even if another run created the file after our check.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise InvalidInput(f"{path} already exists; refusing to overwrite it.") from exc
    except OSError as exc:
        raise InvalidInput(f"Cannot write {path}: {exc.strerror}.") from exc
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)  # exact mode whatever the umask
        handle.write(data)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"Cannot read {path}: {exc.strerror}.") from exc


def _load_csr(data: bytes) -> x509.CertificateSigningRequest:
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_csr(data)
    return x509.load_der_x509_csr(data)


def _load_private_key(data: bytes) -> CertificateIssuerPrivateKeyTypes:
    key = serialization.load_pem_private_key(data, password=None)
    return key  # type: ignore[return-value]  # create_root only writes RSA and EC keys


def _load(loader: Callable[[], _T], path: Path, what: str) -> _T:
    """Run a parser; a file it cannot parse is a refusal naming the file, not a traceback."""
    try:
        return loader()
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{path} is not {what}.") from exc
