"""Key objects in a PKCS#11 token (hsm.md §4): the generation templates, the read-back of the
attributes that make a key trustworthy, and the public key from the token's public object."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from asn1crypto.core import OctetString
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from pkcs11 import Attribute, MechanismFlag
from pkcs11 import KeyType as P11KeyType
from pkcs11 import exceptions as p11e
from pkcs11.util.ec import encode_named_curve_parameters

from interca.domain.models import KeyType
from interca.errors import KeyStoreError
from interca.keystore.pkcs11_session import OpenToken

log = logging.getLogger(__name__)

_CURVES: dict[KeyType, tuple[str, ec.EllipticCurve]] = {
    KeyType.EC_P256: ("secp256r1", ec.SECP256R1()),
    KeyType.EC_P384: ("secp384r1", ec.SECP384R1()),
}
_GEN_MECHANISM = {
    P11KeyType.RSA: 0x0,
    P11KeyType.EC: 0x1040,
}  # CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_EC_KEY_PAIR_GEN
MUST_BE = {
    Attribute.LOCAL: True,
    Attribute.NEVER_EXTRACTABLE: True,
    Attribute.ALWAYS_SENSITIVE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
}


def generate(tok: OpenToken, key_type: KeyType, key_id: bytes, label: str) -> tuple[Any, Any]:
    """hsm.md §4 templates: the private key signs and nothing else, and never leaves the token."""
    private = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.SIGN: True,
        Attribute.EXTRACTABLE: False,
        Attribute.DECRYPT: False,
        Attribute.UNWRAP: False,
        Attribute.DERIVE: False,
    }
    public = {Attribute.TOKEN: True, Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.WRAP: False}
    common: dict[str, Any] = {
        "id": key_id,
        "label": label,
        "store": True,
        "capabilities": MechanismFlag.SIGN | MechanismFlag.VERIFY,
        "public_template": public,
        "private_template": private,
    }
    if key_type.is_rsa:
        return tok.session.generate_keypair(P11KeyType.RSA, key_type.bits, **common)
    curve_name, _ = _CURVES[key_type]
    params = tok.session.create_domain_parameters(
        P11KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve_name)}, local=True
    )
    return params.generate_keypair(**common)


def check_attributes(priv: Any, region: str) -> None:
    """Read back what makes the key trustworthy (hsm.md §4); any doubt is `hsm_key_attributes_unsafe`."""
    for attr, wanted in MUST_BE.items():
        if _read(priv, attr) is not wanted:
            raise _unsafe(attr.name, region)
    mechanism = _read(priv, Attribute.KEY_GEN_MECHANISM)
    if mechanism != _GEN_MECHANISM.get(priv.key_type):
        raise _unsafe("KEY_GEN_MECHANISM", region)


def _read(obj: Any, attr: Attribute) -> Any:
    try:
        return obj[attr]
    except (p11e.AttributeTypeInvalid, p11e.AttributeSensitive, ValueError):
        return None  # unreadable, or an "unavailable" value python-pkcs11 cannot map


def public_key_of(pub: Any, key_type: KeyType | None) -> PublicKeyTypes:
    """The public key from the token's public object: MODULUS/PUBLIC_EXPONENT or EC_POINT."""
    if pub.key_type == P11KeyType.RSA:
        n = int.from_bytes(pub[Attribute.MODULUS], "big")
        e = int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")
        public = rsa.RSAPublicNumbers(e, n).public_key()
        if key_type is not None and public.key_size != key_type.bits:
            raise KeyStoreError("hsm_key_attributes_unsafe", "The token made an RSA key of the wrong size.")
        return public
    if pub.key_type == P11KeyType.EC:
        params = bytes(pub[Attribute.EC_PARAMS])
        curve = next(
            (c for name, c in _CURVES.values() if encode_named_curve_parameters(name) == params), None
        )
        if curve is None or (key_type is not None and _CURVES[key_type][1].name != curve.name):
            raise KeyStoreError("key_type_unsupported", "The token holds an EC key on an unsupported curve.")
        return _ec_public_key(curve, bytes(pub[Attribute.EC_POINT]))
    raise KeyStoreError("key_type_unsupported", "The token holds a key of an unsupported type.")


def _ec_public_key(curve: ec.EllipticCurve, value: bytes) -> ec.EllipticCurvePublicKey:
    """CKA_EC_POINT is a DER OCTET STRING around the X9.62 point; a few modules omit the wrapper."""
    candidates = [value]
    with contextlib.suppress(ValueError, TypeError):
        candidates.insert(0, bytes(OctetString.load(value, strict=True).native))
    for point in candidates:
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        except ValueError:
            continue
    raise KeyStoreError("key_type_unsupported", "The token's EC public key cannot be decoded.")


def destroy_quietly(*objects: Any) -> None:
    for obj in objects:
        try:
            obj.destroy()
        except p11e.PKCS11Error:
            log.warning("could not destroy an unsafe new key object; destroy it by its CKA_ID")


def _unsafe(attribute: str, region: str) -> KeyStoreError:
    return KeyStoreError(
        "hsm_key_attributes_unsafe",
        f"Region {region}'s token made a key whose {attribute} is not as required; it was destroyed.",
    )
