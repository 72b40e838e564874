"""The PKCS#11 key store against real SoftHSM2 tokens (hsm.md §3-§6)."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e
from tests.hsm import SoftHsm, TestToken
from tests.pki import TestPKI, openssl_verify, pem

from interca.config import SOFTHSM2_MODULE
from interca.domain.models import KeyType
from interca.errors import KeyStoreError
from interca.keystore import pkcs11_objects
from interca.keystore.hsm_keys import HsmECPrivateKey, HsmRSAPrivateKey
from interca.keystore.pkcs11 import KeyRef, Pkcs11KeyStore
from interca.keystore.pkcs11_token import PinSource, TokenConfig

NOW = dt.datetime.now(dt.UTC)

# hsm.md §5 regression matrix: key type -> the hashes it signs with.
MATRIX = {
    KeyType.RSA_2K: [hashes.SHA256(), hashes.SHA384(), hashes.SHA512()],
    KeyType.RSA_3K: [hashes.SHA256()],
    KeyType.RSA_4K: [hashes.SHA256()],  # ~1.4 s in the token: the only 4096-bit key of the suite
    KeyType.EC_P256: [hashes.SHA256(), hashes.SHA384()],
    KeyType.EC_P384: [hashes.SHA384()],
}


def sign_data(key: Any, data: bytes, hash_alg: hashes.HashAlgorithm | None = None) -> bytes:
    hash_alg = hash_alg or hashes.SHA256()
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hash_alg)
    return key.sign(data, ec.ECDSA(hash_alg))


def verify_data(
    public: Any, signature: bytes, data: bytes, hash_alg: hashes.HashAlgorithm | None = None
) -> None:
    hash_alg = hash_alg or hashes.SHA256()
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, data, padding.PKCS1v15(), hash_alg)
    else:
        public.verify(signature, data, ec.ECDSA(hash_alg))


def private_object_probe(token: TestToken, ref: str, secret_attr: Attribute) -> tuple[str, str]:
    """Read the secret part and try to make the key extractable; the exceptions' names."""
    key_id = KeyRef.parse(ref).key_id  # type: ignore[union-attr]

    def probe(tok: Any) -> tuple[str, str]:
        priv = tok.session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=key_id)
        results = []
        for action in (lambda: priv[secret_attr], lambda: priv.__setitem__(Attribute.EXTRACTABLE, True)):
            try:
                action()
                results.append("no error")
            except p11e.PKCS11Error as exc:
                results.append(type(exc).__name__)
        return results[0], results[1]

    return token.hsm.backend.run(token.config(), probe)


@pytest.mark.parametrize("key_type", list(MATRIX), ids=lambda k: k.value)
def test_every_key_type_signs_csr_leaf_and_crl(
    hsm_token: TestToken, pki: TestPKI, key_type: KeyType, tmp_path: Path
) -> None:
    """hsm.md §5 regression test: cryptography's builders sign through the HSM key objects."""
    store = hsm_token.store()
    ref = store.create_key(key_type, "interca-7")
    parsed = KeyRef.parse(ref)
    assert parsed is not None and parsed.token == hsm_token.label and parsed.serial == hsm_token.serial
    assert len(parsed.key_id) == 16 and ref.endswith(";type=private")
    key = store.signer(ref)
    assert isinstance(key, HsmRSAPrivateKey if key_type.is_rsa else HsmECPrivateKey)
    token_public = hsm_token.public_object(ref)  # decoded by python-pkcs11, not by the store
    assert key.public_key() == token_public == store.public_key(ref)
    assert key.key_size == key_type.bits

    secret = Attribute.PRIVATE_EXPONENT if key_type.is_rsa else Attribute.VALUE
    assert private_object_probe(hsm_token, ref, secret) == ("AttributeSensitive", "AttributeReadOnly")
    with pytest.raises(TypeError):
        key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    with pytest.raises(TypeError):
        key.private_numbers()

    for hash_alg in MATRIX[key_type]:
        workdir = tmp_path / hash_alg.name
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"HSM {key_type.value}")]))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hash_alg)
        )
        assert csr.is_signature_valid and csr.signature_hash_algorithm.name == hash_alg.name
        ca_cert = pki.sign_ca(csr)
        leaf = leaf_builder(ca_cert).sign(key, hash_alg)
        leaf.verify_directly_issued_by(ca_cert)
        assert leaf.signature_hash_algorithm.name == hash_alg.name
        crl = crl_builder(ca_cert).sign(key, hash_alg)
        assert crl.is_signature_valid(token_public)
        workdir.mkdir()
        (workdir / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        result = openssl_verify(
            workdir, pem(pki.root.cert), pem(leaf), pem(ca_cert), "-crl_check", "-CRLfile", "crl.pem"
        )
        assert result.returncode == 0, result.stdout + result.stderr


def leaf_builder(ca_cert: x509.Certificate) -> x509.CertificateBuilder:
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf.example.com")]))
        .issuer_name(ca_cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("leaf.example.com")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )


def crl_builder(ca_cert: x509.Certificate) -> x509.CertificateRevocationListBuilder:
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(NOW - dt.timedelta(minutes=5))
        .next_update(NOW + dt.timedelta(days=7))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )


def test_rsa_without_hashing_mechanisms_signs_a_digest_info(hsm_token: TestToken) -> None:
    """CKM_RSA_PKCS over a DigestInfo (with its NULL) when the token lacks CKM_SHA*_RSA_PKCS."""
    store = hsm_token.store()
    ref = store.create_key(KeyType.RSA_2K, "interca-8")
    public = store.public_key(ref)
    key = store._hsm_key(KeyRef.parse(ref).key_id, public, frozenset({Mechanism.RSA_PKCS}))  # type: ignore[union-attr]
    for hash_alg in (hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
        verify_data(public, sign_data(key, b"data", hash_alg), b"data", hash_alg)
        digest = hashes.Hash(hash_alg)
        digest.update(b"data")
        prehashed = key.sign(digest.finalize(), padding.PKCS1v15(), utils.Prehashed(hash_alg))
        verify_data(public, prehashed, b"data", hash_alg)
    with pytest.raises(TypeError):
        key.sign(b"data", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    with pytest.raises(TypeError):
        key.sign(b"data", padding.PKCS1v15(), hashes.SHA1())
    with pytest.raises(TypeError):
        key.decrypt(b"x", padding.PKCS1v15())
    with pytest.raises(KeyStoreError, match=r"^\[hsm_mechanism_unsupported\] "):
        store._hsm_key(KeyRef.parse(ref).key_id, public, frozenset())  # type: ignore[union-attr]


def test_ec_key_refuses_everything_but_ecdsa(hsm_token: TestToken) -> None:
    store = hsm_token.store()
    key = store.signer(store.create_key(KeyType.EC_P256, "interca-9"))
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    with pytest.raises(TypeError):
        key.exchange(ec.ECDH(), ec.generate_private_key(ec.SECP256R1()).public_key())
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"data")
    signature = key.sign(digest.finalize(), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    key.public_key().verify(signature, b"data", ec.ECDSA(hashes.SHA256()))


def test_destroy_removes_both_objects(hsm_token: TestToken) -> None:
    store = hsm_token.store()
    ref = store.create_key(KeyType.EC_P384, "interca-10")
    key_id = KeyRef.parse(ref).key_id  # type: ignore[union-attr]
    assert hsm_token.objects(key_id) == ["PRIVATE_KEY", "PUBLIC_KEY"]
    store.destroy(ref)
    assert hsm_token.objects(key_id) == []
    with pytest.raises(KeyStoreError, match=r"^\[hsm_key_not_found\] ") as exc:
        store.signer(ref)
    assert key_id.hex() in exc.value.message
    store.destroy(ref)  # idempotent


def test_a_key_destroyed_elsewhere_is_not_found_and_blocks_nothing(hsm_token: TestToken) -> None:
    """Another process destroys a key this one has cached: that key is gone, the token is not."""
    store = hsm_token.store()
    gone_ref, other_ref = (store.create_key(KeyType.EC_P256, f"interca-{n}") for n in (15, 16))
    gone, other = store.signer(gone_ref), store.signer(other_ref)
    key_id = KeyRef.parse(gone_ref).key_id  # type: ignore[union-attr]
    hsm_token.hsm.backend.run(
        hsm_token.config(), lambda tok: [o.destroy() for o in tok.session.get_objects({Attribute.ID: key_id})]
    )
    with pytest.raises(KeyStoreError, match=r"^\[hsm_key_not_found\] "):
        sign_data(gone, b"x")
    verify_data(other.public_key(), sign_data(other, b"y"), b"y")  # no back-off for the token


def test_unsafe_attributes_destroy_the_new_key(hsm_token: TestToken, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(pkcs11_objects.MUST_BE, Attribute.LOCAL, False)  # the token's key is local: "unsafe"
    store = hsm_token.store()
    with pytest.raises(KeyStoreError, match=r"^\[hsm_key_attributes_unsafe\] .*LOCAL"):
        store.create_key(KeyType.EC_P256, "interca-unsafe")
    left = hsm_token.hsm.backend.run(
        hsm_token.config(), lambda tok: list(tok.session.get_objects({Attribute.LABEL: "interca-unsafe"}))
    )
    assert left == []


def test_key_survives_a_restart_and_a_fork(hsm_token: TestToken, softhsm: SoftHsm) -> None:
    store = hsm_token.store()
    ref = store.create_key(KeyType.EC_P256, "interca-11")
    public_pem = store.public_key(ref).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # A new process: a new module load, a new login, the same key found by its CKA_ID.
    script = textwrap.dedent(f"""
        from pathlib import Path
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from interca.keystore.pkcs11 import Pkcs11KeyStore
        from interca.keystore.pkcs11_token import PinSource, TokenConfig
        pin = PinSource("US", None, Path({str(hsm_token.pin_file)!r}), "E", "F")
        cfg = TokenConfig("US", {hsm_token.label!r}, {hsm_token.serial!r}, pin, "L", "S")
        store = Pkcs11KeyStore({SOFTHSM2_MODULE!r}, cfg, {str(softhsm.conf)!r})
        key = store.signer({ref!r})
        key.public_key().verify(key.sign(b"after restart", ec.ECDSA(hashes.SHA256())), b"after restart",
                                ec.ECDSA(hashes.SHA256()))
        print(key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode(), end="")
    """)
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}  # the store exports it itself
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == public_pem

    # A forked child must not use the parent's sessions (hsm.md §6.1): it re-initialises.
    key = store.signer(ref)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        try:
            verify_data(key.public_key(), sign_data(key, b"child"), b"child")
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    verify_data(key.public_key(), sign_data(key, b"parent"), b"parent")  # the parent's session lives on


def test_200_concurrent_signatures(hsm_token: TestToken) -> None:
    """hsm.md §6: one session behind one lock; threads must neither crash nor fail."""
    store = hsm_token.store()
    keys = [
        store.signer(store.create_key(t, f"interca-c{t.value}")) for t in (KeyType.EC_P256, KeyType.RSA_2K)
    ]

    def one(i: int) -> None:
        key = keys[i % 2]
        data = f"message {i}".encode()
        verify_data(key.public_key(), sign_data(key, data), data)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one, range(200)))


@pytest.mark.usefixtures("fast_backoff")
def test_a_vanished_token_is_unavailable_then_recovers(hsm_token: TestToken) -> None:
    store = hsm_token.store()
    key = store.signer(store.create_key(KeyType.EC_P256, "interca-12"))
    with hsm_token.removed():
        for _ in range(2):
            with pytest.raises(KeyStoreError, match=r"^\[hsm_unavailable\] ") as exc:
                sign_data(key, b"during")
            assert hsm_token.serial not in exc.value.message and SOFTHSM2_MODULE not in exc.value.message
            time.sleep(0.05)  # past the back-off: the next call touches the module again
    time.sleep(0.05)
    verify_data(key.public_key(), sign_data(key, b"after"), b"after")


def test_wrong_pin_is_refused_and_never_shown(hsm_token: TestToken, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pin"
    wrong.write_text("0000" + hsm_token.pin[4:])
    wrong.chmod(0o600)
    store = hsm_token.store(pin_file=wrong)
    for _ in range(2):  # the second time without asking the token again
        with pytest.raises(KeyStoreError, match=r"^\[hsm_pin_incorrect\] ") as exc:
            store.create_key(KeyType.EC_P256, "interca-13")
        assert "INTERCA_HSM_US_PIN_FILE" in exc.value.message
        assert hsm_token.pin[4:] not in exc.value.message and str(wrong) not in exc.value.message
    assert hsm_token.store().create_key(KeyType.EC_P256, "interca-13")  # the right PIN still works


def test_pin_sources(hsm_token: TestToken, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hsm_token.pin_file.chmod(0o644)
    with pytest.raises(KeyStoreError, match=r"^\[hsm_pin_missing\] .*INTERCA_HSM_US_PIN_FILE.*0600"):
        hsm_token.store().create_key(KeyType.EC_P256, "interca-14")
    with pytest.raises(KeyStoreError, match=r"^\[hsm_pin_missing\] .*does not exist"):
        hsm_token.store(pin_file=tmp_path / "absent").create_key(KeyType.EC_P256, "interca-14")
    hsm_token.pin_file.chmod(0o400)
    assert stat.S_IMODE(hsm_token.pin_file.stat().st_mode) == 0o400

    env_pin = PinSource(
        "US", "INTERCA_TEST_HSM_PIN", None, "INTERCA_HSM_US_PIN_ENV", "INTERCA_HSM_US_PIN_FILE"
    )
    cfg = TokenConfig("US", hsm_token.label, hsm_token.serial, env_pin, "L", "S")
    store = Pkcs11KeyStore(SOFTHSM2_MODULE, cfg, str(hsm_token.hsm.conf))
    with pytest.raises(KeyStoreError, match=r"^\[hsm_pin_missing\] .*INTERCA_HSM_US_PIN_ENV"):
        store.create_key(KeyType.EC_P256, "interca-14")
    monkeypatch.setenv("INTERCA_TEST_HSM_PIN", hsm_token.pin)
    store.signer(store.create_key(KeyType.EC_P256, "interca-14"))


def test_missing_token_and_module(hsm_token: TestToken) -> None:
    pin = hsm_token.config().pin
    missing = TokenConfig("EUROPE", "t-no-such-token", None, pin, "INTERCA_HSM_EUROPE_TOKEN_LABEL", "SERIAL")
    with pytest.raises(
        KeyStoreError, match=r"^\[hsm_token_not_found\] .*EUROPE.*INTERCA_HSM_EUROPE_TOKEN_LABEL"
    ):
        Pkcs11KeyStore(SOFTHSM2_MODULE, missing, str(hsm_token.hsm.conf)).create_key(KeyType.EC_P256, "x")
    nowhere = Pkcs11KeyStore("/nonexistent/libpkcs11.so", hsm_token.config(), None)
    with pytest.raises(KeyStoreError, match=r"^\[hsm_module_not_loadable\] .*INTERCA_HSM_MODULE") as exc:
        nowhere.create_key(KeyType.EC_P256, "x")
    assert "/nonexistent" not in exc.value.message


def test_references_and_ownership() -> None:
    ref = KeyRef("interca-US;x", "0123abcd", bytes.fromhex("3f9c" + "00" * 14))
    uri = ref.uri()
    assert uri == "pkcs11:token=interca-US%3Bx;serial=0123abcd;id=%3f%9c" + "%00" * 14 + ";type=private"
    assert KeyRef.parse(uri) == ref
    assert KeyRef.parse("software:abc") is None and KeyRef.parse("pkcs11:token=a;type=public;id=%01") is None
    pin = PinSource("US", None, None, "E", "F")
    store = Pkcs11KeyStore(SOFTHSM2_MODULE, TokenConfig("US", "interca-US;x", "0123abcd", pin, "L", "S"))
    assert store.owns(uri)
    assert not store.owns(KeyRef("interca-US;x", "ffff", ref.key_id).uri())  # another token, same label
    assert not store.owns(KeyRef("interca-EU", "0123abcd", ref.key_id).uri())
    unpinned = Pkcs11KeyStore(SOFTHSM2_MODULE, TokenConfig("US", "interca-US;x", None, pin, "L", "S"))
    assert unpinned.owns(KeyRef("interca-US;x", "ffff", ref.key_id).uri())
