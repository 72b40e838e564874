"""Signatures per second through interca's key stores, next to the raw token rate (issue 5).

One run, one process, one thread, same machine: for each key type it measures
  - the software key store (`SoftwareKeyStore.signer(ref).sign`),
  - the PKCS#11 key store on SoftHSM2 (`Pkcs11KeyStore.signer(ref).sign`: what CSRs, leaves and
    CRLs go through),
  - the raw SoftHSM2 rate through python-pkcs11 alone, on the same key and mechanism (the limit),
    measured in alternating bursts with the key store's (medians of 5), so machine drift hits both,
and prints the key store's share of the raw rate (target: at least 80 %).

    .venv/bin/python bench/keystore.py [--seconds 2]

Signed payload: 1,200 bytes (about a leaf's TBSCertificate); RSA PKCS#1 v1.5 with SHA-256,
ECDSA with SHA-256 (P-256) / SHA-384 (P-384) — the hash is computed on the host as the key store
does, so the raw EC rate signs the digest with CKM_ECDSA.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

SOFTHSM2_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PAYLOAD = os.urandom(1200)


def rate(fn: Callable[[], object], seconds: float) -> float:
    fn()  # warm up (key lookup, first login)
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed


def paired_rates(a: Callable[[], object], b: Callable[[], object], seconds: float) -> tuple[float, float]:
    """Medians of 5 alternating bursts of `a` and `b`, `seconds` in all for each."""
    burst = seconds / 5
    runs_a, runs_b = [], []
    for _ in range(5):
        runs_a.append(rate(a, burst))
        runs_b.append(rate(b, burst))
    return statistics.median(runs_a), statistics.median(runs_b)


def sign_with(key: object) -> Callable[[], object]:
    if isinstance(key, rsa.RSAPrivateKey):
        return lambda: key.sign(PAYLOAD, padding.PKCS1v15(), hashes.SHA256())
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    algorithm = hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA256()
    return lambda: key.sign(PAYLOAD, ec.ECDSA(algorithm))


def raw_signer(private: object, key_type: object) -> Callable[[], object]:
    """Sign with python-pkcs11 directly: the token's own rate for this key and mechanism."""
    from pkcs11 import Mechanism

    from interca.domain.models import KeyType

    if key_type in (KeyType.RSA_2K, KeyType.RSA_3K, KeyType.RSA_4K):
        return lambda: private.sign(PAYLOAD, mechanism=Mechanism.SHA256_RSA_PKCS)  # type: ignore[attr-defined]
    algorithm = hashes.SHA384() if key_type is KeyType.EC_P384 else hashes.SHA256()

    def raw_ecdsa() -> object:
        digest = hashes.Hash(algorithm)
        digest.update(PAYLOAD)
        return private.sign(digest.finalize(), mechanism=Mechanism.ECDSA)  # type: ignore[attr-defined]

    return raw_ecdsa


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per figure")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="interca-bench-"))
    (work / "tokens").mkdir()
    conf = work / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {work / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)  # before the module's first load
    pin, so_pin = secrets.token_hex(8), secrets.token_hex(8)
    label = "bench-" + secrets.token_hex(4)
    init = ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin]
    subprocess.run(init, check=True, capture_output=True)
    pin_file = work / "pin"
    pin_file.write_text(pin)
    pin_file.chmod(0o600)

    import pkcs11
    from pkcs11 import ObjectClass

    from interca.domain.models import KeyType
    from interca.keystore.master_key import load_master_key
    from interca.keystore.pkcs11 import KeyRef, Pkcs11KeyStore
    from interca.keystore.pkcs11_token import PinSource, TokenConfig
    from interca.keystore.software import SoftwareKeyStore

    software = SoftwareKeyStore(work / "keys", load_master_key(work / "master.key", create=True))
    token_cfg = TokenConfig("US", label, None, PinSource("US", None, pin_file, "-", "-"), "-", "-")
    hsm = Pkcs11KeyStore(SOFTHSM2_MODULE, token_cfg, str(conf))

    print(f"interca key store benchmark: {args.seconds:g} s per figure, payload {len(PAYLOAD)} bytes")
    print(f"python {sys.version.split()[0]}, SoftHSM2 token in {work}")
    header = f"{'key':<10}{'software/s':>12}{'keystore HSM/s':>16}{'raw pkcs11/s':>14}{'keystore/raw':>14}"
    print(header)
    print("-" * len(header))
    raw_session = None
    for key_type in (KeyType.RSA_2K, KeyType.RSA_3K, KeyType.RSA_4K, KeyType.EC_P256, KeyType.EC_P384):
        soft = rate(sign_with(software.signer(software.create_key(key_type, "bench"))), args.seconds)
        ref = hsm.create_key(key_type, "bench")
        # The raw rate: python-pkcs11 on the same key, no interca code in between. The key store's
        # session already logged the application in, so this session needs no PIN.
        if raw_session is None:
            raw_session = pkcs11.lib(SOFTHSM2_MODULE).get_token(token_label=label).open()
        key_id = KeyRef.parse(ref).key_id  # type: ignore[union-attr]
        private = raw_session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=key_id)
        # Alternate short bursts of both and take medians, so drift on a shared VM hits both alike.
        through_store, raw = paired_rates(
            sign_with(hsm.signer(ref)), raw_signer(private, key_type), args.seconds
        )
        share = through_store / raw
        print(f"{key_type.value:<10}{soft:>12,.0f}{through_store:>16,.0f}{raw:>14,.0f}{share:>13.0%}")
    print("target: keystore/raw >= 80 %")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
