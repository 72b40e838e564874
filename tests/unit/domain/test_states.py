"""The lifecycle table of api.md §4.3, state by state."""

from __future__ import annotations

import pytest

from interca.domain.states import WINDOWS, State, after_download, check_allowed, refusal_reason
from interca.errors import InvalidState

S = State


def test_states_are_ordered_as_the_wire_lists_them() -> None:
    assert [s.name for s in sorted(State)] == [
        "GENERAL_DONE", "KEYGEN_DONE", "PUBKEY_DONE", "ATTESTATION_DONE", "ATTESTATION_VERIFY_DONE",
        "CSRGEN_DONE", "INTCERT_UPLOAD_DONE", "CERTCHAIN_UPLOAD_DONE", "CERT_READY",
    ]  # fmt: skip


# op -> the states in which it is allowed (api.md §4.3 "Allowed in").
ALLOWED = {
    "keyPair": {S.GENERAL_DONE},
    "downloadPublicKey": {s for s in State if s >= S.KEYGEN_DONE},
    "downloadAttestation": {s for s in State if s >= S.KEYGEN_DONE},
    "verifyKeyAttestation": {s for s in State if S.KEYGEN_DONE <= s <= S.CERTCHAIN_UPLOAD_DONE},
    "generateCsr": {s for s in State if S.KEYGEN_DONE <= s <= S.CERTCHAIN_UPLOAD_DONE},
    "downloadCsr": {s for s in State if s >= S.CSRGEN_DONE},
    "showCsr": {s for s in State if s >= S.CSRGEN_DONE},
    "uploadCert": {s for s in State if S.CSRGEN_DONE <= s <= S.CERTCHAIN_UPLOAD_DONE},
    "validateCert": {s for s in State if s >= S.CSRGEN_DONE},
    "showCert": {s for s in State if s >= S.INTCERT_UPLOAD_DONE},
    "downloadCertChain": {s for s in State if s >= S.INTCERT_UPLOAD_DONE},
    "uploadCertChain": {S.INTCERT_UPLOAD_DONE, S.CERTCHAIN_UPLOAD_DONE},
    "deleteCertChain": {S.CERTCHAIN_UPLOAD_DONE},
    "finalizeCert": {S.INTCERT_UPLOAD_DONE, S.CERTCHAIN_UPLOAD_DONE},
    "makeDefault": {S.CERT_READY},
}


def test_every_operation_has_a_window() -> None:
    assert set(WINDOWS) == set(ALLOWED)


@pytest.mark.parametrize("op", sorted(ALLOWED))
@pytest.mark.parametrize("state", list(State), ids=lambda s: s.name)
def test_allowed_exactly_where_the_spec_says(op: str, state: State) -> None:
    assert (refusal_reason(op, state) is None) == (state in ALLOWED[op])


@pytest.mark.parametrize(
    ("op", "state", "reason"),
    [
        ("generateCsr", S.GENERAL_DONE, "keyPair must be done first"),
        ("downloadCsr", S.ATTESTATION_VERIFY_DONE, "generateCsr must be done first"),
        ("uploadCertChain", S.CSRGEN_DONE, "uploadCert must be done first"),
        ("uploadCertChain", S.KEYGEN_DONE, "generateCsr must be done first"),
        ("deleteCertChain", S.INTCERT_UPLOAD_DONE, "uploadCertChain must be done first"),
        ("makeDefault", S.CERTCHAIN_UPLOAD_DONE, "finalizeCert must be done first"),
        ("makeDefault", S.INTCERT_UPLOAD_DONE, "finalizeCert must be done first"),
        ("keyPair", S.PUBKEY_DONE, "a key pair already exists and cannot be replaced"),
        ("keyPair", S.CERT_READY, "the certificate is finalized"),
        ("uploadCert", S.CERT_READY, "the certificate is finalized"),
    ],
)
def test_reasons_name_the_earliest_missing_step(op: str, state: State, reason: str) -> None:
    assert refusal_reason(op, state) == reason
    with pytest.raises(InvalidState) as err:
        check_allowed(op, state)
    assert err.value.message == f"Operation {op} is not allowed in state {state.name}: {reason}."


def test_downloads_move_forward_only() -> None:
    assert after_download(S.KEYGEN_DONE, S.PUBKEY_DONE) is S.PUBKEY_DONE
    assert after_download(S.CSRGEN_DONE, S.PUBKEY_DONE) is S.CSRGEN_DONE
    assert after_download(S.PUBKEY_DONE, S.ATTESTATION_DONE) is S.ATTESTATION_DONE
