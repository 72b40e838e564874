"""`interca lab`: init-root and sign-csr through Typer's CliRunner."""

from __future__ import annotations

import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from interca.cli.lab import lab

runner = CliRunner()


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def make_csr(path_length: int | None = 1) -> x509.CertificateSigningRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Acme Inspection CA")])
    )
    if path_length is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=path_length), critical=True
        )
    return builder.sign(key, hashes.SHA256())


@pytest.fixture
def lab_dir(tmp_path):
    directory = tmp_path / "lab"
    result = runner.invoke(
        lab, ["init-root", str(directory), "--cn", "Test Lab Root", "--key-type", "ec-p256"]
    )
    assert result.exit_code == 0, result.output
    return directory


def test_init_root_writes_the_root_with_private_modes(lab_dir):
    root = x509.load_pem_x509_certificate((lab_dir / "root.pem").read_bytes())
    key = serialization.load_pem_private_key((lab_dir / "root.key").read_bytes(), password=None)

    assert root.subject.rfc4514_string() == "CN=Test Lab Root"
    assert key.public_key() == root.public_key()
    assert b"BEGIN PRIVATE KEY" in (lab_dir / "root.key").read_bytes()  # PKCS#8
    assert mode(lab_dir / "root.key") == 0o600
    assert mode(lab_dir / "root.pem") == 0o644
    assert mode(lab_dir) == 0o700


def test_init_root_prints_what_it_did(tmp_path):
    result = runner.invoke(lab, ["init-root", str(tmp_path / "x"), "--key-type", "ec-p384", "--days", "30"])

    assert result.exit_code == 0, result.output
    assert "Lab root created" in result.output
    assert "interca Lab Root CA " in result.output  # the default name with its random suffix
    assert "ec-p384" in result.output
    root = x509.load_pem_x509_certificate((tmp_path / "x" / "root.pem").read_bytes())
    assert (root.not_valid_after_utc - root.not_valid_before_utc).days == 30


def test_init_root_refuses_to_overwrite(lab_dir):
    before = (lab_dir / "root.key").read_bytes()

    result = runner.invoke(lab, ["init-root", str(lab_dir), "--key-type", "ec-p256"])

    assert result.exit_code == 1
    assert "refusing to overwrite" in result.output
    assert (lab_dir / "root.key").read_bytes() == before


def test_init_root_refuses_when_only_the_key_is_left(tmp_path):
    (tmp_path / "root.key").write_text("left over")
    result = runner.invoke(lab, ["init-root", str(tmp_path), "--key-type", "ec-p256"])
    assert result.exit_code == 1
    assert (tmp_path / "root.key").read_text() == "left over"
    assert not (tmp_path / "root.pem").exists()


@pytest.mark.parametrize("encoding", [serialization.Encoding.PEM, serialization.Encoding.DER])
def test_sign_csr_writes_a_subordinate_ca(lab_dir, tmp_path, encoding):
    csr = make_csr(path_length=1)
    (tmp_path / "ca.csr").write_bytes(csr.public_bytes(encoding))
    out = tmp_path / "ca.pem"

    result = runner.invoke(lab, ["sign-csr", str(lab_dir), str(tmp_path / "ca.csr"), "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert "Signed" in result.output and "pathLen      1" in result.output
    root = x509.load_pem_x509_certificate((lab_dir / "root.pem").read_bytes())
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    cert.verify_directly_issued_by(root)
    assert cert.public_key() == csr.public_key()
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value == x509.BasicConstraints(ca=True, path_length=1)


def test_sign_csr_cuts_validity_at_the_root(tmp_path):
    lab_dir = tmp_path / "lab"
    runner.invoke(lab, ["init-root", str(lab_dir), "--key-type", "ec-p256", "--days", "10"])
    (tmp_path / "ca.csr").write_bytes(make_csr().public_bytes(serialization.Encoding.PEM))

    out = str(tmp_path / "c.pem")
    result = runner.invoke(
        lab, ["sign-csr", str(lab_dir), str(tmp_path / "ca.csr"), "--out", out, "--days", "99"]
    )

    assert result.exit_code == 0, result.output
    assert "cut at the root's notAfter" in result.output


def test_sign_csr_refuses_a_tampered_csr(lab_dir, tmp_path):
    der = bytearray(make_csr().public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF
    (tmp_path / "bad.csr").write_bytes(bytes(der))

    result = runner.invoke(
        lab, ["sign-csr", str(lab_dir), str(tmp_path / "bad.csr"), "--out", str(tmp_path / "c.pem")]
    )

    assert result.exit_code == 1
    assert "The CSR signature does not verify." in result.output
    assert not (tmp_path / "c.pem").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a csr", "is not a PEM or DER certificate request"), (None, "Cannot read")],
)
def test_sign_csr_refuses_unreadable_input(lab_dir, tmp_path, content, message):
    if content is not None:
        (tmp_path / "in.csr").write_bytes(content)

    result = runner.invoke(
        lab, ["sign-csr", str(lab_dir), str(tmp_path / "in.csr"), "--out", str(tmp_path / "c.pem")]
    )

    assert result.exit_code == 1
    assert message in result.output


def test_sign_csr_needs_a_root(tmp_path):
    (tmp_path / "ca.csr").write_bytes(make_csr().public_bytes(serialization.Encoding.PEM))

    result = runner.invoke(
        lab, ["sign-csr", str(tmp_path / "empty"), str(tmp_path / "ca.csr"), "--out", str(tmp_path / "c.pem")]
    )

    assert result.exit_code == 1
    assert "holds no lab root" in result.output


def test_help_says_lab_helper_not_production():
    result = runner.invoke(lab, ["--help"])
    text = " ".join(result.output.split())  # rich wraps to the terminal width

    assert result.exit_code == 0
    assert "NOT for production" in text and "Lab helper" in text
    assert "init-root" in text and "sign-csr" in text
