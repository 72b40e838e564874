"""`KeyStore` over a PKCS#11 token, one per region (hsm.md §4-§6).

Keys are made in the token from fixed templates (non-extractable, sensitive, sign-only), read
back and test-signed before anyone sees them, and found again only by their 16-byte `CKA_ID`
(labels repeat). References are RFC 7512 URIs,
`pkcs11:token=interca-US;serial=<serial>;id=%3f%9c...;type=private`, never slot numbers (SoftHSM
renumbers slots) or handles.

Known gap (hsm.md §4): the record has no column for the `CKA_ID` before generation, so a
process killed between `C_GenerateKeyPair` and the commit of the record leaves an orphan key
pair in the token (label `interca-<certId>`, an id no record holds). A retry makes a new key; the
orphan is harmless but is not destroyed automatically. Any other failure after generation
destroys both objects before the error surfaces.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PublicKeyTypes,
)
from pkcs11 import Attribute, Mechanism, ObjectClass

from interca.config import HsmRegionSettings
from interca.domain.models import KeyType
from interca.errors import KeyStoreError
from interca.keystore.hsm_keys import HASHED_RSA_MECHANISMS, HsmECPrivateKey, HsmRSAPrivateKey
from interca.keystore.pkcs11_objects import check_attributes, destroy_quietly, generate, public_key_of
from interca.keystore.pkcs11_session import HsmBackend, OpenToken, backend_for
from interca.keystore.pkcs11_token import PinSource, TokenConfig

log = logging.getLogger(__name__)

SCHEME = "pkcs11"
KEY_ID_BYTES = 16


@dataclass(frozen=True)
class KeyRef:
    """An RFC 7512 reference to a private key object."""

    token: str
    serial: str
    key_id: bytes

    def uri(self) -> str:
        key_id = "".join(f"%{b:02x}" for b in self.key_id)
        token, serial = quote(self.token, safe=""), quote(self.serial, safe="")
        return f"{SCHEME}:token={token};serial={serial};id={key_id};type=private"

    @classmethod
    def parse(cls, ref: str) -> KeyRef | None:
        scheme, _, path = ref.partition(":")
        if scheme != SCHEME:
            return None
        attrs: dict[str, bytes] = {}
        for part in path.split("?", 1)[0].split(";"):
            name, sep, value = part.partition("=")
            if sep:
                attrs[name] = unquote_to_bytes(value)
        if (
            "token" not in attrs
            or len(attrs.get("id", b"")) == 0
            or attrs.get("type", b"private") != b"private"
        ):
            return None
        try:
            return cls(attrs["token"].decode(), attrs.get("serial", b"").decode(), attrs["id"])
        except UnicodeDecodeError:
            return None


def key_id_of(ref: str) -> bytes:
    """The CKA_ID a PKCS#11 key reference names. Raises `KeyStoreError` (`key_not_found`) for
    any other reference."""
    parsed = KeyRef.parse(ref)
    if parsed is None:
        raise KeyStoreError("key_not_found", "The key reference is not a PKCS#11 reference.")
    return parsed.key_id


class Pkcs11KeyStore:
    """One region's token. Nothing is loaded until the first key operation, so a missing module
    is a 503 `hsm_module_not_loadable` at `keyPair`, not a failure at start."""

    scheme = SCHEME

    def __init__(self, module: str, token: TokenConfig, softhsm2_conf: str | None = None) -> None:
        self.module = module
        self.token = token
        self.softhsm2_conf = softhsm2_conf
        self._signers: dict[bytes, HsmRSAPrivateKey | HsmECPrivateKey] = {}
        self._backend: HsmBackend | None = None
        self._backend_pid = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, hs: HsmRegionSettings, recorded_serial: str | None = None) -> Pkcs11KeyStore:
        """The store of one region; `recorded_serial` is what embedded provisioning saw."""
        pin = PinSource(hs.region, hs.pin_env, hs.pin_file, hs.setting("pin_env"), hs.setting("pin_file"))
        token = TokenConfig(
            region=hs.region,
            label=hs.token_label,
            serial=hs.token_serial or recorded_serial,
            pin=pin,
            label_setting=hs.setting("token_label"),
            serial_setting=hs.setting("token_serial"),
        )
        return cls(hs.module, token, str(hs.softhsm2_conf) if hs.softhsm2_conf else None)

    @property
    def backend(self) -> HsmBackend:
        # Looked up once per process (a forked child looks again): it sits on every signature's path.
        pid = os.getpid()
        if self._backend is None or self._backend_pid != pid:
            self._backend, self._backend_pid = backend_for(self.module, self.softhsm2_conf), pid
        return self._backend

    def check_pin_file(self) -> None:
        """At start: refuse a PIN file that exists but is not 0600/0400 and ours (hsm.md §2)."""
        if self.token.pin.file is not None and self.token.pin.file.exists():
            self.token.pin.check_file()

    def owns(self, ref: str) -> bool:
        """True when `ref` names this store's token (label, and serial where one is configured)."""
        parsed = KeyRef.parse(ref)
        if parsed is None or parsed.token != self.token.label:
            return False
        return self.token.serial is None or parsed.serial == self.token.serial

    # KeyStore --------------------------------------------------------------------------------

    def new_ref(self, label: str) -> str:
        """A reference with a fresh random CKA_ID in this region's token (opened for its serial)."""
        serial = self.backend.run(self.token, lambda tok: tok.serial)
        return KeyRef(self.token.label, serial, os.urandom(KEY_ID_BYTES)).uri()

    def create_key(self, key_type: KeyType, label: str, ref: str | None = None) -> str:
        key_id = self._key_id(ref) if ref is not None else os.urandom(KEY_ID_BYTES)
        backend = self.backend

        def make(tok: OpenToken) -> tuple[str, PublicKeyTypes]:
            # A retry after a reconnect may follow a generation that did happen: never two pairs.
            for leftover in tok.session.get_objects({Attribute.ID: key_id}):
                leftover.destroy()
            pub, priv = generate(tok, key_type, key_id, label)
            try:
                check_attributes(priv, self.token.region)
                public = public_key_of(pub, key_type)
            except BaseException:
                destroy_quietly(pub, priv)
                raise
            backend.mark_key_seen(key_id)
            tok.keys[(key_id, ObjectClass.PRIVATE_KEY)] = priv
            tok.keys[(key_id, ObjectClass.PUBLIC_KEY)] = pub
            return tok.serial, public

        serial, public = backend.run(self.token, make)
        ref = ref or KeyRef(self.token.label, serial, key_id).uri()
        try:
            self._self_check(ref, public)
        except BaseException:
            try:
                self.destroy(ref)
            except KeyStoreError:
                log.warning("HSM region %s: key id %s failed its check and could not be destroyed",
                            self.token.region, key_id.hex())  # fmt: skip
            raise
        log.info("HSM region %s: generated %s key id %s", self.token.region, key_type.value, key_id.hex())
        return ref

    def signer(self, ref: str) -> CertificateIssuerPrivateKeyTypes:
        key_id = self._key_id(ref)
        with self._lock:
            cached = self._signers.get(key_id)
        if cached is not None:
            return cached
        backend = self.backend

        def load(tok: OpenToken) -> tuple[PublicKeyTypes, frozenset[Mechanism]]:
            backend.find(tok, self.token, key_id, ObjectClass.PRIVATE_KEY)
            pub = backend.find(tok, self.token, key_id, ObjectClass.PUBLIC_KEY)
            return public_key_of(pub, None), tok.mechanisms

        public, mechanisms = backend.run(self.token, load)
        key = self._hsm_key(key_id, public, mechanisms)
        with self._lock:
            self._signers[key_id] = key
        return key

    def public_key(self, ref: str) -> PublicKeyTypes:
        return self.signer(ref).public_key()

    def destroy(self, ref: str) -> None:
        key_id = self._key_id(ref)
        with self._lock:
            self._signers.pop(key_id, None)
        backend = self.backend

        def destroy(tok: OpenToken) -> int:
            objects = list(tok.session.get_objects({Attribute.ID: key_id}))
            for obj in objects:
                obj.destroy()
            tok.keys.pop((key_id, ObjectClass.PRIVATE_KEY), None)
            tok.keys.pop((key_id, ObjectClass.PUBLIC_KEY), None)
            return len(objects)

        count = backend.run(self.token, destroy)
        backend.forget_key(key_id)
        log.info("HSM region %s: destroyed key id %s (%d objects)", self.token.region, key_id.hex(), count)

    # internals -------------------------------------------------------------------------------

    def _key_id(self, ref: str) -> bytes:
        parsed = KeyRef.parse(ref)
        if parsed is None or not self.owns(ref):
            raise KeyStoreError("key_not_found", "The key reference does not name this region's token.")
        return parsed.key_id

    def _hsm_key(
        self, key_id: bytes, public: PublicKeyTypes, mechanisms: frozenset[Mechanism]
    ) -> HsmRSAPrivateKey | HsmECPrivateKey:
        def token_sign(data: bytes, mechanism: Mechanism) -> bytes:
            backend = self.backend

            def sign(tok: OpenToken) -> bytes:
                priv = backend.find(tok, self.token, key_id, ObjectClass.PRIVATE_KEY)
                return bytes(priv.sign(data, mechanism=mechanism))

            return backend.run(self.token, sign)

        if isinstance(public, rsa.RSAPublicKey):
            if Mechanism.RSA_PKCS not in mechanisms and not set(HASHED_RSA_MECHANISMS.values()) & mechanisms:
                raise _unsupported("RSA PKCS#1 v1.5", self.token.region)
            return HsmRSAPrivateKey(public, token_sign, mechanisms)
        if isinstance(public, ec.EllipticCurvePublicKey):
            if Mechanism.ECDSA not in mechanisms:
                raise _unsupported("ECDSA", self.token.region)
            return HsmECPrivateKey(public, token_sign)
        raise KeyStoreError("key_type_unsupported", "The token holds a key of an unsupported type.")

    def _self_check(self, ref: str, public: PublicKeyTypes) -> None:
        """hsm.md §4: sign 32 random bytes in the token and verify them here."""
        key = self.signer(ref)
        data = os.urandom(32)
        try:
            if isinstance(key, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey):
                public.verify(
                    key.sign(data, padding.PKCS1v15(), hashes.SHA256()),
                    data,
                    padding.PKCS1v15(),
                    hashes.SHA256(),
                )
            elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(
                public, ec.EllipticCurvePublicKey
            ):
                public.verify(key.sign(data, ec.ECDSA(hashes.SHA256())), data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise KeyStoreError(
                "signature_invalid",
                f"A new key in region {self.token.region}'s token failed its test signature.",
            ) from None


def _unsupported(mechanism: str, region: str) -> KeyStoreError:
    return KeyStoreError(
        "hsm_mechanism_unsupported", f"Region {region}'s token offers no {mechanism} signing mechanism."
    )
