"""The finalize self-test (certificates.md §5 steps 2-5; §8 rows 51-54): canary name, minting
with the real key, the §6 invariants, the strict verifier and the in-process TLS handshake.

The handshake uses OpenSSL's real clock, so the test PKI here lives at the real time; the tests
that move `now` are about the verifier step, which runs first."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import stat
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from tests.pki import CA, TestPKI, new_key

from interca.domain.x509.findings import has_errors
from interca.domain.x509.leaf import LeafProfile, build_leaf
from interca.errors import KeyStoreError
from interca.service.selftest import (
    ROOT_UNKNOWN_TEXT,
    SelfTestInput,
    pick_canary,
    profile_violation,
    run_self_test,
)

UNKNOWN_CRITICAL = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.1"), b"\x05\x00")


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI()


def make_ca(pki: TestPKI, key_type: str = "ec", **knobs) -> CA:
    key = new_key(key_type)
    return CA(key, pki.sign_ca(key.public_key(), **knobs))


def make_root(cn: str, *, path_length: int | None = None, extra=()) -> CA:
    """A self-signed root with a pathLen or extra extensions."""
    return TestPKI().new_root(cn, path_length=path_length, extra_extensions=extra)


def make_input(ca: CA, chain=(), org_roots=(), *, signer=None, now=None, **kw) -> SelfTestInput:
    path = [ca.cert, *chain]
    return SelfTestInput(
        intermediate=ca.cert,
        chain=list(chain),
        org_roots=list(org_roots),
        signer=signer if signer is not None else ca.key,
        effective_expiry=min(c.not_valid_after_utc for c in path),
        now=now or dt.datetime.now(dt.UTC),
        **kw,
    )


def ids(findings) -> list[tuple[str, str]]:
    return [(f.id, f.severity) for f in findings]


def only_error(findings, expected_id: str):
    errors = [f for f in findings if f.severity == "error"]
    assert [f.id for f in errors] == [expected_id], findings
    assert errors[0].message.startswith(f"[{expected_id}] ")
    return errors[0]


# Passing CAs ---------------------------------------------------------------------------------


def test_good_ec_ca_passes(pki):
    ca = make_ca(pki)
    assert run_self_test(make_input(ca, [pki.root.cert])) == []


def test_good_rsa_ca_with_rsa_leaves_passes(pki):
    ca = make_ca(pki, "rsa")
    data = make_input(ca, [pki.root.cert], leaf_key_type="rsa-2048")
    assert run_self_test(data) == []


def test_p384_ca_and_deployment_profile_pass(pki):
    ca = make_ca(pki, "ec-p384")
    profile = LeafProfile(lifetime_days=30, backdate_minutes=5, crl_url="http://127.0.0.1:8080/pki/crl/1.crl")
    assert run_self_test(make_input(ca, [pki.root.cert], profile=profile)) == []


def test_three_level_chain_passes(pki):
    policy = pki.sub_ca("Test Policy CA", path_length=1)
    ca = make_ca(pki, issuer=policy)
    assert run_self_test(make_input(ca, [policy.cert, pki.root.cert])) == []


def test_no_chain_warns_root_unknown_and_passes(pki):
    """Row 53: the intermediate itself is the trust anchor (partial chain)."""
    ca = make_ca(pki)
    findings = run_self_test(make_input(ca))
    assert ids(findings) == [("root_unknown", "warning")]
    assert findings[0].message == f"[root_unknown] {ROOT_UNKNOWN_TEXT}"
    assert findings[0].subject == "canary: interca-selftest.invalid"
    assert not has_errors(findings)


def test_org_root_that_signed_the_intermediate_is_the_anchor(pki):
    ca = make_ca(pki)
    unrelated = make_root("Unrelated Root")
    assert run_self_test(make_input(ca, org_roots=[unrelated.cert, pki.root.cert])) == []
    # An org root that did not sign it leaves the root unknown.
    assert ids(run_self_test(make_input(ca, org_roots=[unrelated.cert]))) == [("root_unknown", "warning")]


# Row 52: CAs that bypassed the upload checks ----------------------------------------------


@pytest.mark.parametrize(
    "knobs",
    [
        {"key_usage": None},
        {"eku": [ExtendedKeyUsageOID.CLIENT_AUTH]},
        {"bc_critical": False},
        {"extra_extensions": [(UNKNOWN_CRITICAL, True)]},
    ],
    ids=["no-key-usage", "eku-client-auth", "bc-not-critical", "unknown-critical-extension"],
)
def test_defective_intermediate_fails_the_verifier(pki, knobs):
    ca = make_ca(pki, **knobs)
    finding = only_error(run_self_test(make_input(ca, [pki.root.cert])), "selftest_verifier_failed")
    assert finding.subject == "canary: interca-selftest.invalid"


@pytest.mark.parametrize("knobs", [{"key_usage": None}, {"bc_critical": False}])
def test_defective_intermediate_fails_even_as_the_anchor(pki, knobs):
    """§5 step 4: the verifier checks a store certificate's CA profile too (no chain)."""
    ca = make_ca(pki, **knobs)
    findings = run_self_test(make_input(ca))
    assert ids(findings)[0] == ("root_unknown", "warning")
    only_error(findings, "selftest_verifier_failed")


def test_root_with_path_length_zero_above_the_intermediate(pki):
    root = make_root("PathLen Zero Root", path_length=0)
    ca = make_ca(pki, issuer=root)
    only_error(run_self_test(make_input(ca, org_roots=[root.cert])), "selftest_verifier_failed")


def test_expired_intermediate_fails_at_the_verifier(pki):
    """Row 51: clock moved past the intermediate's notAfter."""
    ca = make_ca(pki)
    later = ca.cert.not_valid_after_utc + dt.timedelta(days=1)
    finding = only_error(
        run_self_test(make_input(ca, [pki.root.cert], now=later)), "selftest_verifier_failed"
    )
    assert "not valid" in finding.message


def test_not_yet_valid_intermediate_fails_at_the_verifier(pki):
    ca = make_ca(pki)
    earlier = ca.cert.not_valid_before_utc - dt.timedelta(days=1)
    only_error(run_self_test(make_input(ca, [pki.root.cert], now=earlier)), "selftest_verifier_failed")


def test_ca_without_aki_fails_the_strict_handshake(pki):
    """The verifier accepts an intermediate without AKI; OpenSSL's X.509 strict mode does not,
    so this is the negative control that the handshake step really verifies."""
    ca = make_ca(pki, aki=False)
    finding = only_error(run_self_test(make_input(ca, [pki.root.cert])), "selftest_handshake_failed")
    assert "Authority Key Identifier" in finding.message


def test_ca_without_ski_cannot_be_served(pki):
    ca = make_ca(pki, ski=False)
    only_error(run_self_test(make_input(ca, [pki.root.cert])), "selftest_profile_violation")


# Signing (row 54) --------------------------------------------------------------------------


class FakeHsmKey(ec.EllipticCurvePrivateKey):
    """A key-store key as hsm.md §5 describes it: `sign`, `public_key`, `curve`, `key_size`."""

    def __init__(self, real: ec.EllipticCurvePrivateKey, sign_with=None, error: Exception | None = None):
        self._real, self._sign_with, self._error = real, sign_with or real, error

    def sign(self, data, signature_algorithm):
        if self._error is not None:
            raise self._error
        return self._sign_with.sign(data, signature_algorithm)

    def public_key(self):
        return self._real.public_key()

    @property
    def curve(self):
        return self._real.curve

    @property
    def key_size(self):
        return self._real.key_size

    def exchange(self, algorithm, peer_public_key):
        raise TypeError("not exportable")

    def private_numbers(self):
        raise TypeError("not exportable")

    def private_bytes(self, encoding, format, encryption_algorithm):
        raise TypeError("not exportable")

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


def test_key_store_object_signs(pki):
    ca = make_ca(pki)
    assert run_self_test(make_input(ca, [pki.root.cert], signer=FakeHsmKey(ca.key))) == []


def test_hsm_unavailable_is_a_signing_failure(pki):
    ca = make_ca(pki)
    signer = FakeHsmKey(
        ca.key, error=KeyStoreError("hsm_unavailable", "The HSM cannot be reached; retry later.")
    )
    finding = only_error(
        run_self_test(make_input(ca, [pki.root.cert], signer=signer)), "selftest_signing_failed"
    )
    assert "(hsm_unavailable): The HSM cannot be reached; retry later." in finding.message
    assert finding.message.count("[") == 1  # only the finding's own [id] is bracketed
    assert finding.subject == "canary: interca-selftest.invalid"


def test_unexpected_signer_error_is_a_signing_failure(pki):
    ca = make_ca(pki)
    signer = FakeHsmKey(ca.key, error=RuntimeError("/dev/secret-path exploded"))
    finding = only_error(
        run_self_test(make_input(ca, [pki.root.cert], signer=signer)), "selftest_signing_failed"
    )
    assert "secret-path" not in finding.message  # no internals in messages


def test_signature_from_another_key_is_a_signing_failure(pki):
    ca = make_ca(pki)
    signer = FakeHsmKey(ca.key, sign_with=new_key("ec"))
    finding = only_error(
        run_self_test(make_input(ca, [pki.root.cert], signer=signer)), "selftest_signing_failed"
    )
    assert "(signature_invalid)" in finding.message


# Canary names ------------------------------------------------------------------------------


def name_constraints(permitted=(), excluded=()):
    nc = x509.NameConstraints(
        permitted_subtrees=list(permitted) or None, excluded_subtrees=list(excluded) or None
    )
    return [(nc, True)]


def test_name_constrained_ca_gets_a_canary_under_the_permitted_subtree(pki):
    ca = make_ca(pki, extra_extensions=name_constraints([x509.DNSName("allowed.test")]))
    findings = run_self_test(make_input(ca, [pki.root.cert]))
    assert findings == []
    assert pick_canary([ca.cert, pki.root.cert]) == (
        "interca-selftest.allowed.test",
        ["interca-selftest.allowed.test"],
    )


def test_canary_skips_candidates_that_fail_the_constraints(pki):
    nc = name_constraints(
        [
            x509.DNSName("first.test"),
            x509.DNSName("second.test"),
            x509.IPAddress(ipaddress.ip_network("10.0.0.0/8")),
        ],
        [x509.DNSName("interca-selftest.first.test")],
    )
    ca = make_ca(pki, extra_extensions=nc)
    canary, tried = pick_canary([ca.cert, pki.root.cert])
    assert canary == "interca-selftest.second.test"
    assert tried == ["interca-selftest.first.test", "interca-selftest.second.test"]
    assert run_self_test(make_input(ca, [pki.root.cert])) == []


def test_ip_only_constraints_leave_the_fallback_canary(pki):
    ca = make_ca(pki, extra_extensions=name_constraints([x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))]))
    assert pick_canary([ca.cert])[0] == "interca-selftest.invalid"


@pytest.mark.parametrize(
    "nc",
    [
        name_constraints([x509.DNSName("allowed.test")], [x509.DNSName("interca-selftest.allowed.test")]),
        name_constraints(excluded=[x509.DNSName("invalid")]),
    ],
    ids=["canary-excluded", "fallback-excluded"],
)
def test_no_canary_name(pki, nc):
    ca = make_ca(pki, extra_extensions=nc)
    finding = only_error(run_self_test(make_input(ca, [pki.root.cert])), "selftest_no_canary_name")
    assert finding.subject.startswith("canary: interca-selftest.")


def test_constraints_of_the_root_count_for_the_canary(pki):
    root = make_root("Constrained Root", extra=name_constraints([x509.DNSName("root-allowed.test")]))
    ca = make_ca(pki, issuer=root, extra_extensions=name_constraints([x509.DNSName("other.test")]))
    canary, tried = pick_canary([ca.cert, root.cert])
    assert canary is None and tried == ["interca-selftest.other.test", "interca-selftest.root-allowed.test"]
    only_error(run_self_test(make_input(ca, [root.cert])), "selftest_no_canary_name")


# Invariants and files ----------------------------------------------------------------------


def test_profile_violation_spots_broken_leaves(pki):
    ca = make_ca(pki)
    now = dt.datetime.now(dt.UTC)
    path = [ca.cert, pki.root.cert]
    expiry = min(c.not_valid_after_utc for c in path)
    leaf = build_leaf(
        ["a.example.test"], new_key().public_key(), ca.cert, ca.key,
        path=[pki.root.cert], effective_expiry=expiry, now=now, profile=LeafProfile(),
    )  # fmt: skip
    assert profile_violation(leaf, ca.cert, path, expiry, "a.example.test") is None
    assert "subjectAltName" in profile_violation(leaf, ca.cert, path, expiry, "b.example.test")
    assert "validity" in profile_violation(leaf, ca.cert, path, now, "a.example.test")
    other = make_ca(pki, subject="Another Intermediate")
    assert "issuer" in profile_violation(leaf, other.cert, [other.cert], expiry, "a.example.test")

    # A leaf from the test PKI (AKI computed from the key, not copied) sharing the CA key.
    forged = pki.sign_ca(ca.key.public_key(), issuer=ca, basic_constraints=False, key_usage=None,
                         aki=x509.AuthorityKeyIdentifier(b"\x01" * 20, None, None))  # fmt: skip
    assert "authorityKeyIdentifier" in profile_violation(forged, ca.cert, [ca.cert], expiry, "x")


def test_key_file_is_private_and_removed(pki, monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen: list[tuple[int, int, int]] = []
    original = ssl.SSLContext.load_cert_chain

    def spy(self, certfile, keyfile=None, password=None):
        seen.append(
            (
                stat.S_IMODE(os.stat(Path(keyfile).parent).st_mode),
                stat.S_IMODE(os.stat(keyfile).st_mode),
                len(Path(certfile).read_bytes().split(b"-----BEGIN CERTIFICATE-----")) - 1,
            )
        )
        return original(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    policy = pki.sub_ca("Files Policy CA", path_length=1)
    ca = make_ca(pki, issuer=policy)
    assert run_self_test(make_input(ca, [policy.cert, pki.root.cert])) == []
    assert seen == [(0o700, 0o600, 3)]  # leaf, intermediate, policy CA; never the root
    assert list(tmp_path.iterdir()) == []


def test_unknown_leaf_key_type_is_a_caller_error(pki):
    ca = make_ca(pki)
    with pytest.raises(ValueError):
        run_self_test(make_input(ca, [pki.root.cert], leaf_key_type="ed25519"))
