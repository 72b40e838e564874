"""What a DER blob is, told without trusting it: a tiny, bounds-checked DER/BER header reader and
the content sniffing of the upload gates (certificates.md §2, G4–G7 and G9's length test).

`sniff` says whether data is a private key, a PFX, a CSR or a PKCS#7 signedData; `outer_status`
whether one SEQUENCE covers exactly the data. The header reader never recurses and walks a fixed,
small number of headers, so hostile input costs O(1) there; the `cryptography` loaders used for
keys and CSRs are schema-driven and fail fast. Every function takes arbitrary bytes and returns
a plain value; none raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

SEQUENCE = 0x30
INTEGER = 0x02
OCTET_STRING = 0x04
OID = 0x06
# id-signedData 1.2.840.113549.1.7.2 (RFC 5652 §5.1), content octets of the OID.
SIGNED_DATA_OID = bytes.fromhex("2a864886f70d010702")
_MAX_LENGTH_OCTETS = 4  # 2^32 is far beyond any input the size gates let through

OuterStatus = Literal["ok", "truncated", "trailing data", "not a certificate"]
Kind = Literal["private key", "pkcs12", "csr", "pkcs7"]


@dataclass(frozen=True)
class Header:
    """One TLV header: `tag` is the identifier octet, content is data[start:end].

    `end` is None for a BER indefinite length (seen in PFX/PKCS#7 files from some tools).
    """

    tag: int
    start: int
    end: int | None


def read_header(data: bytes, offset: int = 0) -> Header | None:
    """The header at `offset`, or None when it is cut off, uses a high tag number, a reserved
    length octet or more than 4 length octets. `end` may lie beyond len(data) (callers decide
    whether that is "truncated")."""
    if offset + 2 > len(data):
        return None
    tag, first = data[offset], data[offset + 1]
    if tag & 0x1F == 0x1F:  # high-tag-number form: never used by the structures we sniff
        return None
    pos = offset + 2
    if first < 0x80:
        return Header(tag, pos, pos + first)
    if first == 0x80:
        return Header(tag, pos, None)
    count = first & 0x7F
    if count > _MAX_LENGTH_OCTETS or pos + count > len(data):
        return None
    length = int.from_bytes(data[pos : pos + count], "big")
    return Header(tag, pos + count, pos + count + length)


def children(data: bytes, parent: Header, limit: int) -> list[Header]:
    """Up to `limit` consecutive child headers of a constructed `parent`, each inside the parent
    and the data. Stops early at anything malformed or at a child of indefinite length (it
    cannot be skipped without parsing it, and we never descend)."""
    bound = len(data) if parent.end is None else min(parent.end, len(data))
    found: list[Header] = []
    pos = parent.start
    while len(found) < limit and pos < bound:
        child = read_header(data, pos)
        if child is None or (child.end is not None and child.end > bound):
            break
        found.append(child)
        if child.end is None:
            break
        pos = child.end
    return found


def outer_status(data: bytes) -> OuterStatus:
    """Whether `data` is exactly one definite-length SEQUENCE: the trailing-data and truncation
    test done before handing a would-be certificate to the real parser."""
    if not data:
        return "truncated"
    if data[0] != SEQUENCE:
        return "not a certificate"
    header = read_header(data)
    if header is None:  # cut off inside the header, or more length octets than any input needs
        long_form = data[1] & 0x7F if len(data) >= 2 and data[1] & 0x80 else 0
        return "not a certificate" if long_form > _MAX_LENGTH_OCTETS else "truncated"
    if header.end is None:
        return "not a certificate"  # BER indefinite length is not DER
    if header.end > len(data):
        return "truncated"
    return "trailing data" if header.end < len(data) else "ok"


def _outer(data: bytes) -> Header | None:
    header = read_header(data)
    return header if header is not None and header.tag == SEQUENCE else None


def _is_small_int(data: bytes, header: Header, values: tuple[int, ...]) -> bool:
    return header.tag == INTEGER and header.end == header.start + 1 and data[header.start] in values


def looks_like_pfx(data: bytes) -> bool:
    """PFX (RFC 7292 §4): SEQUENCE { version INTEGER 3, authSafe ContentInfo SEQUENCE { OID ... } }."""
    outer = _outer(data)
    if outer is None:
        return False
    kids = children(data, outer, 2)
    if len(kids) < 2 or not _is_small_int(data, kids[0], (3,)) or kids[1].tag != SEQUENCE:
        return False
    inner = children(data, kids[1], 1)
    return len(inner) == 1 and inner[0].tag == OID


def looks_like_pkcs7(data: bytes) -> bool:
    """CMS/PKCS#7 (RFC 5652 §3): ContentInfo SEQUENCE whose first element is OID id-signedData."""
    outer = _outer(data)
    if outer is None:
        return False
    kids = children(data, outer, 1)
    return bool(kids) and kids[0].tag == OID and data[kids[0].start : kids[0].end] == SIGNED_DATA_OID


def looks_like_pkcs8(data: bytes) -> bool:
    """A PKCS#8 private key, plain or encrypted, whatever its algorithm (so keys `cryptography`
    cannot load are still caught): OneAsymmetricKey (RFC 5958 §2) SEQUENCE { INTEGER 0|1,
    AlgorithmIdentifier SEQUENCE, OCTET STRING ... } or EncryptedPrivateKeyInfo (§3)
    SEQUENCE { AlgorithmIdentifier SEQUENCE, OCTET STRING }. A certificate, CSR, PFX or
    ContentInfo never has either shape."""
    outer = _outer(data)
    if outer is None:
        return False
    kids = children(data, outer, 3)
    tags = [k.tag for k in kids]
    if tags == [SEQUENCE, OCTET_STRING]:
        return True
    return tags == [INTEGER, SEQUENCE, OCTET_STRING] and _is_small_int(data, kids[0], (0, 1))


def sniff(data: bytes) -> Kind | None:
    """What non-certificate DER is, checked in the order of the gates G4–G7, or None."""
    if not data.startswith(bytes([SEQUENCE])):  # every structure recognised here is a SEQUENCE
        return None
    if looks_like_pkcs8(data) or _loads_as_private_key(data):
        return "private key"
    if looks_like_pfx(data):
        return "pkcs12"
    try:
        x509.load_der_x509_csr(data)
        return "csr"
    except Exception:  # noqa: S110 - not a CSR is the common answer
        pass
    return "pkcs7" if looks_like_pkcs7(data) else None


def _loads_as_private_key(data: bytes) -> bool:
    """Whatever cryptography loads as a key without a password (PKCS#1 RSA, SEC1 EC, OpenSSL DSA;
    PKCS#8 is caught by shape first). RSA validation is skipped: it is slow on huge hostile keys
    and we only need to know that it is one."""
    try:
        serialization.load_der_private_key(data, None, unsafe_skip_rsa_key_validation=True)
    except TypeError:  # "password required": an encrypted key is still a key
        return True
    except Exception:
        return False
    return True
