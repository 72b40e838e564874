"""`interca ca verify-attestation` (hsm.md §8.6) offline, through Typer's CliRunner: no server,
no settings. Exit 0 only when every step passes; the table, the failure line and the emulation
wording are what a customer sees."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.attestation_pki import AttestationPKI, pem
from typer.testing import CliRunner

from interca.cli.main import app

runner = CliRunner()
KEY_ID = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A bundle made a minute ago (the command verifies at the real current time)."""
    now = dt.datetime.now(dt.UTC)
    pki = AttestationPKI(provisioned=now - dt.timedelta(days=1))
    attacker = AttestationPKI(provisioned=now - dt.timedelta(days=1))
    key = ec.generate_private_key(ec.SECP384R1())
    d = tmp_path_factory.mktemp("attestation")
    (d / "bundle.pem").write_bytes(
        pki.bundle(pki.statement(key, key_id=KEY_ID, at=now - dt.timedelta(minutes=1)))
    )
    (d / "key.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (d / "root.pem").write_bytes(pem(pki.root))
    (d / "attacker-root.pem").write_bytes(pem(attacker.root))
    (d / "garbage.pem").write_bytes(b"not a bundle\n")
    return d


def run(d, *extra: str, bundle: str = "bundle.pem", key: str = "key.pem", root: str = "root.pem"):
    args = [
        "ca",
        "verify-attestation",
        str(d / bundle),
        "--public-key",
        str(d / key),
        "--root",
        str(d / root),
    ]
    return runner.invoke(app, [*args, *extra])


def test_genuine_bundle_passes(live):
    result = run(live, "--region", "us", "--key-id", KEY_ID.hex())
    assert result.exit_code == 0, result.output
    assert "Emulated HSM attestation" in result.output
    assert (
        "SoftHSM2 attestation is an emulation" in result.output
        and "not FIPS or hardware attestation" in result.output
    )
    for step in range(1, 10):
        assert f"V{step}" in result.output
    assert "passed" in result.output and "skipped" in result.output  # V9: creation-time
    assert "Every step passed (V9 skipped): emulated HSM attestation verified." in result.output
    assert "failed" not in result.output and "Not compared" not in result.output


def test_without_region_and_key_id_the_comparisons_are_skipped_and_said(live):
    result = run(live)
    assert result.exit_code == 0, result.output
    assert "Not compared with the certificate: region (no --region), key id (no --key-id)." in result.output


def test_region_mismatch_exits_1_with_the_api_message(live):
    result = run(live, "--region", "EUROPE")
    assert result.exit_code == 1
    assert (
        "Key attestation verification failed: [attestation_region_mismatch] The key was attested in "
        "region US, not EUROPE." in result.output
    )
    assert "failed" in result.output and "NOT verified" in result.output


def test_another_root_is_not_pinned(live):
    result = run(live, root="attacker-root.pem")
    assert result.exit_code == 1
    assert "[attestation_root_not_pinned]" in result.output


def test_garbage_bundle_is_malformed(live):
    result = run(live, bundle="garbage.pem")
    assert result.exit_code == 1 and "[attestation_malformed]" in result.output


@pytest.mark.parametrize(
    ("extra", "files", "said"),
    [
        (["--key-id", "xyz"], {}, "--key-id must be"),
        (["--region", "MARS"], {}, "Unknown region"),
        ([], {"key": "root.pem"}, "is not a public key"),
        ([], {"root": "key.pem"}, "is not a certificate"),
        ([], {"bundle": "missing.pem"}, "Cannot read the bundle file"),
    ],
)
def test_bad_inputs_exit_1(live, extra, files, said):
    result = run(live, *extra, **files)
    # Rich wraps long lines (the message names the file's path): compare with the breaks undone.
    assert result.exit_code == 1 and said in " ".join(result.output.split())
