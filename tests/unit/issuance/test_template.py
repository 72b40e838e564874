"""The per-CA DER template against `cryptography`'s builder (`build_leaf`): byte for byte equal
for the same serial, time, names, keys and profile (certificates.md §6.1), and the DER helpers it
is made of."""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtensionOID, NameOID
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tests.pki import CA, TestPKI, new_key

from interca.domain.x509.hostnames import normalize_name
from interca.domain.x509.leaf import LeafProfile, build_leaf, normalize_hosts, plan_leaf
from interca.domain.x509.leaf_refusal import LeafRefused
from interca.issuance import der
from interca.issuance.keypool import PoolKey
from interca.issuance.template import LeafTemplate

NOW = dt.datetime(2026, 3, 14, 12, 0, tzinfo=dt.UTC)


@functools.cache
def pki() -> TestPKI:
    return TestPKI(now=NOW)


@functools.cache
def cas() -> dict[str, tuple[CA, list[x509.Certificate]]]:
    """CAs of every supported key type (RSA-2048, P-256, P-384), one under a policy CA, one with
    a subject of odd string types (the issuer must be copied, never re-encoded), one with
    directoryName constraints (the CN is left out) and one that expires soon (validity clamps)."""
    p = pki()
    made: dict[str, tuple[CA, list[x509.Certificate]]] = {}
    for kind in ("ec", "ec-p384", "rsa"):
        key = new_key(kind)
        made[kind] = (CA(key, p.sign_ca(key.public_key(), subject=f"Template {kind} CA")), [p.root.cert])
    policy = p.sub_ca("Template Policy CA", path_length=1)
    key = new_key("ec")
    made["under-policy"] = (CA(key, p.sign_ca(key.public_key(), issuer=policy)), [policy.cert, p.root.cert])
    odd = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "GB"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Org", _ASN1Type.PrintableString),
            x509.NameAttribute(NameOID.COMMON_NAME, "Ödd Strings CA", _ASN1Type.BMPString),
        ]
    )
    key = new_key("rsa")
    made["odd-subject"] = (CA(key, p.sign_ca(key.public_key(), subject=odd)), [p.root.cert])
    constraints = x509.NameConstraints(
        permitted_subtrees=[
            x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ex")]))
        ],
        excluded_subtrees=None,
    )
    key = new_key("ec")
    cert = p.sign_ca(key.public_key(), extra_extensions=[(constraints, True)])
    made["dirname-constrained"] = (CA(key, cert), [p.root.cert])
    key = new_key("ec")
    made["expiring"] = (CA(key, p.sign_ca(key.public_key(), days=20)), [p.root.cert])
    return made


@functools.cache
def leaf_keys() -> dict[str, PoolKey]:
    return {kind: PoolKey.of(new_key(kind)) for kind in ("ec", "rsa")}


LABEL = st.from_regex(r"[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,20}[a-zA-Z0-9_])?", fullmatch=True)
IDN = st.sampled_from(["bücher", "münchen", "例え", "παράδειγμα", "straße", "ÅNGSTRÖM"])
DNS = st.builds(
    lambda labels, idn, tld, dot: ".".join([*labels, *idn, tld]) + ("." if dot else ""),
    st.lists(LABEL, min_size=1, max_size=3),
    st.lists(IDN, max_size=1),
    st.sampled_from(["test", "EXAMPLE", "com"]),
    st.booleans(),
)
LONG = st.builds(lambda a, b: f"{a}.{b}.example.test", st.text("abcdef", min_size=40, max_size=63), LABEL)
IPV4 = st.ip_addresses(v=4)
IPV6 = st.ip_addresses(v=6)
HOST = st.one_of(DNS, LONG, IPV4, IPV6, IPV4.map(str), IPV6.map(str))
WILDCARD = st.builds(lambda a, b: f"*.{a}.{b}", LABEL, st.sampled_from(["test", "com"]))
URL = st.sampled_from(["http://pki.example.test/pki/crl/7.crl", "http://10.1.2.3:8080/pki/crl/12.crl"])


@settings(deadline=None, max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(
    ca_kind=st.sampled_from(
        ["ec", "ec-p384", "rsa", "under-policy", "odd-subject", "dirname-constrained", "expiring"]
    ),
    leaf_kind=st.sampled_from(["ec", "rsa"]),
    names=st.lists(HOST, min_size=1, max_size=4),
    wildcard=st.one_of(st.none(), WILDCARD),
    crl=st.one_of(st.none(), URL),
    aia=st.booleans(),
    lifetime=st.integers(1, 199),
    backdate=st.integers(0, 1440),
    offset=st.integers(0, 19 * 86400 * 1_000_000),
    serial=st.one_of(st.integers(1, 2**127 - 1), st.integers(1, 300)),
)
def test_template_equals_the_builder_byte_for_byte(
    ca_kind, leaf_kind, names, wildcard, crl, aia, lifetime, backdate, offset, serial
):
    ca, path = cas()[ca_kind]
    pool_key = leaf_keys()[leaf_kind]
    if wildcard is not None:
        names = [wildcard, *names]
    profile = LeafProfile(
        lifetime_days=lifetime,
        backdate_minutes=backdate,
        crl_url=crl,
        aia_url="http://pki.example.test/pki/ca/7.crt" if aia else None,
    )
    now = NOW + dt.timedelta(microseconds=offset)  # microseconds too: both must drop them alike
    expiry = min(c.not_valid_after_utc for c in [ca.cert, *path])
    try:
        reference = build_leaf(
            names, pool_key.private.public_key(), ca.cert, ca.key, path=path, effective_expiry=expiry,
            now=now, profile=profile, wildcard_ok=True, serial=serial,
        )  # fmt: skip
    except LeafRefused:
        assume(False)  # a host the generators made invalid (e.g. a label too long after IDNA)
        return
    template = LeafTemplate(
        7, ca.cert, ca.key, path=path, served_chain=[], effective_expiry=expiry, profile=profile
    )
    plan = plan_leaf(normalize_hosts(names, wildcard_ok=True), template.ca_path, now=now, profile=profile)
    fast = template.mint(plan, pool_key.spki, pool_key.extensions, serial=serial)
    leaf = x509.load_der_x509_certificate(fast)

    assert leaf.tbs_certificate_bytes == reference.tbs_certificate_bytes
    reference_der = reference.public_bytes(serialization.Encoding.DER)
    if isinstance(ca.key, rsa.RSAPrivateKey):
        assert fast == reference_der  # PKCS#1 v1.5 is deterministic: the whole certificate
    else:  # ECDSA signatures are random: the same certificate once the signatures are swapped
        algorithm = der.tlv(
            der.SEQUENCE, der.tlv(der.OID, der.oid(reference.signature_algorithm_oid.dotted_string))
        )
        assert der.signed_certificate(reference.tbs_certificate_bytes, algorithm, leaf.signature) == fast
    leaf.verify_directly_issued_by(ca.cert)


@settings(deadline=None, max_examples=300)
@given(st.one_of(DNS, LONG, st.text(max_size=80), st.from_regex(r"[a-z0-9.\-_*:]{1,40}", fullmatch=True)))
def test_the_plain_name_shortcut_agrees_with_normalize_name(raw):
    try:
        expected = normalize_name(raw)
    except LeafRefused as refused:
        with pytest.raises(LeafRefused) as caught:
            normalize_hosts([raw])
        assert caught.value.id == refused.id
        return
    assert normalize_hosts([raw]) == (expected,)


def test_hosts_are_deduplicated_in_order():
    hosts = normalize_hosts(
        ["B.example.test", "b.example.test.", ipaddress.ip_address("10.0.0.1"), "10.0.0.1"]
    )
    assert hosts == ("b.example.test", ipaddress.ip_address("10.0.0.1"))


def ec_template(profile: LeafProfile | None = None) -> LeafTemplate:
    """The P-256 test CA's template, valid 300 days from NOW."""
    ca, path = cas()["ec"]
    return LeafTemplate(
        7, ca.cert, ca.key, path=path, served_chain=[], effective_expiry=NOW + dt.timedelta(days=300),
        profile=profile or LeafProfile(),
    )  # fmt: skip


def test_extension_order_and_criticality_of_a_template_leaf():
    profile = LeafProfile(
        crl_url="http://pki.example.test/pki/crl/7.crl", aia_url="http://pki.example.test/a.crt"
    )
    template = ec_template(profile)
    key = leaf_keys()["ec"]
    plan = plan_leaf(("www.example.test",), template.ca_path, now=NOW, profile=profile)
    leaf = x509.load_der_x509_certificate(template.mint(plan, key.spki, key.extensions))
    assert [(e.oid, e.critical) for e in leaf.extensions] == [
        (ExtensionOID.BASIC_CONSTRAINTS, True),
        (ExtensionOID.KEY_USAGE, True),
        (ExtensionOID.EXTENDED_KEY_USAGE, False),
        (ExtensionOID.SUBJECT_KEY_IDENTIFIER, False),
        (ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False),
        (ExtensionOID.SUBJECT_ALTERNATIVE_NAME, False),
        (ExtensionOID.CRL_DISTRIBUTION_POINTS, False),
        (ExtensionOID.AUTHORITY_INFORMATION_ACCESS, False),
    ]
    assert 0 < leaf.serial_number < 2**127
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)


def test_template_refuses_the_ca_key_as_leaf_key():
    template = ec_template()
    own = PoolKey.of(cas()["ec"][0].key)
    plan = plan_leaf(("www.example.test",), template.ca_path, now=NOW, profile=LeafProfile())
    with pytest.raises(ValueError, match="CA key"):
        template.mint(plan, own.spki, own.extensions)


def test_template_refuses_a_ca_without_ski_and_a_signer_of_another_kind():
    p = pki()
    key = new_key("ec")
    no_ski = p.sign_ca(key.public_key(), ski=False)
    with pytest.raises(ValueError, match="subjectKeyIdentifier"):
        LeafTemplate(
            7,
            no_ski,
            key,
            path=[p.root.cert],
            served_chain=[],
            effective_expiry=NOW + dt.timedelta(days=9),
            profile=LeafProfile(),
        )
    ca, path = cas()["ec"]
    with pytest.raises(TypeError):
        LeafTemplate(
            7,
            ca.cert,
            cas()["rsa"][0].key,
            path=path,
            served_chain=[],
            effective_expiry=NOW + dt.timedelta(days=9),
            profile=LeafProfile(),
        )


@pytest.mark.parametrize("length", [0, 1, 127, 128, 255, 256, 65535, 65536])
def test_tlv_lengths_are_minimal_der(length):
    encoded = der.tlv(der.OCTET_STRING, b"\x00" * length)
    decoded = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3"), encoded)  # holds bytes as given
    assert decoded.value == encoded
    if length < 128:
        assert encoded[1] == length
    else:
        size = encoded[1] & 0x7F
        assert encoded[1] & 0x80 and int.from_bytes(encoded[2 : 2 + size], "big") == length
        assert encoded[2] != 0  # no leading zero length octets (X.690 §10.1)


def test_serials_follow_the_profile_rule():
    serials = der.Serials()
    seen = set()
    for _ in range(2000):
        encoded = serials.next()
        value = int.from_bytes(encoded[2:], "big", signed=True)
        assert encoded[0] == der.INTEGER and encoded[1] == len(encoded) - 2 <= 16
        assert 0 < value < 2**127 and der.integer(value) == encoded  # minimal, positive
        seen.add(value)
    assert len(seen) == 2000
    assert der.serial_number(bytes(16)) is None  # zero is retried, never used
    assert der.serial_number(b"\x80" + bytes(15)) is None  # the top bit is cleared first


def test_oid_encoding():
    assert der.oid("2.5.29.17") == b"\x55\x1d\x11"
    assert der.oid("1.2.840.113549.1.1.11") == bytes.fromhex("2a864886f70d01010b")
    assert der.oid("1.3.6.1.5.5.7.1.1") == bytes.fromhex("2b06010505070101")


def test_times_switch_to_generalized_time_in_2050():
    assert der.time(dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC)) == b"\x17\x0d491231235959Z"
    assert der.time(dt.datetime(2050, 1, 1, tzinfo=dt.UTC)) == b"\x18\x0f20500101000000Z"


def test_leaf_key_parts_of_ec_and_rsa_keys():
    for kind, usage in (("ec", (True, False)), ("rsa", (True, True))):
        key = leaf_keys()[kind]
        assert key.spki == key.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        template = ec_template()
        plan = plan_leaf(("k.example.test",), template.ca_path, now=NOW, profile=LeafProfile())
        leaf = x509.load_der_x509_certificate(template.mint(plan, key.spki, key.extensions))
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        assert (ku.digital_signature, ku.key_encipherment) == usage
        ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert ski == x509.SubjectKeyIdentifier.from_public_key(key.private.public_key())
        assert isinstance(key.private, ec.EllipticCurvePrivateKey if kind == "ec" else rsa.RSAPrivateKey)


@settings(deadline=None, max_examples=300)
@given(
    ca_kind=st.sampled_from(["ec", "under-policy", "expiring"]),
    lifetime=st.integers(1, 199),
    backdate=st.integers(0, 1440),
    offset=st.integers(-2 * 86400 * 1_000_000, 25 * 86400 * 1_000_000),
    expiry_cut=st.one_of(st.none(), st.integers(0, 30 * 86400 * 1_000_000)),
)
def test_plan_validity_is_the_spec_formula(ca_kind, lifetime, backdate, offset, expiry_cut):
    """§6.1: notBefore = max(now - backdate, CA notBefore); notAfter = min(notBefore + lifetime,
    effective expiry of the CA path); whole seconds; refused outside the path's validity."""
    ca, path = cas()[ca_kind]
    certs = [ca.cert, *path]
    effective = min(c.not_valid_after_utc for c in certs)
    if expiry_cut is not None:
        effective = min(effective, NOW + dt.timedelta(microseconds=expiry_cut))
    profile = LeafProfile(lifetime_days=lifetime, backdate_minutes=backdate)
    now = NOW + dt.timedelta(microseconds=offset)
    template = LeafTemplate(
        7, ca.cert, ca.key, path=path, served_chain=[], effective_expiry=effective, profile=profile
    )
    valid = all(c.not_valid_before_utc <= now <= c.not_valid_after_utc for c in certs) and now <= effective
    if not valid:
        with pytest.raises(LeafRefused) as refused:
            plan_leaf(("p.example.test",), template.ca_path, now=now, profile=profile)
        assert refused.value.id == "ca_not_valid"
        return
    plan = plan_leaf(("p.example.test",), template.ca_path, now=now, profile=profile)
    start = max([now - dt.timedelta(minutes=backdate), *(c.not_valid_before_utc for c in certs)])
    end = min([start + dt.timedelta(days=lifetime), effective, *(c.not_valid_after_utc for c in certs)])
    assert plan.not_before == start.replace(microsecond=0)
    assert plan.not_after == end.replace(microsecond=0)
    assert plan.not_after - plan.not_before <= dt.timedelta(days=199)
    assert template.refresh_at(plan) == plan.not_after - (plan.not_after - plan.not_before) / 4
