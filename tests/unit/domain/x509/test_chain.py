"""Path building and checks on an uploaded chain (certificates.md §3; §8 rows 34-47).

Every certificate is made here with the test PKI (P-256 keys unless a row needs another). Each
test asserts the first error id (or that there is none), the presence of the other ids, the
stored path and, where it matters, the effective expiry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.pki import CA, TestPKI, new_key, openssl

from interca.domain.x509.chain import ChainResult, build_chain, find_org_root, pem_bundle
from interca.domain.x509.chain_file import chain_subject
from interca.domain.x509.findings import Finding
from interca.domain.x509.policy import CheckPolicy

# Fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI()


@pytest.fixture(scope="module")
def policy(pki: TestPKI) -> CheckPolicy:
    return CheckPolicy(now=pki.now)


@pytest.fixture(scope="module")
def root(pki: TestPKI) -> CA:
    return pki.root


@pytest.fixture(scope="module")
def policy_ca(pki: TestPKI) -> CA:
    return pki.sub_ca("Test Policy CA")


def intermediate(pki: TestPKI, issuer: CA | tuple, **kw) -> x509.Certificate:
    """The signed intermediate (as interca stores it): pathLen 0 under `issuer`."""
    kw.setdefault("path_length", 0)
    return pki.sign_ca(new_key().public_key(), subject="Inspection CA", issuer=issuer, **kw)


@pytest.fixture(scope="module")
def int2(pki: TestPKI, root: CA) -> x509.Certificate:
    """An intermediate directly under the root."""
    return intermediate(pki, root)


@pytest.fixture(scope="module")
def int3(pki: TestPKI, policy_ca: CA) -> x509.Certificate:
    """An intermediate under the policy CA under the root."""
    return intermediate(pki, policy_ca)


def ids(result: ChainResult) -> list[str]:
    return [f.id for f in result.findings]


def errors(result: ChainResult) -> list[Finding]:
    return [f for f in result.findings if f.severity == "error"]


def first_error(result: ChainResult) -> str | None:
    errs = errors(result)
    return errs[0].id if errs else None


def only(result: ChainResult, id: str) -> Finding:
    found = [f for f in result.findings if f.id == id]
    assert len(found) == 1, result.findings
    return found[0]


def dn(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def expiry(*certs: x509.Certificate) -> dt.datetime:
    return min(c.not_valid_after_utc for c in certs)


def self_signed(
    key, name: x509.Name, *, path_length: int | None = None, now: dt.datetime
) -> x509.Certificate:
    """A root with exactly the subject name given (string types included)."""
    return TestPKI(now=now).new_root(name, key=key, path_length=path_length).cert


# Row 34: accepted -------------------------------------------------------------------------------


def test_root_alone_is_accepted(int2, root, policy):
    result = build_chain(int2, [root.cert], policy)

    assert result.findings == []
    assert result.path == [root.cert]
    assert result.root == root.cert
    assert result.effective_expiry == expiry(int2, root.cert)


def test_root_as_der_is_accepted(int2, root, policy):
    from_der = x509.load_der_x509_certificate(root.cert.public_bytes(serialization.Encoding.DER))

    result = build_chain(int2, [from_der], policy)

    assert result.findings == []
    assert result.path == [root.cert]


def test_policy_ca_then_root_is_accepted(int3, root, policy_ca, policy):
    result = build_chain(int3, [policy_ca.cert, root.cert], policy)

    assert result.findings == []
    assert result.path == [policy_ca.cert, root.cert]
    assert result.root == root.cert
    assert result.effective_expiry == expiry(int3, policy_ca.cert, root.cert)


def test_org_roots_accept_a_chain_ending_at_one_of_them(pki, int3, root, policy_ca, policy):
    other = pki.new_root("Another Org Root")

    result = build_chain(int3, [policy_ca.cert, root.cert], policy, org_roots=[other.cert, root.cert])

    assert result.findings == []
    assert result.root == root.cert


# Row 35: accepted with warnings ----------------------------------------------------------------


def test_root_before_policy_ca_is_reordered(int3, root, policy_ca, policy):
    result = build_chain(int3, [root.cert, policy_ca.cert], policy)

    assert errors(result) == []
    assert ids(result) == ["chain_reordered"]
    assert result.path == [policy_ca.cert, root.cert]
    warning = only(result, "chain_reordered")
    assert warning.severity == "warning"
    assert warning.subject == "chainUpload"
    assert f'chain[1] "{dn(policy_ca.cert)}", chain[0] "{dn(root.cert)}"' in warning.message


def test_intermediate_in_the_chain_is_removed(int2, root, policy):
    result = build_chain(int2, [int2, root.cert], policy)

    assert ids(result) == ["chain_contains_intermediate"]
    warning = only(result, "chain_contains_intermediate")
    assert warning.severity == "warning"
    assert warning.subject == chain_subject(0, int2)
    assert warning.message == (
        "[chain_contains_intermediate] The chain includes the signed intermediate itself; it was removed."
    )
    assert result.path == [root.cert]


def test_any_order_with_the_intermediate_repeated_is_accepted_in_path_order(int3, root, policy_ca, policy):
    result = build_chain(int3, [root.cert, int3, policy_ca.cert, int3], policy)

    assert errors(result) == []
    assert ids(result) == ["chain_contains_intermediate", "chain_contains_intermediate", "chain_reordered"]
    assert [f.subject for f in result.findings[:2]] == [chain_subject(1, int3), chain_subject(3, int3)]
    assert result.path == [policy_ca.cert, root.cert]
    assert f'chain[2] "{dn(policy_ca.cert)}", chain[0] "{dn(root.cert)}"' in result.findings[2].message
    assert pem_bundle(result.path) == (policy_ca.cert_pem.decode() + root.cert_pem.decode())


# Row 36: duplicates, non-CA certificates ---------------------------------------------------------


def test_same_root_twice_is_a_duplicate(int2, root, policy):
    result = build_chain(int2, [root.cert, root.cert], policy)

    assert first_error(result) == "duplicate_certificate"
    assert ids(result) == ["duplicate_certificate"]
    finding = result.findings[0]
    assert finding.subject == chain_subject(1, root.cert)
    assert "chain[0]" in finding.message
    assert result.path == [root.cert]


def test_leaf_in_the_chain_is_not_a_ca(pki, int2, root, policy):
    leaf = pki.sign_ca(
        new_key().public_key(), subject="www.example.test", issuer=root, basic_constraints=False
    )

    result = build_chain(int2, [leaf, root.cert], policy)

    assert first_error(result) == "non_ca_in_chain"
    finding = only(result, "non_ca_in_chain")
    assert finding.subject == chain_subject(0, leaf)
    assert finding.message == (
        '[non_ca_in_chain] chain[0] "CN=www.example.test" is not a CA certificate '
        "(a server certificate pasted into the chain?)."
    )
    assert ids(result) == ["non_ca_in_chain"]  # not also reported as unused
    assert result.path == [root.cert]


def test_version_1_root_is_refused_as_non_ca(pki, policy, tmp_path: Path):
    key = new_key()
    (tmp_path / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    made = openssl("req", "-new", "-key", "k.pem", "-subj", "/CN=Old v1 Root", "-out", "r.csr", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    made = openssl(
        "x509", "-req", "-in", "r.csr", "-signkey", "k.pem", "-days", "30", "-out", "r.pem", cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    v1_root = x509.load_pem_x509_certificate((tmp_path / "r.pem").read_bytes())
    assert v1_root.version == x509.Version.v1
    inter = intermediate(pki, (key, v1_root))

    result = build_chain(inter, [v1_root], policy)

    # The walk stops at the refused issuer without a second finding about it.
    assert ids(result) == ["non_ca_in_chain"]
    assert result.path == []
    assert result.root is None


# Row 37: incomplete chains ---------------------------------------------------------------------


def test_three_levels_with_the_policy_ca_missing(int3, root, policy_ca, policy):
    result = build_chain(int3, [root.cert], policy)

    assert first_error(result) == "incomplete_chain"
    finding = only(result, "incomplete_chain")
    assert finding.subject == f"intermediate: {dn(int3)}"
    assert finding.message == (
        f'[incomplete_chain] No certificate in the chain issued "{dn(int3)}" (issuer '
        f'"{dn(policy_ca.cert)}"); include every CA certificate up to and including the root.'
    )
    assert "unused_certificate" not in ids(result)  # step 8 needs a complete path
    assert result.path == []
    assert result.root is None
    assert result.effective_expiry == int3.not_valid_after_utc


def test_policy_ca_without_the_root(int3, root, policy_ca, policy):
    result = build_chain(int3, [policy_ca.cert], policy)

    assert first_error(result) == "incomplete_chain"
    finding = only(result, "incomplete_chain")
    assert finding.subject == chain_subject(0, policy_ca.cert)
    assert f'issuer "{dn(root.cert)}"' in finding.message
    assert result.path == [policy_ca.cert]
    assert result.root is None


def test_intermediate_alone_in_the_chain_is_incomplete(int2, policy):
    result = build_chain(int2, [int2], policy)

    assert ids(result) == ["chain_contains_intermediate", "incomplete_chain"]
    assert first_error(result) == "incomplete_chain"
    assert result.path == []


# Rows 38, 39: look-alike roots -----------------------------------------------------------------


@pytest.fixture(scope="module")
def lookalike(pki: TestPKI, root: CA) -> CA:
    """Same name as the org root, another key."""
    fake = pki.new_root(dn(root.cert).removeprefix("CN="))
    assert fake.cert.subject.public_bytes() == root.cert.subject.public_bytes()
    return fake


def test_lookalike_root_is_a_signature_mismatch(int2, root, lookalike, policy):
    result = build_chain(int2, [lookalike.cert], policy)

    assert first_error(result) == "signature_mismatch"
    finding = only(result, "signature_mismatch")
    assert finding.subject == f"intermediate: {dn(int2)}"
    assert finding.message == (
        f'[signature_mismatch] "{dn(int2)}" names "{dn(root.cert)}" as its issuer and a certificate with '
        f'that name is in the chain, but its key did not sign "{dn(int2)}"; was it exported from a '
        "different or renewed CA?"
    )
    assert result.path == []


def test_lookalike_with_the_real_root_picks_the_real_one(int2, root, lookalike, policy):
    result = build_chain(int2, [lookalike.cert, root.cert], policy)

    assert errors(result) == []
    assert ids(result) == ["unused_certificate"]
    assert result.findings[0].subject == chain_subject(0, lookalike.cert)
    assert result.path == [root.cert]


def test_chain_to_a_lookalike_root_is_untrusted(pki, root, lookalike, policy):
    inter = intermediate(pki, lookalike)

    result = build_chain(inter, [lookalike.cert], policy, org_roots=[root.cert])

    assert first_error(result) == "untrusted_root"
    finding = only(result, "untrusted_root")
    fingerprint = hashlib.sha256(lookalike.cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert finding.subject == chain_subject(0, lookalike.cert)
    assert finding.message == (
        f'[untrusted_root] The chain ends at "{dn(lookalike.cert)}" (SHA-256 {fingerprint}), which is '
        "not one of the organization's roots configured for this deployment."
    )
    assert result.path == [lookalike.cert]
    assert result.root == lookalike.cert
    # Without org_roots_file any self-signed root ends the path.
    assert build_chain(inter, [lookalike.cert], policy).findings == []


# Row 40: name encodings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root_name", "issuer_name"),
    [
        pytest.param(
            x509.Name(
                [x509.NameAttribute(NameOID.COMMON_NAME, "Encoded Root", _type=_ASN1Type.PrintableString)]
            ),
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Encoded Root", _type=_ASN1Type.UTF8String)]),
            id="printable-vs-utf8",
        ),
        pytest.param(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Encoded Root")]),
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ENCODED   root")]),
            id="case-and-spacing",
        ),
    ],
)
def test_issuer_name_in_another_encoding(pki, policy, root_name, issuer_name):
    key = new_key()
    real_root = self_signed(key, root_name, now=pki.now)
    twin = self_signed(key, issuer_name, now=pki.now)  # same key, the intermediate's spelling
    inter = intermediate(pki, (key, twin))
    assert inter.issuer.public_bytes() != real_root.subject.public_bytes()

    result = build_chain(inter, [real_root], policy)

    assert first_error(result) == "issuer_name_encoding_mismatch"
    assert ids(result) == ["issuer_name_encoding_mismatch"]
    assert result.findings[0].subject == f"intermediate: {dn(inter)}"
    assert result.path == []


# Row 41: AKI / SKI -----------------------------------------------------------------------------


def test_intermediate_aki_differs_from_root_ski(pki, root, policy):
    wrong = x509.AuthorityKeyIdentifier(
        key_identifier=b"\x01" * 20, authority_cert_issuer=None, authority_cert_serial_number=None
    )
    inter = intermediate(pki, root, aki=wrong)

    result = build_chain(inter, [root.cert], policy)

    assert first_error(result) == "aki_ski_mismatch"
    assert ids(result) == ["aki_ski_mismatch"]
    assert result.findings[0].subject == f"intermediate: {dn(inter)}"
    assert result.path == [root.cert]  # the signature proved the link; the walk went on


# Row 42: loops ---------------------------------------------------------------------------------


def test_cross_signed_cas_without_a_root_loop(pki, policy):
    a0, b0 = pki.new_root("Cross A"), pki.new_root("Cross B")
    a_by_b = pki.sign_ca(a0.key.public_key(), subject="Cross A", issuer=b0, path_length=None)
    b_by_a = pki.sign_ca(b0.key.public_key(), subject="Cross B", issuer=a0, path_length=None)
    inter = intermediate(pki, a0)

    result = build_chain(inter, [b_by_a, a_by_b], policy)

    assert first_error(result) == "chain_loop"
    finding = only(result, "chain_loop")
    assert finding.subject == "chainUpload"
    assert finding.message == (
        "[chain_loop] The certificates issue each other in a loop without reaching a root."
    )
    assert result.path == [a_by_b, b_by_a]
    assert result.root is None


# Row 43: pathLen -------------------------------------------------------------------------------


def test_parent_with_path_length_0(pki, root, policy):
    parent = pki.sub_ca("Tight Policy CA", path_length=0)
    inter = intermediate(pki, parent)

    result = build_chain(inter, [parent.cert, root.cert], policy)

    assert first_error(result) == "path_length_exceeded"
    finding = only(result, "path_length_exceeded")
    assert finding.subject == chain_subject(0, parent.cert)
    assert finding.message == (
        '[path_length_exceeded] "CN=Tight Policy CA" allows 0 CA certificate(s) below it but 1 sit '
        "below it on this path."
    )
    assert result.path == [parent.cert, root.cert]


def test_root_path_length_counts_every_ca_below_it(pki, policy):
    key = new_key()
    tight_root = self_signed(
        key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tight Root")]), path_length=1, now=pki.now
    )
    parent = pki.sub_ca("Under Tight Root", issuer=(key, tight_root), path_length=None)
    inter = intermediate(pki, parent)

    result = build_chain(inter, [tight_root, parent.cert], policy)

    assert first_error(result) == "path_length_exceeded"
    assert only(result, "path_length_exceeded").subject == chain_subject(0, tight_root)
    assert "allows 1 CA certificate(s) below it but 2 sit" in only(result, "path_length_exceeded").message
    # pathLen 1 is enough directly above the intermediate.
    assert build_chain(intermediate(pki, (key, tight_root)), [tight_root], policy).findings == []


# Rows 44-46: per-certificate checks and expiry -------------------------------------------------


def test_expired_policy_ca(pki, root, policy):
    key = new_key()
    old = pki.sign_ca(
        key.public_key(),
        subject="Expired Policy CA",
        path_length=None,
        not_before=pki.now - dt.timedelta(days=400),
        not_after=pki.now - dt.timedelta(days=1),
    )
    inter = intermediate(pki, (key, old))

    result = build_chain(inter, [old, root.cert], policy)

    assert first_error(result) == "expired"
    assert {"expired", "chain_expires_first"} <= set(ids(result))
    assert ids(result).index("expired") < ids(result).index("chain_expires_first")
    assert only(result, "expired").subject == chain_subject(0, old)
    warning = only(result, "chain_expires_first")
    assert warning.severity == "warning"
    assert warning.subject == chain_subject(0, old)
    assert warning.message == (
        f'[chain_expires_first] "CN=Expired Policy CA" expires on {old.not_valid_after_utc.date().isoformat()}, '
        f"before the intermediate ({inter.not_valid_after_utc.date().isoformat()}); issued certificates "
        "stop working then."
    )
    assert result.path == [old, root.cert]
    assert result.effective_expiry == old.not_valid_after_utc


def test_policy_ca_signed_with_sha1(pki, root, policy):
    key = new_key()
    sha1_ca = pki.sign_ca(
        key.public_key(), subject="SHA-1 Policy CA", path_length=None, hash_alg=hashes.SHA1()
    )
    inter = intermediate(pki, (key, sha1_ca))

    result = build_chain(inter, [sha1_ca, root.cert], policy)

    assert first_error(result) == "weak_signature"
    assert only(result, "weak_signature").subject == chain_subject(0, sha1_ca)
    assert result.path == [sha1_ca, root.cert]


@pytest.mark.parametrize("hash_alg", [hashes.SHA1(), hashes.MD5()], ids=["sha1", "md5"])
def test_rsa_policy_ca_with_a_legacy_signature_is_placed_on_the_path(pki, hash_alg, policy):
    """cryptography's verify_directly_issued_by refuses SHA-1/MD5; the path is built anyway."""
    rsa_root = pki.new_root("RSA Root", key_type="rsa")
    key = new_key()
    legacy = pki.sign_ca(
        key.public_key(), subject="Legacy Policy CA", issuer=rsa_root, path_length=None, hash_alg=hash_alg
    )
    inter = intermediate(pki, (key, legacy))

    result = build_chain(inter, [rsa_root.cert, legacy], policy)

    assert first_error(result) == "weak_signature"
    assert "signature_mismatch" not in ids(result)
    assert result.path == [legacy, rsa_root.cert]


def test_rsa_pss_signed_policy_ca_is_accepted(pki, policy):
    rsa_root = pki.new_root("RSA PSS Root", key_type="rsa")
    key = new_key()
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    template = pki.sign_ca(key.public_key(), subject="PSS Policy CA", issuer=rsa_root, path_length=None)
    builder = (
        x509.CertificateBuilder()
        .subject_name(template.subject)
        .issuer_name(template.issuer)
        .public_key(key.public_key())
        .serial_number(template.serial_number)
        .not_valid_before(template.not_valid_before_utc)
        .not_valid_after(template.not_valid_after_utc)
    )
    for extension in template.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    pss_ca = builder.sign(rsa_root.key, hashes.SHA256(), rsa_padding=pss)
    inter = intermediate(pki, (key, pss_ca))

    result = build_chain(inter, [pss_ca, rsa_root.cert], policy)

    assert result.findings == []
    assert result.path == [pss_ca, rsa_root.cert]


def test_rsa_1024_root(pki, policy):
    weak = pki.new_root("Weak RSA Root", key_type="rsa-1024")
    inter = intermediate(pki, weak)

    result = build_chain(inter, [weak.cert], policy)

    assert first_error(result) == "weak_key"
    assert only(result, "weak_key").subject == chain_subject(0, weak.cert)
    assert result.root == weak.cert


def test_policy_ca_with_client_auth_only(pki, root, policy):
    key = new_key()
    client_only = pki.sign_ca(
        key.public_key(), subject="Client Policy CA", path_length=None, eku=[ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    inter = intermediate(pki, (key, client_only))

    result = build_chain(inter, [client_only, root.cert], policy)

    assert first_error(result) == "eku_excludes_server_auth"
    assert only(result, "eku_excludes_server_auth").subject == chain_subject(0, client_only)


def test_root_expiring_before_the_intermediate(pki, policy):
    short = pki.new_root("Short Root", days=100)
    inter = intermediate(pki, short, days=365)

    result = build_chain(inter, [short.cert], policy)

    assert errors(result) == []
    assert ids(result) == ["chain_expires_first"]
    assert result.findings[0].subject == chain_subject(0, short.cert)
    assert result.effective_expiry == short.cert.not_valid_after_utc


def test_profile_findings_of_a_partial_path_are_reported(pki, policy):
    """After a path-building failure the certificates placed so far are still checked."""
    weak_root = pki.new_root("Missing Root")
    key = new_key()
    client_only = pki.sign_ca(
        key.public_key(),
        subject="Orphan Policy CA",
        issuer=weak_root,
        path_length=None,
        eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    inter = intermediate(pki, (key, client_only))

    result = build_chain(inter, [client_only], policy)

    assert first_error(result) == "incomplete_chain"
    assert ids(result) == ["incomplete_chain", "eku_excludes_server_auth"]


# Row 47: unused certificates -------------------------------------------------------------------


def test_unrelated_extra_ca_is_unused(pki, int2, root, policy):
    stranger = pki.new_root("Unrelated CA")

    result = build_chain(int2, [stranger.cert, root.cert], policy)

    assert errors(result) == []
    assert ids(result) == ["unused_certificate"]
    warning = result.findings[0]
    assert warning.severity == "warning"
    assert warning.subject == chain_subject(0, stranger.cert)
    assert result.path == [root.cert]  # not stored


def test_self_signed_issuer_is_preferred_over_a_cross_certificate(pki, int2, root, policy):
    other = pki.new_root("Other Org Root")
    cross = pki.sign_ca(root.key.public_key(), subject=root.cert.subject, issuer=other, path_length=None)

    result = build_chain(int2, [cross, other.cert, root.cert], policy)

    assert errors(result) == []
    assert result.path == [root.cert]
    assert ids(result) == ["unused_certificate", "unused_certificate"]


# find_org_root ---------------------------------------------------------------------------------


def test_find_org_root(int2, int3, root, lookalike):
    assert find_org_root(int2, [lookalike.cert, root.cert]) == root.cert
    assert find_org_root(int2, [lookalike.cert]) is None
    assert find_org_root(int3, [root.cert]) is None
    assert find_org_root(int2, []) is None
