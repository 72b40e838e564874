"""The issuing engine over a real deployment (certificates.md §6): what it serves, its cache and
single-flight, the default pointer, refusals, validity caps, metrics and the key pool rule."""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID
from cryptography.x509.verification import DNSName, IPAddress, PolicyBuilder, Store
from prometheus_client import REGISTRY, generate_latest
from sqlalchemy import delete

from interca.domain.models import BUILTIN_ID, Status
from interca.issuance import LeafKeyPool, LeafRefused, Minted
from interca.issuance.keypool import PoolKey
from interca.storage.certificates import CertificateRepository
from interca.storage.tables import DefaultCertificateRow

from .conftest import Deployment


def leaf_of(minted: Minted) -> x509.Certificate:
    return x509.load_der_x509_certificate(minted.chain[0])


def verify(
    minted: Minted, root: x509.Certificate, name: x509.verification.DNSName | IPAddress, at: dt.datetime
) -> None:
    """The strict verifier of §5 step 4, from the chain exactly as served."""
    certs = [x509.load_der_x509_certificate(d) for d in minted.chain]
    PolicyBuilder().store(Store([root])).time(at).build_server_verifier(name).verify(certs[0], certs[1:])


def spki(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_the_builtin_ca_is_the_first_default(deployment: Deployment):
    engine = deployment.engine()
    minted = engine.mint(["www.example.test"])
    assert minted.ca_id == BUILTIN_ID == engine.ca_id
    builtin = deployment.services.ctx.load(BUILTIN_ID)
    assert builtin.cert is not None and builtin.cert.chain_pem is not None
    (root,) = x509.load_pem_x509_certificates(builtin.cert.chain_pem.encode())
    assert minted.chain == (minted.chain[0], builtin.cert.der)  # leaf, intermediate; never the root
    verify(minted, root, DNSName("www.example.test"), deployment.clock.now())
    leaf = leaf_of(minted)
    assert leaf.public_key() == minted.key.public_key()
    assert spki(leaf.public_key()) != spki(x509.load_der_x509_certificate(builtin.cert.der).public_key())


def test_chain_is_leaf_intermediate_then_the_uploaded_non_root_cas(deployment: Deployment):
    pki = deployment.pki
    policy = pki.sub_ca("Engine Policy CA", path_length=1)
    ca = deployment.finalized(issuer=policy, chain=[policy.cert, pki.root.cert])
    deployment.make_default(ca.id)
    minted = deployment.engine().mint(["shop.example.test"])
    der = serialization.Encoding.DER
    assert minted.chain[1:] == (ca.cert.public_bytes(der), policy.cert.public_bytes(der))
    assert pki.root.cert.public_bytes(der) not in minted.chain
    verify(minted, pki.root.cert, DNSName("shop.example.test"), deployment.clock.now())
    assert x509.load_pem_x509_certificates(minted.chain_pem.encode()) == [
        x509.load_der_x509_certificate(d) for d in minted.chain
    ]
    key = serialization.load_pem_private_key(minted.key_pem, None)
    assert spki(key.public_key()) == spki(minted.key.public_key())


def test_leaf_profile_of_a_custom_ca(deployment: Deployment):
    ca = deployment.finalized("RSA_2K")
    deployment.make_default(ca.id)
    minted = deployment.engine().mint(
        ["Bücher.Example.TEST.", "10.1.2.3", ipaddress.ip_address("2001:db8::7")]
    )
    leaf = leaf_of(minted)
    leaf.verify_directly_issued_by(ca.cert)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["xn--bcher-kva.example.test"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.1.2.3"),
        ipaddress.ip_address("2001:db8::7"),
    ]
    assert leaf.subject.rfc4514_string() == "CN=xn--bcher-kva.example.test"
    cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    base = deployment.services.ctx.settings.pki_base_url
    assert cdp[0].full_name == [x509.UniformResourceIdentifier(f"{base}/pki/crl/{ca.id}.crl")]
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert (
        aki.key_identifier
        == ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    )
    assert leaf.issuer.public_bytes() == ca.cert.subject.public_bytes()
    for ip in ("10.1.2.3", "2001:db8::7"):
        verify(minted, deployment.pki.root.cert, IPAddress(ipaddress.ip_address(ip)), deployment.clock.now())


def test_a_cache_hit_returns_the_same_leaf_whatever_the_spelling(deployment: Deployment):
    engine = deployment.engine()
    first = engine.mint(["www.example.test"])
    assert engine.mint(["www.example.test"]) is first
    assert engine.mint(("WWW.Example.Test.",)) is first  # normalised to the same canonical key
    assert engine.mint(("WWW.Example.Test.",)) is first  # and now by its own fast key
    assert engine.mint(["other.example.test"]) is not first
    pair = engine.mint(["b.example.test", "a.example.test"])
    assert engine.mint(["a.example.test", "b.example.test"]) is pair  # the key sorts the names
    m = engine.metrics
    assert m.value("interca_leaves_minted_total", ca_id="1") == 3
    assert m.value("interca_leaf_cache_misses_total", ca_id="1") == 3
    assert m.value("interca_leaf_cache_hits_total", ca_id="1") == 4
    assert m.value("interca_leaf_mint_seconds_count", ca_id="1") == 3


def test_a_burst_for_one_host_mints_once(deployment: Deployment):
    engine = deployment.engine(default_poll_seconds=3600)
    engine.mint(["warm.example.test"])  # the template is built before the burst
    start = threading.Barrier(50)
    results: list[Minted] = []
    errors: list[BaseException] = []

    def handshake() -> None:
        try:
            start.wait(30)
            results.append(engine.mint(["burst.example.test"]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=handshake) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 50
    assert len({id(r) for r in results}) == 1
    m = engine.metrics
    assert m.value("interca_leaves_minted_total", ca_id="1") == 2  # warm-up + one for the burst
    hits = m.value("interca_leaf_cache_hits_total", ca_id="1")
    misses = m.value("interca_leaf_cache_misses_total", ca_id="1")
    assert hits + misses == 51 and misses >= 2


def test_a_default_switch_reaches_new_mints_after_the_poll_interval(deployment: Deployment):
    a = deployment.finalized()
    b = deployment.finalized("RSA_2K")
    deployment.make_default(a.id)
    engine = deployment.engine()  # poll 0: every mint may re-read the pointer
    slow = deployment.engine(default_poll_seconds=3600)
    leaf_a = engine.mint(["switch.example.test"])
    assert leaf_a.ca_id == a.id and slow.mint(["switch.example.test"]).ca_id == a.id
    leaf_of(leaf_a).verify_directly_issued_by(a.cert)

    deployment.make_default(b.id)
    leaf_b = engine.mint(["switch.example.test"])
    assert leaf_b.ca_id == b.id
    leaf_of(leaf_b).verify_directly_issued_by(b.cert)
    assert slow.mint(["switch.example.test"]).ca_id == a.id  # not re-read before its interval

    deployment.make_default(a.id)
    again = engine.mint(["switch.example.test"])
    assert again.ca_id == a.id and again is not leaf_a  # a's old entry was dropped at the switch
    assert engine.metrics.value("interca_leaves_minted_total", ca_id=str(a.id)) == 2


def test_a_disabled_default_mints_nothing_until_enabled(deployment: Deployment):
    ca = deployment.finalized()
    deployment.make_default(ca.id)
    engine = deployment.engine()
    cached = engine.mint(["d.example.test"])
    # The API refuses to disable the default; the record can still change underneath (another
    # deployment's process, a restore), and the engine must follow the record.
    set_status(deployment, ca.id, Status.DISABLED)
    with pytest.raises(LeafRefused) as refused:
        engine.mint(["d.example.test"])  # not even from the cache
    assert refused.value.id == "no_default_ca" and "disabled" in refused.value.message
    assert engine.ca_id is None
    set_status(deployment, ca.id, Status.ENABLED)
    fresh = engine.mint(["d.example.test"])
    assert fresh.ca_id == ca.id and fresh is not cached
    assert engine.metrics.value("interca_leaf_refusals_total", reason="no_default_ca") == 1


def set_status(deployment: Deployment, ca_id: int, status: Status) -> None:
    ctx = deployment.services.ctx
    record = ctx.load(ca_id)
    record.status = status
    with ctx.db.write() as s:
        CertificateRepository(s).save(record, ctx.clock.now())


def test_a_deleted_default_mints_nothing(deployment: Deployment):
    ca = deployment.finalized()
    deployment.make_default(ca.id)
    engine = deployment.engine()
    engine.mint(["gone.example.test"])
    with deployment.services.ctx.db.write() as s:  # as after a restore: pointer and record gone
        s.execute(delete(DefaultCertificateRow))
        CertificateRepository(s).delete(ca.id)
    with pytest.raises(LeafRefused) as refused:
        engine.mint(["gone.example.test"])
    assert refused.value.id == "no_default_ca"
    with deployment.services.ctx.db.write() as s:
        CertificateRepository(s).set_default(BUILTIN_ID)
    assert engine.mint(["gone.example.test"]).ca_id == BUILTIN_ID


@pytest.mark.parametrize(
    ("names", "wildcard_ok", "refusal"),
    [
        (["bad host.example.test"], False, "invalid_host"),
        (["*.example.test"], False, "invalid_host"),
        (["*"], True, "invalid_host"),
        (["*.com"], True, "invalid_host"),
        (["a..example.test"], False, "invalid_host"),
        (["-a.example.test"], False, "invalid_host"),
        (["a" * 64 + ".example.test"], False, "invalid_host"),
        ([], False, "invalid_host"),
        (["fe80::1%eth0"], False, "invalid_host"),
    ],
)
def test_invalid_hosts_are_refused(deployment: Deployment, names, wildcard_ok, refusal):
    engine = deployment.engine()
    with pytest.raises(LeafRefused) as refused:
        engine.mint(names, wildcard_ok=wildcard_ok)
    assert refused.value.id == refusal and refused.value.message.startswith(f"[{refusal}] ")
    assert engine.metrics.value("interca_leaf_refusals_total", reason=refusal) == 1


def test_a_single_string_is_a_programming_error(deployment: Deployment):
    with pytest.raises(TypeError):
        deployment.engine().mint("www.example.test")  # type: ignore[arg-type]


def test_wildcards_only_when_asked(deployment: Deployment):
    engine = deployment.engine()
    minted = engine.mint(["*.wild.example.test"], wildcard_ok=True)
    san = leaf_of(minted).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["*.wild.example.test"]
    with pytest.raises(LeafRefused):
        engine.mint(["*.wild.example.test"])  # the cached wildcard is not reachable without the flag


def test_names_outside_the_name_constraints_are_refused(deployment: Deployment):
    constraints = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("example.test")], excluded_subtrees=None
    )
    ca = deployment.finalized(extra_extensions=[(constraints, True)])
    deployment.make_default(ca.id)
    engine = deployment.engine()
    assert engine.mint(["in.example.test"]).ca_id == ca.id
    with pytest.raises(LeafRefused) as refused:
        engine.mint(["in.example.test", "out.other.test"])
    assert refused.value.id == "outside_name_constraints"


def test_leaves_never_outlive_the_ca_path_and_stop_when_it_expires(deployment: Deployment):
    now = deployment.clock.now()
    ca = deployment.finalized(not_after=now + dt.timedelta(days=40))
    deployment.make_default(ca.id)
    engine = deployment.engine()
    leaf = leaf_of(engine.mint(["short.example.test"]))
    assert leaf.not_valid_after_utc == ca.cert.not_valid_after_utc  # 90 days capped at the CA's end
    span = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert span <= dt.timedelta(days=199)
    deployment.clock.set(ca.cert.not_valid_after_utc + dt.timedelta(seconds=1))
    with pytest.raises(LeafRefused) as refused:
        engine.mint(["short.example.test"])
    assert refused.value.id == "ca_not_valid"


def test_leaves_are_reminted_when_a_quarter_of_the_span_remains(deployment: Deployment):
    engine = deployment.engine()
    first = engine.mint(["fresh.example.test"])
    leaf = leaf_of(first)
    span = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert span == dt.timedelta(days=90)
    refresh_at = leaf.not_valid_after_utc - span / 4
    deployment.clock.set(refresh_at - dt.timedelta(seconds=1))
    assert engine.mint(["fresh.example.test"]) is first
    deployment.clock.set(refresh_at)
    second = engine.mint(["fresh.example.test"])
    assert second is not first and second.not_after > first.not_after


def test_the_key_pool_never_hands_out_the_ca_key(deployment: Deployment):
    ca = deployment.finalized()
    deployment.make_default(ca.id)
    record = deployment.services.ctx.load(ca.id)
    assert record.key is not None
    ca_key = deployment.services.ctx.keystores.for_ref(record.key.ref).signer(record.key.ref)
    pool = LeafKeyPool("ec-p256", size=2, background=False)
    deployment.pools.append(pool)
    pool._active = (PoolKey.of(ca_key), pool._active[0])  # a pool that somehow holds the CA key
    engine = deployment.engine(key_pool=pool)
    for i in range(6):
        minted = engine.mint([f"k{i}.example.test"])
        assert spki(minted.key.public_key()) != spki(ca.cert.public_key())
        assert spki(leaf_of(minted).public_key()) != spki(ca.cert.public_key())


def test_rsa_leaf_keys(deployment: Deployment):
    pool = LeafKeyPool("rsa-2048", size=1, background=False)
    deployment.pools.append(pool)
    minted = deployment.engine(key_pool=pool).mint(["rsa.example.test"])
    assert isinstance(minted.key, rsa.RSAPrivateKey) and minted.key.key_size == 2048
    usage = leaf_of(minted).extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment


def test_default_pool_follows_the_leaf_key_type_setting(deployment: Deployment):
    minted = deployment.engine().mint(["ec.example.test"])
    assert deployment.services.ctx.settings.leaf_key_type == "ec-p256"
    assert isinstance(minted.key, ec.EllipticCurvePrivateKey) and isinstance(minted.key.curve, ec.SECP256R1)
    usage = leaf_of(minted).extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_encipherment
    assert leaf_of(minted).extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).critical


def test_metrics_live_in_the_engines_own_registry(deployment: Deployment):
    engine = deployment.engine()
    other = deployment.engine()
    engine.mint(["m.example.test"])
    text = generate_latest(engine.metrics.registry).decode()
    for name in (
        "interca_leaves_minted_total",
        "interca_leaf_cache_hits_total",
        "interca_leaf_cache_misses_total",
        "interca_leaf_mint_seconds_bucket",
        "interca_leaf_key_pool_depth",
        "interca_leaf_key_pool_overuse_total",
        "interca_leaf_cache_entries",
    ):
        assert name in text, name
    assert engine.metrics.value("interca_leaf_key_pool_depth") == 4
    assert engine.metrics.value("interca_leaf_cache_entries") == 1
    assert other.metrics.value("interca_leaves_minted_total", ca_id="1") == 0  # separate registries
    assert engine.metrics.registry is not REGISTRY
    assert "interca_leaves_minted" not in generate_latest(REGISTRY).decode()
