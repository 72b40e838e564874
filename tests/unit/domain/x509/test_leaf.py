"""The minted-leaf profile (certificates.md §6.1-6.3, §8 rows 55-59): every field, the names,
name constraints, validity, and that the leaves verify under the test PKI's root."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    ExtensionOID,
    NameOID,
    SignatureAlgorithmOID,
)
from cryptography.x509.verification import DNSName, IPAddress, PolicyBuilder, Store, VerificationError
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.pki import CA, TestPKI, new_key

from interca.domain.x509.hostnames import check_name_constraints, normalize_name
from interca.domain.x509.leaf import LeafProfile, build_leaf, leaf_signature_hash
from interca.domain.x509.leaf_refusal import LeafRefused

NOW = dt.datetime(2026, 3, 14, 12, 0, tzinfo=dt.UTC)
PROFILE = LeafProfile()
PROFILE_OIDS = {
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
}


@pytest.fixture(scope="module")
def pki() -> TestPKI:
    return TestPKI(now=NOW)


def make_ca(pki: TestPKI, key_type: str = "ec", issuer: CA | None = None, **knobs) -> CA:
    key = new_key(key_type)
    return CA(key, pki.sign_ca(key.public_key(), issuer=issuer, **knobs))


@pytest.fixture(scope="module")
def cas(pki) -> dict[str, CA]:
    """One intermediate per CA key type interca supports, under the EC test root."""
    return {kind: make_ca(pki, kind) for kind in ("ec", "ec-p384", "rsa")}


@pytest.fixture(scope="module")
def leaf_keys() -> dict[str, object]:
    return {"ec": new_key("ec"), "rsa": new_key("rsa")}


def mint(pki: TestPKI, ca: CA, names, leaf_key=None, *, path=None, now=NOW, profile=PROFILE, **kw):
    path = [pki.root.cert] if path is None else path
    expiry = min(c.not_valid_after_utc for c in [ca.cert, *path])
    leaf_key = leaf_key or new_key("ec")
    return build_leaf(
        names,
        leaf_key.public_key(),
        ca.cert,
        ca.key,
        path=path,
        effective_expiry=kw.pop("effective_expiry", expiry),
        now=now,
        profile=profile,
        **kw,
    )


def ext(cert: x509.Certificate, cls):
    return cert.extensions.get_extension_for_class(cls)


def verify(leaf, ca: CA, root: x509.Certificate, host: str, now=NOW):
    try:
        subject = IPAddress(ipaddress.ip_address(host))
    except ValueError:
        subject = DNSName(host)
    verifier = PolicyBuilder().store(Store([root])).time(now).build_server_verifier(subject)
    return verifier.verify(leaf, [ca.cert])


def refusal(call) -> str:
    with pytest.raises(LeafRefused) as caught:
        call()
    assert caught.value.message.startswith(f"[{caught.value.id}] ")
    return caught.value.id


# Profile, field by field ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ca_kind", "leaf_kind", "signature_oid", "hash_name"),
    [
        ("ec", "ec", SignatureAlgorithmOID.ECDSA_WITH_SHA256, "sha256"),
        ("ec-p384", "ec", SignatureAlgorithmOID.ECDSA_WITH_SHA384, "sha384"),
        ("rsa", "rsa", SignatureAlgorithmOID.RSA_WITH_SHA256, "sha256"),
        ("rsa", "ec", SignatureAlgorithmOID.RSA_WITH_SHA256, "sha256"),
    ],
)
def test_profile_field_by_field(pki, cas, leaf_keys, ca_kind, leaf_kind, signature_oid, hash_name):
    ca, leaf_key = cas[ca_kind], leaf_keys[leaf_kind]
    leaf = mint(pki, ca, ["good.example.test"], leaf_key)

    assert leaf.version is x509.Version.v3
    assert 0 < leaf.serial_number < 2**127  # positive, at most 16 octets in DER
    assert leaf.signature_algorithm_oid == signature_oid
    assert leaf.signature_hash_algorithm.name == hash_name
    leaf.verify_directly_issued_by(ca.cert)
    assert leaf.issuer.public_bytes() == ca.cert.subject.public_bytes()
    assert leaf.not_valid_before_utc == NOW - dt.timedelta(minutes=60)
    assert leaf.not_valid_after_utc == NOW - dt.timedelta(minutes=60) + dt.timedelta(days=90)
    assert leaf.subject.rfc4514_string() == "CN=good.example.test"

    assert {e.oid for e in leaf.extensions} == PROFILE_OIDS
    san = ext(leaf, x509.SubjectAlternativeName)
    assert not san.critical
    assert list(san.value) == [x509.DNSName("good.example.test")]
    bc = ext(leaf, x509.BasicConstraints)
    assert bc.critical and bc.value == x509.BasicConstraints(ca=False, path_length=None)
    ku = ext(leaf, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature
    assert ku.value.key_encipherment is (leaf_kind == "rsa")
    assert not any(
        (ku.value.content_commitment, ku.value.data_encipherment, ku.value.key_agreement,
         ku.value.key_cert_sign, ku.value.crl_sign)
    )  # fmt: skip
    eku = ext(leaf, x509.ExtendedKeyUsage)
    assert not eku.critical and list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    aki = ext(leaf, x509.AuthorityKeyIdentifier)
    assert not aki.critical
    assert aki.value.key_identifier == ext(ca.cert, x509.SubjectKeyIdentifier).value.digest
    assert aki.value.authority_cert_issuer is None and aki.value.authority_cert_serial_number is None
    ski = ext(leaf, x509.SubjectKeyIdentifier)
    assert not ski.critical
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key())
    assert ski.value != ext(ca.cert, x509.SubjectKeyIdentifier).value

    verify(leaf, ca, pki.root.cert, "good.example.test")


def test_issuer_keeps_the_ca_subject_bytes(pki):
    """A PrintableString O and a UTF8String CN in the CA subject must come out unchanged."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE", _ASN1Type.PrintableString),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example", _ASN1Type.PrintableString),
            x509.NameAttribute(NameOID.COMMON_NAME, "Inspection CA", _ASN1Type.UTF8String),
        ]
    )
    ca = make_ca(pki, subject=name)
    leaf = mint(pki, ca, ["a.example.test"])
    assert leaf.issuer.public_bytes() == ca.cert.subject.public_bytes() == name.public_bytes()
    verify(leaf, ca, pki.root.cert, "a.example.test")


def test_crl_and_aia_only_when_urls_are_given(pki, cas):
    profile = LeafProfile(crl_url="http://pki.test/pki/crl/7.crl", aia_url="http://pki.test/pki/ca/7.crt")
    leaf = mint(pki, cas["ec"], ["a.example.test"], profile=profile)

    assert {e.oid for e in leaf.extensions} == PROFILE_OIDS | {
        ExtensionOID.CRL_DISTRIBUTION_POINTS,
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
    }
    cdp = ext(leaf, x509.CRLDistributionPoints)
    assert not cdp.critical
    [point] = cdp.value
    assert point.full_name == [x509.UniformResourceIdentifier("http://pki.test/pki/crl/7.crl")]
    aia = ext(leaf, x509.AuthorityInformationAccess)
    assert not aia.critical
    assert [(d.access_method, d.access_location.value) for d in aia.value] == [
        (AuthorityInformationAccessOID.CA_ISSUERS, "http://pki.test/pki/ca/7.crt")
    ]
    only_crl = mint(pki, cas["ec"], ["a.example.test"], profile=LeafProfile(crl_url=profile.crl_url))
    assert {e.oid for e in only_crl.extensions} == PROFILE_OIDS | {ExtensionOID.CRL_DISTRIBUTION_POINTS}


def test_serials_are_random_and_positive(pki, cas):
    serials = {mint(pki, cas["ec"], ["a.example.test"]).serial_number for _ in range(20)}
    assert len(serials) == 20
    assert all(0 < s < 2**127 for s in serials)


def test_leaf_signature_hash():
    assert isinstance(leaf_signature_hash(new_key("rsa").public_key()), hashes.SHA256)
    assert isinstance(leaf_signature_hash(new_key("ec").public_key()), hashes.SHA256)
    assert isinstance(leaf_signature_hash(new_key("ec-p384").public_key()), hashes.SHA384)
    with pytest.raises(TypeError):
        leaf_signature_hash(ed25519.Ed25519PrivateKey.generate().public_key())


def test_refuses_the_ca_key_as_leaf_key(pki, cas):
    with pytest.raises(ValueError, match="CA key"):
        mint(pki, cas["ec"], ["a.example.test"], leaf_key=cas["ec"].key)


def test_refuses_bad_calls(pki, cas):
    with pytest.raises(ValueError):
        mint(pki, cas["ec"], [])
    with pytest.raises(ValueError):
        mint(pki, cas["ec"], ["a.example.test"], now=NOW.replace(tzinfo=None))
    no_ski = make_ca(pki, ski=False)
    with pytest.raises(ValueError, match="subjectKeyIdentifier"):
        mint(pki, no_ski, ["a.example.test"])


@pytest.mark.parametrize(
    "kwargs",
    [{"lifetime_days": 0}, {"lifetime_days": 200}, {"backdate_minutes": -1}, {"backdate_minutes": 1441},
     {"crl_url": "https://pki.test/x.crl"}, {"aia_url": "ftp://pki.test/x.crt"}],
)  # fmt: skip
def test_profile_settings_out_of_range(kwargs):
    with pytest.raises(ValueError):
        LeafProfile(**kwargs)


# Names (§6.3, rows 55-57) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Good.Example.TEST.", "good.example.test"),
        ("bücher.example.test", "xn--bcher-kva.example.test"),
        ("BÜCHER.example.test", "xn--bcher-kva.example.test"),
        ("bücher\u3002example\uff0etest", "xn--bcher-kva.example.test"),  # ideographic/fullwidth dots
        ("xn--bcher-kva.example.test", "xn--bcher-kva.example.test"),
        ("_acme-challenge.example.test", "_acme-challenge.example.test"),
        ("r3---sn-ab5l6n67.googlevideo.com", "r3---sn-ab5l6n67.googlevideo.com"),  # IDNA 2008 refuses it
        ("a" * 63 + ".test", "a" * 63 + ".test"),
        ("localhost", "localhost"),
        ("x\u00adz.example.test", "xz.example.test"),  # UTS-46 drops ignored code points (soft hyphen)
    ],
)
def test_normalize_dns_names(raw, expected):
    assert normalize_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("127.0.0.1", ipaddress.IPv4Address("127.0.0.1")),
        ("127.0.0.1.", ipaddress.IPv4Address("127.0.0.1")),
        ("::1", ipaddress.IPv6Address("::1")),
        ("2001:DB8::1", ipaddress.IPv6Address("2001:db8::1")),
        ("\uff11\uff12\uff17.0.0.1", ipaddress.IPv4Address("127.0.0.1")),  # fullwidth digits
    ],
)
def test_normalize_ip_literals(raw, expected):
    assert normalize_name(raw) == expected


def test_name_length_limits():
    at_limit = ("a" * 63 + ".") * 3 + "a" * 61
    assert len(at_limit) == 253
    assert normalize_name(at_limit) == at_limit
    assert normalize_name(at_limit + ".") == at_limit  # the root dot does not count
    assert refusal(lambda: normalize_name(at_limit + "a")) == "invalid_host"


@pytest.mark.parametrize(
    "raw",
    [
        "*.example.test",  # row 56: a wildcard in the SNI
        "a..b.test",  # row 56: an empty label
        "a" * 64 + ".test",  # row 56: a 64-character label
        ("a" * 63 + ".") * 3 + "a" * 62,  # row 56: 254 characters
        "a\x00b.example.test",  # row 56: a NUL byte
        "",
        ".",
        "a.b..",
        ".example.test",
        "-a.example.test",
        "a-.example.test",
        "a b.example.test",
        "a/b.example.test",
        "example.test:443",
        "fe80::1%eth0",
        "[::1]",
        "10.0.0.0/8",
        "x\ufffdz.example.test",  # U+FFFD and private-use code points are disallowed by UTS-46
        "x\ue000z.example.test",
        "\ud800.example.test",  # a lone surrogate
        "a*.example.test",
    ],
)
def test_invalid_hosts(raw):
    assert refusal(lambda: normalize_name(raw)) == "invalid_host"


@given(st.text(max_size=300) | st.text(alphabet="aZ09.-_*:%ü\u3002\x00 ", max_size=80))
@settings(max_examples=400, deadline=2000)
def test_normalize_never_raises_anything_but_refusal(raw):
    try:
        host = normalize_name(raw)
    except LeafRefused as refused:
        assert refused.id == "invalid_host"
        return
    # What comes out is canonical: normalising it again changes nothing.
    assert normalize_name(str(host)) == host
    if isinstance(host, str):
        assert host.isascii() and host == host.lower() and len(host) <= 253


def test_ip_names_become_ip_address_sans(pki, cas):
    leaf = mint(pki, cas["ec"], ["127.0.0.1", "::1"])
    san = ext(leaf, x509.SubjectAlternativeName)
    assert list(san.value) == [
        x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
        x509.IPAddress(ipaddress.IPv6Address("::1")),
    ]
    assert san.value.get_values_for_type(x509.DNSName) == []
    verify(leaf, cas["ec"], pki.root.cert, "127.0.0.1")
    verify(leaf, cas["ec"], pki.root.cert, "::1")
    with pytest.raises(VerificationError):
        verify(leaf, cas["ec"], pki.root.cert, "127.0.0.2")


def test_idn_and_case_reach_the_san(pki, cas):
    leaf = mint(pki, cas["ec"], ["bücher.example.test", "Good.Example.TEST.", "good.example.test"])
    assert ext(leaf, x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [
        "xn--bcher-kva.example.test",
        "good.example.test",  # duplicates after normalisation are dropped
    ]
    assert leaf.subject.rfc4514_string() == "CN=xn--bcher-kva.example.test"
    verify(leaf, cas["ec"], pki.root.cert, "xn--bcher-kva.example.test")


def test_long_name_empty_subject_and_critical_san(pki, cas):
    host = "a-rather-long-host-name-for-testing." + "sub." * 6 + "example.test"
    assert len(host) > 64
    leaf = mint(pki, cas["ec"], [host, "short.example.test"])
    assert leaf.subject == x509.Name([])
    assert ext(leaf, x509.SubjectAlternativeName).critical
    verify(leaf, cas["ec"], pki.root.cert, host)

    at_64 = "b" * 51 + ".example.test"
    assert len(at_64) == 64
    leaf = mint(pki, cas["ec"], [at_64])
    assert leaf.subject.rfc4514_string() == f"CN={at_64}"
    assert not ext(leaf, x509.SubjectAlternativeName).critical


def test_wildcards_only_when_asked(pki, cas):
    assert refusal(lambda: mint(pki, cas["ec"], ["*.wild.example.test"])) == "invalid_host"
    leaf = mint(pki, cas["ec"], ["*.Wild.example.test"], wildcard_ok=True)
    assert ext(leaf, x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [
        "*.wild.example.test"
    ]
    verify(leaf, cas["ec"], pki.root.cert, "a.wild.example.test")
    for other in ("wild.example.test", "a.b.wild.example.test"):
        with pytest.raises(VerificationError):
            verify(leaf, cas["ec"], pki.root.cert, other)
    for bad in ("*", "*.com", "*.example.", "a*.example.test", "*.*.example.test", "x.*.example.test"):
        assert refusal(lambda bad=bad: mint(pki, cas["ec"], [bad], wildcard_ok=True)) == "invalid_host"


# Name constraints (§6.3, row 58) -----------------------------------------------------------


def constraints(permitted=(), excluded=()) -> tuple[x509.NameConstraints, bool]:
    return (
        x509.NameConstraints(
            permitted_subtrees=list(permitted) or None, excluded_subtrees=list(excluded) or None
        ),
        True,
    )


@pytest.fixture(scope="module")
def constrained(pki) -> CA:
    nc = constraints(
        permitted=[x509.DNSName("allowed.test"), x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))],
        excluded=[x509.DNSName("bad.allowed.test"), x509.IPAddress(ipaddress.ip_network("10.1.0.0/16"))],
    )  # fmt: skip
    return make_ca(pki, extra_extensions=[nc])


@pytest.mark.parametrize(
    "host",
    ["allowed.test", "x.allowed.test", "a.b.allowed.test", "notbad.allowed.test", "10.0.0.1",
     "10.255.255.255", "10.2.3.4"],
)  # fmt: skip
def test_inside_name_constraints(pki, constrained, host):
    leaf = mint(pki, constrained, [host])
    verify(leaf, constrained, pki.root.cert, host)


@pytest.mark.parametrize(
    "host",
    [
        "x.example.test",  # outside the permitted subtrees
        "allowed.test.example",
        "xallowed.test",
        "bad.allowed.test",  # excluded
        "x.bad.allowed.test",  # excluded subtree
        "10.1.0.1",  # excluded network
        "192.168.1.1",  # outside the permitted network
        "::1",  # IPv6 against IPv4-only permitted subtrees
    ],
)
def test_outside_name_constraints(pki, constrained, host):
    assert refusal(lambda: mint(pki, constrained, [host])) == "outside_name_constraints"


def test_one_name_outside_refuses_the_leaf(pki, constrained):
    call = lambda: mint(pki, constrained, ["x.allowed.test", "x.example.test"])  # noqa: E731
    assert refusal(call) == "outside_name_constraints"


def test_leading_dot_permits_subdomains_only(pki):
    """OpenSSL's reading (certificates.md §6.3). cryptography's verifier refuses such a CA
    outright ("malformed DNS name constraint"), so these leaves are not verified here."""
    ca = make_ca(pki, extra_extensions=[constraints(permitted=[x509.DNSName(".sub.test")])])
    check_name_constraints(["a.sub.test", "a.b.sub.test", "*.sub.test"], [ca.cert])
    for name in ("sub.test", "xsub.test", "*.test"):
        assert (
            refusal(lambda name=name: check_name_constraints([name], [ca.cert])) == "outside_name_constraints"
        )


def test_wildcards_against_constraints(constrained):
    path = [constrained.cert]
    check_name_constraints(["*.x.allowed.test"], path)
    # *.allowed.test stands for bad.allowed.test too; *.test for hosts outside allowed.test.
    for name in ("*.allowed.test", "*.test", "*.bad.allowed.test"):
        assert refusal(lambda name=name: check_name_constraints([name], path)) == "outside_name_constraints"


def test_unconstrained_name_types(pki):
    """A name type without permitted subtrees of its own type is unconstrained."""
    dns_only = make_ca(pki, extra_extensions=[constraints(permitted=[x509.DNSName("allowed.test")])])
    leaf = mint(pki, dns_only, ["192.168.1.1"])
    verify(leaf, dns_only, pki.root.cert, "192.168.1.1")
    ip_only = make_ca(
        pki, extra_extensions=[constraints(permitted=[x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))])]
    )
    leaf = mint(pki, ip_only, ["x.example.test"])
    verify(leaf, ip_only, pki.root.cert, "x.example.test")


def test_constraints_anywhere_on_the_path_count(pki):
    """A constrained policy CA above the intermediate, and a constrained root at the top."""
    policy = make_ca(
        pki, path_length=1, extra_extensions=[constraints(permitted=[x509.DNSName("allowed.test")])]
    )
    ca = make_ca(pki, issuer=policy)
    path = [policy.cert, pki.root.cert]
    mint(pki, ca, ["x.allowed.test"], path=path)
    assert refusal(lambda: mint(pki, ca, ["x.example.test"], path=path)) == "outside_name_constraints"

    root_key = new_key("ec")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Constrained Root")])
    root = pki.sign_ca(root_key.public_key(), subject=name, issuer=(root_key, _named(name)), path_length=None,
                       aki=False, extra_extensions=[constraints(excluded=[x509.DNSName("example.test")])])  # fmt: skip
    under_root = make_ca(pki, issuer=CA(root_key, root))
    assert (
        refusal(lambda: mint(pki, under_root, ["x.example.test"], path=[root])) == "outside_name_constraints"
    )
    mint(pki, under_root, ["x.allowed.test"], path=[root])


def _named(name: x509.Name) -> x509.Certificate:
    """A stand-in issuer certificate: `sign_ca` reads only its subject (and SKI) from it."""
    key = new_key("ec")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def test_directory_name_constraints_leave_the_cn_out(pki):
    dn = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example")])
    ca = make_ca(pki, extra_extensions=[constraints(permitted=[x509.DirectoryName(dn)])])
    leaf = mint(pki, ca, ["x.example.test"])
    assert leaf.subject == x509.Name([])
    assert ext(leaf, x509.SubjectAlternativeName).critical


# Validity (§6.2, row 59) -------------------------------------------------------------------


def test_validity_clamped_to_the_effective_expiry(pki, cas):
    expiry = NOW + dt.timedelta(days=10, seconds=30)
    leaf = mint(pki, cas["ec"], ["a.example.test"], effective_expiry=expiry)
    assert leaf.not_valid_before_utc == NOW - dt.timedelta(hours=1)
    assert leaf.not_valid_after_utc == expiry


def test_validity_never_before_the_ca(pki):
    ca = make_ca(pki, not_before=NOW - dt.timedelta(minutes=10))
    leaf = mint(pki, ca, ["a.example.test"])
    assert leaf.not_valid_before_utc == NOW - dt.timedelta(minutes=10)
    assert leaf.not_valid_after_utc == NOW - dt.timedelta(minutes=10) + dt.timedelta(days=90)


def test_validity_never_past_the_path(pki):
    short_root = pki.new_root("Short Root", days=20)
    ca = make_ca(pki, issuer=short_root)
    leaf = mint(
        pki, ca, ["a.example.test"], path=[short_root.cert], effective_expiry=NOW + dt.timedelta(days=300)
    )
    assert leaf.not_valid_after_utc == short_root.cert.not_valid_after_utc


@pytest.mark.parametrize(("days", "backdate"), [(1, 0), (30, 0), (199, 60), (90, 1440)])
def test_span_is_the_lifetime_backdate_included(pki, days, backdate):
    profile = LeafProfile(lifetime_days=days, backdate_minutes=backdate)
    ca = make_ca(pki, not_before=NOW - dt.timedelta(days=2))  # so the full backdate fits
    leaf = mint(pki, ca, ["a.example.test"], profile=profile)
    assert leaf.not_valid_before_utc == NOW - dt.timedelta(minutes=backdate)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(days=days)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= dt.timedelta(days=199)


def test_microseconds_are_dropped_inside_the_window(pki, cas):
    now = NOW + dt.timedelta(microseconds=999_999)
    leaf = mint(pki, cas["ec"], ["a.example.test"], now=now)
    assert leaf.not_valid_before_utc == NOW - dt.timedelta(hours=1)


def test_ca_not_valid(pki, cas):
    ca = cas["ec"]
    after = ca.cert.not_valid_after_utc + dt.timedelta(seconds=1)
    before = ca.cert.not_valid_before_utc - dt.timedelta(seconds=1)
    for now in (after, before):
        assert refusal(lambda now=now: mint(pki, ca, ["a.example.test"], now=now)) == "ca_not_valid"
    # The last second of the CA still mints (RFC 5280: notAfter is inclusive).
    last = mint(pki, ca, ["a.example.test"], now=ca.cert.not_valid_after_utc)
    assert last.not_valid_after_utc == ca.cert.not_valid_after_utc

    expired_root = pki.new_root("Expired Root", days=-1)
    under = make_ca(pki, issuer=expired_root)
    assert refusal(lambda: mint(pki, under, ["a.example.test"], path=[expired_root.cert])) == "ca_not_valid"
    past = NOW - dt.timedelta(seconds=1)
    assert refusal(lambda: mint(pki, ca, ["a.example.test"], effective_expiry=past)) == "ca_not_valid"


def test_leaf_fails_verification_against_another_root(pki, cas):
    leaf = mint(pki, cas["ec"], ["a.example.test"])
    other = TestPKI(now=NOW).root.cert
    with pytest.raises(VerificationError):
        verify(leaf, cas["ec"], other, "a.example.test")
    with pytest.raises(VerificationError):
        verify(leaf, cas["ec"], pki.root.cert, "b.example.test")


def test_leaf_is_der_encodable(pki, cas):
    leaf = mint(pki, cas["rsa"], ["a.example.test"])
    again = x509.load_der_x509_certificate(leaf.public_bytes(serialization.Encoding.DER))
    assert again == leaf
