"""The few DER encoders the leaf template needs (X.690 §8, §10): a TLV with its definite length,
and the leaf-varying structures of RFC 5280 built from it (serial, validity, names, extensions).

Hand-written rather than `asn1crypto` because the fast path only glues precomputed byte strings
together: a schema-driven encoder would spend more time building objects than signing costs.
Everything the CA fixes is encoded once per CA by `cryptography` itself (`template.py`), so
these helpers cover only the handful of leaf-varying fields. They run once or more per leaf, so
the common shapes (one short DNS name, a CN of at most 64 characters) take table-driven paths;
the property test in tests/unit/issuance holds every path equal to `cryptography`'s builder.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import threading

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
OID = 0x06
UTF8_STRING = 0x0C
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
EXPLICIT_0 = 0xA0
EXPLICIT_3 = 0xA3
DNS_NAME = 0x82  # GeneralName [2] IMPLICIT IA5String (RFC 5280 §4.2.1.6)
IP_ADDRESS = 0x87  # GeneralName [7] IMPLICIT OCTET STRING
CRITICAL = b"\x01\x01\xff"  # BOOLEAN TRUE; FALSE is the DEFAULT and so never encoded (X.690 §11.5)

# Content octets of the object identifiers the leaf-varying parts use.
OID_COMMON_NAME = b"\x55\x04\x03"  # 2.5.4.3
OID_SUBJECT_ALT_NAME = b"\x55\x1d\x11"  # 2.5.29.17

_SAN_OID = {False: b"\x06\x03" + OID_SUBJECT_ALT_NAME, True: b"\x06\x03" + OID_SUBJECT_ALT_NAME + CRITICAL}
_SHORT_NAME = 110  # up to here every length of a one-name SAN fits one octet
_MAX_CN = 64  # RFC 5280 ub-common-name; the subject's lengths then fit one octet too
# Everything before the name's own octets, by name length: Name/RDN/attribute headers for a CN,
# Extension/OCTET STRING/GeneralNames/dNSName headers for a one-name SAN.
_CN_HEAD = [
    bytes((SEQUENCE, 11 + n, SET, 9 + n, SEQUENCE, 7 + n, OID, 3, *OID_COMMON_NAME, UTF8_STRING, n))
    for n in range(_MAX_CN + 1)
]
_SAN_HEAD = {
    critical: [
        bytes((SEQUENCE, n + 11 + len(CRITICAL) * critical))
        + _SAN_OID[critical]
        + bytes((OCTET_STRING, n + 4, SEQUENCE, n + 2, DNS_NAME, n))
        for n in range(_SHORT_NAME + 1)
    ]
    for critical in (False, True)
}


def header(tag: int, n: int) -> bytes:
    """Tag and definite length of an element with `n` content octets (short form below 128)."""
    if n < 0x80:
        return bytes((tag, n))
    if n < 0x100:
        return bytes((tag, 0x81, n))
    if n < 0x10000:
        return bytes((tag, 0x82, n >> 8, n & 0xFF))
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element: `header` and `content`."""
    return header(tag, len(content)) + content


def integer(value: int) -> bytes:
    """A non-negative INTEGER in its minimal two's complement form (a 0x00 pad when the top bit
    of the first octet would otherwise read as a sign)."""
    return tlv(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def serial_number(random16: bytes) -> bytes | None:
    """A certificate serial from 16 random bytes, DER-encoded, by the rule of
    `builtin.new_serial` (top bit cleared, so positive and at most 16 octets; `None` for zero,
    to be retried). The bytes go straight into the INTEGER instead of through an int."""
    digits = (bytes((random16[0] & 0x7F,)) + random16[1:]).lstrip(b"\x00")
    if not digits:
        return None
    if digits[0] & 0x80:  # leading zero octets were dropped and the next one has its top bit set
        digits = b"\x00" + digits
    return bytes((INTEGER, len(digits))) + digits


class Serials:
    """Fresh serials (`serial_number`) from the OS CSPRNG, read 256 at a time: one getrandom
    call per 256 leaves instead of one per leaf. Thread-safe (`list.pop` is atomic)."""

    BATCH = 256

    def __init__(self) -> None:
        self._ready: list[bytes] = []
        self._lock = threading.Lock()

    def next(self) -> bytes:
        try:
            return self._ready.pop()
        except IndexError:
            with self._lock:
                self._ready.extend(self._batch())
            return self.next()

    def _batch(self) -> list[bytes]:
        raw = bytearray(os.urandom(16 * self.BATCH))
        raw[::16] = bytes(b & 0x7F for b in raw[::16])  # top bits cleared: positive serials
        fresh = []
        for i in range(0, len(raw), 16):
            if raw[i]:  # 16 octets, no sign pad needed: the common case, 127 times in 128
                fresh.append(b"\x02\x10" + raw[i : i + 16])
            else:
                encoded = serial_number(bytes(raw[i : i + 16]))
                if encoded is not None:
                    fresh.append(encoded)
        return fresh


def time(when: dt.datetime) -> bytes:
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, always with seconds
    and `Z`, never fractions. `when` is UTC with whole seconds."""
    if 1950 <= when.year < 2050:
        return tlv(UTC_TIME, when.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return tlv(GENERALIZED_TIME, when.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


def validity(not_before: dt.datetime, not_after: dt.datetime) -> bytes:
    return tlv(SEQUENCE, time(not_before) + time(not_after))


def common_name(value: str | None) -> bytes:
    """A Name of one RDN, CN as UTF8String (the type `cryptography` gives a CN), or the empty
    Name (an empty SEQUENCE) for `None`."""
    if value is None:
        return b"\x30\x00"
    raw = value.encode("utf-8")
    if len(raw) <= _MAX_CN:
        return _CN_HEAD[len(raw)] + raw
    attribute = tlv(SEQUENCE, tlv(OID, OID_COMMON_NAME) + tlv(UTF8_STRING, raw))
    return tlv(SEQUENCE, tlv(SET, attribute))


def general_name(host: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    """dNSName for a (normalised, ASCII) DNS name, iPAddress (4 or 16 octets) for an address."""
    if isinstance(host, str):
        return tlv(DNS_NAME, host.encode("ascii"))
    return tlv(IP_ADDRESS, host.packed)


def extension(oid: bytes, value: bytes, *, critical: bool = False) -> bytes:
    """Extension ::= SEQUENCE { extnID, critical DEFAULT FALSE, extnValue OCTET STRING }."""
    return tlv(SEQUENCE, tlv(OID, oid) + (CRITICAL if critical else b"") + tlv(OCTET_STRING, value))


def subject_alt_name(
    hosts: tuple[str | ipaddress.IPv4Address | ipaddress.IPv6Address, ...], critical: bool
) -> bytes:
    """The subjectAltName extension of `hosts` (`extension` of a GeneralNames SEQUENCE)."""
    if len(hosts) == 1 and isinstance(hosts[0], str) and len(hosts[0]) <= _SHORT_NAME:
        return _SAN_HEAD[critical][len(hosts[0])] + hosts[0].encode("ascii")
    names = tlv(SEQUENCE, b"".join([general_name(h) for h in hosts]))
    return tlv(SEQUENCE, _SAN_OID[critical] + tlv(OCTET_STRING, names))


def signed_certificate(tbs: bytes, algorithm: bytes, signature: bytes) -> bytes:
    """Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
    (no unused bits: signatures are whole octets)."""
    bits = header(BIT_STRING, len(signature) + 1)
    size = len(tbs) + len(algorithm) + len(bits) + 1 + len(signature)
    return b"".join((header(SEQUENCE, size), tbs, algorithm, bits, b"\x00", signature))


def oid(dotted: str) -> bytes:
    """The content octets of an OBJECT IDENTIFIER (X.690 §8.19): 40*a+b, then base-128 arcs."""
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        out += bytes(reversed(chunk))
    return bytes(out)
