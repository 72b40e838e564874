"""Which CAs have a CRL to serve, and when it is due (certificates.md §6.4)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from tests.pki import TestPKI, new_key

from interca.domain.models import (
    CaKey,
    CaType,
    CrlRecord,
    IntermediateCa,
    KeyType,
    Region,
    Status,
    UploadedCert,
)
from interca.domain.states import State
from interca.service.pki import crl_issuer, is_due

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI(now=NOW)


def record(pki: TestPKI, state: State = State.CERT_READY, **sign: object) -> IntermediateCa:
    cert = pki.sign_ca(new_key().public_key(), **sign)  # type: ignore[arg-type]
    ca = IntermediateCa(2, "CA", CaType.CUSTOM_SW, Region.GLOBAL, Status.ENABLED, KeyType.EC_P256, "", state)
    ca.key = CaKey("software:x", "", NOW)
    ca.cert = UploadedCert(
        cert.public_bytes(serialization.Encoding.DER),
        None,
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
    )
    return ca


def test_a_finalized_ca_with_crl_sign_has_a_crl_until_its_not_after(pki: TestPKI) -> None:
    ca = record(pki, days=30)
    assert ca.cert is not None
    issuer = crl_issuer(ca, NOW)
    assert issuer is not None and issuer.public_bytes(serialization.Encoding.DER) == ca.cert.der
    assert crl_issuer(ca, ca.cert.not_after - dt.timedelta(seconds=1)) is not None
    assert crl_issuer(ca, ca.cert.not_after) is None  # expired at notAfter, as in F14


@pytest.mark.parametrize("state", [s for s in State if s is not State.CERT_READY])
def test_no_crl_before_finalize(pki: TestPKI, state: State) -> None:
    assert crl_issuer(record(pki, state), NOW) is None


def test_no_crl_without_crl_sign(pki: TestPKI) -> None:
    assert crl_issuer(record(pki, key_usage=("key_cert_sign",)), NOW) is None


def test_due_after_24_hours_or_when_there_is_none() -> None:
    crl = CrlRecord(3, b"", NOW)
    assert is_due(None, NOW)
    assert not is_due(crl, NOW + dt.timedelta(hours=24) - dt.timedelta(seconds=1))
    assert is_due(crl, NOW + dt.timedelta(hours=24))
    assert not is_due(crl, NOW - dt.timedelta(hours=48))  # a clock set back does not re-issue
