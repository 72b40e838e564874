"""The emulated HSM attestor (hsm.md §8.1, §8.4) and attestation provisioning (§8.2).

The attestor plays the HSM firmware: it holds each region's attestation key (AK) in the token
`interca-attest-<REGION>`, reads a CA key's attributes from the region's CA token (never the
service's database), proves the private and public objects pair up, and signs a statement with
the AK. Its one operation is `attest(region, key_id, nonce=None) -> PEM bundle`.

It runs in its own process (`interca attestor serve`, `attestor_socket.py`); the service
only talks to that socket. Provisioning (`attestor_provisioning.py`) runs in `interca attestor
provision`.

Emulation (hsm.md §8.8): SoftHSM's non-extractability is API policy; whoever holds the token
files and PINs holds every key, AKs included. Never call this hardware attestation.

Layout: `$DATA/attestor/pins/<REGION>` (AK token PINs, 0600), `$DATA/attestor/certs/<REGION>.pem`
(AK certificates), `$DATA/attestor/registry.jsonl` (append-only: when a key was first attested),
`$DATA/attestation/manufacturer-root.pem` and `$DATA/attestation/pins.txt` (`pin <hex>` lines;
`deny <hex>` lines name revoked AK certificates).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11 import KeyType as P11KeyType
from pkcs11 import exceptions as p11e

from interca.clock import Clock
from interca.domain.attestation.claims import (
    CKK_EC,
    CKK_RSA,
    KEY_GEN_MECHANISM_UNAVAILABLE,
    Claims,
    device_info_of,
)
from interca.domain.attestation.statement import (
    build_statement,
    bundle_pem,
)
from interca.domain.models import KeyType
from interca.errors import KeyStoreError
from interca.keystore.hsm_keys import HsmECPrivateKey
from interca.keystore.pkcs11 import key_id_of
from interca.keystore.pkcs11_objects import public_key_of
from interca.keystore.pkcs11_session import HsmBackend, OpenToken, backend_for
from interca.keystore.pkcs11_token import PinSource, TokenConfig

log = logging.getLogger(__name__)

AK_KEY_ID = b"interca-attestation-key"
ROOT_KEY_ID = b"interca-manufacturer-root"
ATTEST_TOKEN_PREFIX = "interca-attest-"  # noqa: S105 (a label, not a secret)
ROOT_FILE = "manufacturer-root.pem"
PINS_FILE = "pins.txt"
REGISTRY_FILE = "registry.jsonl"


def attestation_dir(data_dir: Path) -> Path:
    return data_dir / "attestation"


def attestor_dir(data_dir: Path) -> Path:
    return data_dir / "attestor"


def root_path(data_dir: Path) -> Path:
    return attestation_dir(data_dir) / ROOT_FILE


def pins_path(data_dir: Path) -> Path:
    return attestation_dir(data_dir) / PINS_FILE


def ak_token_serial(data_dir: Path, region: str) -> str | None:
    """The token serial `region`'s AK certificate vouches for (None: no usable AK certificate)."""
    try:
        pem = (attestor_dir(data_dir) / "certs" / f"{region}.pem").read_bytes()
        return device_info_of(x509.load_pem_x509_certificate(pem)).token_serial
    except (OSError, ValueError):
        return None


def ak_token_config(data_dir: Path, region: str) -> TokenConfig:
    pin = PinSource(region, None, attestor_dir(data_dir) / "pins" / region, "attestor", "attestor")
    return TokenConfig(region, ATTEST_TOKEN_PREFIX + region, None, pin, "attestor", "attestor")


def token_signer(backend: HsmBackend, cfg: TokenConfig, key_id: bytes) -> HsmECPrivateKey:
    """A P-384 key in a token as a `cryptography` private key whose `sign` happens in the token."""

    def public(tok: OpenToken) -> Any:
        return public_key_of(backend.find(tok, cfg, key_id, ObjectClass.PUBLIC_KEY), KeyType.EC_P384)

    def token_sign(data: bytes, mechanism: Mechanism) -> bytes:
        return backend.run(
            cfg,
            lambda tok: bytes(
                backend.find(tok, cfg, key_id, ObjectClass.PRIVATE_KEY).sign(data, mechanism=mechanism)
            ),
        )

    return HsmECPrivateKey(backend.run(cfg, public), token_sign)


# the attestor (hsm.md §8.4) ---------------------------------------------------------------------


class EmulatedAttestor:
    """`attest(region, key_id, nonce=None) -> PEM bundle`, in-process (see the module docstring).
    Satisfies `interca.keystore.base.KeyAttestor`."""

    def __init__(
        self,
        module: str,
        softhsm2_conf: str | None,
        data_dir: Path,
        ca_tokens: Mapping[str, TokenConfig],
        clock: Clock,
    ) -> None:
        self.module = module
        self.softhsm2_conf = softhsm2_conf
        self.data_dir = data_dir
        self.ca_tokens = dict(ca_tokens)
        self.clock = clock
        self._registry_lock = threading.Lock()

    @property
    def backend(self) -> HsmBackend:
        return backend_for(self.module, self.softhsm2_conf)

    def key_id_of(self, ref: str) -> bytes:
        return key_id_of(ref)

    def attest(self, region: str, key_id: bytes, nonce: bytes | None = None) -> bytes:
        ca_cfg = self.ca_tokens.get(region)
        ak_file = attestor_dir(self.data_dir) / "certs" / f"{region}.pem"
        if ca_cfg is None or not ak_file.exists() or not root_path(self.data_dir).exists():
            raise KeyStoreError(
                "hsm_attestation_unavailable", f"Region {region} has no emulated HSM attestation key."
            )
        ak_cert = x509.load_pem_x509_certificate(ak_file.read_bytes())
        root = x509.load_pem_x509_certificate(root_path(self.data_dir).read_bytes())
        backend = self.backend
        serial = backend.run(ca_cfg, lambda tok: tok.serial)
        device = device_info_of(ak_cert)
        if device.region != region or device.token_serial != serial:
            raise KeyStoreError(
                "attestation_wrong_device",
                f"Region {region}'s attestation key does not vouch for the token holding the key.",
            )
        public, fields = backend.run(ca_cfg, lambda tok: _read_key(tok, region, key_id))
        now = self.clock.now()
        claims = Claims(
            region=region,
            token_serial=serial,
            key_id=key_id,
            attested_at=now,
            generated_at=self._generated_at(serial, key_id, now),
            nonce=nonce,
            **fields,
        )
        ak_signer = token_signer(backend, ak_token_config(self.data_dir, region), AK_KEY_ID)
        statement = build_statement(public, claims, ak_cert, ak_signer, now, on_demand=nonce is not None)
        return bundle_pem(statement, ak_cert, root)

    def _generated_at(self, serial: str, key_id: bytes, now: dt.datetime) -> dt.datetime:
        """When this attestor first attested the key: its own append-only registry (hsm.md §8.3)."""
        path = attestor_dir(self.data_dir) / REGISTRY_FILE
        with self._registry_lock:
            try:
                lines = path.read_text().splitlines()
            except OSError:
                lines = []
            for line in lines:
                try:
                    entry = json.loads(line)
                    if entry["token_serial"] == serial and entry["key_id"] == key_id.hex():
                        return dt.datetime.fromisoformat(entry["generated_at"])
                except (ValueError, KeyError, TypeError):
                    continue
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            at = now.replace(microsecond=0)
            record = {"token_serial": serial, "key_id": key_id.hex(), "generated_at": at.isoformat()}
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as fh:
                fh.write(json.dumps(record, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            return at


def _read_key(tok: OpenToken, region: str, key_id: bytes) -> tuple[Any, dict[str, Any]]:
    """hsm.md §8.4 steps 1-3 inside the CA token: one private and one public object, the pairing
    proof, and the attributes as the token reports them."""
    privs = list(tok.session.get_objects({Attribute.ID: key_id, Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
    pubs = list(tok.session.get_objects({Attribute.ID: key_id, Attribute.CLASS: ObjectClass.PUBLIC_KEY}))
    if not privs and not pubs:
        raise KeyStoreError("hsm_key_not_found", f"Region {region}'s token holds no key with this id.")
    if len(privs) != 1 or len(pubs) != 1:
        raise _pairing_failed(region)
    priv, pub = privs[0], pubs[0]
    public = public_key_of(pub, None)
    _prove_pairing(priv, public, region)
    if isinstance(public, rsa.RSAPublicKey):
        key_type, bits = CKK_RSA, public.key_size
    elif isinstance(public, ec.EllipticCurvePublicKey):
        key_type, bits = CKK_EC, public.curve.key_size
    else:  # public_key_of knows no other
        raise KeyStoreError("key_type_unsupported", "The token holds a key of an unsupported type.")
    try:
        mechanism = int(priv[Attribute.KEY_GEN_MECHANISM])
    except ValueError:  # "unavailable" (an imported key): python-pkcs11 cannot map it
        mechanism = KEY_GEN_MECHANISM_UNAVAILABLE
    label = priv[Attribute.LABEL]
    fields = {
        "key_label": str(label) if label is not None else "",
        "key_type": key_type,
        "key_bits": bits,
        "local": bool(priv[Attribute.LOCAL]),
        "key_gen_mechanism": mechanism,
        "never_extractable": bool(priv[Attribute.NEVER_EXTRACTABLE]),
        "extractable": bool(priv[Attribute.EXTRACTABLE]),
        "always_sensitive": bool(priv[Attribute.ALWAYS_SENSITIVE]),
        "sensitive": bool(priv[Attribute.SENSITIVE]),
    }
    return public, fields


def _prove_pairing(priv: Any, public: Any, region: str) -> None:
    """Sign 32 random bytes with the private object and verify with the public one: objects are
    joined only by CKA_ID, so a planted public object must fail here."""
    data = os.urandom(32)
    verify: Callable[[bytes], None]
    try:
        if priv.key_type == P11KeyType.EC and isinstance(public, ec.EllipticCurvePublicKey):
            h = hashes.Hash(hashes.SHA256())
            h.update(data)
            rs = bytes(priv.sign(h.finalize(), mechanism=Mechanism.ECDSA))
            n = len(rs) // 2
            from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

            sig = encode_dss_signature(int.from_bytes(rs[:n], "big"), int.from_bytes(rs[n:], "big"))

            def verify(s: bytes) -> None:
                public.verify(s, data, ec.ECDSA(hashes.SHA256()))
        elif priv.key_type == P11KeyType.RSA and isinstance(public, rsa.RSAPublicKey):
            sig = bytes(priv.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))

            def verify(s: bytes) -> None:
                public.verify(s, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise _pairing_failed(region)
        verify(sig)
    except (InvalidSignature, p11e.PKCS11Error, ValueError):
        raise _pairing_failed(region) from None


def _pairing_failed(region: str) -> KeyStoreError:
    return KeyStoreError(
        "attestation_pairing_failed",
        f"The private and public objects of the key in region {region}'s token do not pair up.",
    )
