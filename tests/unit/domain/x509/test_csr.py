"""The custom CA's CSR (api.md §3.3): subject, extensionRequest, signature, PEM helpers."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID
from tests.pki import openssl

from interca.domain.models import CsrSubject, KeyType, SignatureAlgorithm
from interca.domain.x509.csr import build_csr, csr_pem, key_size, public_key_pem
from interca.errors import InvalidInput, KeyStoreError


@pytest.fixture(scope="module")
def keys() -> dict[KeyType, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
    """One key per KeyType for the whole module (RSA-3072/4096 take a moment to generate)."""
    return {
        t: rsa.generate_private_key(public_exponent=65537, key_size=t.bits)
        if t.is_rsa
        else ec.generate_private_key(ec.SECP256R1() if t.bits == 256 else ec.SECP384R1())
        for t in KeyType
    }


def subject_for(key_type: KeyType = KeyType.EC_P256, **changes: object) -> CsrSubject:
    base = CsrSubject(
        csr_file_name="ca.csr",
        comm_name="Acme Inspection CA",
        org_name="Acme Ltd",
        dept_name="Security – Ops",  # non-ASCII: must survive as UTF8String
        city="Zürich",
        state="ZH",
        country="COUNTRY_CH",
        key_size=key_type.bits,
        signature_algorithm=SignatureAlgorithm.SHA256,
        path_length_constraint=0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def reparsed(csr: x509.CertificateSigningRequest) -> x509.CertificateSigningRequest:
    """What a reader of the stored PEM sees (string types come from the DER tags)."""
    return x509.load_pem_x509_csr(csr_pem(csr).encode())


def test_subject_rdns_in_order_c_st_l_o_ou_cn_with_string_types(keys):
    csr = reparsed(build_csr(subject_for(), keys[KeyType.EC_P256]))

    rdns = [list(rdn) for rdn in csr.subject.rdns]
    assert all(len(rdn) == 1 for rdn in rdns)  # one attribute per RDN
    attrs = [rdn[0] for rdn in rdns]
    assert [a.oid for a in attrs] == [
        NameOID.COUNTRY_NAME,
        NameOID.STATE_OR_PROVINCE_NAME,
        NameOID.LOCALITY_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.ORGANIZATIONAL_UNIT_NAME,
        NameOID.COMMON_NAME,
    ]
    values = [a.value for a in attrs]
    assert values == ["CH", "ZH", "Zürich", "Acme Ltd", "Security – Ops", "Acme Inspection CA"]
    assert attrs[0]._type == _ASN1Type.PrintableString
    assert all(a._type == _ASN1Type.UTF8String for a in attrs[1:])
    assert csr.subject.rfc4514_string() == (
        "CN=Acme Inspection CA,OU=Security – Ops,O=Acme Ltd,L=Zürich,ST=ZH,C=CH"
    )


def test_country_none_leaves_c_out(keys):
    csr = reparsed(build_csr(subject_for(country="NONE"), keys[KeyType.EC_P256]))

    assert not csr.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    assert [next(iter(rdn)).oid for rdn in csr.subject.rdns] == [
        NameOID.STATE_OR_PROVINCE_NAME,
        NameOID.LOCALITY_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.ORGANIZATIONAL_UNIT_NAME,
        NameOID.COMMON_NAME,
    ]


@pytest.mark.parametrize("path_length", [0, 1])
def test_extension_request_is_critical_ca_with_requested_path_length_and_key_usage(keys, path_length):
    csr = reparsed(build_csr(subject_for(path_length_constraint=path_length), keys[KeyType.EC_P256]))

    assert [e.oid for e in csr.extensions] == [
        x509.ExtensionOID.BASIC_CONSTRAINTS,
        x509.ExtensionOID.KEY_USAGE,
    ]
    bc = csr.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value == x509.BasicConstraints(ca=True, path_length=path_length)
    ku = csr.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.key_cert_sign and ku.value.crl_sign
    assert not any(
        (
            ku.value.digital_signature,
            ku.value.content_commitment,
            ku.value.key_encipherment,
            ku.value.data_encipherment,
            ku.value.key_agreement,
        )
    )


_EXPECTED_OID = {
    (True, SignatureAlgorithm.SHA256): SignatureAlgorithmOID.RSA_WITH_SHA256,
    (True, SignatureAlgorithm.SHA384): SignatureAlgorithmOID.RSA_WITH_SHA384,
    (True, SignatureAlgorithm.SHA512): SignatureAlgorithmOID.RSA_WITH_SHA512,
    (False, SignatureAlgorithm.SHA256): SignatureAlgorithmOID.ECDSA_WITH_SHA256,
    (False, SignatureAlgorithm.SHA384): SignatureAlgorithmOID.ECDSA_WITH_SHA384,
    (False, SignatureAlgorithm.SHA512): SignatureAlgorithmOID.ECDSA_WITH_SHA512,
}


@pytest.mark.parametrize("algorithm", list(SignatureAlgorithm), ids=lambda a: a.value)
@pytest.mark.parametrize("key_type", list(KeyType), ids=lambda t: t.value)
def test_every_key_type_and_hash_signs_a_valid_request(keys, key_type, algorithm):
    key = keys[key_type]
    csr = reparsed(build_csr(subject_for(key_type, signature_algorithm=algorithm), key))

    assert csr.is_signature_valid
    # RSA PKCS#1 v1.5 (not PSS) or ECDSA, with the chosen hash.
    assert csr.signature_algorithm_oid == _EXPECTED_OID[(key_type.is_rsa, algorithm)]
    assert csr.signature_hash_algorithm is not None
    assert csr.signature_hash_algorithm.name == algorithm.value.lower()
    assert csr.public_key() == key.public_key()
    assert key_size(csr.public_key()) == key_type.bits


@pytest.mark.parametrize(
    ("key_type", "algorithm", "country"),
    [
        (KeyType.RSA_2K, SignatureAlgorithm.SHA256, "COUNTRY_GB"),
        (KeyType.RSA_4K, SignatureAlgorithm.SHA512, "NONE"),
        (KeyType.EC_P256, SignatureAlgorithm.SHA384, "COUNTRY_US"),
        (KeyType.EC_P384, SignatureAlgorithm.SHA384, "COUNTRY_DE"),
    ],
)
def test_openssl_req_verifies_the_request(keys, tmp_path, key_type, algorithm, country):
    csr = build_csr(subject_for(key_type, signature_algorithm=algorithm, country=country), keys[key_type])
    (tmp_path / "ca.csr").write_text(csr_pem(csr))

    result = openssl("req", "-in", "ca.csr", "-verify", "-noout", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "verify OK" in result.stdout + result.stderr
    text = openssl("req", "-in", "ca.csr", "-noout", "-text", cwd=tmp_path).stdout
    assert "CA:TRUE, pathlen:0" in text
    assert "Certificate Sign, CRL Sign" in text


def test_csr_pem_is_lf_terminated_pem(keys):
    text = csr_pem(build_csr(subject_for(), keys[KeyType.EC_P256]))

    assert text.startswith("-----BEGIN CERTIFICATE REQUEST-----\n")
    assert text.endswith("-----END CERTIFICATE REQUEST-----\n")
    assert "\r" not in text


@pytest.mark.parametrize("key_type", [KeyType.RSA_2K, KeyType.EC_P384], ids=lambda t: t.value)
def test_public_key_pem_is_spki(keys, key_type):
    public = keys[key_type].public_key()
    text = public_key_pem(public)

    assert text.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert text.endswith("-----END PUBLIC KEY-----\n")
    assert "\r" not in text
    assert serialization.load_pem_public_key(text.encode()) == public


def test_key_size_refuses_other_key_types():
    with pytest.raises(TypeError):
        key_size(ed25519.Ed25519PrivateKey.generate().public_key())


def test_key_size_mismatch_is_refused(keys):
    with pytest.raises(InvalidInput, match="keySize 4096 does not match"):
        build_csr(subject_for(KeyType.RSA_2K, key_size=4096), keys[KeyType.RSA_2K])


def test_non_rsa_non_ec_key_is_a_programming_error():
    with pytest.raises(TypeError):
        build_csr(subject_for(), ed25519.Ed25519PrivateKey.generate())  # type: ignore[arg-type]


# --- keys that only sign (what an HSM-backed key object offers, hsm.md §5) -------------------


class SignOnlyRsaKey(rsa.RSAPrivateKey):
    """Implements `sign` and `public_key`; everything else fails, as in a token."""

    def __init__(self, inner: rsa.RSAPrivateKey, signer: rsa.RSAPrivateKey | None = None) -> None:
        self._inner = inner
        self._signer = signer or inner  # a different signer = a mislabelled mechanism
        self.calls = 0

    def sign(self, data, padding, algorithm):
        self.calls += 1
        return self._signer.sign(data, padding, algorithm)

    def public_key(self):
        return self._inner.public_key()

    def _refuse(self, *args, **kwargs):
        raise AssertionError("build_csr must only call sign() and public_key()")

    decrypt = private_numbers = private_bytes = _refuse

    @property
    def key_size(self):
        raise AssertionError("build_csr must only call sign() and public_key()")

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


class SignOnlyEcKey(ec.EllipticCurvePrivateKey):
    def __init__(self, inner: ec.EllipticCurvePrivateKey) -> None:
        self._inner = inner

    def sign(self, data, signature_algorithm):
        return self._inner.sign(data, signature_algorithm)

    def public_key(self):
        return self._inner.public_key()

    @property
    def curve(self):
        return self._inner.curve

    def _refuse(self, *args, **kwargs):
        raise AssertionError("build_csr must only call sign() and public_key()")

    exchange = private_numbers = private_bytes = _refuse

    @property
    def key_size(self):
        raise AssertionError("build_csr must only call sign() and public_key()")

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def test_a_sign_only_key_object_is_enough(keys):
    rsa_key = SignOnlyRsaKey(keys[KeyType.RSA_2K])
    csr = build_csr(subject_for(KeyType.RSA_2K, signature_algorithm=SignatureAlgorithm.SHA384), rsa_key)
    assert csr.is_signature_valid
    assert rsa_key.calls == 1

    ec_csr = build_csr(subject_for(KeyType.EC_P384), SignOnlyEcKey(keys[KeyType.EC_P384]))
    assert ec_csr.is_signature_valid


def test_a_signature_that_does_not_verify_is_a_key_store_error(keys):
    wrong_signer = SignOnlyRsaKey(keys[KeyType.RSA_2K], signer=rsa.generate_private_key(65537, 2048))

    with pytest.raises(KeyStoreError) as caught:
        build_csr(subject_for(KeyType.RSA_2K), wrong_signer)

    assert caught.value.error_id == "signature_invalid"
    assert caught.value.message.startswith("[signature_invalid] ")
