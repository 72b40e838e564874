"""Field rules of create, update and generateCsr requests (api.md §3.3, §4.1, §4.2).

Input is the decoded JSON object; output is validated values. Each function raises
`InvalidInput` naming the first failure, in the order the spec lists the checks. Checks that need
the database (name uniqueness) come in as callables so the order stays the spec's.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

import pycountry

from interca.domain.models import (
    BUILTIN_NAME,
    CaType,
    CsrSubject,
    IntermediateCa,
    KeyType,
    Region,
    SignatureAlgorithm,
    Status,
)
from interca.domain.states import State, raise_not_allowed
from interca.errors import InvalidInput

E = TypeVar("E", bound=Enum)
_ABSENT = object()


def _has_control(text: str, allow: str = "") -> bool:
    return any(unicodedata.category(ch) == "Cc" and ch not in allow for ch in text)


def _typed(body: Mapping[str, Any], field: str, kind: type | tuple[type, ...]) -> Any:
    """The field's value, `_ABSENT` when absent or null; wrong JSON type -> 400 (§4.1)."""
    value = body.get(field)
    if value is None:
        return _ABSENT
    # JSON true/false arrive as bool, which Python also counts as int: never accept it as a number.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise InvalidInput(f"Invalid value for {field}.")
    if not isinstance(value, kind):
        raise InvalidInput(f"Invalid value for {field}.")
    return value


def _enum(enum: type[E], field: str, value: str) -> E:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise InvalidInput(f"Invalid {field}: allowed values are {allowed}.") from None


def _name(value: Any) -> str:
    if value is _ABSENT or not value.strip():
        raise InvalidInput("Certificate name is required.")
    name = str(value).strip()
    if len(name) > 128:
        raise InvalidInput("Certificate name must be at most 128 characters.")
    if _has_control(name):
        raise InvalidInput("Certificate name must not contain control characters.")
    return name


def _description(value: Any) -> str:
    if value is _ABSENT:
        return ""
    if len(value) > 1024:
        raise InvalidInput("description must be at most 1024 characters.")
    if _has_control(value, allow="\t\n\r"):
        raise InvalidInput("description must not contain control characters other than tab and newline.")
    return str(value)


def name_is_builtin(name: str) -> bool:
    return name.casefold() == BUILTIN_NAME.casefold()


@dataclass(frozen=True)
class NewCa:
    name: str
    type: CaType
    region: Region
    status: Status
    key_type: KeyType
    description: str


def validate_create(body: Mapping[str, Any], name_taken: Callable[[str], bool]) -> NewCa:
    """Checks 1-7 of api.md §4.2 in order; subscription limits (8) are the caller's."""
    raw_type = _typed(body, "type", str)
    if raw_type is _ABSENT or raw_type == "":
        raise InvalidInput("Certificate type is required.")
    if raw_type == CaType.ZSCALER.value:
        raise InvalidInput("Certificates of type ZSCALER cannot be created.")
    if raw_type not in (CaType.CUSTOM_SW.value, CaType.CUSTOM_HSM.value):
        raise InvalidInput("Invalid type: allowed values are CUSTOM_SW, CUSTOM_HSM.")
    ca_type = CaType(raw_type)

    name = _name(_typed(body, "name", str))
    if name_is_builtin(name) or name_taken(name):
        raise InvalidInput(f"A certificate named '{name}' already exists.")

    raw_region = _typed(body, "region", str)
    region = Region.GLOBAL if raw_region is _ABSENT else _enum(Region, "region", raw_region)
    if ca_type is CaType.CUSTOM_SW and region is not Region.GLOBAL:
        raise InvalidInput("CUSTOM_SW certificates must use region GLOBAL.")

    raw_status = _typed(body, "status", str)
    status = Status.ENABLED if raw_status is _ABSENT else _enum(Status, "status", raw_status)
    raw_key_type = _typed(body, "keyType", str)
    key_type = KeyType.RSA_2K if raw_key_type is _ABSENT else _enum(KeyType, "keyType", raw_key_type)
    description = _description(_typed(body, "description", str))

    if _typed(body, "defaultCertificate", bool) is True:
        raise InvalidInput("A certificate becomes default only through makeDefault, after finalizeCert.")
    return NewCa(name, ca_type, region, status, key_type, description)


@dataclass(frozen=True)
class CaChanges:
    """What an update changes; None = unchanged."""

    name: str | None = None
    description: str | None = None
    status: Status | None = None


def validate_update(
    ca: IntermediateCa, body: Mapping[str, Any], name_taken: Callable[[str], bool]
) -> CaChanges:
    """api.md §4.2 update rules against the current record. A field sent with its current value
    is no change. Order follows the precedence of §4.6: lifecycle (ST) before field validation."""
    raw_id = _typed(body, "id", int)
    raw_name = _typed(body, "name", str)
    raw_description = _typed(body, "description", str)
    raw_status = _typed(body, "status", str)

    # ZIA omits an empty description, so a PUT of a GET'd object without it keeps it.
    name_changes = raw_name is not _ABSENT and raw_name.strip() != ca.name
    description_changes = raw_description is not _ABSENT and raw_description != ca.description
    if ca.state is State.CERT_READY and (name_changes or description_changes):
        raise_not_allowed("update", ca.state, "the certificate is finalized")

    if raw_id is not _ABSENT and raw_id != ca.id:
        raise InvalidInput(f"The id {raw_id} in the body does not match certificate {ca.id} in the path.")
    for field, current in (("type", ca.type), ("region", ca.region), ("keyType", ca.key_type)):
        value = _typed(body, field, str)
        if value is not _ABSENT and value != current.value:
            raise InvalidInput(f"{field} cannot be changed after creation.")
    raw_default = _typed(body, "defaultCertificate", bool)
    if raw_default is not _ABSENT and raw_default != ca.is_default:
        raise InvalidInput(
            "defaultCertificate cannot be changed by update; use makeDefault after finalizeCert."
        )

    changes: dict[str, Any] = {}
    if name_changes:
        name = _name(raw_name)
        if name != ca.name:
            if (name_is_builtin(name) or name_taken(name)) and name.casefold() != ca.name.casefold():
                raise InvalidInput(f"A certificate named '{name}' already exists.")
            changes["name"] = name
    if description_changes:
        changes["description"] = _description(raw_description)
    if raw_status is not _ABSENT:
        status = _enum(Status, "status", raw_status)
        if status is not ca.status:
            if status is Status.DISABLED and ca.is_default:
                raise InvalidInput("The default certificate cannot be disabled.")
            changes["status"] = status
    return CaChanges(**changes)


# generateCsr (api.md §3.3) ------------------------------------------------------------------

CSR_REQUIRED = ("csrFileName", "commName", "orgName", "deptName", "city", "state", "country")
_CSR_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
_SIG_HASH_NAMES = ", ".join(a.value for a in SignatureAlgorithm)


def _csr_text(body: Mapping[str, Any], field: str, max_len: int) -> str:
    value = str(_typed(body, field, str)).strip()
    if not value or len(value) > max_len or _has_control(value):
        raise InvalidInput(f"Invalid {field}: use 1 to {max_len} characters without control characters.")
    return value


def _country(value: str) -> str:
    if value == "NONE":
        return value
    code = value.removeprefix("COUNTRY_") if value.startswith("COUNTRY_") else ""
    if len(code) != 2 or not code.isupper() or pycountry.countries.get(alpha_2=code) is None:
        raise InvalidInput(
            "Invalid country: use COUNTRY_ followed by an ISO 3166-1 alpha-2 code in upper case "
            "(for example COUNTRY_GB), or NONE."
        )
    return value


def validate_csr_request(ca: IntermediateCa, body: Mapping[str, Any]) -> CsrSubject:
    """Validate a generateCsr body for this CA and fill in the defaults."""
    missing = [f for f in CSR_REQUIRED if body.get(f) is None]
    if missing:
        raise InvalidInput(f"Missing required fields: {', '.join(missing)}.")
    cert_id = _typed(body, "certId", int)
    if cert_id is not _ABSENT and cert_id != ca.id:
        raise InvalidInput(f"certId {cert_id} does not match certificate {ca.id} in the path.")

    file_name = str(_typed(body, "csrFileName", str)).strip()
    if not _CSR_FILE_NAME.fullmatch(file_name):
        raise InvalidInput(
            "Invalid csrFileName: use 1 to 64 characters from A-Z a-z 0-9 . _ - that do not start with '.'."
        )
    comm, org, dept = (_csr_text(body, f, 64) for f in ("commName", "orgName", "deptName"))
    city, state = (_csr_text(body, f, 128) for f in ("city", "state"))
    country = _country(str(_typed(body, "country", str)).strip())

    key_size = _typed(body, "keySize", int)
    if key_size is _ABSENT:
        key_size = ca.key_type.bits
    elif key_size != ca.key_type.bits:
        raise InvalidInput(f"keySize {key_size} does not match keyType {ca.key_type.value}.")

    raw_alg = _typed(body, "signatureAlgorithm", str)
    if raw_alg is _ABSENT:
        algorithm = SignatureAlgorithm.SHA256
    elif raw_alg in SignatureAlgorithm.__members__:
        algorithm = SignatureAlgorithm(raw_alg)
    else:
        raise InvalidInput(f"Invalid signatureAlgorithm: allowed values are {_SIG_HASH_NAMES}.")

    path_len = _typed(body, "pathLengthConstraint", int)
    if ca.type is CaType.CUSTOM_HSM:
        path_len = 0 if path_len is _ABSENT else path_len
        if path_len != 0:
            raise InvalidInput("pathLengthConstraint must be 0 for CUSTOM_HSM certificates.")
    else:
        path_len = 1 if path_len is _ABSENT else path_len
        if path_len not in (0, 1):
            raise InvalidInput("pathLengthConstraint must be 0 or 1 for CUSTOM_SW certificates.")
    return CsrSubject(file_name, comm, org, dept, city, state, country, key_size, algorithm, path_len)
