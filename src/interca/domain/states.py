"""The ZIA `currentState` lifecycle and which operation may run in which state (api.md §4.3).

Operations are named by their route segment (`keyPair`, `generateCsr`, ...), the name the wire
messages use; `update` and `delete` stand for PUT and DELETE on the certificate itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from interca.errors import InvalidState


class State(Enum):
    """Lifecycle states in lifecycle order; comparisons follow that order."""

    GENERAL_DONE = 0
    KEYGEN_DONE = 1
    PUBKEY_DONE = 2
    ATTESTATION_DONE = 3
    ATTESTATION_VERIFY_DONE = 4
    CSRGEN_DONE = 5
    INTCERT_UPLOAD_DONE = 6
    CERTCHAIN_UPLOAD_DONE = 7
    CERT_READY = 8

    def __lt__(self, other: State) -> bool:
        return self.value < other.value

    def __le__(self, other: State) -> bool:
        return self.value <= other.value

    def __gt__(self, other: State) -> bool:
        return self.value > other.value

    def __ge__(self, other: State) -> bool:
        return self.value >= other.value


# The steps that move a certificate forward, with the state each one reaches. Used to name "the
# earliest missing step" in an out-of-order refusal. uploadCertChain is optional on the way to
# CERT_READY, so it is named only when an operation needs exactly a stored chain.
_STEPS: tuple[tuple[str, State], ...] = (
    ("keyPair", State.KEYGEN_DONE),
    ("generateCsr", State.CSRGEN_DONE),
    ("uploadCert", State.INTCERT_UPLOAD_DONE),
    ("uploadCertChain", State.CERTCHAIN_UPLOAD_DONE),
    ("finalizeCert", State.CERT_READY),
)


@dataclass(frozen=True)
class Window:
    """The states in which an operation is allowed: `first` through `last`, inclusive."""

    first: State
    last: State


_S = State
WINDOWS: dict[str, Window] = {
    "keyPair": Window(_S.GENERAL_DONE, _S.GENERAL_DONE),
    "downloadPublicKey": Window(_S.KEYGEN_DONE, _S.CERT_READY),
    "downloadAttestation": Window(_S.KEYGEN_DONE, _S.CERT_READY),
    "verifyKeyAttestation": Window(_S.KEYGEN_DONE, _S.CERTCHAIN_UPLOAD_DONE),
    "generateCsr": Window(_S.KEYGEN_DONE, _S.CERTCHAIN_UPLOAD_DONE),
    "downloadCsr": Window(_S.CSRGEN_DONE, _S.CERT_READY),
    "showCsr": Window(_S.CSRGEN_DONE, _S.CERT_READY),
    "uploadCert": Window(_S.CSRGEN_DONE, _S.CERTCHAIN_UPLOAD_DONE),
    "validateCert": Window(_S.CSRGEN_DONE, _S.CERT_READY),
    "showCert": Window(_S.INTCERT_UPLOAD_DONE, _S.CERT_READY),
    "downloadCertChain": Window(_S.INTCERT_UPLOAD_DONE, _S.CERT_READY),
    "uploadCertChain": Window(_S.INTCERT_UPLOAD_DONE, _S.CERTCHAIN_UPLOAD_DONE),
    "deleteCertChain": Window(_S.CERTCHAIN_UPLOAD_DONE, _S.CERTCHAIN_UPLOAD_DONE),
    "finalizeCert": Window(_S.INTCERT_UPLOAD_DONE, _S.CERTCHAIN_UPLOAD_DONE),
    "makeDefault": Window(_S.CERT_READY, _S.CERT_READY),
}


def _missing_step(needed: State, current: State) -> str:
    for step, reaches in _STEPS:
        if step == "uploadCertChain" and needed != State.CERTCHAIN_UPLOAD_DONE:
            continue
        if current < reaches <= needed:
            return step
    raise AssertionError(f"no missing step from {current.name} to {needed.name}")


def refusal_reason(op: str, state: State) -> str | None:
    """Why `op` may not run in `state`, or None when it may."""
    window = WINDOWS[op]
    if state < window.first:
        return f"{_missing_step(window.first, state)} must be done first"
    if state > window.last:
        if state == State.CERT_READY:
            return "the certificate is finalized"
        if op == "keyPair":
            return "a key pair already exists and cannot be replaced"
        raise AssertionError(f"unexpected window end for {op}")
    return None


def check_allowed(op: str, state: State) -> None:
    """Raise `InvalidState` with the api.md §4.3 message unless `op` may run in `state`."""
    reason = refusal_reason(op, state)
    if reason is not None:
        raise_not_allowed(op, state, reason)


def raise_not_allowed(op: str, state: State, reason: str) -> None:
    raise InvalidState(f"Operation {op} is not allowed in state {state.name}: {reason}.")


def after_download(state: State, reaches: State) -> State:
    """State after a state-moving download: forward only, never backwards."""
    return reaches if state < reaches else state
