"""Field rules of generateCsr and update (api.md §3.3, §4.2) at the unit level."""

from __future__ import annotations

from typing import Any

import pytest

from interca.domain.fields import CSR_REQUIRED, validate_csr_request, validate_update
from interca.domain.models import CaType, IntermediateCa, KeyType, Region, SignatureAlgorithm, Status
from interca.domain.states import State
from interca.errors import InvalidInput, InvalidState

GOOD = {"csrFileName": "branch-1.csr_x", "commName": " CA ", "orgName": "O", "deptName": "OU",
        "city": "C", "state": "S", "country": "COUNTRY_GB"}  # fmt: skip


def ca(ca_type: CaType = CaType.CUSTOM_SW, key_type: KeyType = KeyType.RSA_2K, **kw: Any) -> IntermediateCa:
    base: dict[str, Any] = dict(id=7, name="Branch", type=ca_type, region=Region.GLOBAL, status=Status.ENABLED,
                                key_type=key_type, description="d", state=State.KEYGEN_DONE)  # fmt: skip
    return IntermediateCa(**{**base, **kw})


def refused(body: dict[str, Any], record: IntermediateCa | None = None) -> str:
    with pytest.raises(InvalidInput) as err:
        validate_csr_request(record or ca(), body)
    return err.value.message


def test_defaults_and_trimming() -> None:
    subject = validate_csr_request(ca(), GOOD)
    assert subject.comm_name == "CA"
    assert (subject.key_size, subject.signature_algorithm, subject.path_length_constraint) == (
        2048,
        SignatureAlgorithm.SHA256,
        1,
    )
    hsm = validate_csr_request(
        ca(CaType.CUSTOM_HSM, KeyType.EC_P384), {**GOOD, "signatureAlgorithm": "SHA384"}
    )
    assert (hsm.key_size, hsm.path_length_constraint, hsm.signature_algorithm.value) == (384, 0, "SHA384")


@pytest.mark.parametrize("body", [{}, {"certId": 7}])
def test_missing_fields_are_named_in_table_order(body: dict[str, Any]) -> None:
    assert (
        refused(body)
        == "Missing required fields: csrFileName, commName, orgName, deptName, city, state, country."
    )


def test_some_missing() -> None:
    assert refused({**GOOD, "city": None, "commName": None}) == "Missing required fields: commName, city."
    assert CSR_REQUIRED[0] == "csrFileName"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"certId": 8}, "certId 8 does not match certificate 7 in the path."),
        ({"csrFileName": ".hidden"}, "Invalid csrFileName"),
        ({"csrFileName": "a b"}, "Invalid csrFileName"),
        ({"csrFileName": "x" * 65}, "Invalid csrFileName"),
        ({"commName": "   "}, "Invalid commName"),
        ({"orgName": "x" * 65}, "Invalid orgName"),
        ({"city": "x" * 129}, "Invalid city"),
        ({"state": "a\nb"}, "Invalid state"),
        ({"country": "COUNTRY_UK"}, "Invalid country"),
        ({"country": "COUNTRY_gb"}, "Invalid country"),
        ({"country": "GB"}, "Invalid country"),
        ({"keySize": 4096}, "keySize 4096 does not match keyType RSA_2K."),
        ({"keySize": "2048"}, "Invalid value for keySize."),
        ({"keySize": True}, "Invalid value for keySize."),
        (
            {"signatureAlgorithm": "SHA1"},
            "Invalid signatureAlgorithm: allowed values are SHA256, SHA384, SHA512.",
        ),
        ({"pathLengthConstraint": 2}, "pathLengthConstraint must be 0 or 1 for CUSTOM_SW certificates."),
        ({"commName": 5}, "Invalid value for commName."),
    ],
)
def test_violations_name_the_field(change: dict[str, Any], message: str) -> None:
    assert refused({**GOOD, **change}).startswith(message)


def test_hsm_path_length_is_zero_only() -> None:
    assert refused({**GOOD, "pathLengthConstraint": 1}, ca(CaType.CUSTOM_HSM)) == (
        "pathLengthConstraint must be 0 for CUSTOM_HSM certificates."
    )


def test_country_none_and_city_at_the_limit() -> None:
    subject = validate_csr_request(ca(), {**GOOD, "country": "NONE", "city": "x" * 128})
    assert subject.country_code is None


def test_update_in_cert_ready_is_refused_before_field_errors() -> None:
    record = ca(state=State.CERT_READY)
    with pytest.raises(InvalidState):
        validate_update(record, {"name": "x" * 500}, lambda _: False)
    assert validate_update(record, {"name": " Branch ", "description": "d"}, lambda _: False).name is None


def test_update_changes() -> None:
    changes = validate_update(ca(), {"name": "New", "description": "", "status": "DISABLED"}, lambda _: False)
    assert (changes.name, changes.description, changes.status) == ("New", "", Status.DISABLED)
    assert validate_update(ca(), {"name": "branch"}, lambda _: True).name == "branch"  # own name, other case
