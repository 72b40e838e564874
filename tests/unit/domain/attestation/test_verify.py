"""Verification V1–V9 (hsm.md §8.6) and every tampering case of §8.7 that needs no token.

Software keys stand in for token keys (tests/attestation_pki.py). Tampered statements are made
the way an attacker would: byte edits of a genuine certificate keeping its signature (an edited
claim, a swapped SPKI), or a whole attacker PKI whose names equal the genuine ones (same
deployment id). The attestor-side refusals (`attestation_wrong_device`, `attestation_pairing_failed`)
need a token and are tested with the attestor.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from tests.attestation_pki import NOW, SERIALS, AttestationPKI, spki

from interca.domain.attestation.backend import EmulatedHsmVerifier
from interca.domain.attestation.claims import KEY_ATTESTATION_OID, KEY_GEN_MECHANISM_UNAVAILABLE, claims_of
from interca.domain.attestation.report import AttestationVerificationFailed, VerificationReport
from interca.domain.attestation.statement import BUNDLE_FIRST_LINE, bundle_pem, fingerprint
from interca.domain.x509.builtin import new_serial
from interca.errors import InvalidInput

FIVE_MINUTES = dt.timedelta(minutes=5)
NONCE = bytes(range(32))


@pytest.fixture(scope="module")
def pki() -> AttestationPKI:
    return AttestationPKI()


@pytest.fixture(scope="module")
def attacker() -> AttestationPKI:
    """Another PKI with the same deployment id: every name equals the genuine one."""
    return AttestationPKI()


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="module")
def genuine(pki, key) -> bytes:
    return pki.bundle(pki.statement(key, key_id=KEY_ID))


KEY_ID = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")


def statuses(report: VerificationReport) -> dict[str, str]:
    return {c.step: c.status for c in report.checks}


def first(report: VerificationReport) -> str | None:
    return report.first_failure.id if report.first_failure else None


def detail(report: VerificationReport, step: str) -> str:
    return next(c.detail for c in report.checks if c.step == step)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1 and len(old) == len(new)
    return data.replace(old, new)


def rebundle(pki: AttestationPKI, statement_der: bytes, device: str = "US") -> bytes:
    return pki.bundle(x509.load_der_x509_certificate(statement_der), device)


# Genuine bundles ----------------------------------------------------------------------------


@pytest.mark.parametrize("key_name", ["key", "rsa_key"])
def test_genuine_creation_time_bundle_verifies(pki, key_name, request):
    k = request.getfixturevalue(key_name)
    report = pki.verify(pki.bundle(pki.statement(k, key_id=KEY_ID)), k, key_id=KEY_ID)
    assert report.ok and first(report) is None and report.message is None
    assert statuses(report) == {f"V{i}": "passed" for i in range(1, 9)} | {"V9": "skipped"}
    assert "creation-time" in detail(report, "V9")
    assert report.claims is not None and report.claims.key_id == KEY_ID and report.claims.region == "US"
    assert report.device_info is not None and report.device_info.emulated
    report.raise_for_failure()  # nothing to raise


def test_genuine_on_demand_bundle_verifies_every_step(pki, key):
    bundle = pki.bundle(pki.statement(key, key_id=KEY_ID, on_demand=True, nonce=NONCE, at=NOW))
    report = pki.verify(
        bundle, key, key_id=KEY_ID, now=NOW + dt.timedelta(seconds=40), nonce=NONCE, max_age=FIVE_MINUTES
    )
    assert set(statuses(report).values()) == {"passed"}
    assert report.claims is not None and report.claims.nonce == NONCE


def test_comparisons_without_region_key_id_or_public_key_are_skipped_and_said(pki, key, genuine):
    report = pki.verify(genuine, None, region=None, key_id=None)
    assert report.ok
    assert statuses(report)["V6"] == "skipped" and "No public key" in detail(report, "V6")
    assert "keyId not compared" in detail(report, "V7")
    assert "region was not compared" in detail(report, "V8")


def test_pins_as_hex_or_as_the_root_certificate(pki, key, genuine):
    colons = ":".join(f"{b:02X}" for b in pki.pin)
    for pins in ([pki.pin.hex()], [colons], [b"\x00" * 32, pki.pin], pki.root):
        assert pki.verify(genuine, key, pins=pins).ok
    with pytest.raises(ValueError):
        pki.verify(genuine, key, pins=[pki.pin[:20]])
    with pytest.raises(ValueError):
        pki.verify(genuine, key, now=NOW.replace(tzinfo=None))


def test_backend_shape(pki, key, genuine, attacker):
    verifier = EmulatedHsmVerifier(pinned_roots=(pki.pin,))
    checks, claims = verifier.verify(genuine, spki(key), "US", KEY_ID, NOW)
    assert [c.step for c in checks] == [f"V{i}" for i in range(1, 10)] and claims is not None
    checks, claims = verifier.verify(genuine, spki(key), "EUROPE", KEY_ID, NOW)
    assert claims is None and any(c.status == "failed" for c in checks)


# §8.7: signature_invalid --------------------------------------------------------------------


def test_edited_claim_breaks_the_signature(pki, key):
    """An imported key's statement with `local` flipped to TRUE inside the extension."""
    statement = pki.statement(key, local=False, key_gen_mechanism=KEY_GEN_MECHANISM_UNAVAILABLE)
    honest = claims_of(statement)
    edited = replace_once(der(statement), honest.to_der(), dataclasses.replace(honest, local=True).to_der())
    report = pki.verify(rebundle(pki, edited), key)
    assert first(report) == "attestation_signature_invalid"
    assert report.message == (
        "Key attestation verification failed: [attestation_signature_invalid] The attestation "
        "certificate's signature does not verify with the key of the AK certificate."
    )
    assert report.decoded_claims is not None and report.decoded_claims.local and report.claims is None


def test_swapped_spki_breaks_the_signature(pki, key):
    mine = ec.generate_private_key(ec.SECP384R1())
    swapped = replace_once(der(pki.statement(key)), spki(key), spki(mine))
    report = pki.verify(rebundle(pki, swapped), mine)  # presented for the attacker's own key
    assert first(report) == "attestation_signature_invalid"
    assert statuses(report)["V6"] == "passed"  # only the signature gives it away


def test_forged_ak_certificate_with_the_genuine_name_under_the_genuine_root(pki, attacker, key):
    forged_ak = attacker.devices["US"].ak_cert
    assert forged_ak.subject == pki.devices["US"].ak_cert.subject and forged_ak.issuer == pki.root.subject
    statement = attacker.statement(key)
    report = pki.verify(bundle_pem(statement, forged_ak, pki.root), key)
    assert first(report) == "attestation_signature_invalid"
    assert (
        "AK certificate's signature does not verify with the key of the manufacturer root" in report.message
    )


# §8.7: root_not_pinned ----------------------------------------------------------------------


def test_attacker_root_with_identical_names_is_not_pinned(pki, attacker, key):
    assert attacker.root.subject == pki.root.subject
    report = pki.verify(attacker.bundle(attacker.statement(key)), key)
    assert first(report) == "attestation_root_not_pinned"
    assert fingerprint(attacker.root).hex() in report.message
    assert statuses(report)["V3"] == "passed"  # consistent under its own root, which is the point
    assert report.claims is None
    assert pki.verify(attacker.bundle(attacker.statement(key)), key, pins=pki.root).first_failure.step == "V2"


# §8.7: chain_invalid ------------------------------------------------------------------------


def test_denied_ak_certificate(pki, key, genuine):
    ak_fp = fingerprint(pki.devices["US"].ak_cert)
    for denied in ([ak_fp], [ak_fp.hex()]):
        report = pki.verify(genuine, key, denied_ak_fingerprints=denied)
        assert first(report) == "attestation_chain_invalid" and "deny list" in report.message


def hand_built_ak(pki: AttestationPKI, *, path_length: int = 0, device_info: bool = True) -> x509.Certificate:
    genuine = pki.devices["US"].ak_cert
    builder = (
        x509.CertificateBuilder()
        .subject_name(genuine.subject)
        .issuer_name(pki.root.subject)
        .public_key(pki.devices["US"].ak_key.public_key())
        .serial_number(new_serial())
        .not_valid_before(genuine.not_valid_before_utc)
        .not_valid_after(genuine.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
    )
    for e in genuine.extensions:
        if e.oid != x509.OID_BASIC_CONSTRAINTS and (
            device_info or not isinstance(e.value, x509.UnrecognizedExtension)
        ):
            builder = builder.add_extension(e.value, e.critical)
    return builder.sign(pki.root_key, hashes.SHA384())


def test_ak_certificate_profile_is_checked(pki, key):
    statement = pki.statement(key)
    report = pki.verify(bundle_pem(statement, hand_built_ak(pki, device_info=False), pki.root), key)
    assert first(report) == "attestation_chain_invalid" and "DeviceInfo" in report.message
    assert statuses(report)["V8"] == "skipped"
    report = pki.verify(bundle_pem(statement, hand_built_ak(pki, path_length=1), pki.root), key)
    assert first(report) == "attestation_chain_invalid" and "pathLen 0" in report.message
    assert pki.verify(bundle_pem(statement, hand_built_ak(pki), pki.root), key).ok  # the control


# §8.7: expired and stale --------------------------------------------------------------------


def test_verified_eleven_years_later_is_expired(pki, key, genuine):
    report = pki.verify(genuine, key, now=NOW.replace(year=2037))
    assert first(report) == "attestation_expired"
    assert report.first_failure.detail == "The attestation certificate expired on 2036-01-05T09:30:00Z"


def test_not_yet_valid_beyond_the_clock_skew(pki, key, genuine):
    assert pki.verify(genuine, key, now=NOW - dt.timedelta(minutes=4)).ok
    report = pki.verify(genuine, key, now=NOW - dt.timedelta(minutes=6))
    assert (
        first(report) == "attestation_expired" and "not valid before 2026-03-01T12:00:00Z" in report.message
    )


def test_on_demand_statement_after_one_hour_is_expired_and_stale(pki, key):
    bundle = pki.bundle(pki.statement(key, on_demand=True, nonce=NONCE))
    report = pki.verify(bundle, key, now=NOW + dt.timedelta(hours=1), nonce=NONCE, max_age=FIVE_MINUTES)
    assert first(report) == "attestation_expired"  # V5 comes first (hsm.md §8.7 row 6)
    assert statuses(report)["V9"] == "failed"


def test_another_nonce_or_none_is_stale(pki, key, genuine):
    bundle = pki.bundle(pki.statement(key, on_demand=True, nonce=NONCE))
    report = pki.verify(bundle, key, nonce=bytes(32), max_age=FIVE_MINUTES)
    assert first(report) == "attestation_stale" and "not the one requested" in report.message
    report = pki.verify(genuine, key, nonce=NONCE, max_age=FIVE_MINUTES)  # the stored statement replayed
    assert first(report) == "attestation_stale" and "carries no nonce" in report.message


def test_past_the_maximum_age_is_stale(pki, key):
    bundle = pki.bundle(pki.statement(key, on_demand=True, nonce=NONCE))
    assert pki.verify(bundle, key, now=NOW + dt.timedelta(minutes=5), nonce=NONCE, max_age=FIVE_MINUTES).ok
    report = pki.verify(bundle, key, now=NOW + dt.timedelta(minutes=6), nonce=NONCE, max_age=FIVE_MINUTES)
    assert first(report) == "attestation_stale" and "more than 300 seconds ago" in report.message


# §8.7: key_mismatch -------------------------------------------------------------------------


def test_key_a_statement_for_key_b(pki, key, genuine, rsa_key):
    other = ec.generate_private_key(ec.SECP384R1())
    for b in (other, rsa_key):
        report = pki.verify(genuine, b)
        assert first(report) == "attestation_key_mismatch" and "another key" in report.message


def test_claimed_key_size_must_match_the_key(pki, key):
    report = pki.verify(pki.bundle(pki.statement(key, key_bits=256)), key)
    assert first(report) == "attestation_key_mismatch" and "keyType 3 with 256 bits" in report.message


# §8.7: claims_rejected ----------------------------------------------------------------------


def test_imported_key_is_rejected_naming_local(pki, key):
    imported = dict(
        local=False,
        key_gen_mechanism=KEY_GEN_MECHANISM_UNAVAILABLE,
        never_extractable=False,
        always_sensitive=False,
    )
    report = pki.verify(pki.bundle(pki.statement(key, **imported)), key)
    assert first(report) == "attestation_claims_rejected"
    sentence = report.first_failure.detail
    assert sentence.startswith("The attested key's claims are not acceptable: local is FALSE (expected TRUE)")
    assert "keyGenMechanism is 0xffffffffffffffff (expected 0x1040)" in sentence


def test_key_made_non_extractable_later_is_rejected_naming_never_extractable(pki, rsa_key):
    report = pki.verify(pki.bundle(pki.statement(rsa_key, never_extractable=False)), rsa_key)
    assert first(report) == "attestation_claims_rejected"
    assert report.first_failure.detail.endswith("neverExtractable is FALSE (expected TRUE)")
    assert "local" not in report.first_failure.detail


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"protection_level": "CUSTOM_SW"}, "protectionLevel is CUSTOM_SW"),
        ({"extractable": True}, "extractable is TRUE (expected FALSE)"),
        ({"sensitive": False}, "sensitive is FALSE"),
        ({"always_sensitive": False}, "alwaysSensitive is FALSE"),
        ({"key_gen_mechanism": 0x0}, "keyGenMechanism is 0x0 (expected 0x1040)"),
    ],
)
def test_each_claim_is_checked(pki, key, override, named):
    report = pki.verify(pki.bundle(pki.statement(key, **override)), key)
    assert first(report) == "attestation_claims_rejected" and named in report.message


def test_another_key_id_is_rejected(pki, key, genuine):
    report = pki.verify(genuine, key, key_id=b"\x01" * 16)
    assert first(report) == "attestation_claims_rejected" and f"keyId is {KEY_ID.hex()}" in report.message


# §8.7: region_mismatch ----------------------------------------------------------------------


def test_us_statement_checked_for_europe(pki, key, genuine):
    report = pki.verify(genuine, key, region="EUROPE")
    assert first(report) == "attestation_region_mismatch"
    assert report.first_failure.detail == "The key was attested in region US, not EUROPE"


def test_us_key_attested_with_the_europe_ak(pki, key):
    report = pki.verify(pki.bundle(pki.statement(key, "US", device="EUROPE"), "EUROPE"), key)
    assert (
        first(report) == "attestation_region_mismatch"
        and "the attestation key is the EUROPE one" in report.message
    )


def test_token_serial_must_be_the_one_the_ak_vouches_for(pki, key):
    statement = pki.statement(key, "EUROPE", token_serial=SERIALS["US"])
    report = pki.verify(pki.bundle(statement, "EUROPE"), key, region="EUROPE")
    assert first(report) == "attestation_region_mismatch"
    assert (
        f"token serial {SERIALS['US']}" in report.message
        and f"token serial {SERIALS['EUROPE']}" in report.message
    )


# §8.7: malformed ----------------------------------------------------------------------------


def blocks_of(bundle: bytes) -> list[bytes]:
    text = bundle.decode()
    return [
        ("-----BEGIN" + part.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n").encode()
        for part in text.split("-----BEGIN")[1:]
    ]


@pytest.mark.parametrize(
    ("make", "sentence"),
    [
        (lambda g, b: b"".join(b[:2]), "holds 2 certificate(s)"),
        (lambda g, b: g + b[1], "holds 4 certificate(s)"),
        (lambda g, b: b"", "holds 0 certificate(s)"),
        (lambda g, b: b"\x00\xffgarbage" * 10, "not ASCII"),
        (lambda g, b: b"just some text\n", "holds 0 certificate(s)"),
        (
            lambda g, b: g + b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "PRIVATE KEY block",
        ),
        (lambda g, b: g.replace(b"-----END CERTIFICATE-----\n", b"", 1), "inside another"),
        (lambda g, b: g.rstrip().rsplit(b"\n", 1)[0], "ends inside a PEM block"),
        (
            lambda g, b: b[0] + b[1] + b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
            "not valid base64",
        ),
        (
            lambda g, b: (
                b[0]
                + b[1]
                + b"-----BEGIN CERTIFICATE-----\n"
                + base64.b64encode(b"\x30\x03\x02\x01\x01")
                + b"\n-----END CERTIFICATE-----\n"
            ),
            "manufacturer root does not parse",
        ),
        (
            lambda g, b: b[1] + b[0] + b[2],
            "keyAttestation extension is unusable: no keyAttestation extension",
        ),
        (lambda g, b: g + b"A" * 70000, "larger than"),
    ],
    ids=[
        "two",
        "four",
        "empty",
        "binary",
        "text",
        "private key",
        "nested",
        "truncated",
        "base64",
        "not x509",
        "order",
        "huge",
    ],
)
def test_malformed_bundles(pki, key, genuine, make, sentence):
    report = pki.verify(make(genuine, blocks_of(genuine)), key)
    assert first(report) == "attestation_malformed" and sentence in report.message
    assert [c.status for c in report.checks[1:]] == ["skipped"] * 8 and report.decoded_claims is None


def test_crlf_and_comments_are_fine(pki, key, genuine):
    assert genuine.startswith(BUNDLE_FIRST_LINE.encode())
    assert pki.verify(genuine.replace(b"\n", b"\r\n"), key).ok


def test_unknown_version_and_non_der_claims_are_malformed(pki, key):
    report = pki.verify(pki.bundle(pki.statement(key, version=2)), key)
    assert first(report) == "attestation_malformed" and "version is 2" in report.message
    statement = pki.statement(key)
    claims_der = claims_of(statement).to_der()
    ber = replace_once(der(statement), claims_der, claims_der.replace(b"\x01\x01\x00", b"\x01\x01\x01", 1))
    report = pki.verify(rebundle(pki, ber), key)  # malformed before any signature is looked at
    assert first(report) == "attestation_malformed" and "not DER" in report.message


# The service's error ------------------------------------------------------------------------


def test_failed_report_raises_the_invalid_input_error(pki, key, genuine):
    report = pki.verify(genuine, key, region="ASIA")
    with pytest.raises(AttestationVerificationFailed) as caught:
        report.raise_for_failure()
    assert isinstance(caught.value, InvalidInput) and caught.value.code == "INVALID_INPUT_ARGUMENT"
    assert caught.value.error_id == "attestation_region_mismatch"
    assert caught.value.message == report.message
    assert report.message.startswith("Key attestation verification failed: [attestation_region_mismatch] ")
    assert report.message.endswith(".")


def test_repeated_keyattestation_extension_is_malformed(pki, key):
    """cryptography refuses to build two extensions with one OID, so the second gets a stand-in
    OID of the same length, renamed afterwards (which also breaks the signature: V1 comes first)."""
    us = pki.devices["US"]
    honest = claims_of(pki.statement(key))
    stand_in = x509.ObjectIdentifier(KEY_ATTESTATION_OID.dotted_string[:-1] + "9")
    twice = (
        x509.CertificateBuilder()
        .subject_name(us.ak_cert.subject)
        .issuer_name(us.ak_cert.subject)
        .public_key(key.public_key())
        .serial_number(new_serial())
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(honest.to_extension(), critical=False)
        .add_extension(x509.UnrecognizedExtension(stand_in, honest.to_der()), critical=False)
        .sign(us.ak_key, hashes.SHA384())
    )
    tlv = core.ObjectIdentifier(KEY_ATTESTATION_OID.dotted_string).dump()
    renamed = replace_once(der(twice), core.ObjectIdentifier(stand_in.dotted_string).dump(), tlv)
    report = pki.verify(rebundle(pki, renamed), key)
    assert first(report) == "attestation_malformed"
    assert "The attestation certificate does not parse as an X.509 certificate" in report.message


def test_unparsable_attested_key_fails_without_raising(pki, key):
    broken = replace_once(der(pki.statement(key)), spki(key), spki(key)[:-97] + b"\x05" + spki(key)[-96:])
    report = pki.verify(rebundle(pki, broken), key)
    assert first(report) == "attestation_signature_invalid"
    assert detail(report, "V6") == "The attestation certificate's public key does not parse"
