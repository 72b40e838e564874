"""The lab helper's CA: its root, and subordinate CAs signed the way ZIA tells administrators."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID
from tests.pki import CA, TestPKI, openssl_sign_csr, openssl_verify, pem

from interca.domain.models import CsrSubject, SignatureAlgorithm
from interca.domain.x509.csr import build_csr
from interca.domain.x509.subordinate import create_root, sign_subordinate
from interca.errors import InvalidInput

NOW = dt.datetime(2026, 3, 14, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def lab_root() -> CA:
    return CA(*create_root("interca Lab Root CA test", NOW, key_type="ec-p256"))


@pytest.fixture(scope="module")
def ca_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(key, path_length: int = 0) -> x509.CertificateSigningRequest:
    subject = CsrSubject(
        csr_file_name="ca.csr",
        comm_name="Acme Inspection CA",
        org_name="Acme Ltd",
        dept_name="Security",
        city="Zürich",
        state="ZH",
        country="COUNTRY_CH",
        key_size=256,
        signature_algorithm=SignatureAlgorithm.SHA256,
        path_length_constraint=path_length,
    )
    return build_csr(subject, key)


def ext(cert: x509.Certificate, cls):
    return cert.extensions.get_extension_for_class(cls)


@pytest.mark.parametrize("key_type", ["rsa-2048", "ec-p256", "ec-p384"])
def test_create_root_profile(key_type):
    key, root = create_root("My Lab Root", NOW, key_type=key_type, days=30)

    assert root.subject.rfc4514_string() == "CN=My Lab Root"
    assert root.issuer == root.subject
    root.verify_directly_issued_by(root)
    assert root.public_key() == key.public_key()
    assert root.not_valid_after_utc == NOW + dt.timedelta(days=30)
    assert root.not_valid_before_utc < NOW
    bc = ext(root, x509.BasicConstraints)
    assert bc.critical and bc.value == x509.BasicConstraints(ca=True, path_length=None)
    ku = ext(root, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    assert ext(root, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        key.public_key()
    )
    expected_hash = "sha384" if key_type == "ec-p384" else "sha256"
    assert root.signature_hash_algorithm is not None
    assert root.signature_hash_algorithm.name == expected_hash


def test_create_root_defaults_to_rsa_3072_for_ten_years():
    key, root = create_root("Default Root", NOW)
    assert key.key_size == 3072
    assert root.not_valid_after_utc == NOW + dt.timedelta(days=3650)


@pytest.mark.parametrize(
    ("cn", "key_type", "days"),
    [("Root", "dsa-1024", 10), ("", "ec-p256", 10), ("x" * 65, "ec-p256", 10), ("Root", "ec-p256", 0)],
)
def test_create_root_refuses_bad_arguments(cn, key_type, days):
    with pytest.raises(InvalidInput):
        create_root(cn, NOW, key_type=key_type, days=days)


@pytest.mark.parametrize("path_length", [0, 1])
def test_signed_subordinate_carries_the_zia_extensions(lab_root, ca_key, path_length):
    csr = make_csr(ca_key, path_length)
    cert = sign_subordinate(csr, lab_root.cert, lab_root.key, NOW)

    cert.verify_directly_issued_by(lab_root.cert)
    assert cert.version is x509.Version.v3
    assert cert.public_key() == ca_key.public_key()
    # Subject copied attribute for attribute: same DER, so order and string types survive.
    assert cert.subject.public_bytes() == csr.subject.public_bytes()
    assert cert.issuer == lab_root.cert.subject
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value == x509.BasicConstraints(ca=True, path_length=path_length)
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not (ku.value.digital_signature or ku.value.key_encipherment or ku.value.key_agreement)
    ski = ext(cert, x509.SubjectKeyIdentifier)
    assert not ski.critical
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    aki = ext(cert, x509.AuthorityKeyIdentifier)
    assert not aki.critical
    assert aki.value.key_identifier == ext(lab_root.cert, x509.SubjectKeyIdentifier).value.digest
    assert {e.oid for e in cert.extensions} == {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    }
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=1825)
    assert cert.serial_number > 0


def test_path_length_defaults_to_0_without_an_extension_request(lab_root, ca_key):
    bare = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bare CA")]))
        .sign(ca_key, hashes.SHA256())
    )
    cert = sign_subordinate(bare, lab_root.cert, lab_root.key, NOW)
    assert ext(cert, x509.BasicConstraints).value == x509.BasicConstraints(ca=True, path_length=0)


def test_aki_copies_an_unusual_issuer_ski_byte_for_byte(ca_key):
    """An issuer whose SKI is not the SHA-1 method (e.g. a Windows CA or a truncated hash)."""
    pki = TestPKI(now=NOW)
    odd_ski = x509.SubjectKeyIdentifier(b"\x01\x02\x03\x04\x05\x06\x07\x08")
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    issuer = pki.sign_ca(issuer_key.public_key(), subject="Odd SKI CA", path_length=None, ski=False,
                         extra_extensions=[(odd_ski, False)])  # fmt: skip
    cert = sign_subordinate(make_csr(ca_key), issuer, issuer_key, NOW)
    assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == odd_ski.digest


def test_not_after_never_exceeds_the_issuer(ca_key):
    key, short_root = create_root("Short Root", NOW, key_type="ec-p256", days=30)
    cert = sign_subordinate(make_csr(ca_key), short_root, key, NOW, days=1825)
    assert cert.not_valid_after_utc == short_root.not_valid_after_utc
    assert cert.not_valid_before_utc >= short_root.not_valid_before_utc


def test_hash_can_be_chosen(lab_root, ca_key):
    cert = sign_subordinate(make_csr(ca_key), lab_root.cert, lab_root.key, NOW, hash_alg=hashes.SHA384())
    assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == "sha384"


def test_a_csr_whose_signature_does_not_verify_is_refused(lab_root, ca_key):
    der = bytearray(make_csr(ca_key).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # inside the signature's r/s integers
    tampered = x509.load_der_x509_csr(bytes(der))

    with pytest.raises(InvalidInput, match=r"^The CSR signature does not verify\.$"):
        sign_subordinate(tampered, lab_root.cert, lab_root.key, NOW)


def test_refusals_about_the_issuer(lab_root, ca_key):
    csr = make_csr(ca_key)
    other_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InvalidInput, match="issuer key does not match"):
        sign_subordinate(csr, lab_root.cert, other_key, NOW)
    with pytest.raises(InvalidInput, match="expired"):
        sign_subordinate(csr, lab_root.cert, lab_root.key, NOW + dt.timedelta(days=4000))

    pki = TestPKI(now=NOW)
    leafish_key = ec.generate_private_key(ec.SECP256R1())
    not_ca = pki.sign_ca(leafish_key.public_key(), basic_constraints=False)
    with pytest.raises(InvalidInput, match="not a CA"):
        sign_subordinate(csr, not_ca, leafish_key, NOW)
    zero_key = ec.generate_private_key(ec.SECP256R1())
    zero = pki.sign_ca(zero_key.public_key(), path_length=0)
    with pytest.raises(InvalidInput, match="pathLenConstraint 0"):
        sign_subordinate(csr, zero, zero_key, NOW)


@pytest.mark.parametrize("root_key_type", ["ec-p256", "rsa-2048"])
def test_openssl_x509_strict_accepts_the_signed_certificate(tmp_path, ca_key, root_key_type):
    now = dt.datetime.now(dt.UTC)  # openssl verifies at the wall-clock time
    key, root = create_root("Strict Lab Root", now, key_type=root_key_type)
    cert = sign_subordinate(make_csr(ca_key, 1), root, key, now)

    ok = openssl_verify(tmp_path, pem(root), pem(cert))
    assert ok.returncode == 0, ok.stderr + ok.stdout
    # Negative control: a root that did not sign it.
    bad = openssl_verify(tmp_path, pem(TestPKI().root.cert), pem(cert))
    assert bad.returncode != 0


def test_lab_signs_like_an_administrator_with_openssl(tmp_path, ca_key):
    """Same extensions, values and criticality as `openssl x509 -req -extfile` (tests/pki.py)."""
    now = dt.datetime.now(dt.UTC)
    key, root = create_root("Admin Root", now, key_type="ec-p256")
    csr = make_csr(ca_key, 1)
    ours = sign_subordinate(csr, root, key, now)
    root_key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    theirs = x509.load_pem_x509_certificate(
        openssl_sign_csr(csr.public_bytes(serialization.Encoding.PEM), pem(root), root_key_pem, tmp_path)
    )

    def profile(cert):
        return {(e.oid, e.critical, e.value) for e in cert.extensions}

    assert profile(ours) == profile(theirs)
    assert ours.subject == theirs.subject and ours.issuer == theirs.issuer
