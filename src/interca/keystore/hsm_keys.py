"""Private-key objects whose `sign` happens in a PKCS#11 token (hsm.md §5).

`cryptography`'s builders accept any `rsa.RSAPrivateKey` / `ec.EllipticCurvePrivateKey` and call
`sign(tbs, padding, hash)` or `sign(tbs, ECDSA(hash))` on it, so certificates, CSRs and CRLs get
exact DER and AlgorithmIdentifiers without hand-made ASN.1. This relies on the builders'
`isinstance` checks and call shape, which are not a documented extension point: the pinned
`cryptography` range and the regression test of hsm.md §5 guard it.

Everything that would reveal the key (`private_numbers`, `private_bytes`) or use it for
something other than signing (`decrypt`, `exchange`) raises `TypeError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding
from pkcs11 import Mechanism

TokenSign = Callable[[bytes, Mechanism], bytes]
"""Sign `data` with the token key under `mechanism`; raises `KeyStoreError`."""

# RFC 8017 §9.2 note 1: the DER DigestInfo prefixes, NULL parameters included (dropping the NULL
# yields signatures that strict verifiers reject).
DIGEST_INFO_PREFIX: dict[str, bytes] = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
HASHED_RSA_MECHANISMS: dict[str, Mechanism] = {
    "sha256": Mechanism.SHA256_RSA_PKCS,
    "sha384": Mechanism.SHA384_RSA_PKCS,
    "sha512": Mechanism.SHA512_RSA_PKCS,
}
_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _refuse(what: str) -> NoReturn:
    raise TypeError(f"An HSM key cannot {what}: it never leaves the token and only signs.")


def _hash_name(algorithm: Any) -> str:
    name = getattr(algorithm, "name", None)
    if name not in _HASHES:
        raise TypeError(f"HSM keys sign with SHA-256, SHA-384 or SHA-512, not {name}.")
    return str(name)


def _digest(data: bytes, algorithm: hashes.HashAlgorithm | utils.Prehashed) -> tuple[str, bytes]:
    """(hash name, digest of `data`): computed on the host, or `data` itself when prehashed."""
    if isinstance(algorithm, utils.Prehashed):
        name = _hash_name(algorithm._algorithm)
        if len(data) != algorithm.digest_size:
            raise ValueError("The prehashed digest has the wrong length.")
        return name, data
    name = _hash_name(algorithm)
    # hashlib (OpenSSL underneath, like `cryptography`): a one-shot call costs a third of a
    # `hashes.Hash` object's set-up, and P-256 signatures are short enough for that to show.
    return name, hashlib.new(name, data).digest()


class HsmRSAPrivateKey(rsa.RSAPrivateKey):
    """An RSA key in a token. PKCS#1 v1.5 only: CKM_SHA*_RSA_PKCS when the token has it, else
    CKM_RSA_PKCS over a DigestInfo made here."""

    def __init__(self, public: rsa.RSAPublicKey, token_sign: TokenSign, mechanisms: frozenset[Mechanism]):
        self._public = public
        self._token_sign = token_sign
        self._mechanisms = mechanisms

    def sign(
        self,
        data: bytes,
        padding: AsymmetricPadding,
        algorithm: Any,
    ) -> bytes:
        if padding.name != "EMSA-PKCS1-v1_5":
            raise TypeError(f"HSM RSA keys sign with PKCS#1 v1.5 only, not {padding.name}.")
        if not isinstance(algorithm, utils.Prehashed):
            name = _hash_name(algorithm)
            if HASHED_RSA_MECHANISMS[name] in self._mechanisms:
                return self._token_sign(bytes(data), HASHED_RSA_MECHANISMS[name])
        name, digest = _digest(bytes(data), algorithm)
        return self._token_sign(DIGEST_INFO_PREFIX[name] + digest, Mechanism.RSA_PKCS)

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        _refuse("decrypt")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _refuse("reveal its private numbers")

    def private_bytes(self, encoding: Any, format: Any, encryption_algorithm: Any) -> bytes:
        _refuse("be serialised")

    def __copy__(self) -> HsmRSAPrivateKey:
        return self

    def __deepcopy__(self, memo: Any) -> HsmRSAPrivateKey:
        return self


class HsmECPrivateKey(ec.EllipticCurvePrivateKey):
    """An EC key in a token: raw CKM_ECDSA over a host-computed digest (SoftHSM 2.6 has no
    CKM_ECDSA_SHA384; raw ECDSA exists everywhere), the token's r || s re-encoded as DER."""

    def __init__(self, public: ec.EllipticCurvePublicKey, token_sign: TokenSign) -> None:
        self._public = public
        self._token_sign = token_sign

    def sign(
        self, data: bytes | bytearray | memoryview, signature_algorithm: ec.EllipticCurveSignatureAlgorithm
    ) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise TypeError("HSM EC keys sign with ECDSA only.")
        if getattr(signature_algorithm, "deterministic_signing", False):
            raise TypeError("HSM EC keys cannot sign deterministically (RFC 6979).")
        _, digest = _digest(data if isinstance(data, bytes) else bytes(data), signature_algorithm.algorithm)
        rs = self._token_sign(digest, Mechanism.ECDSA)  # the token truncates a longer digest (SEC 1)
        n = len(rs) // 2
        return utils.encode_dss_signature(int.from_bytes(rs[:n], "big"), int.from_bytes(rs[n:], "big"))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        _refuse("do key agreement")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        _refuse("reveal its private numbers")

    def private_bytes(self, encoding: Any, format: Any, encryption_algorithm: Any) -> bytes:
        _refuse("be serialised")

    def __copy__(self) -> HsmECPrivateKey:
        return self

    def __deepcopy__(self, memo: Any) -> HsmECPrivateKey:
        return self
