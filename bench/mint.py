"""Leaves per second from the issuing engine, next to the limit and the baselines (issue 6).

One run, same machine: a throw-away data directory, a deployment prepared as `interca serve`
does, and two software CAs (P-256 and RSA-2048) made with `cryptography`, taken through the real
lifecycle services (key pair, CSR, upload, chain, finalize) and made default in turn. For each:

  - leaves/s of `Engine.mint` for distinct host names (cache misses), in alternating bursts with
  - the raw signature rate of the same CA key over a payload the size of a leaf's TBS (the
    limit), medians of 5, and their ratio (target: >= 75 % RSA-2048, >= 40 % P-256);
  - cache hits/s (target: >= 500,000);
  - two worker processes against one, each with its own engine (target: >= 1.7x);
  - mitmproxy's own `CertStore` minting the same host names, when mitmproxy is importable
    (target: interca >= 10x with a P-256 CA, >= 2x with RSA-2048).

    .venv/bin/python bench/mint.py [--seconds 2]
    .venv-proxy/bin/python bench/mint.py       # the proxy venv has mitmproxy (make proxy-venv)

The machine is shared and has 2 cores: figures are noisy, so compare ratios within one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from interca.app import build_services, prepare
from interca.auth.authenticator import local_actor
from interca.config import Settings, load_settings
from interca.domain.x509.leaf import LeafProfile, build_leaf
from interca.domain.x509.pem import Upload
from interca.issuance import Engine
from interca.service.registry import Services

CSR = {
    "csrFileName": "bench", "commName": "Bench Inspection CA", "orgName": "Bench Org", "deptName": "Bench",
    "city": "London", "state": "England", "country": "COUNTRY_GB", "pathLengthConstraint": 0,
}  # fmt: skip
TARGETS = {"EC_P256": (0.40, 10.0), "RSA_2K": (0.75, 2.0)}  # share of raw, times mitmproxy


def rate(fn: Callable[[], object], seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed


def paired(a: Callable[[], object], b: Callable[[], object], seconds: float) -> tuple[float, float]:
    """Medians of 5 alternating bursts of `a` and `b` (`seconds` each in all): drift hits both."""
    runs_a, runs_b = [], []
    for _ in range(5):
        runs_a.append(rate(a, seconds / 5))
        runs_b.append(rate(b, seconds / 5))
    return statistics.median(runs_a), statistics.median(runs_b)


def hosts(prefix: str) -> Callable[[], list[str]]:
    counter = itertools.count()
    return lambda: [f"h{next(counter)}.{prefix}.bench.example"]


# setup -----------------------------------------------------------------------------------------


def make_root() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench Root CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return key, cert


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(False, False, False, False, False, True, True, False, False)


def sign_csr(csr: x509.CertificateSigningRequest, root: tuple[Any, x509.Certificate]) -> x509.Certificate:
    key, cert = root
    now = dt.datetime.now(dt.UTC)
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder().subject_name(csr.subject).issuer_name(cert.subject)
        .public_key(csr.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip


def finalized_ca(services: Services, key_type: str, root: tuple[Any, x509.Certificate]) -> int:
    """A custom software CA of `key_type` taken through the lifecycle services to CERT_READY."""
    who = local_actor()
    ca = services.certificates.create(
        who, {"name": f"Bench {key_type}", "type": "CUSTOM_SW", "keyType": key_type}
    )
    life = services.lifecycle
    life.generate_key_pair(who, ca.id)
    life.download_public_key(who, ca.id)
    life.generate_csr(who, ca.id, CSR)
    csr = x509.load_pem_x509_csr(life.download_csr(who, ca.id).body.encode())
    pem = sign_csr(csr, root).public_bytes(serialization.Encoding.PEM)
    life.upload_cert(who, ca.id, Upload(pem, "bench.pem"))
    life.upload_chain(who, ca.id, Upload(root[1].public_bytes(serialization.Encoding.PEM), "root.pem"))
    life.finalize(who, ca.id)
    return ca.id


def ca_key(services: Services, ca_id: int) -> Any:
    ca = services.ctx.load(ca_id)
    assert ca.key is not None
    return services.ctx.keystores.for_ref(ca.key.ref).signer(ca.key.ref)


# measurements ----------------------------------------------------------------------------------


def raw_signer(key: Any, size: int) -> Callable[[], object]:
    payload = b"\x5a" * size
    if isinstance(key, rsa.RSAPrivateKey):
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
        return lambda: key.sign(payload, pkcs1, sha256)
    ecdsa = ec.ECDSA(hashes.SHA256())
    return lambda: key.sign(payload, ecdsa)


ROUNDS = 3  # solo/duo rounds of the process figure: medians of alternating bursts, as `paired`


def _worker(settings: Settings, index: int, seconds: float, start: Any, out: Any) -> None:
    services = build_services(settings)
    engine = Engine(services.ctx, default_poll_seconds=3600)
    next_names = hosts(f"w{index}")
    engine.mint(next_names())  # template, key pool and DB read before the clock starts
    burst = seconds / ROUNDS
    for round_ in range(ROUNDS):
        for phase in ("solo", "duo"):
            start.wait()  # both workers line up: the measuring windows coincide
            if phase == "solo" and index == 1:
                time.sleep(burst)  # idle, so worker 0 has a core to itself
                continue
            out.put((round_, phase, rate(lambda: engine.mint(next_names()), burst)))
    engine.close()
    services.ctx.db.dispose()


def processes(settings: Settings, seconds: float) -> tuple[float, float]:
    """(leaves/s of one process, summed leaves/s of two), each process with its own engine;
    medians of `ROUNDS` alternating bursts, so drift and other load hit both figures alike."""
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter each: no shared DB handles
    start, out = ctx.Barrier(2), ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(settings, i, seconds, start, out)) for i in range(2)]
    for w in workers:
        w.start()
    solo: list[float] = []
    duo: dict[int, float] = {}
    for _ in range(ROUNDS * 3):  # per round: one solo figure, two duo figures
        round_, phase, value = out.get(timeout=300)
        if phase == "solo":
            solo.append(value)
        else:
            duo[round_] = duo.get(round_, 0.0) + value
    for w in workers:
        w.join()
    return statistics.median(solo), statistics.median(duo.values())


def mitmproxy_rate(key: Any, cert: x509.Certificate, seconds: float) -> float | None:
    try:
        from mitmproxy.certs import Cert, CertStore
    except ImportError:
        return None
    store = CertStore(key, Cert(cert), None, b"")  # type: ignore[arg-type]
    counter = itertools.count()

    def one() -> object:
        host = f"h{next(counter)}.mitm.bench.example"
        return store.get_cert(host, [x509.DNSName(host)])

    return rate(one, seconds)


def builder_rate(key: Any, ca_cert: x509.Certificate, crl_url: str, seconds: float) -> float:
    """The route the template replaces: `build_leaf` (cryptography's CertificateBuilder), same
    CA key and profile, one leaf key, distinct names."""
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    profile = LeafProfile(crl_url=crl_url)
    counter = itertools.count()
    now = dt.datetime.now(dt.UTC)

    def one() -> object:
        return build_leaf(
            [f"b{next(counter)}.builder.bench.example"], leaf_key.public_key(), ca_cert, key, path=[],
            effective_expiry=ca_cert.not_valid_after_utc, now=now, profile=profile,
        )  # fmt: skip

    return rate(one, seconds)


def show(what: str, value: float, unit: str, target: str = "", met: bool | None = None) -> None:
    verdict = "" if met is None else (" met" if met else " NOT met")
    print(f"  {what:<44}{value:>14,.1f} {unit:<4}{target}{verdict}")


def bench_ca(services: Services, settings: Settings, ca_id: int, key_type: str, seconds: float) -> None:
    services.certificates.make_default(local_actor(), ca_id)
    engine = Engine(services.ctx, default_poll_seconds=3600)
    key = ca_key(services, ca_id)
    next_names = hosts(key_type.lower())
    sample = engine.mint(next_names())
    size = len(x509.load_der_x509_certificate(sample.chain[0]).tbs_certificate_bytes)
    share_target, mitm_target = TARGETS[key_type]
    print(f"\n{key_type} CA (certificate {ca_id}), TBS {size} bytes, leaf keys {settings.leaf_key_type}")

    leaves, raw = paired(lambda: engine.mint(next_names()), raw_signer(key, size), seconds)
    show("engine leaves/s, distinct names (misses)", leaves, "/s")
    show("raw signatures/s, same key and size (limit)", raw, "/s")
    share = leaves / raw
    show("engine / raw", share * 100, "%", f"target >= {share_target:.0%}", share >= share_target)
    ca_cert = x509.load_der_x509_certificate(sample.chain[1])
    crl_url = f"{settings.pki_base_url}/pki/crl/{ca_id}.crl"
    show("builder route (build_leaf) leaves/s", builder_rate(key, ca_cert, crl_url, seconds), "/s")

    same = ("cached.bench.example",)
    engine.mint(same)
    hits = rate(lambda: engine.mint(same), min(seconds, 1.0))
    show("cache hits/s", hits, "/s", "target >= 500,000", hits >= 500_000)

    one, two = processes(settings, seconds)
    show("1 process, leaves/s", one, "/s")
    show("2 processes, leaves/s", two, "/s")
    show("2 processes / 1", two / one, "x", "target >= 1.7x", two / one >= 1.7)

    mitm = mitmproxy_rate(key, ca_cert, seconds)
    if mitm is None:
        print("  mitmproxy CertStore: mitmproxy is not installed in this Python (use a venv that has it)")
    else:
        show("mitmproxy CertStore leaves/s (baseline)", mitm, "/s")
        ratio = leaves / mitm
        show("engine / mitmproxy", ratio, "x", f"target >= {mitm_target:g}x", ratio >= mitm_target)
    misses = engine.metrics.value("interca_leaf_cache_misses_total", ca_id=str(ca_id))
    minted = engine.metrics.value("interca_leaves_minted_total", ca_id=str(ca_id))
    print(f"  (engine metrics: {minted:,.0f} minted, {misses:,.0f} misses)")
    engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per figure")
    args = parser.parse_args()
    import cryptography

    with tempfile.TemporaryDirectory(prefix="interca-bench-") as tmp:
        settings = load_settings(data_dir=Path(tmp) / "data", rate_limit_profile="off", hsm_module="")
        services = prepare(settings)
        root = make_root()
        print(f"interca mint benchmark: {args.seconds:g} s per figure; python {sys.version.split()[0]}, "
              f"cryptography {cryptography.__version__}")  # fmt: skip
        for key_type in TARGETS:
            ca_id = finalized_ca(services, key_type, root)
            bench_ca(services, settings, ca_id, key_type, args.seconds)
        services.ctx.db.dispose()


if __name__ == "__main__":
    main()
