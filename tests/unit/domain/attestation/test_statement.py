"""The attestation certificates and claims (hsm.md §8.2, §8.3, §8.5): profiles field by field,
the KeyAttestation/DeviceInfo DER, the bundle text, and OpenSSL chaining a genuine statement."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID
from tests.attestation_pki import NOW, PROVISIONED, SERIALS, AttestationPKI, pem, spki
from tests.pki import openssl, openssl_verify

from interca.domain.attestation.claims import (
    DEVICE_INFO_OID,
    HSM_KEY_ATTESTATION_EKU,
    KEY_ATTESTATION_OID,
    KEY_GEN_MECHANISM_UNAVAILABLE,
    Claims,
    DeviceInfoClaims,
    claims_of,
    device_info_of,
)
from interca.domain.attestation.statement import (
    BUNDLE_FIRST_LINE,
    build_manufacturer_root,
    build_statement,
    bundle_pem,
)
from interca.domain.x509.issuance_links import raw_names

ARC = "2.25.182699697417161316483095826725424965080"


@pytest.fixture(scope="module")
def pki() -> AttestationPKI:
    return AttestationPKI()


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


def ext(cert: x509.Certificate, kind):
    return cert.extensions.get_extension_for_class(kind)


def cn_o(cert: x509.Certificate) -> tuple[str, str]:
    return (
        cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value,
        cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value,
    )


# OIDs and claims DER ------------------------------------------------------------------------


def test_oids_live_under_the_project_arc():
    assert KEY_ATTESTATION_OID.dotted_string == f"{ARC}.1"
    assert HSM_KEY_ATTESTATION_EKU.dotted_string == f"{ARC}.2"
    assert DEVICE_INFO_OID.dotted_string == f"{ARC}.3"


def test_claims_round_trip_with_and_without_optional_fields(pki, ec_key):
    full = pki.claims(ec_key, nonce=b"\x07" * 32, key_gen_mechanism=KEY_GEN_MECHANISM_UNAVAILABLE)
    assert Claims.from_der(full.to_der()) == full
    bare = dataclasses.replace(full, generated_at=None, nonce=None)
    assert Claims.from_der(bare.to_der()) == bare
    # generatedAt [0] IMPLICIT GeneralizedTime, nonce [1] IMPLICIT OCTET STRING: context tags 0x80, 0x81.
    assert full.to_der().endswith(b"\x81\x20" + b"\x07" * 32)
    assert b"\x80\x0f" + dt.datetime.strftime(full.generated_at, "%Y%m%d%H%M%SZ").encode() in full.to_der()
    # CK_UNAVAILABLE_INFORMATION is a positive 9-byte INTEGER.
    assert b"\x02\x09\x00" + b"\xff" * 8 in full.to_der()


def test_claims_times_are_whole_seconds_in_utc(pki, ec_key):
    claims = pki.claims(ec_key, attested_at=NOW.replace(microsecond=654321))
    assert Claims.from_der(claims.to_der()).attested_at == NOW
    with pytest.raises(ValueError):
        pki.claims(ec_key, attested_at=NOW.replace(tzinfo=None)).to_der()


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda der: der + b"\x00", id="trailing byte"),
        pytest.param(lambda der: b"\x30" + bytes([der[1] + 3]) + der[2:] + b"\x02\x01\x05", id="extra field"),
        pytest.param(lambda der: der.replace(b"\x01\x01\x00", b"\x01\x01\x01", 1), id="BER boolean"),
        pytest.param(lambda der: der[:20], id="truncated"),
        pytest.param(lambda der: b"\x04\x03abc", id="not a sequence"),
    ],
)
def test_claims_decoding_is_strict_der(pki, ec_key, tamper):
    der = pki.claims(ec_key, extractable=False).to_der()
    assert der[1] < 0x80  # short length form, so the extra-field edit above stays simple
    with pytest.raises(ValueError):
        Claims.from_der(tamper(der))


def test_device_info_round_trip():
    info = DeviceInfoClaims("EUROPE", SERIALS["EUROPE"], "SoftHSM v2 (emulated)", "2.6.1", True)
    assert DeviceInfoClaims.from_der(info.to_der()) == info
    with pytest.raises(ValueError):
        DeviceInfoClaims.from_der(info.to_der()[:-1] + b"\x01")  # emulated BOOLEAN 0x01: not DER


# Certificate profiles -----------------------------------------------------------------------


def test_manufacturer_root_profile(pki):
    root = pki.root
    assert cn_o(root) == ("interca Emulated HSM Manufacturer Root 5e1f0a7b", "interca (EMULATED HSM)")
    assert (
        root.subject.rfc4514_string()
        == "CN=interca Emulated HSM Manufacturer Root 5e1f0a7b,O=interca (EMULATED HSM)"
    )
    assert root.issuer == root.subject
    assert (
        isinstance(root.public_key(), ec.EllipticCurvePublicKey)
        and root.public_key().curve.name == "secp384r1"
    )
    assert root.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384
    assert (root.not_valid_before_utc, root.not_valid_after_utc) == (
        PROVISIONED,
        PROVISIONED.replace(year=2046),
    )
    bc = ext(root, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 1
    ku = ext(root, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and not ku.value.crl_sign and not ku.value.digital_signature
    assert ext(root, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        root.public_key()
    )
    assert 0 < root.serial_number < 2**127
    root.verify_directly_issued_by(root)


def test_manufacturer_root_refuses_other_curves():
    with pytest.raises(ValueError, match="P-384"):
        build_manufacturer_root(ec.generate_private_key(ec.SECP256R1()), "5e1f0a7b", NOW)


@pytest.mark.parametrize("region", ["GLOBAL", "ASIA", "EUROPE", "US"])
def test_ak_certificate_profile(pki, region):
    ak = pki.devices[region].ak_cert
    assert (
        ak.subject.rfc4514_string()
        == f"CN=interca Emulated HSM {region} Attestation Key,O=interca (EMULATED HSM)"
    )
    assert raw_names(ak)[0] == raw_names(pki.root)[1]
    assert ak.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384
    assert (ak.not_valid_before_utc, ak.not_valid_after_utc) == (PROVISIONED, PROVISIONED.replace(year=2036))
    bc = ext(ak, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    assert ext(ak, x509.KeyUsage).critical and ext(ak, x509.KeyUsage).value.key_cert_sign
    assert list(ext(ak, x509.ExtendedKeyUsage).value) == [HSM_KEY_ATTESTATION_EKU]
    aki = ext(ak, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(pki.root, x509.SubjectKeyIdentifier).value.digest
    device = ak.extensions.get_extension_for_oid(DEVICE_INFO_OID)
    assert not device.critical and isinstance(device.value, x509.UnrecognizedExtension)
    assert device_info_of(ak) == DeviceInfoClaims(
        region, SERIALS[region], "SoftHSM v2 (emulated)", "2.6.1", True
    )
    ak.verify_directly_issued_by(pki.root)


@pytest.mark.parametrize("key_name", ["ec_key", "rsa_key"])
def test_creation_time_statement_profile(pki, key_name, request):
    key = request.getfixturevalue(key_name)
    key_id = bytes.fromhex("00112233445566778899aabbccddeeff")
    statement = pki.statement(key, "EUROPE", key_id=key_id, at=NOW.replace(microsecond=999))
    ak = pki.devices["EUROPE"].ak_cert
    assert statement.subject.rfc4514_string() == (
        "CN=interca key attestation 00112233445566778899aabbccddeeff,O=interca (EMULATED HSM)"
    )
    assert raw_names(statement)[0] == raw_names(ak)[1]  # issuer = the AK certificate's subject bytes
    assert spki(statement.public_key()) == spki(key)
    assert statement.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA384
    assert statement.version is x509.Version.v3
    assert 0 < statement.serial_number < 2**127 and statement.serial_number.bit_length() > 64
    assert statement.not_valid_before_utc == NOW
    assert statement.not_valid_after_utc == ak.not_valid_after_utc
    bc = ext(statement, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    eku = ext(statement, x509.ExtendedKeyUsage)
    assert list(eku.value) == [HSM_KEY_ATTESTATION_EKU]
    assert ExtendedKeyUsageOID.SERVER_AUTH not in eku.value
    aki = ext(statement, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ak, x509.SubjectKeyIdentifier).value.digest
    attestation = statement.extensions.get_extension_for_oid(KEY_ATTESTATION_OID)
    assert not attestation.critical and isinstance(attestation.value, x509.UnrecognizedExtension)
    assert [e.oid for e in statement.extensions] == [
        x509.OID_BASIC_CONSTRAINTS,
        x509.OID_EXTENDED_KEY_USAGE,
        x509.OID_AUTHORITY_KEY_IDENTIFIER,
        KEY_ATTESTATION_OID,
    ]
    claims = claims_of(statement)
    assert claims.attested_at == NOW  # `now` stamps attestedAt, to the second
    assert claims.key_id == key_id and claims.region == "EUROPE" and claims.nonce is None
    statement.verify_directly_issued_by(ak)


def test_on_demand_statement_lasts_one_hour_and_carries_the_nonce(pki, ec_key):
    nonce = bytes(range(32))
    statement = pki.statement(ec_key, on_demand=True, nonce=nonce)
    assert statement.not_valid_after_utc - statement.not_valid_before_utc == dt.timedelta(hours=1)
    assert claims_of(statement).nonce == nonce


def test_statement_refusals(pki, ec_key):
    us = pki.devices["US"]
    with pytest.raises(ValueError, match="nonce"):
        pki.statement(ec_key, on_demand=True)
    with pytest.raises(ValueError, match="nonce"):
        pki.statement(ec_key, nonce=b"n" * 32)
    with pytest.raises(ValueError, match="signer"):
        build_statement(
            ec_key.public_key(),
            pki.claims(ec_key),
            us.ak_cert,
            pki.devices["ASIA"].ak_key,
            NOW,
            on_demand=False,
        )
    with pytest.raises(ValueError, match="key id"):
        pki.statement(ec_key, key_id=b"\x01" * 21)
    with pytest.raises(ValueError, match="not valid"):
        pki.statement(ec_key, at=PROVISIONED.replace(year=2037))
    with pytest.raises(ValueError, match="RSA or EC"):
        build_statement(
            ed25519.Ed25519PrivateKey.generate().public_key(),
            pki.claims(ec_key),
            us.ak_cert,
            us.ak_key,
            NOW,
            on_demand=False,
        )


def test_statement_takes_the_spki_as_der_too(pki, rsa_key):
    us = pki.devices["US"]
    statement = build_statement(
        spki(rsa_key), pki.claims(rsa_key), us.ak_cert, us.ak_key, NOW, on_demand=False
    )
    assert spki(statement.public_key()) == spki(rsa_key)


# Bundle -------------------------------------------------------------------------------------


def test_bundle_text(pki, ec_key):
    statement = pki.statement(ec_key)
    us = pki.devices["US"].ak_cert
    text = bundle_pem(statement, us, pki.root).decode("ascii")
    lines = text.splitlines()
    assert (
        lines[0]
        == BUNDLE_FIRST_LINE
        == "# interca key attestation - EMULATED HSM (SoftHSM2), not hardware-backed"
    )
    assert "not FIPS or hardware attestation" in lines[1]
    assert text.count("-----BEGIN CERTIFICATE-----") == 3 and text.endswith("-----END CERTIFICATE-----\n")
    blocks = text.split("-----END CERTIFICATE-----\n")[:3]
    for block, cert, name in zip(
        blocks, (statement, us, pki.root), ("Attestation certificate", "Attestation key", "manufacturer root")
    ):
        comment, _, body = block.partition("-----BEGIN CERTIFICATE-----")
        assert name in comment and cert.subject.rfc4514_string() in comment
        assert (
            x509.load_pem_x509_certificate(
                ("-----BEGIN CERTIFICATE-----" + body + "-----END CERTIFICATE-----\n").encode()
            )
            == cert
        )
    assert pki.pin.hex() in blocks[2]


# Generic X.509 tools ------------------------------------------------------------------------


def test_openssl_chains_a_genuine_statement_and_refuses_a_swapped_key(tmp_path, ec_key):
    """hsm.md §8.6: `openssl verify -CAfile root.pem -untrusted ak.pem att.pem` covers V3 only."""
    now = dt.datetime.now(dt.UTC)
    live = AttestationPKI(provisioned=now - dt.timedelta(days=1))
    statement = live.statement(ec_key, at=now - dt.timedelta(minutes=1))
    (tmp_path / "root.pem").write_bytes(pem(live.root))
    (tmp_path / "ak.pem").write_bytes(pem(live.devices["US"].ak_cert))
    (tmp_path / "att.pem").write_bytes(pem(statement))
    plain = openssl("verify", "-CAfile", "root.pem", "-untrusted", "ak.pem", "att.pem", cwd=tmp_path)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    strict = openssl_verify(
        tmp_path / "strict", pem(live.root), pem(statement), pem(live.devices["US"].ak_cert)
    )
    assert strict.returncode == 0, strict.stdout + strict.stderr
    text = openssl("x509", "-in", "att.pem", "-noout", "-text", cwd=tmp_path).stdout
    assert f"{ARC}.1" in text and "ecdsa-with-SHA384" in text

    der = statement.public_bytes(serialization.Encoding.DER)
    swapped = der.replace(spki(ec_key), spki(ec.generate_private_key(ec.SECP384R1())))
    (tmp_path / "swapped.pem").write_bytes(pem(x509.load_der_x509_certificate(swapped)))
    refused = openssl("verify", "-CAfile", "root.pem", "-untrusted", "ak.pem", "swapped.pem", cwd=tmp_path)
    assert refused.returncode != 0
