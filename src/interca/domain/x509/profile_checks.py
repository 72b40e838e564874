"""The per-certificate checks of certificates.md §2 (F1–F24 without the CSR ones), shared by the
uploaded intermediate (§2) and every certificate of an uploaded chain (§3 step 11).

Each check is a function of a `Target` (certificate, finding subject, policy) returning its
findings (usually none or one; F14 and F18 name the variant that applies). Which checks run on a
certificate is a profile: a tuple of check numbers in spec order. F3, F4, F21 and F22 compare
with the CSR and live in `validate.py`; `profile_findings` refuses them.

Owns the profiles, `profile_findings` that runs them, the check table `CERT_CHECKS`, and the checks
on the certificate's own fields: validity (F14-F15), signature algorithm and key (F16-F18) and
serial number (F19-F20). The checks on extensions are in `extension_checks.py`; `Target`, what
every check receives, is in `check_target.py`.

Robustness: `cryptography` parses the serial, the names and the extensions lazily and raises
(`ValueError`, `x509.DuplicateExtension`, ...) on first access when one is malformed. The upload
decoder already refuses such files as G9, but certificates can reach these checks by other roads
(stored chains, the built-in CA), so `profile_findings` forces those fields first and reports a
failure as the single finding `malformed_certificate` with G9's message and reason `not a
certificate` (no other check would describe the certificate correctly). Keys that `cryptography`
cannot load become `unsupported_key_type` (or `unsupported_curve` for an unknown named curve);
cryptography's warning about non-positive serials is suppressed and reported as F19.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from interca.domain.x509.algorithms import EC_PUBLIC_KEY, key_type_name, signature_algorithm, spki_algorithm
from interca.domain.x509.check_target import CertCheck, Target
from interca.domain.x509.extension_checks import (
    check_aki,
    check_bc_critical,
    check_critical_known,
    check_critical_unknown,
    check_crl_sign,
    check_eku,
    check_key_cert_sign,
    check_key_usage_critical,
    check_key_usage_missing,
    check_name_constraints,
    check_not_a_ca,
    check_revocation_info,
    check_ski,
)
from interca.domain.x509.findings import Finding
from interca.domain.x509.policy import CheckPolicy

ALL_CHECKS: tuple[str, ...] = tuple(f"F{n}" for n in range(1, 25))
CSR_CHECKS = frozenset({"F3", "F4", "F21", "F22"})
INTERMEDIATE_PROFILE: tuple[str, ...] = ALL_CHECKS
"""§2: every F check applies to the uploaded intermediate (F3/F4/F21/F22 only with a CSR)."""
CHAIN_CA_PROFILE: tuple[str, ...] = ("F1", "F2", *(f"F{n}" for n in range(5, 20)), "F23")
"""§3 step 11: non-root CAs of a chain get F1, F2, F5–F19 and F23."""
ROOT_PROFILE: tuple[str, ...] = (
    "F1",
    "F2",
    "F5",
    "F6",
    "F9",
    "F12",
    "F13",
    "F14",
    "F15",
    "F18",
    "F19",
    "F23",
)
"""§3 step 11: the root is not judged on its signature algorithm, SKI or AKI."""

MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
ACCEPTED_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}
_CURVE_NAMES = {"secp192r1": "P-192", "secp224r1": "P-224", "secp521r1": "P-521", **ACCEPTED_CURVES}
MAX_SERIAL_OCTETS = 20

MALFORMED_MESSAGE = "The file is not a valid PEM or DER certificate (not a certificate)."


def unparseable(cert: x509.Certificate) -> bool:
    """Whether `cryptography` fails on a lazily parsed field: serial, names or extensions
    (malformed or duplicate extensions, a name that is not a Name, ...)."""
    try:
        with warnings.catch_warnings():  # serials <= 0 are F19's
            warnings.simplefilter("ignore")
            _ = (cert.serial_number, cert.issuer, cert.subject, cert.extensions)
    except Exception:  # ValueError, DuplicateExtension, ...: all mean the same to the uploader
        return True
    return False


def malformed(subject: str) -> Finding:
    return Finding.error("malformed_certificate", MALFORMED_MESSAGE, subject)


def profile_findings(
    cert: x509.Certificate, subject: str, policy: CheckPolicy, checks: Sequence[str]
) -> list[Finding]:
    """Run the named per-certificate F checks in spec order, each finding labelled `subject`
    (e.g. "chain[2]: CN=Policy CA"). `checks` is a profile such as CHAIN_CA_PROFILE or
    ROOT_PROFILE. A certificate whose serial, names or extensions cannot be parsed gets
    `malformed_certificate` alone. Raises ValueError for an unknown check or one that needs
    the CSR (F3, F4, F21, F22)."""
    wanted = set(checks)
    unknown = wanted - set(CERT_CHECKS)
    if unknown:
        raise ValueError(f"not a per-certificate check: {sorted(unknown)}")
    if unparseable(cert):
        return [malformed(subject)]
    target = Target(cert, subject, policy)
    return [f for number in ALL_CHECKS if number in wanted for f in CERT_CHECKS[number](target)]


# F14–F15 validity ----------------------------------------------------------------------------


def iso_timestamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_date(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d")


def check_validity(t: Target) -> list[Finding]:
    """F14: notBefore > now + skew (`not_yet_valid`), notAfter <= now (`expired`)."""
    found: list[Finding] = []
    not_before, not_after = t.cert.not_valid_before_utc, t.cert.not_valid_after_utc
    if not_before > t.now + dt.timedelta(seconds=t.policy.clock_skew_seconds):
        found += t.error("not_yet_valid", f"The certificate is not valid before {iso_timestamp(not_before)}.")
    if not_after <= t.now:
        found += t.error("expired", f"The certificate expired on {iso_timestamp(not_after)}.")
    return found


def check_remaining(t: Target) -> list[Finding]:
    """F15, only for a certificate not already expired (F14 says that); days rounded down."""
    not_after = t.cert.not_valid_after_utc
    minimum = t.policy.min_remaining_days
    if not_after <= t.now or not_after >= t.now + dt.timedelta(days=minimum):
        return []
    return t.error(
        "expires_too_soon",
        f"The certificate expires on {iso_date(not_after)}, in {(not_after - t.now).days} days; "
        f"at least {minimum} days are required.",
    )


# F16–F18 algorithms --------------------------------------------------------------------------


def check_weak_signature(t: Target) -> list[Finding]:
    algorithm = signature_algorithm(t.cert)
    if not algorithm.weak:
        return []
    return t.error(
        "weak_signature",
        f"The certificate is signed with {algorithm.name}; SHA-256, SHA-384 or SHA-512 is required.",
    )


def check_signature_accepted(t: Target) -> list[Finding]:
    """F17, except where F16 already refused the (MD5/SHA-1) signature."""
    algorithm = signature_algorithm(t.cert)
    if algorithm.accepted or algorithm.weak:
        return []
    return t.error(
        "unsupported_signature", f"Signature algorithm {algorithm.name} ({algorithm.oid}) is not accepted."
    )


def check_key(t: Target) -> list[Finding]:
    try:
        key = t.cert.public_key()
    except Exception:  # UnsupportedAlgorithm, or a key cryptography cannot load
        key = None
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        if bits < MIN_RSA_BITS:
            return t.error("weak_key", f"The key is RSA-{bits}; at least {MIN_RSA_BITS} bits are required.")
        if bits > MAX_RSA_BITS:
            return t.error(
                "key_too_large", f"The key is RSA-{bits}; at most {MAX_RSA_BITS} bits are accepted."
            )
        return []
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name in ACCEPTED_CURVES:
            return []
        return _unsupported_curve(t, _CURVE_NAMES.get(key.curve.name, key.curve.name))
    algorithm, params = spki_algorithm(t.cert)
    if algorithm == EC_PUBLIC_KEY:  # a curve cryptography does not know, or explicit parameters
        return _unsupported_curve(t, params or "explicit parameters")
    return t.error(
        "unsupported_key_type",
        f"The key is {key_type_name(algorithm)}; only RSA and EC (P-256, P-384) keys are accepted.",
    )


def _unsupported_curve(t: Target, curve: str) -> list[Finding]:
    return t.error("unsupported_curve", f"The key is EC on {curve}; only P-256 and P-384 are accepted.")


# F19–F20 serial ------------------------------------------------------------------------------


def serial_number(cert: x509.Certificate) -> int:
    with warnings.catch_warnings():  # cryptography warns about serials <= 0: F19 reports them
        warnings.simplefilter("ignore")
        return cert.serial_number


def serial_octets(serial: int) -> int:
    """Content length of the minimal two's-complement DER INTEGER encoding of `serial`."""
    magnitude = serial if serial >= 0 else ~serial
    return (magnitude.bit_length() + 8) // 8


def check_serial_positive(t: Target) -> list[Finding]:
    if serial_number(t.cert) > 0:
        return []
    return t.error(
        "negative_serial", "The serial number is not positive; Go clients refuse to parse such certificates."
    )


def check_serial_length(t: Target) -> list[Finding]:
    octets = serial_octets(serial_number(t.cert))
    if octets <= MAX_SERIAL_OCTETS:
        return []
    return t.warning(
        "serial_too_long",
        f"The serial number is {octets} octets; RFC 5280 allows at most {MAX_SERIAL_OCTETS}.",
    )


CERT_CHECKS: dict[str, CertCheck] = {
    "F1": check_not_a_ca,
    "F2": check_bc_critical,
    "F5": check_key_usage_missing,
    "F6": check_key_cert_sign,
    "F7": check_key_usage_critical,
    "F8": check_crl_sign,
    "F9": check_eku,
    "F10": check_ski,
    "F11": check_aki,
    "F12": check_critical_known,
    "F13": check_critical_unknown,
    "F14": check_validity,
    "F15": check_remaining,
    "F16": check_weak_signature,
    "F17": check_signature_accepted,
    "F18": check_key,
    "F19": check_serial_positive,
    "F20": check_serial_length,
    "F23": check_name_constraints,
    "F24": check_revocation_info,
}
"""Per-certificate checks by number; the CSR checks F3, F4, F21, F22 are in `validate.py`."""
