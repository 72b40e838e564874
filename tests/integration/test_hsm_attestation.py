"""Emulated HSM key attestation over HTTP with real SoftHSM2 tokens (hsm.md §8, api.md §4.3):
provisioning, the creation-time statement at keyPair, downloadAttestation, verifyKeyAttestation,
offline verification with the CLI, and the attestor's refusals."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pkcs11 import Attribute, KeyType, ObjectClass
from tests.conftest import Api, R
from tests.hsm import SoftHsm, TestToken
from tests.integration.helpers import ok, snapshot
from tests.integration.test_hsm_lifecycle import hsm_services
from typer.testing import CliRunner

from interca.app import attestor_command
from interca.cli.main import app as cli
from interca.config import SOFTHSM2_MODULE
from interca.domain.attestation.statement import BUNDLE_FIRST_LINE
from interca.errors import KeyStoreError
from interca.keystore.attestor import EmulatedAttestor, root_path
from interca.keystore.attestor_provisioning import provision_attestation, rotate_root
from interca.keystore.pkcs11 import KeyRef
from interca.service.registry import Services
from interca.storage.tables import CertificateRow


@pytest.fixture
def attestors() -> Iterator[list[subprocess.Popen[bytes]]]:
    """`interca attestor serve` processes started by a test, stopped after it."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.terminate()
        proc.wait(10)


def _setup(
    api: Api,
    http_server: Any,
    data_dir: Path,
    softhsm: SoftHsm,
    tokens: dict[str, TestToken],
    attestors: list[subprocess.Popen[bytes]],
) -> Services:
    """Attestation provisioned for `tokens` (not the template's embedded ones) and the attestor
    running as its own process, as a deployment with an external HSM runs it (hsm.md §8.1)."""
    for made_for_template in ("attestation", "attestor"):
        shutil.rmtree(data_dir / made_for_template)
    now = api.services.ctx.clock.now()
    configs = {region: token.config(region) for region, token in tokens.items()}
    assert provision_attestation(data_dir, SOFTHSM2_MODULE, softhsm.conf, configs, "test", now)
    assert not provision_attestation(
        data_dir, SOFTHSM2_MODULE, softhsm.conf, configs, "test", now
    )  # idempotent
    socket_path = Path(tempfile.mkdtemp(prefix="ia-", dir="/tmp")) / "attestor.sock"  # sun_path: 108 bytes
    services = hsm_services(api, http_server, data_dir, softhsm, tokens, attestor_socket=socket_path)
    command, env = attestor_command(services.ctx.settings, "serve", "--parent", str(os.getpid()))
    attestors.append(subprocess.Popen(command, env=env))
    deadline = time.monotonic() + 60
    while not socket_path.exists():
        assert attestors[-1].poll() is None, "interca attestor serve exited"
        assert time.monotonic() < deadline, "interca attestor serve did not listen"
        time.sleep(0.05)
    return services


def test_hsm_key_attestation_download_verify_and_offline(
    api: Api,
    http_server: Any,
    data_dir: Path,
    softhsm: SoftHsm,
    tmp_path: Path,
    attestors: list[subprocess.Popen[bytes]],
) -> None:
    token = softhsm.new_token(tmp_path)
    _setup(api, http_server, data_dir, softhsm, attestors=attestors, tokens={"US": token})
    pin = data_dir / "attestor" / "pins" / "US"
    assert stat.S_IMODE(pin.stat().st_mode) == 0o600
    pins = (data_dir / "attestation" / "pins.txt").read_text()
    assert any(line.startswith("pin ") and len(line) == 68 for line in pins.splitlines())
    assert "interca-attest-root" not in "".join(softhsm.env().get("X", "")) and not any(
        "root" in p.name for p in (data_dir / "attestor" / "pins").iterdir()
    )

    ca_id = api.create("HSM US", type="CUSTOM_HSM", region="US", keyType="EC_P256")["id"]
    public = ok(api.admin.post(f"{R}/keyPair/{ca_id}"))["publicKey"]
    resp = api.admin.get(f"{R}/downloadAttestation/{ca_id}")
    assert resp.status_code == 200
    assert 'filename="HSM US-Attestation.pem"' in resp.headers["content-disposition"]
    assert resp.text.splitlines()[0] == BUNDLE_FIRST_LINE
    assert api.admin.get(f"{R}/{ca_id}").json()["currentState"] == "ATTESTATION_DONE"

    body = ok(api.admin.post(f"{R}/verifyKeyAttestation/{ca_id}"))
    assert body["certId"] == ca_id and isinstance(body["hsmAttestationVerifiedTime"], int)
    record = api.admin.get(f"{R}/{ca_id}").json()
    assert record["currentState"] == "ATTESTATION_VERIFY_DONE"
    assert record["hsmAttestationVerifiedTime"] == body["hsmAttestationVerifiedTime"]

    bundle, key = tmp_path / "b.pem", tmp_path / "k.pem"
    bundle.write_text(resp.text)
    key.write_text(public)
    root = str(root_path(data_dir))
    runner = CliRunner()
    result = runner.invoke(
        cli, ["ca", "verify-attestation", str(bundle), "--public-key", str(key), "--root", root]
    )
    assert result.exit_code == 0, result.output
    tampered = tmp_path / "t.pem"
    lines = resp.text.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith("-----BEGIN")) + 3
    lines[i] = lines[i][:10] + ("A" if lines[i][10] != "A" else "B") + lines[i][11:]
    tampered.write_text("\n".join(lines) + "\n")
    result = runner.invoke(
        cli, ["ca", "verify-attestation", str(tampered), "--public-key", str(key), "--root", root]
    )
    assert result.exit_code != 0


def test_another_keys_statement_fails_verification_and_changes_nothing(
    api: Api,
    http_server: Any,
    data_dir: Path,
    softhsm: SoftHsm,
    tmp_path: Path,
    attestors: list[subprocess.Popen[bytes]],
) -> None:
    token = softhsm.new_token(tmp_path)
    _setup(api, http_server, data_dir, softhsm, attestors=attestors, tokens={"US": token})
    a = api.create("HSM A", type="CUSTOM_HSM", region="US", keyType="EC_P256")["id"]
    b = api.create("HSM B", type="CUSTOM_HSM", region="US", keyType="EC_P256")["id"]
    ok(api.admin.post(f"{R}/keyPair/{a}"))
    ok(api.admin.post(f"{R}/keyPair/{b}"))
    with api.services.ctx.db.write() as s:
        s.get(CertificateRow, b).attestation_pem = s.get(CertificateRow, a).attestation_pem
    before = snapshot(api, b)
    resp = api.admin.post(f"{R}/verifyKeyAttestation/{b}")
    assert resp.status_code == 400
    assert resp.json()["message"].startswith(
        "Key attestation verification failed: [attestation_key_mismatch] "
    )
    assert snapshot(api, b) == before


def test_attestor_refuses_wrong_device_and_planted_public_object(
    api: Api,
    http_server: Any,
    data_dir: Path,
    softhsm: SoftHsm,
    tmp_path: Path,
    attestors: list[subprocess.Popen[bytes]],
) -> None:
    us, europe = softhsm.new_token(tmp_path), softhsm.new_token(tmp_path)
    services = _setup(
        api, http_server, data_dir, softhsm, attestors=attestors, tokens={"US": us, "EUROPE": europe}
    )
    ca_id = api.create("HSM US", type="CUSTOM_HSM", region="US", keyType="EC_P256")["id"]
    ok(api.admin.post(f"{R}/keyPair/{ca_id}"))
    with services.ctx.db.read() as s:
        key_id = KeyRef.parse(str(s.get(CertificateRow, ca_id).key_ref)).key_id  # type: ignore[union-attr]

    # The EUROPE AK asked to vouch for a key in the US token.
    crossed = EmulatedAttestor(
        SOFTHSM2_MODULE, str(softhsm.conf), data_dir, {"EUROPE": us.config("US")}, services.ctx.clock
    )
    with pytest.raises(KeyStoreError) as exc:
        crossed.attest("EUROPE", key_id)
    assert exc.value.error_id == "attestation_wrong_device"

    # A planted public object sharing another key's CKA_ID, while the genuine one is gone.
    other = ec_public_object_template(key_id)

    def plant(tok: Any) -> None:
        (genuine,) = tok.session.get_objects({Attribute.ID: key_id, Attribute.CLASS: ObjectClass.PUBLIC_KEY})
        genuine.destroy()
        tok.keys.clear()
        tok.session.create_object(other)

    us.hsm.backend.run(us.config("US"), plant)
    attestor = EmulatedAttestor(
        SOFTHSM2_MODULE, str(softhsm.conf), data_dir, {"US": us.config("US")}, services.ctx.clock
    )
    with pytest.raises(KeyStoreError) as exc:
        attestor.attest("US", key_id)
    assert exc.value.error_id == "attestation_pairing_failed"


def ec_public_object_template(key_id: bytes) -> dict[Any, Any]:
    """A P-256 public key object made outside the token (an attacker's), with `key_id`."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from pkcs11.util.ec import encode_named_curve_parameters

    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    )
    octet = bytes([0x04, len(point)]) + point
    return {
        Attribute.CLASS: ObjectClass.PUBLIC_KEY,
        Attribute.KEY_TYPE: KeyType.EC,
        Attribute.TOKEN: True,
        Attribute.ID: key_id,
        Attribute.VERIFY: True,
        Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1"),
        Attribute.EC_POINT: octet,
    }


def test_rotate_root_keeps_issued_statements_valid_and_adds_new_regions(
    api: Api,
    http_server: Any,
    data_dir: Path,
    softhsm: SoftHsm,
    tmp_path: Path,
    attestors: list[subprocess.Popen[bytes]],
) -> None:
    us = softhsm.new_token(tmp_path)
    _setup(api, http_server, data_dir, softhsm, attestors=attestors, tokens={"US": us})
    before = api.create("HSM before", type="CUSTOM_HSM", region="US", keyType="EC_P256")["id"]
    ok(api.admin.post(f"{R}/keyPair/{before}"))
    old_root = root_path(data_dir).read_bytes()
    ak_before = (data_dir / "attestor" / "certs" / "US.pem").read_bytes()

    asia = softhsm.new_token(tmp_path)  # a region added after provisioning
    configs = {"US": us.config("US"), "ASIA": asia.config("ASIA")}
    digest = rotate_root(
        data_dir, SOFTHSM2_MODULE, softhsm.conf, configs, "rotated", api.services.ctx.clock.now()
    )
    pins = [
        line
        for line in (data_dir / "attestation" / "pins.txt").read_text().splitlines()
        if line.startswith("pin ")
    ]
    assert len(pins) == 2 and pins[-1] == f"pin {digest}"
    assert root_path(data_dir).read_bytes() != old_root
    assert [p.read_bytes() for p in (data_dir / "attestation").glob("manufacturer-root-*.pem")] == [old_root]
    new_ak = (data_dir / "attestor" / "certs" / "US.pem").read_bytes()
    assert new_ak != ak_before
    from cryptography import x509 as x

    same_key = (
        x.load_pem_x509_certificate(ak_before).public_key()
        == x.load_pem_x509_certificate(new_ak).public_key()
    )
    assert same_key  # the AK stays; only its certificate is new
    assert (data_dir / "attestor" / "certs" / "ASIA.pem").exists()

    # The statement stored before the rotation (old root, still pinned) and a fresh one (new root).
    ok(api.admin.post(f"{R}/verifyKeyAttestation/{before}"))
    after = api.create("HSM after", type="CUSTOM_HSM", region="US", keyType="EC_P256")["id"]
    ok(api.admin.post(f"{R}/keyPair/{after}"))
    bundle = api.admin.get(f"{R}/downloadAttestation/{after}").text
    assert bundle.rstrip().endswith(root_path(data_dir).read_text().rstrip())
    ok(api.admin.post(f"{R}/verifyKeyAttestation/{after}"))
