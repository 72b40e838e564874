"""The intermediate CA record and its value types (api.md §3)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum

from interca.domain.states import State

BUILTIN_ID = 1
BUILTIN_NAME = "Built-in Intermediate CA Certificate"


class CaType(Enum):
    ZSCALER = "ZSCALER"
    CUSTOM_SW = "CUSTOM_SW"
    CUSTOM_HSM = "CUSTOM_HSM"


class Region(Enum):
    GLOBAL = "GLOBAL"
    ASIA = "ASIA"
    EUROPE = "EUROPE"
    US = "US"


class Status(Enum):
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


class KeyType(Enum):
    """`keyType`: algorithm and size, fixed at create."""

    RSA_2K = "RSA_2K"
    RSA_3K = "RSA_3K"
    RSA_4K = "RSA_4K"
    EC_P256 = "EC_P256"
    EC_P384 = "EC_P384"

    @property
    def bits(self) -> int:
        return _KEY_BITS[self]

    @property
    def is_rsa(self) -> bool:
        return self.value.startswith("RSA")


_KEY_BITS = {
    KeyType.RSA_2K: 2048,
    KeyType.RSA_3K: 3072,
    KeyType.RSA_4K: 4096,
    KeyType.EC_P256: 256,
    KeyType.EC_P384: 384,
}


class SignatureAlgorithm(Enum):
    SHA256 = "SHA256"
    SHA384 = "SHA384"
    SHA512 = "SHA512"


@dataclass(frozen=True)
class CsrSubject:
    """The fields of a generateCsr request after validation (api.md §3.3)."""

    csr_file_name: str
    comm_name: str
    org_name: str
    dept_name: str
    city: str
    state: str
    country: str  # `COUNTRY_XX` or `NONE`
    key_size: int
    signature_algorithm: SignatureAlgorithm
    path_length_constraint: int

    @property
    def country_code(self) -> str | None:
        return None if self.country == "NONE" else self.country.removeprefix("COUNTRY_")


@dataclass
class CaKey:
    """The key pair of a custom CA: a key-store reference, never the key itself."""

    ref: str
    public_key_pem: str
    generated_at: dt.datetime | None  # None for the built-in CA
    attestation_verified_at: dt.datetime | None = None
    attestation_pem: str | None = None
    """The creation-time key attestation bundle of a CUSTOM_HSM key (hsm.md §8.5), when attested."""


@dataclass
class CsrRecord:
    pem: str
    subject: CsrSubject
    generated_at: dt.datetime


@dataclass
class UploadedCert:
    """The signed intermediate (DER) and the chain above it (PEM, path order, root last)."""

    der: bytes
    file_name: str | None
    not_before: dt.datetime
    not_after: dt.datetime
    chain_pem: str | None = None
    chain_file_name: str | None = None
    effective_expiry: dt.datetime | None = None
    warnings: list[dict[str, str]] = field(default_factory=list)


@dataclass
class CrlRecord:
    """The CA's current CRL; `number` only grows (cRLNumber, RFC 5280 §5.2.3)."""

    number: int
    der: bytes
    issued_at: dt.datetime


@dataclass
class IntermediateCa:
    """One intermediate CA record. `is_default` mirrors the single default pointer."""

    id: int
    name: str
    type: CaType
    region: Region
    status: Status
    key_type: KeyType
    description: str
    state: State
    is_default: bool = False
    key: CaKey | None = None
    csr: CsrRecord | None = None
    cert: UploadedCert | None = None
    crl: CrlRecord | None = None
    pending_key_ref: str | None = None
    """hsm.md §4: the reference of a key being generated, recorded before generation, so an
    attempt cut short (a crash) is cleaned up by the next one. None once `key` is set."""

    @property
    def is_builtin(self) -> bool:
        return self.type is CaType.ZSCALER
