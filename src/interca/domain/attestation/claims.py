"""The claims of a key attestation (hsm.md §8.3): the KeyAttestation and DeviceInfo structures,
their DER, and the normalised `Claims` and `DeviceInfoClaims` every verifier backend returns.

The ASN.1 is defined with asn1crypto (a pure library); cryptography only carries the DER as an
`UnrecognizedExtension`. Decoding is strict, because the bytes come from a bundle anyone can edit:
exactly one DER structure, no trailing bytes, no fields beyond the definition, and the encoding
must be canonical DER (it re-encodes to the same bytes). A BER-style BOOLEAN 0x01 or a
fractional-second GeneralizedTime is therefore refused rather than read as TRUE or as a time.
Every decoding failure is a `ValueError`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from asn1crypto import core
from cryptography import x509

# The project's arc: UUID 8972ae8b-027c-4e51-a901-d838311da5d8 as an integer under 2.25 (ITU-T
# X.667), so no registration is needed. Move to an IANA enterprise number before GA (hsm.md §8.3).
ARC = "2.25.182699697417161316483095826725424965080"
KEY_ATTESTATION_OID = x509.ObjectIdentifier(f"{ARC}.1")
"""The keyAttestation extension of an attestation certificate (non-critical)."""
HSM_KEY_ATTESTATION_EKU = x509.ObjectIdentifier(f"{ARC}.2")
"""id-interca-kp-hsmKeyAttestation: the only EKU of a statement; also in the AK certificate."""
DEVICE_INFO_OID = x509.ObjectIdentifier(f"{ARC}.3")
"""The DeviceInfo extension of an AK certificate (non-critical)."""

VERSION_1 = 1
CKK_RSA = 0
CKK_EC = 3
CKM_RSA_PKCS_KEY_PAIR_GEN = 0x0
CKM_EC_KEY_PAIR_GEN = 0x1040
KEY_GEN_MECHANISM_UNAVAILABLE = 2**64 - 1
"""CK_UNAVAILABLE_INFORMATION: what an imported key reports for CKA_KEY_GEN_MECHANISM."""
PROTECTION_LEVEL = "CUSTOM_HSM"
EMULATED_MODEL = "SoftHSM v2 (emulated)"


class KeyAttestationAsn1(core.Sequence):
    """KeyAttestation ::= SEQUENCE { ... } of hsm.md §8.3, field for field."""

    _fields = [
        ("version", core.Integer),
        ("protection_level", core.UTF8String),
        ("region", core.UTF8String),
        ("token_serial", core.UTF8String),
        ("key_id", core.OctetString),
        ("key_label", core.UTF8String),
        ("key_type", core.Integer),
        ("key_bits", core.Integer),
        ("local", core.Boolean),
        ("key_gen_mechanism", core.Integer),
        ("never_extractable", core.Boolean),
        ("extractable", core.Boolean),
        ("always_sensitive", core.Boolean),
        ("sensitive", core.Boolean),
        ("attested_at", core.GeneralizedTime),
        ("generated_at", core.GeneralizedTime, {"implicit": 0, "optional": True}),
        ("nonce", core.OctetString, {"implicit": 1, "optional": True}),
    ]


class DeviceInfoAsn1(core.Sequence):
    """DeviceInfo ::= SEQUENCE { region, tokenSerial, model, firmware UTF8String, emulated BOOLEAN }."""

    _fields = [
        ("region", core.UTF8String),
        ("token_serial", core.UTF8String),
        ("model", core.UTF8String),
        ("firmware", core.UTF8String),
        ("emulated", core.Boolean),
    ]


@dataclass(frozen=True)
class Claims:
    """What a statement says about one key, normalised to the KeyAttestation fields.

    Times are timezone-aware UTC whole seconds (GeneralizedTime carries no fraction here);
    `key_type` is CKK_RSA (0) or CKK_EC (3); `key_bits` the modulus size or 256/384;
    `key_gen_mechanism` is KEY_GEN_MECHANISM_UNAVAILABLE for an imported key.
    """

    region: str
    token_serial: str
    key_id: bytes
    key_label: str
    key_type: int
    key_bits: int
    local: bool
    key_gen_mechanism: int
    never_extractable: bool
    extractable: bool
    always_sensitive: bool
    sensitive: bool
    attested_at: dt.datetime
    generated_at: dt.datetime | None = None
    nonce: bytes | None = None
    version: int = VERSION_1
    protection_level: str = PROTECTION_LEVEL

    def to_der(self) -> bytes:
        """The KeyAttestation DER. Raises `ValueError` on a naive time or an out-of-range value."""
        value: dict[str, Any] = {
            "version": self.version,
            "protection_level": self.protection_level,
            "region": self.region,
            "token_serial": self.token_serial,
            "key_id": self.key_id,
            "key_label": self.key_label,
            "key_type": self.key_type,
            "key_bits": self.key_bits,
            "local": self.local,
            "key_gen_mechanism": self.key_gen_mechanism,
            "never_extractable": self.never_extractable,
            "extractable": self.extractable,
            "always_sensitive": self.always_sensitive,
            "sensitive": self.sensitive,
            "attested_at": whole_seconds(self.attested_at),
        }
        if self.generated_at is not None:
            value["generated_at"] = whole_seconds(self.generated_at)
        if self.nonce is not None:
            value["nonce"] = self.nonce
        return bytes(KeyAttestationAsn1(value).dump())

    @classmethod
    def from_der(cls, der: bytes) -> Claims:
        """Decode a keyAttestation extension value (strictly: see the module docstring)."""
        v = _strict_load(KeyAttestationAsn1, der)
        return cls(
            version=v["version"],
            protection_level=v["protection_level"],
            region=v["region"],
            token_serial=v["token_serial"],
            key_id=v["key_id"],
            key_label=v["key_label"],
            key_type=v["key_type"],
            key_bits=v["key_bits"],
            local=v["local"],
            key_gen_mechanism=v["key_gen_mechanism"],
            never_extractable=v["never_extractable"],
            extractable=v["extractable"],
            always_sensitive=v["always_sensitive"],
            sensitive=v["sensitive"],
            attested_at=v["attested_at"],
            generated_at=v["generated_at"],
            nonce=v["nonce"],
        )

    def to_extension(self) -> x509.UnrecognizedExtension:
        return x509.UnrecognizedExtension(KEY_ATTESTATION_OID, self.to_der())


@dataclass(frozen=True)
class DeviceInfoClaims:
    """What an AK certificate says about the device: `token_serial` is the partition it vouches for."""

    region: str
    token_serial: str
    model: str
    firmware: str
    emulated: bool

    def to_der(self) -> bytes:
        return bytes(
            DeviceInfoAsn1(
                {
                    "region": self.region,
                    "token_serial": self.token_serial,
                    "model": self.model,
                    "firmware": self.firmware,
                    "emulated": self.emulated,
                }
            ).dump()
        )

    @classmethod
    def from_der(cls, der: bytes) -> DeviceInfoClaims:
        v = _strict_load(DeviceInfoAsn1, der)
        return cls(v["region"], v["token_serial"], v["model"], v["firmware"], v["emulated"])

    def to_extension(self) -> x509.UnrecognizedExtension:
        return x509.UnrecognizedExtension(DEVICE_INFO_OID, self.to_der())


def claims_of(cert: x509.Certificate) -> Claims:
    """The keyAttestation claims of a statement. Raises `ValueError` if the extension is missing,
    repeated, or does not decode (cryptography refuses repeated extensions when parsing them)."""
    return Claims.from_der(_extension_value(cert, KEY_ATTESTATION_OID, "keyAttestation"))


def device_info_of(cert: x509.Certificate) -> DeviceInfoClaims:
    """The DeviceInfo of an AK certificate (the attestor's `attestation_wrong_device` check reads
    it too). Raises `ValueError` if the extension is missing, repeated or does not decode."""
    return DeviceInfoClaims.from_der(_extension_value(cert, DEVICE_INFO_OID, "DeviceInfo"))


def whole_seconds(when: dt.datetime) -> dt.datetime:
    """`when` in UTC without microseconds. Raises `ValueError` for a naive datetime."""
    if when.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return when.astimezone(dt.UTC).replace(microsecond=0)


def _extension_value(cert: x509.Certificate, oid: x509.ObjectIdentifier, name: str) -> bytes:
    try:
        ext = cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        raise ValueError(f"no {name} extension") from None
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise ValueError(f"the extensions do not parse: {exc}") from None
    if not isinstance(ext.value, x509.UnrecognizedExtension):  # pragma: no cover - our own OIDs
        raise ValueError(f"unexpected {name} extension type")
    return ext.value.value


def _strict_load(spec: type[core.Sequence], der: bytes) -> dict[str, Any]:
    try:
        parsed = spec.load(der, strict=True)
        native = parsed.native  # asn1crypto parses lazily; this forces every field
        canonical = parsed.dump(force=True) == der
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"{spec.__name__[:-4]} does not decode: {exc}") from None
    known = {name for name, *_ in spec._fields}
    if set(native) - known:
        raise ValueError(f"{spec.__name__[:-4]} has fields beyond its definition")
    if not canonical:
        raise ValueError(f"{spec.__name__[:-4]} is not DER")
    return dict(native)
