"""The built-in CA (certificates.md §6.5): profile fields, and that it really works for minting."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, SignatureAlgorithmOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from tests.pki import TestPKI, openssl_verify, pem

from interca.domain.x509.builtin import add_years, build_builtin_ca, new_serial

NOW = dt.datetime(2026, 3, 14, 12, 0, tzinfo=dt.UTC)
DEPLOYMENT = "0a1b2c3d"


@pytest.fixture(scope="module")
def root_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)  # the profile demands it


@pytest.fixture(scope="module")
def intermediate_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def builtin(root_key, intermediate_key) -> tuple[x509.Certificate, x509.Certificate]:
    return build_builtin_ca(DEPLOYMENT, root_key, intermediate_key, NOW)


def ext(cert: x509.Certificate, cls):
    return cert.extensions.get_extension_for_class(cls)


def key_usage_flags(ku: x509.KeyUsage) -> set[str]:
    names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign"]  # fmt: skip
    return {n for n in names if getattr(ku, n)}


def test_root_profile(builtin, root_key):
    root, _ = builtin

    assert root.subject.rfc4514_string() == f"CN=interca Built-in Root CA {DEPLOYMENT},O=interca"
    assert root.issuer == root.subject
    root.verify_directly_issued_by(root)
    assert root.version is x509.Version.v3
    assert root.public_key() == root_key.public_key()
    assert root.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    assert root.not_valid_before_utc == NOW - dt.timedelta(hours=1)
    assert root.not_valid_after_utc == NOW.replace(year=2056)
    bc = ext(root, x509.BasicConstraints)
    assert bc.critical and bc.value == x509.BasicConstraints(ca=True, path_length=None)
    ku = ext(root, x509.KeyUsage)
    assert ku.critical and key_usage_flags(ku.value) == {"key_cert_sign", "crl_sign"}
    ski = ext(root, x509.SubjectKeyIdentifier)
    assert not ski.critical
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    assert {e.oid for e in root.extensions} == {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    }


def test_intermediate_profile(builtin, intermediate_key):
    root, intermediate = builtin

    assert intermediate.subject.rfc4514_string() == (
        f"CN=interca Built-in Intermediate CA {DEPLOYMENT},O=interca"
    )
    assert intermediate.issuer == root.subject
    assert intermediate.version is x509.Version.v3
    assert intermediate.public_key() == intermediate_key.public_key()
    assert intermediate.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    assert intermediate.not_valid_before_utc == NOW - dt.timedelta(hours=1)
    assert intermediate.not_valid_after_utc == NOW.replace(year=2051)
    bc = ext(intermediate, x509.BasicConstraints)
    assert bc.critical and bc.value == x509.BasicConstraints(ca=True, path_length=0)
    ku = ext(intermediate, x509.KeyUsage)
    assert ku.critical and key_usage_flags(ku.value) == {"key_cert_sign", "crl_sign"}
    ski = ext(intermediate, x509.SubjectKeyIdentifier)
    assert not ski.critical
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(intermediate_key.public_key())
    aki = ext(intermediate, x509.AuthorityKeyIdentifier)
    assert not aki.critical
    assert aki.value.key_identifier == ext(root, x509.SubjectKeyIdentifier).value.digest
    assert aki.value.authority_cert_issuer is None and aki.value.authority_cert_serial_number is None
    assert {e.oid for e in intermediate.extensions} == {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    }


def test_serials_are_positive_random_and_16_octets_at_most(builtin, root_key, intermediate_key):
    root, intermediate = builtin
    again_root, again_intermediate = build_builtin_ca(DEPLOYMENT, root_key, intermediate_key, NOW)

    serials = [root.serial_number, intermediate.serial_number, again_root.serial_number,
               again_intermediate.serial_number]  # fmt: skip
    assert len(set(serials)) == 4
    assert all(0 < s < 2**127 for s in serials)
    assert all(0 < new_serial() < 2**127 for _ in range(200))


def test_root_signs_the_intermediate(builtin):
    root, intermediate = builtin
    intermediate.verify_directly_issued_by(root)


def _leaf(intermediate: x509.Certificate, intermediate_key, host: str) -> x509.Certificate:
    """A quick leaf in the shape the minting engine makes (certificates.md §6.1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(intermediate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ext(intermediate, x509.SubjectKeyIdentifier).value
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(intermediate_key, hashes.SHA256())
    )


def test_the_builtin_can_mint_leaves_a_strict_verifier_accepts(builtin, intermediate_key):
    root, intermediate = builtin
    leaf = _leaf(intermediate, intermediate_key, "x.test")

    def verifier(roots, host):
        return PolicyBuilder().store(Store(roots)).time(NOW).build_server_verifier(x509.DNSName(host))

    chain = verifier([root], "x.test").verify(leaf, [intermediate])
    assert chain == [leaf, intermediate, root]
    # Negative controls: the wrong host, and a root that did not sign the intermediate.
    with pytest.raises(VerificationError):
        verifier([root], "y.test").verify(leaf, [intermediate])
    with pytest.raises(VerificationError):
        verifier([TestPKI(now=NOW).root.cert], "x.test").verify(leaf, [intermediate])


def test_openssl_strict_verifies_the_intermediate(builtin, tmp_path):
    root, intermediate = builtin
    stamp = str(int(NOW.timestamp()))

    ok = openssl_verify(tmp_path, pem(root), pem(intermediate), None, "-attime", stamp)
    assert ok.returncode == 0, ok.stderr + ok.stdout

    stranger = TestPKI(now=NOW).root.cert
    bad = openssl_verify(tmp_path, pem(stranger), pem(intermediate), None, "-attime", stamp)
    assert bad.returncode != 0


@pytest.mark.parametrize(
    ("deployment_id", "root_bits", "intermediate_bits", "now"),
    [
        ("0a1b2c3", 3072, 2048, NOW),  # 7 digits
        ("0a1b2c3g", 3072, 2048, NOW),  # not hex
        (DEPLOYMENT, 2048, 2048, NOW),  # root too small
        (DEPLOYMENT, 3072, 3072, NOW),  # intermediate not 2048
        (DEPLOYMENT, 3072, 2048, NOW.replace(tzinfo=None)),  # naive time
    ],
)
def test_preconditions(root_key, intermediate_key, deployment_id, root_bits, intermediate_bits, now):
    keys = {3072: root_key, 2048: intermediate_key}
    with pytest.raises(ValueError):
        build_builtin_ca(deployment_id, keys[root_bits], keys[intermediate_bits], now)


def test_add_years_moves_29_february_to_28():
    leap = dt.datetime(2028, 2, 29, 9, 30, tzinfo=dt.UTC)
    assert add_years(leap, 30) == dt.datetime(2058, 2, 28, 9, 30, tzinfo=dt.UTC)
    assert add_years(leap, 4) == dt.datetime(2032, 2, 29, 9, 30, tzinfo=dt.UTC)
