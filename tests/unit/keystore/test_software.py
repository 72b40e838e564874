"""Software keys sealed at rest under the master key (AES-256-GCM, AAD = key id)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from interca.domain.models import KeyType
from interca.errors import KeyStoreError
from interca.keystore.master_key import MasterKey, MasterKeyError, load_master_key
from interca.keystore.software import SoftwareKeyStore


@pytest.fixture
def store(tmp_path: Path) -> SoftwareKeyStore:
    return SoftwareKeyStore(tmp_path / "keys", load_master_key(tmp_path / "master.key", create=True))


@pytest.mark.parametrize("key_type", list(KeyType), ids=lambda k: k.value)
def test_every_key_type_signs_and_survives_a_reload(
    tmp_path: Path, store: SoftwareKeyStore, key_type: KeyType
) -> None:
    ref = store.create_key(key_type, "test")
    key = store.signer(ref)
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    assert key.key_size == key_type.bits or (
        isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size == key_type.bits
    )
    reloaded = SoftwareKeyStore(tmp_path / "keys", load_master_key(tmp_path / "master.key")).signer(ref)
    data = b"to be signed"
    if isinstance(reloaded, rsa.RSAPrivateKey):
        sig = reloaded.sign(data, padding.PKCS1v15(), hashes.SHA256())
        key.public_key().verify(sig, data, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr, call-arg]
    else:
        sig = reloaded.sign(data, ec.ECDSA(hashes.SHA256()))
        key.public_key().verify(sig, data, ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr, call-arg]


def test_key_files_are_sealed_and_private(store: SoftwareKeyStore, tmp_path: Path) -> None:
    ref = store.create_key(KeyType.EC_P256, "x")
    key = store.signer(ref)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (file,) = (tmp_path / "keys").iterdir()
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert der not in file.read_bytes()


def test_swapped_files_do_not_open(store: SoftwareKeyStore, tmp_path: Path) -> None:
    a, b = store.create_key(KeyType.EC_P256, "a"), store.create_key(KeyType.EC_P256, "b")
    fa, fb = (tmp_path / "keys" / f"{r.split(':')[1]}.key" for r in (a, b))
    blob_a, blob_b = fa.read_bytes(), fb.read_bytes()
    fa.write_bytes(blob_b)
    fb.write_bytes(blob_a)
    fresh = SoftwareKeyStore(tmp_path / "keys", load_master_key(tmp_path / "master.key"))
    with pytest.raises(MasterKeyError, match="cannot be opened"):
        fresh.signer(a)


def test_wrong_master_key_fails_cleanly(store: SoftwareKeyStore, tmp_path: Path) -> None:
    ref = store.create_key(KeyType.EC_P256, "x")
    other = SoftwareKeyStore(tmp_path / "keys", MasterKey(os.urandom(32)))
    with pytest.raises(MasterKeyError) as err:
        other.signer(ref)
    assert "master key" in err.value.message


def test_destroy_and_unknown_refs(store: SoftwareKeyStore) -> None:
    ref = store.create_key(KeyType.EC_P256, "x")
    store.destroy(ref)
    store.destroy(ref)  # idempotent
    with pytest.raises(KeyStoreError) as err:
        store.signer(ref)
    assert err.value.error_id == "key_not_found"
    for bad in ("pkcs11:token=x", "software:../../etc/passwd", "software:"):
        with pytest.raises(KeyStoreError):
            store.signer(bad)


def test_master_key_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "m" / "master.key"
    with pytest.raises(MasterKeyError, match="does not exist"):
        load_master_key(path)
    load_master_key(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_bytes()) == 32
    first = path.read_bytes()
    load_master_key(path, create=True)
    assert path.read_bytes() == first  # never replaced
    path.chmod(0o644)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        load_master_key(path)
    assert "hidden" in repr(MasterKey(first))
