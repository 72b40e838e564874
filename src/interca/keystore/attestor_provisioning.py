"""Emulated HSM attestation provisioning (hsm.md §8.2): the manufacturer root, made in a temporary
token whose key is destroyed afterwards, and one attestation key (AK) per region in its own token
`interca-attest-<REGION>`, certified by that root.

`provision_attestation` runs once per deployment; `rotate_root` repeats it with a new root,
re-certifying the existing AKs (their keys stay) and giving regions added since an AK of their
own. The old root stays pinned until an operator removes its `pin` line, so statements already
issued keep verifying; its certificate is kept beside the new one.

Runs in `interca attestor provision` / `rotate-root`, never in the service: loading the PKCS#11
module fixes the process's SoftHSM2 configuration (hsm.md §2).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute

from interca.domain.attestation.claims import EMULATED_MODEL, DeviceInfoClaims
from interca.domain.attestation.statement import build_ak_certificate, build_manufacturer_root, fingerprint
from interca.domain.models import KeyType
from interca.errors import KeyStoreError
from interca.keystore.attestor import (
    AK_KEY_ID,
    ROOT_KEY_ID,
    ak_token_config,
    attestation_dir,
    attestor_dir,
    pins_path,
    root_path,
    token_signer,
)
from interca.keystore.pkcs11_objects import generate
from interca.keystore.pkcs11_session import HsmBackend, OpenToken, backend_for
from interca.keystore.pkcs11_token import PinSource, TokenConfig
from interca.keystore.provisioning import tokens_by_label, write_secret

log = logging.getLogger(__name__)


def provision_attestation(
    data_dir: Path,
    module: str,
    softhsm2_conf: Path,
    ca_tokens: Mapping[str, TokenConfig],
    deployment_id: str,
    now: dt.datetime,
) -> bool:
    """Make the emulated manufacturer root and one AK per region in `ca_tokens`; True when done
    now. Idempotent: once the root exists nothing is made again (a region added later gets its
    AK from `rotate_root`). Raises `KeyStoreError`."""
    if root_path(data_dir).exists():
        missing = [r for r in ca_tokens if not (attestor_dir(data_dir) / "certs" / f"{r}.pem").exists()]
        if missing:
            log.warning("attestation: no attestation key for region(s) %s: run "
                        "`interca attestor rotate-root`", ", ".join(missing))  # fmt: skip
        return False
    _certify(data_dir, module, softhsm2_conf, ca_tokens, deployment_id, now, keep_aks=False)
    return True


def rotate_root(
    data_dir: Path,
    module: str,
    softhsm2_conf: Path,
    ca_tokens: Mapping[str, TokenConfig],
    deployment_id: str,
    now: dt.datetime,
) -> str:
    """A new manufacturer root (hsm.md §8.2, `interca attestor rotate-root`): every region of
    `ca_tokens` gets an AK certificate from it, keeping the AK it has. Returns the new root's
    SHA-256 (hex), pinned beside the old ones. Raises `KeyStoreError`."""
    old = root_path(data_dir)
    if not old.exists():
        raise KeyStoreError(
            "hsm_attestation_unavailable", "Attestation is not provisioned: run `interca attestor provision`."
        )
    previous = x509.load_pem_x509_certificate(old.read_bytes())
    keep = old.with_name(f"manufacturer-root-{fingerprint(previous).hex()[:16]}.pem")
    _write(keep, _pem(previous))
    return _certify(data_dir, module, softhsm2_conf, ca_tokens, deployment_id, now, keep_aks=True)


def _certify(
    data_dir: Path,
    module: str,
    softhsm2_conf: Path,
    ca_tokens: Mapping[str, TokenConfig],
    deployment_id: str,
    now: dt.datetime,
    *,
    keep_aks: bool,
) -> str:
    util = shutil.which("softhsm2-util") or "/usr/bin/softhsm2-util"
    env = {**os.environ, "SOFTHSM2_CONF": str(softhsm2_conf)}
    backend = backend_for(module, str(softhsm2_conf))
    for directory in (attestation_dir(data_dir), attestor_dir(data_dir), attestor_dir(data_dir) / "certs"):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    root_label = f"interca-attest-root-{secrets.token_hex(4)}"
    root_pin = attestor_dir(data_dir) / "pins" / ".root"
    root_cfg = TokenConfig("ROOT", root_label, None, PinSource("ROOT", None, root_pin, "-", "-"), "-", "-")
    _init_token(util, env, root_label, root_pin)
    try:
        backend.reinitialize()  # tokens made after C_Initialize stay invisible otherwise
        backend.run(root_cfg, lambda tok: generate(tok, KeyType.EC_P384, ROOT_KEY_ID, "manufacturer-root"))
        root_signer = token_signer(backend, root_cfg, ROOT_KEY_ID)
        root = build_manufacturer_root(root_signer, deployment_id, now)
        firmware = _softhsm_version(util, env)
        present = tokens_by_label(util, env)
        for region, ca_cfg in ca_tokens.items():
            ak_public = _attestation_key(backend, util, env, present, data_dir, region, keep_aks)
            serial = backend.run(ca_cfg, lambda tok: tok.serial)
            device = DeviceInfoClaims(region, serial, EMULATED_MODEL, firmware, True)
            ak_cert = build_ak_certificate(ak_public, device, root, root_signer, now)
            _write(attestor_dir(data_dir) / "certs" / f"{region}.pem", _pem(ak_cert))
    finally:
        backend.reinitialize()  # no session may hold the root token while it is deleted
        subprocess.run(
            [util, "--delete-token", "--token", root_label], env=env, capture_output=True, check=False
        )
        root_pin.unlink(missing_ok=True)
        root_pin.with_name(root_pin.name + ".so").unlink(missing_ok=True)
        backend.reinitialize()
    _write(root_path(data_dir), _pem(root))
    digest = fingerprint(root).hex()
    pins = pins_path(data_dir)
    existing = pins.read_text() if pins.exists() else "# Pinned emulated HSM manufacturer roots (SHA-256).\n"
    if f"pin {digest}" not in existing:
        _write(pins, existing + f"pin {digest}\n")
    log.info("attestation: emulated HSM manufacturer root SHA-256 %s (pin it)", digest)
    return digest


def _attestation_key(
    backend: HsmBackend,
    util: str,
    env: dict[str, str],
    present: dict[str, list[str]],
    data_dir: Path,
    region: str,
    keep: bool,
) -> ec.EllipticCurvePublicKey:
    """The public half of `region`'s AK: the existing one when `keep` and it is usable, else a
    new one in a (new) token `interca-attest-<REGION>`."""
    ak_cfg = ak_token_config(data_dir, region)
    assert ak_cfg.pin.file is not None
    if keep and ak_cfg.label in present and ak_cfg.pin.file.exists():
        try:
            return token_signer(backend, ak_cfg, AK_KEY_ID).public_key()
        except KeyStoreError as exc:
            log.warning("attestation: region %s's attestation key is unusable (%s); making a new one",
                        region, exc.error_id)  # fmt: skip
    if ak_cfg.label in present and not ak_cfg.pin.file.exists():  # orphaned: no one has its PIN
        backend.reinitialize()
        subprocess.run(
            [util, "--delete-token", "--token", ak_cfg.label], env=env, capture_output=True, check=False
        )
        present.pop(ak_cfg.label)
    if ak_cfg.label not in present:
        _init_token(util, env, ak_cfg.label, ak_cfg.pin.file)
        present[ak_cfg.label] = []
        backend.reinitialize()

    def make_ak(tok: OpenToken) -> None:
        for leftover in tok.session.get_objects({Attribute.ID: AK_KEY_ID}):
            leftover.destroy()
        tok.keys.clear()
        generate(tok, KeyType.EC_P384, AK_KEY_ID, "attestation-key")

    backend.run(ak_cfg, make_ak)
    return token_signer(backend, ak_cfg, AK_KEY_ID).public_key()


def _init_token(util: str, env: dict[str, str], label: str, pin_file: Path) -> None:
    pin, so_pin = secrets.token_hex(16), secrets.token_hex(16)
    write_secret(pin_file, pin)
    write_secret(pin_file.with_name(pin_file.name + ".so"), so_pin)
    result = subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise KeyStoreError("hsm_unavailable", f"softhsm2-util could not make token {label}.")


def _softhsm_version(util: str, env: dict[str, str]) -> str:
    result = subprocess.run([util, "--version"], env=env, capture_output=True, text=True, check=False)
    return result.stdout.strip() or "unknown"


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o600 if path.parent.name != "attestation" else 0o644)
    os.replace(tmp, path)
