"""`interca attestor`: the emulated HSM attestor (hsm.md §8). `provision` makes the emulated
manufacturer root and the per-region attestation keys once per deployment; `serve` answers
`attest` on the attestor socket. The service runs both itself for the embedded SoftHSM2 (at
start, and on first need); a deployment that separates the attestor runs them as its own user."""

from __future__ import annotations

import logging

import typer

from interca.cli.output import console, fail, refusals

attestor_app = typer.Typer(help="The emulated HSM attestor (Emulated HSM attestation).", no_args_is_help=True)


def _settings():  # type: ignore[no-untyped-def]
    from interca.config import load_settings

    return load_settings()


@attestor_app.command()
def provision() -> None:
    """Make the emulated manufacturer root and one attestation key per embedded region (once)."""
    from interca.app import provision_embedded_attestation
    from interca.keystore.attestor import pins_path

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = _settings()
    with refusals():
        made = provision_embedded_attestation(settings)
    if made:
        console.print(f"Emulated HSM attestation provisioned; pinned roots: {pins_path(settings.data_dir)}")
    else:
        console.print("Emulated HSM attestation: nothing to provision.")


@attestor_app.command("rotate-root")
def rotate_root() -> None:
    """A new emulated manufacturer root: the attestation keys are re-certified (a region added
    since gets its own), the new root is pinned beside the old one, which stays pinned until you
    remove its `pin` line, so statements already issued keep verifying."""
    from interca.app import provision_embedded_attestation
    from interca.keystore.attestor import pins_path, root_path

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = _settings()
    with refusals():
        if not provision_embedded_attestation(settings, rotate=True):
            fail("No embedded HSM region to attest: rotate-root covers the embedded SoftHSM2 only.")
    console.print(f"New emulated HSM manufacturer root: {root_path(settings.data_dir)}")
    console.print(f"Pinned roots: {pins_path(settings.data_dir)}")


@attestor_app.command()
def serve(
    parent: int = typer.Option(None, "--parent", help="Exit when this process id is gone (the service)."),
) -> None:
    """Answer attestation requests on the attestor socket (INTERCA_ATTESTOR_SOCKET)."""
    from interca.app import emulated_attestor
    from interca.keystore.attestor_socket import serve as serve_socket

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings()
    attestor = emulated_attestor(settings)
    if attestor is None:
        fail("Emulated HSM attestation is not provisioned: run `interca attestor provision` first.")
    with refusals():
        serve_socket(attestor, settings.attestor_socket_path, parent_pid=parent)
