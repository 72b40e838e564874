"""The intermediate's checks (certificates.md §2, G10–G13 and F1–F24) and the per-certificate
profiles of §3 step 11, at unit level: certificates.md §8 rows 13–33, each input made on the fly
with the test PKI (the `openssl` CLI only for the version 1 certificate of row 16).

The baseline intermediate carries a CRL distribution point, so an accepted row has exactly the
findings the row lists; every finding's severity is checked against the spec's table."""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import warnings
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, ExtensionOID, NameOID
from tests.pki import TestPKI, new_key, openssl, resign

from interca.domain.x509.algorithms import decode_oid, pss_parameters, signature_algorithm
from interca.domain.x509.builtin import build_builtin_ca
from interca.domain.x509.findings import Finding
from interca.domain.x509.policy import CheckPolicy
from interca.domain.x509.profile_checks import (
    CHAIN_CA_PROFILE,
    INTERMEDIATE_PROFILE,
    ROOT_PROFILE,
    profile_findings,
    serial_octets,
)
from interca.domain.x509.validate import CHECKS, Candidate, check_intermediate, describe, spki_der

SEVERITY = {
    "expected_single_certificate": "error",
    "self_signed": "error",
    "public_key_mismatch": "error",
    "not_v3": "error",
    "malformed_certificate": "error",
    "not_a_ca": "error",
    "basic_constraints_not_critical": "error",
    "path_length_mismatch": "error",
    "path_length_unconstrained": "warning",
    "key_usage_missing": "error",
    "no_key_cert_sign": "error",
    "key_usage_not_critical": "warning",
    "no_crl_sign": "warning",
    "eku_excludes_server_auth": "error",
    "ski_missing": "error",
    "aki_missing": "error",
    "critical_extension_not_allowed": "error",
    "unknown_critical_extension": "error",
    "not_yet_valid": "error",
    "expired": "error",
    "expires_too_soon": "error",
    "weak_signature": "error",
    "unsupported_signature": "error",
    "weak_key": "error",
    "key_too_large": "error",
    "unsupported_curve": "error",
    "unsupported_key_type": "error",
    "negative_serial": "error",
    "serial_too_long": "warning",
    "subject_mismatch": "error",
    "subject_differs": "warning",
    "name_constraints": "warning",
    "no_revocation_info": "warning",
}

SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Inspection"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Example Inspection CA"),
    ]
)
LABEL = "intermediate: CN=Example Inspection CA,OU=Inspection,O=Example"
CRL_DP = x509.CRLDistributionPoints(
    [
        x509.DistributionPoint(
            [x509.UniformResourceIdentifier("http://pki.example.test/root.crl")], None, None, None
        )
    ]
)
UNKNOWN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.1")


# Fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI("ec")


@pytest.fixture(scope="module")
def rsa_pki(pki: TestPKI) -> TestPKI:
    """An RSA root (MD5 and RSASSA-PSS signatures need an RSA issuer)."""
    return TestPKI("rsa", now=pki.now)


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return new_key("ec")


def issue(
    pki: TestPKI, public_key: Any, *, crl: bool = True, extra: tuple = (), **kw: Any
) -> x509.Certificate:
    """A well-formed intermediate (CRL DP included) with the defects asked for in `kw`."""
    kw.setdefault("subject", SUBJECT)
    kw.setdefault("path_length", 0)
    extensions = [*extra, *([(CRL_DP, False)] if crl else [])]
    return pki.sign_ca(public_key, extra_extensions=extensions, **kw)


def check(
    cert: x509.Certificate,
    *,
    certs: list[x509.Certificate] | None = None,
    expected: Any = None,
    csr_path_length: int | None = 0,
    csr_subject: x509.Name | None = SUBJECT,
    now: dt.datetime | None = None,
    allow_path_length_change: bool = True,
) -> list[Finding]:
    """check_intermediate with the record's key = `expected` (default the certificate's own)."""
    spki = spki_der(expected if expected is not None else cert)
    policy = CheckPolicy(now=now) if now is not None else None
    findings = check_intermediate(
        Candidate(certs or [cert], spki, csr_path_length, csr_subject, policy, allow_path_length_change)
    )
    for f in findings:
        assert f.severity == SEVERITY[f.id], f
        assert f.message.startswith(f"[{f.id}] ")
        assert "\n" not in f.message
    return findings


def ids(findings: list[Finding]) -> list[str]:
    return [f.id for f in findings]


def only(findings: list[Finding], finding_id: str) -> Finding:
    matching = [f for f in findings if f.id == finding_id]
    assert len(matching) == 1, ids(findings)
    return matching[0]


def text(finding: Finding) -> str:
    return finding.message[len(finding.id) + 3 :]


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def ts(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# The baseline ----------------------------------------------------------------------------------


def test_a_well_formed_intermediate_has_no_finding(pki, key):
    cert = issue(pki, key.public_key())
    assert check(cert, now=pki.now) == []
    assert check(cert) == []  # policy None: the current time


def test_checks_are_every_f_check_in_spec_order():
    assert tuple(f"F{n}" for n in range(1, 25)) == INTERMEDIATE_PROFILE
    assert [number for number, _ in CHECKS] == list(INTERMEDIATE_PROFILE)


def test_builtin_ca_passes_with_only_no_revocation_info():
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    int_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _, intermediate = build_builtin_ca("0a1b2c3d", root_key, int_key, dt.datetime.now(dt.UTC))
    # Exactly the call bootstrap makes: no CSR, current time.
    findings = check_intermediate(Candidate([intermediate], spki_der(intermediate), None))
    assert ids(findings) == ["no_revocation_info"]
    assert findings[0].subject == describe(intermediate)


@pytest.mark.filterwarnings("ignore:Parsed a serial number")
def test_findings_follow_spec_order_across_many_defects(pki, key):
    cert = issue(
        pki,
        key.public_key(),
        subject="Someone Else",
        crl=False,
        bc_critical=False,
        path_length=None,
        key_usage=None,
        eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
        ski=False,
        aki=False,
        not_after=pki.now + dt.timedelta(days=10),
        hash_alg=hashes.SHA1(),
        serial=-5,
    )
    assert ids(check(cert, now=pki.now)) == [
        "basic_constraints_not_critical",  # F2
        "path_length_unconstrained",  # F4
        "key_usage_missing",  # F5
        "eku_excludes_server_auth",  # F9
        "ski_missing",  # F10
        "aki_missing",  # F11
        "expires_too_soon",  # F15
        "weak_signature",  # F16
        "negative_serial",  # F19
        "subject_mismatch",  # F21
        "no_revocation_info",  # F24
    ]


# Gates: rows 13–16 -----------------------------------------------------------------------------


def test_row13_intermediate_and_root_in_one_file(pki, key):
    cert = issue(pki, key.public_key())
    findings = check(cert, certs=[cert, pki.root.cert])
    assert ids(findings) == ["expected_single_certificate"]
    assert text(findings[0]) == (
        "The file holds 2 certificates (1 match this certificate's key pair). "
        "Upload the signed intermediate alone and the others with uploadCertChain."
    )
    assert findings[0].subject == "fileUpload"


def test_row14_the_org_root_is_self_signed(pki, key):
    findings = check(pki.root.cert, expected=key.public_key())
    assert ids(findings) == ["self_signed"]
    assert text(findings[0]) == (
        "The certificate is self-signed (a root?). Upload the certificate the organization's CA issued for this CSR."
    )
    assert findings[0].subject == "intermediate: CN=interca Test Root CA"


def test_self_issued_but_not_self_signed_is_no_root(pki, key):
    """Same issuer and subject name, signed by another key: G11 does not fire, G12 judges it."""
    other = new_key("ec")
    cert = issue(pki, other.public_key(), subject=pki.root.cert.subject)
    assert ids(check(cert, expected=key.public_key())) == ["public_key_mismatch"]


def test_row15_certificate_for_another_key(pki, key):
    cert = issue(pki, new_key("ec").public_key())
    findings = check(cert, expected=key.public_key())
    assert ids(findings) == ["public_key_mismatch"]
    assert findings[0].subject == LABEL
    assert text(findings[0]) == (
        "The certificate's public key does not match the key pair generated for this certificate."
    )


def test_row16_version_1_from_openssl_x509_req(pki, key, tmp_path):
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(SUBJECT)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    (tmp_path / "csr.pem").write_bytes(csr)
    (tmp_path / "root.pem").write_bytes(pki.root.cert_pem)
    (tmp_path / "root.key").write_bytes(pki.root.key_pem)
    result = openssl(
        "x509", "-req", "-in", "csr.pem", "-CA", "root.pem", "-CAkey", "root.key",
        "-set_serial", "4660", "-days", "365", "-sha256", "-out", "v1.pem",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "v1.pem").read_bytes())
    assert cert.version is x509.Version.v1

    findings = check(cert, expected=key.public_key())
    assert ids(findings) == ["not_v3"]
    assert text(findings[0]) == (
        "The certificate is X.509 version 1; a CA certificate must be version 3 "
        "(was it signed without an extensions file?)."
    )


def test_malformed_extension_is_a_finding_not_a_crash(pki, key):
    garbage = x509.UnrecognizedExtension(ExtensionOID.KEY_USAGE, b"\x03\x02\x01")
    cert = issue(pki, key.public_key(), key_usage=None, extra=((garbage, True),))
    with pytest.raises(ValueError):
        _ = cert.extensions
    findings = check(cert)
    assert ids(findings) == ["malformed_certificate"]
    assert text(findings[0]) == "The file is not a valid PEM or DER certificate (not a certificate)."
    assert findings[0].subject == "fileUpload"  # as the upload decoder's G9 would say
    policy = CheckPolicy(now=pki.now)
    assert ids(profile_findings(cert, "chain[0]: x", policy, CHAIN_CA_PROFILE)) == ["malformed_certificate"]


# basicConstraints and pathLen: rows 17–20 ------------------------------------------------------


@pytest.mark.parametrize("basic_constraints", [False, None], ids=["ca-false", "absent"])
def test_row17_not_a_ca(pki, key, basic_constraints):
    findings = check(issue(pki, key.public_key(), basic_constraints=basic_constraints))
    assert ids(findings) == ["not_a_ca"]
    assert text(findings[0]) == (
        "basicConstraints does not assert cA=TRUE, so this certificate cannot issue certificates; "
        "have it signed as a subordinate CA."
    )


def test_row18_basic_constraints_not_critical(pki, key):
    findings = check(issue(pki, key.public_key(), bc_critical=False))
    assert ids(findings) == ["basic_constraints_not_critical"]
    assert text(findings[0]) == "basicConstraints must be critical (RFC 5280 section 4.2.1.9)."


def test_row19_path_length_1_where_the_csr_asked_0(pki, key):
    cert = issue(pki, key.public_key(), path_length=1)
    findings = check(cert, csr_path_length=0)
    assert ids(findings) == ["path_length_mismatch"]
    assert text(findings[0]) == (
        "pathLenConstraint is 1 but the CSR requested 0; have the CA sign it with 0, or regenerate "
        "the CSR with 1 and upload this certificate again."
    )


def test_path_length_mismatch_without_the_second_clause(pki, key):
    # CUSTOM_HSM: only 0 is allowed, so regenerating the CSR with 1 is no option.
    hsm = check(
        issue(pki, key.public_key(), path_length=1), csr_path_length=0, allow_path_length_change=False
    )
    # pathLen 2 is not a value the CSR could request (api.md: 0 or 1).
    two = check(issue(pki, key.public_key(), path_length=2), csr_path_length=1)
    assert text(only(hsm, "path_length_mismatch")) == (
        "pathLenConstraint is 1 but the CSR requested 0; have the CA sign it with 0."
    )
    assert text(only(two, "path_length_mismatch")) == (
        "pathLenConstraint is 2 but the CSR requested 1; have the CA sign it with 1."
    )


def test_row20_no_path_length_is_accepted_with_a_warning(pki, key):
    findings = check(issue(pki, key.public_key(), path_length=None), csr_path_length=1)
    assert ids(findings) == ["path_length_unconstrained"]
    assert text(findings[0]) == (
        "There is no pathLenConstraint (the CSR requested 1); it works, but this CA is allowed to "
        "create subordinate CAs."
    )


def test_without_a_csr_path_length_checks_are_skipped(pki, key):
    assert check(issue(pki, key.public_key(), path_length=None), csr_path_length=None) == []
    assert check(issue(pki, key.public_key(), path_length=1), csr_path_length=None) == []


# keyUsage and EKU: rows 21–24 -------------------------------------------------------------------


def test_row21_no_key_usage(pki, key):
    findings = check(issue(pki, key.public_key(), key_usage=None))
    assert ids(findings) == ["key_usage_missing"]
    assert text(findings[0]) == (
        "keyUsage is missing; strict clients (Python 3.13 and later) reject every certificate issued under this CA."
    )


def test_row21_key_usage_for_a_server(pki, key):
    findings = check(issue(pki, key.public_key(), key_usage=("digital_signature", "key_encipherment")))
    assert ids(findings) == ["no_key_cert_sign", "no_crl_sign"]
    assert text(findings[0]) == (
        "keyUsage does not include keyCertSign, so this certificate cannot issue certificates."
    )


def test_row22_key_cert_sign_only_not_critical_is_accepted(pki, key):
    findings = check(issue(pki, key.public_key(), key_usage=("key_cert_sign",), key_usage_critical=False))
    assert ids(findings) == ["key_usage_not_critical", "no_crl_sign"]
    assert errors(findings) == []
    assert text(findings[0]) == "keyUsage should be critical (RFC 5280 section 4.2.1.3)."
    assert text(findings[1]) == (
        "keyUsage does not include cRLSign; interca cannot sign a CRL with this CA and will leave the "
        "CRL distribution point out of its leaves."
    )


def test_row23_eku_client_auth_only(pki, key):
    findings = check(issue(pki, key.public_key(), eku=[ExtendedKeyUsageOID.CLIENT_AUTH]))
    assert ids(findings) == ["eku_excludes_server_auth"]
    assert text(findings[0]) == (
        "extendedKeyUsage lacks serverAuth; browsers, OpenSSL, curl, Go and Node reject server "
        "certificates issued under this CA."
    )


@pytest.mark.parametrize(
    "eku",
    [
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE],
    ],
    ids=["server-and-client", "any"],
)
def test_row24_eku_with_server_auth_or_any_is_accepted(pki, key, eku):
    assert check(issue(pki, key.public_key(), eku=eku)) == []


# SKI, AKI and criticality: rows 25–27 ----------------------------------------------------------


def test_row25_no_ski(pki, key):
    findings = check(issue(pki, key.public_key(), ski=False))
    assert ids(findings) == ["ski_missing"]
    assert text(findings[0]) == (
        "subjectKeyIdentifier is missing; leaves need it for their authorityKeyIdentifier and strict "
        "clients reject its absence."
    )


def test_row25_no_aki(pki, key):
    findings = check(issue(pki, key.public_key(), aki=False))
    assert ids(findings) == ["aki_missing"]
    assert text(findings[0]) == (
        "authorityKeyIdentifier is missing; strict clients (Python 3.13 and later) reject every "
        "certificate issued under this CA."
    )


def _aki(pki: TestPKI) -> x509.AuthorityKeyIdentifier:
    ski = pki.root.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


@pytest.mark.parametrize(
    ("what", "name", "oid"),
    [
        ("eku", "extendedKeyUsage", "2.5.29.37"),
        ("aki", "authorityKeyIdentifier", "2.5.29.35"),
        ("crl", "cRLDistributionPoints", "2.5.29.31"),
        ("policies", "certificatePolicies", "2.5.29.32"),
    ],
)
def test_row26_critical_extension_not_allowed(pki, key, what, name, oid):
    kw: dict[str, Any] = {}
    if what == "eku":
        extension: x509.ExtensionType = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    elif what == "aki":
        extension, kw["aki"] = _aki(pki), False
    elif what == "crl":
        extension, kw["crl"] = CRL_DP, False
    else:
        extension = x509.CertificatePolicies(
            [x509.PolicyInformation(x509.ObjectIdentifier("2.5.29.32.0"), None)]
        )
    findings = check(issue(pki, key.public_key(), extra=((extension, True),), **kw))
    assert ids(findings) == ["critical_extension_not_allowed"]
    assert text(findings[0]) == f"{name} ({oid}) is marked critical; it must be non-critical."


def test_allowed_critical_extensions_pass(pki, key):
    san = x509.SubjectAlternativeName([x509.DNSName("ca.example.test")])
    nc = x509.NameConstraints(permitted_subtrees=[x509.DNSName("example.test")], excluded_subtrees=None)
    findings = check(issue(pki, key.public_key(), extra=((san, True), (nc, True))))
    assert ids(findings) == ["name_constraints"]


def test_row27_unknown_critical_extension(pki, key):
    unknown = x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00")
    findings = check(issue(pki, key.public_key(), extra=((unknown, True),)))
    assert ids(findings) == ["unknown_critical_extension"]
    assert text(findings[0]) == (
        "Critical extension 1.3.6.1.4.1.55555.1.1 is not understood by TLS clients; they would reject "
        "every certificate issued under this CA."
    )
    # The same extension non-critical is fine.
    assert check(issue(pki, key.public_key(), extra=((unknown, False),))) == []


# Validity: row 28 ------------------------------------------------------------------------------


def test_row28_expired_yesterday(pki, key):
    not_after = pki.now - dt.timedelta(days=1)
    cert = issue(pki, key.public_key(), not_before=pki.now - dt.timedelta(days=30), not_after=not_after)
    findings = check(cert, now=pki.now)
    assert ids(findings) == ["expired"]  # not expires_too_soon as well
    assert text(findings[0]) == f"The certificate expired on {ts(not_after)}."


def test_row28_not_before_in_two_days(pki, key):
    not_before = pki.now + dt.timedelta(days=2)
    findings = check(issue(pki, key.public_key(), not_before=not_before), now=pki.now)
    assert ids(findings) == ["not_yet_valid"]
    assert text(findings[0]) == f"The certificate is not valid before {ts(not_before)}."
    assert text(findings[0]).endswith("Z.")


def test_row28_not_before_in_two_minutes_is_within_the_skew(pki, key):
    cert = issue(pki, key.public_key(), not_before=pki.now + dt.timedelta(minutes=2))
    assert check(cert, now=pki.now) == []


def test_row28_valid_for_ten_more_days(pki, key):
    now = pki.now.replace(microsecond=0)  # notAfter has whole seconds; days are rounded down
    not_after = now + dt.timedelta(days=10)
    findings = check(issue(pki, key.public_key(), not_after=not_after), now=now)
    assert ids(findings) == ["expires_too_soon"]
    assert text(findings[0]) == (
        f"The certificate expires on {not_after:%Y-%m-%d}, in 10 days; at least 30 days are required."
    )


def test_validity_boundaries(pki, key):
    now = pki.now.replace(microsecond=0)
    second = dt.timedelta(seconds=1)

    def at(**kw: Any) -> list[str]:
        return ids(check(issue(pki, key.public_key(), **kw), now=now))

    assert at(not_before=now + dt.timedelta(seconds=300)) == []
    assert at(not_before=now + dt.timedelta(seconds=301)) == ["not_yet_valid"]
    assert at(not_before=now - dt.timedelta(days=60), not_after=now) == ["expired"]
    assert at(not_after=now + dt.timedelta(days=30)) == []
    assert at(not_after=now + dt.timedelta(days=30) - second) == ["expires_too_soon"]
    custom = CheckPolicy(now=now, min_remaining_days=5, clock_skew_seconds=0)
    cert = issue(pki, key.public_key(), not_after=now + dt.timedelta(days=10))
    assert check_intermediate(Candidate([cert], spki_der(cert), 0, SUBJECT, custom)) == []
    late = issue(pki, key.public_key(), not_before=now + second)
    assert ids(check_intermediate(Candidate([late], spki_der(late), 0, SUBJECT, custom))) == ["not_yet_valid"]
    soon = check(issue(pki, key.public_key(), not_after=now + dt.timedelta(days=30) - second), now=now)
    assert "in 29 days;" in soon[0].message


# Signatures: row 29 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issuer", "hash_alg", "name"),
    [
        ("rsa", hashes.SHA1(), "sha1WithRSAEncryption"),
        ("rsa", hashes.MD5(), "md5WithRSAEncryption"),
        ("ec", hashes.SHA1(), "ecdsa-with-SHA1"),
    ],
    ids=["sha1-rsa", "md5-rsa", "sha1-ecdsa"],
)
def test_row29_weak_signature(pki, rsa_pki, key, issuer, hash_alg, name):
    cert = issue(rsa_pki if issuer == "rsa" else pki, key.public_key(), hash_alg=hash_alg)
    findings = check(cert)
    assert ids(findings) == ["weak_signature"]  # not unsupported_signature as well
    assert text(findings[0]) == (
        f"The certificate is signed with {name}; SHA-256, SHA-384 or SHA-512 is required."
    )


def pss_signed(rsa_pki: TestPKI, key: Any, hash_alg: hashes.HashAlgorithm, salt: int, mgf_hash: Any = None):
    """A well-formed intermediate signed with RSASSA-PSS by the RSA root."""
    draft = issue(rsa_pki, key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(draft.subject)
        .issuer_name(draft.issuer)
        .public_key(key.public_key())
        .serial_number(draft.serial_number)
        .not_valid_before(draft.not_valid_before_utc)
        .not_valid_after(draft.not_valid_after_utc)
    )
    for ext in draft.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    pss = padding.PSS(mgf=padding.MGF1(mgf_hash or hash_alg), salt_length=salt)
    return builder.sign(rsa_pki.root.key, hash_alg, rsa_padding=pss)


def test_row29_pss_with_maximal_salt_is_unsupported(rsa_pki, key):
    cert = pss_signed(rsa_pki, key, hashes.SHA256(), padding.PSS.MAX_LENGTH)
    findings = check(cert)
    assert ids(findings) == ["unsupported_signature"]
    assert text(findings[0]) == (
        "Signature algorithm RSASSA-PSS with SHA-256, MGF1 with SHA-256, salt length 222 "
        "(1.2.840.113549.1.1.10) is not accepted."
    )


@pytest.mark.parametrize(
    ("hash_alg", "salt"), [(hashes.SHA256(), 32), (hashes.SHA384(), 48), (hashes.SHA512(), 64)]
)
def test_pss_with_salt_equal_to_the_hash_length_is_accepted(rsa_pki, key, hash_alg, salt):
    cert = pss_signed(rsa_pki, key, hash_alg, salt)
    assert check(cert) == []
    params = pss_parameters(cert)
    assert params is not None and params.salt_length == salt and params.mgf_hash == params.hash


def test_pss_with_another_mgf1_hash_is_unsupported(rsa_pki, key):
    cert = pss_signed(rsa_pki, key, hashes.SHA256(), 32, mgf_hash=hashes.SHA384())
    assert ids(check(cert)) == ["unsupported_signature"]
    assert "MGF1 with SHA-384" in check(cert)[0].message


def test_other_signature_algorithms_are_unsupported(pki, key):
    ed_key = ed25519.Ed25519PrivateKey.generate()
    cert = issue(pki, key.public_key(), issuer=(ed_key, pki.root.cert), hash_alg=None)
    findings = check(cert)
    assert ids(findings) == ["unsupported_signature"]
    assert text(findings[0]) == "Signature algorithm ed25519 (1.3.101.112) is not accepted."
    sha224 = issue(pki, key.public_key(), hash_alg=hashes.SHA224())
    assert text(only(check(sha224), "unsupported_signature")) == (
        "Signature algorithm ecdsa-with-SHA224 (1.2.840.10045.4.3.1) is not accepted."
    )


def test_signature_algorithm_names(pki, key):
    verdict = signature_algorithm(issue(pki, key.public_key(), hash_alg=hashes.SHA384()))
    assert (verdict.name, verdict.oid, verdict.accepted, verdict.weak) == (
        "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.3",
        True,
        False,
    )
    assert decode_oid(bytes.fromhex("2a864886f70d01010a")) == "1.2.840.113549.1.1.10"
    assert decode_oid(bytes.fromhex("2b0601040183b2030101")) == "1.3.6.1.4.1.55555.1.1"
    assert decode_oid(b"") is None and decode_oid(b"\x86") is None


# Keys: row 30 ----------------------------------------------------------------------------------


def _rsa_16384_public_key() -> rsa.RSAPublicKey:
    """Only the public key is checked, so a random odd 16384-bit modulus does (no slow keygen)."""
    n = secrets.randbits(16384) | (1 << 16383) | 1
    return rsa.RSAPublicNumbers(65537, n).public_key()


@pytest.mark.parametrize(
    ("make", "finding_id", "message"),
    [
        (
            lambda: new_key("rsa-1024").public_key(),
            "weak_key",
            "The key is RSA-1024; at least 2048 bits are required.",
        ),
        (_rsa_16384_public_key, "key_too_large", "The key is RSA-16384; at most 8192 bits are accepted."),
        (
            lambda: ec.generate_private_key(ec.SECP521R1()).public_key(),
            "unsupported_curve",
            "The key is EC on P-521; only P-256 and P-384 are accepted.",
        ),
        (
            lambda: ed25519.Ed25519PrivateKey.generate().public_key(),
            "unsupported_key_type",
            "The key is Ed25519; only RSA and EC (P-256, P-384) keys are accepted.",
        ),
    ],
    ids=["rsa-1024", "rsa-16384", "p-521", "ed25519"],
)
def test_row30_key_types(pki, make, finding_id, message):
    public_key = make()
    findings = check(issue(pki, public_key), expected=public_key)
    assert ids(findings) == [finding_id]
    assert text(findings[0]) == message


@pytest.mark.parametrize("key_type", ["rsa-2048", "ec-p384"])
def test_accepted_key_types(pki, key_type):
    public_key = new_key(key_type).public_key()
    assert check(issue(pki, public_key), expected=public_key) == []


# Serials: row 31 -------------------------------------------------------------------------------


def test_row31_negative_serial(pki, key):
    with pytest.warns(Warning):  # cryptography warns when loading it; the checks must not
        cert = issue(pki, key.public_key(), serial=-0x5A5A)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        findings = check(cert)
    assert ids(findings) == ["negative_serial"]
    assert (
        text(findings[0])
        == "The serial number is not positive; Go clients refuse to parse such certificates."
    )


def test_row31_22_octet_serial_is_accepted_with_a_warning(pki, key):
    serial = (1 << 170) + 12345  # 171 bits: 22 octets with the sign bit
    findings = check(issue(pki, key.public_key(), serial=serial))
    assert ids(findings) == ["serial_too_long"]
    assert text(findings[0]) == "The serial number is 22 octets; RFC 5280 allows at most 20."


def test_serial_length_boundary(pki, key):
    assert check(issue(pki, key.public_key(), serial=(1 << 159) - 1)) == []  # 20 octets
    assert text(check(issue(pki, key.public_key(), serial=1 << 159))[0]) == (
        "The serial number is 21 octets; RFC 5280 allows at most 20."
    )


@pytest.mark.parametrize(
    ("serial", "octets"),
    [
        (0, 1),
        (1, 1),
        (127, 1),
        (128, 2),
        (255, 2),
        (-1, 1),
        (-128, 1),
        (-129, 2),
        (-0x5A5A, 2),
        ((1 << 159) - 1, 20),
    ],
)
def test_serial_octets(serial, octets):
    assert serial_octets(serial) == octets
    length = octets
    assert serial.to_bytes(length, "big", signed=True)  # fits in that many octets


# Subject: row 32 -------------------------------------------------------------------------------


def test_row32_another_cn(pki, key):
    cert = issue(pki, key.public_key(), subject="Other CA")
    findings = check(cert)
    assert ids(findings) == ["subject_mismatch"]
    assert (
        text(findings[0])
        == 'The subject common name "Other CA" differs from the CSR\'s "Example Inspection CA".'
    )
    assert findings[0].subject == "intermediate: CN=Other CA"


def test_row32_same_cn_ou_dropped_and_rdns_reordered(pki, key):
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Example Inspection CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
        ]
    )
    findings = check(issue(pki, key.public_key(), subject=subject))
    assert ids(findings) == ["subject_differs"]
    assert errors(findings) == []
    assert text(findings[0]) == (
        'The subject "O=Example,CN=Example Inspection CA" differs from the CSR subject '
        '"CN=Example Inspection CA,OU=Inspection,O=Example" outside the common name.'
    )


def test_subject_checks_compare_every_cn_exactly(pki, key):
    two = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Example Inspection CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Second"),
        ]
    )
    assert ids(check(issue(pki, key.public_key(), subject=two))) == ["subject_mismatch"]
    lower = check(issue(pki, key.public_key(), subject="example inspection ca"))
    assert ids(lower) == ["subject_mismatch"]
    # PrintableString instead of UTF8String: same CN text, other bytes.
    printable = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Inspection"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, "Example Inspection CA", x509.name._ASN1Type.PrintableString
            ),
        ]
    )
    assert ids(check(issue(pki, key.public_key(), subject=printable))) == ["subject_differs"]


def test_without_a_csr_subject_the_subject_checks_are_skipped(pki, key):
    assert check(issue(pki, key.public_key(), subject="Other CA"), csr_subject=None) == []


# Name constraints and revocation: row 33, F24 --------------------------------------------------


def test_row33_name_constraints_are_accepted_with_a_warning(pki, key):
    nc = x509.NameConstraints(permitted_subtrees=[x509.DNSName("allowed.test")], excluded_subtrees=None)
    findings = check(issue(pki, key.public_key(), extra=((nc, True),)))
    assert ids(findings) == ["name_constraints"]
    assert text(findings[0]) == (
        "This CA is name-constrained (permitted: DNS:allowed.test; excluded: none); hosts outside "
        "cannot be inspected and will be passed through."
    )


def test_name_constraints_render_every_subtree_kind(pki, key):
    nc = x509.NameConstraints(
        permitted_subtrees=[
            x509.DNSName(".example.test"),
            x509.IPAddress(ipaddress.ip_network("10.0.0.0/8")),
        ],
        excluded_subtrees=[
            x509.DNSName("secret.example.test"),
            x509.DirectoryName(x509.Name.from_rfc4514_string("O=X")),
        ],
    )
    finding = check(issue(pki, key.public_key(), extra=((nc, True),)))[0]
    assert (
        "(permitted: DNS:.example.test, IP:10.0.0.0/8; excluded: DNS:secret.example.test, DirName:O=X)"
        in (finding.message)
    )


def test_no_revocation_info(pki, key):
    findings = check(issue(pki, key.public_key(), crl=False))
    assert ids(findings) == ["no_revocation_info"]
    assert text(findings[0]) == (
        "The certificate has no revocation information; Windows clients that check the whole chain "
        "(Schannel, curl.exe) may refuse connections."
    )
    url = x509.UniformResourceIdentifier("http://pki.example.test/x")
    ocsp = x509.AuthorityInformationAccess([x509.AccessDescription(AuthorityInformationAccessOID.OCSP, url)])
    issuers = x509.AuthorityInformationAccess(
        [x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, url)]
    )
    assert check(issue(pki, key.public_key(), crl=False, extra=((ocsp, False),))) == []
    assert ids(check(issue(pki, key.public_key(), crl=False, extra=((issuers, False),)))) == [
        "no_revocation_info"
    ]


# profile_findings: the chain's per-certificate checks ------------------------------------------


def test_profiles_are_those_of_section_3_step_11():
    assert ("F1", "F2", *(f"F{n}" for n in range(5, 20)), "F23") == CHAIN_CA_PROFILE
    assert ROOT_PROFILE == ("F1", "F2", "F5", "F6", "F9", "F12", "F13", "F14", "F15", "F18", "F19", "F23")


@pytest.fixture(scope="module")
def weak_root(pki: TestPKI) -> x509.Certificate:
    """A self-signed RSA-1024 root, SHA-1, without SKI or revocation info."""
    root_key = new_key("rsa-1024")
    name = x509.Name.from_rfc4514_string("CN=Old Root")
    draft = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(root_key.public_key())
        .serial_number(7)
        .not_valid_before(pki.now - dt.timedelta(days=1))
        .not_valid_after(pki.now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(root_key, hashes.SHA256())
    )
    return resign(draft, root_key, hashes.SHA1())


def test_root_profile_skips_signature_ski_and_aki(pki, weak_root):
    policy = CheckPolicy(now=pki.now)
    root = profile_findings(weak_root, "chain[2]: CN=Old Root", policy, ROOT_PROFILE)
    assert ids(root) == ["weak_key"]
    assert {f.subject for f in root} == {"chain[2]: CN=Old Root"}
    as_ca = profile_findings(weak_root, "chain[2]: CN=Old Root", policy, CHAIN_CA_PROFILE)
    assert ids(as_ca) == ["ski_missing", "weak_signature", "weak_key"]  # self-issued: no aki_missing


def test_chain_ca_profile_has_no_csr_or_revocation_checks(pki):
    policy_key = new_key("ec")
    nc = x509.NameConstraints(permitted_subtrees=[x509.DNSName("allowed.test")], excluded_subtrees=None)
    cert = pki.sign_ca(
        policy_key.public_key(),
        subject="Policy CA",
        path_length=None,
        aki=False,
        eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
        extra_extensions=[(nc, True)],
    )
    findings = profile_findings(cert, "chain[1]: CN=Policy CA", CheckPolicy(now=pki.now), CHAIN_CA_PROFILE)
    assert ids(findings) == ["eku_excludes_server_auth", "aki_missing", "name_constraints"]
    assert all(f.subject == "chain[1]: CN=Policy CA" for f in findings)
    assert all(f.severity == SEVERITY[f.id] for f in findings)
    # Order follows the spec, not the order of `checks`.
    reversed_order = profile_findings(cert, "s", CheckPolicy(now=pki.now), tuple(reversed(CHAIN_CA_PROFILE)))
    assert ids(reversed_order) == ids(findings)


def test_chain_ca_profile_expiry_and_signature(pki, rsa_pki):
    cert = rsa_pki.sign_ca(
        new_key("ec").public_key(),
        subject="Policy CA",
        hash_alg=hashes.SHA1(),
        not_before=pki.now - dt.timedelta(days=400),
        not_after=pki.now - dt.timedelta(days=1),
    )
    findings = profile_findings(cert, "chain[0]: CN=Policy CA", CheckPolicy(now=pki.now), CHAIN_CA_PROFILE)
    assert ids(findings) == ["expired", "weak_signature"]


@pytest.mark.parametrize("bad", [("F3",), ("F4",), ("F21",), ("F22",), ("F99",)])
def test_profile_findings_refuses_csr_and_unknown_checks(pki, key, bad):
    with pytest.raises(ValueError):
        profile_findings(issue(pki, key.public_key()), "s", CheckPolicy(now=pki.now), ("F1", *bad))


# Robustness ------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore")
def test_checks_never_crash_on_mutated_certificates(pki, key):
    """Every loadable one-byte mutation of a rich certificate yields findings, never an exception."""
    nc = x509.NameConstraints(permitted_subtrees=[x509.DNSName("allowed.test")], excluded_subtrees=None)
    eku = [ExtendedKeyUsageOID.SERVER_AUTH]
    der = issue(pki, key.public_key(), eku=eku, extra=((nc, True),)).public_bytes(serialization.Encoding.DER)
    rng = secrets.SystemRandom()
    loaded = 0
    per_cert = tuple(n for n in INTERMEDIATE_PROFILE if n not in ("F3", "F4", "F21", "F22"))
    for _ in range(3000):
        mutated = bytearray(der)
        mutated[rng.randrange(len(der))] ^= 1 << rng.randrange(8)
        try:
            cert = x509.load_der_x509_certificate(bytes(mutated))
        except Exception:  # ValueError, InvalidVersion: the decoder's G9
            continue
        loaded += 1
        findings = check_intermediate(Candidate([cert], spki_der(key.public_key()), 0, SUBJECT))
        assert all(f.id in SEVERITY for f in findings)
        assert all(f.id in SEVERITY for f in profile_findings(cert, "s", CheckPolicy(now=pki.now), per_cert))
    assert loaded > 0
