"""Reading an attestation bundle: step V1 of hsm.md §8.6 (`attestation_malformed`).

A bundle is what `statement.bundle_pem` writes: ASCII text, comment lines and PEM CERTIFICATE
blocks (RFC 7468 §2). Text outside blocks is ignored (the comments); CRLF is accepted, as a
customer's editor may save one. Anything else is malformed: another block label, a BEGIN without
its END, base64 that does not decode, non-ASCII bytes, or more than `MAX_BUNDLE_BYTES`. Unlike
upload decoding (`interca.domain.x509.pem`), there is no DER fallback and no lenient repair: a
bundle comes from interca and is either intact or not ours. Then exactly three certificates that
parse, extensions included (a repeated extension is malformed), and in the first one a
keyAttestation extension that decodes, version 1.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography import x509

from interca.domain.attestation.claims import VERSION_1, Claims, DeviceInfoClaims, claims_of

MAX_BUNDLE_BYTES = 65536
_BEGIN = "-----BEGIN "
_END = "-----END "
_TAIL = "-----"
# What cryptography raises for a certificate or extension it cannot read; the last two are not
# ValueErrors.
_UNPARSABLE = (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)
ROLES = ("attestation certificate", "AK certificate", "manufacturer root")
"""The certificates of a bundle, in bundle order, as messages name them."""


@dataclass
class DecodedBundle:
    """A bundle that passed V1; nothing in it is verified yet. Later steps swap `root` for the
    pinned copy (V2) and fill in `device_info` (V4)."""

    statement: x509.Certificate
    ak: x509.Certificate
    root: x509.Certificate
    claims: Claims
    device_info: DeviceInfoClaims | None = None


def decode_bundle(data: bytes) -> DecodedBundle:
    """V1. Raises `ValueError` whose text is the failure sentence (without a final period)."""
    blocks = certificate_blocks(data)
    if len(blocks) != 3:
        raise ValueError(
            f"The bundle holds {len(blocks)} certificate(s); it must hold exactly three "
            "(attestation certificate, AK certificate, manufacturer root)"
        )
    certs = []
    for role, der in zip(ROLES, blocks, strict=True):
        try:
            cert = x509.load_der_x509_certificate(der)
            _ = cert.extensions  # parsed lazily; a repeated or broken extension raises here
        except _UNPARSABLE:
            raise ValueError(f"The {role} does not parse as an X.509 certificate") from None
        certs.append(cert)
    try:
        claims = claims_of(certs[0])
    except ValueError as exc:
        reason = str(exc).splitlines()[0]
        raise ValueError(
            f"The attestation certificate's keyAttestation extension is unusable: {reason}"
        ) from None
    if claims.version != VERSION_1:
        raise ValueError(f"The keyAttestation version is {claims.version}; only version 1 is known")
    return DecodedBundle(certs[0], certs[1], certs[2], claims)


def certificate_blocks(data: bytes) -> list[bytes]:
    """The DER of each CERTIFICATE block, in order. Raises `ValueError` whose text is a sentence
    (without a final period) saying what is wrong."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise ValueError(f"The bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("The bundle is not ASCII PEM text") from None
    blocks: list[bytes] = []
    label: str | None = None
    body: list[str] = []
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        line = raw.strip()
        if label is None:
            if line.startswith(_END):
                raise ValueError(f"Line {number} ends a PEM block that was never begun")
            if line.startswith(_BEGIN):
                label = _label(line, _BEGIN, number)
                if label != "CERTIFICATE":
                    raise ValueError(f"The bundle holds a {label[:40]} block; it must hold certificates only")
                body = []
            continue
        if line.startswith(_BEGIN):
            raise ValueError(f"Line {number} begins a PEM block inside another")
        if line.startswith(_END):
            if _label(line, _END, number) != label:
                raise ValueError(f"Line {number} ends the PEM block with another label")
            try:
                blocks.append(base64.b64decode("".join(body), validate=True))
            except (binascii.Error, ValueError):
                raise ValueError(f"The PEM block ending on line {number} is not valid base64") from None
            label = None
            continue
        body.append(line)
    if label is not None:
        raise ValueError("The bundle ends inside a PEM block")
    return blocks


def _label(line: str, prefix: str, number: int) -> str:
    if not line.endswith(_TAIL) or len(line) < len(prefix) + len(_TAIL):
        raise ValueError(f"Line {number} is not a PEM boundary")
    return line[len(prefix) : -len(_TAIL)]
