"""Safe decoding of uploaded certificate files: gates G1–G9 and `chain_too_long` (certificates.md §1–§3).

Owns turning the bytes of one multipart part into `x509.Certificate` objects, or into exactly one
error finding; judging the certificates (version, serial, keys, extensions) is the later checks' job.

Decoding (certificates.md §2; lax parsing as RFC 7468 §2–§3 recommends): size on the raw bytes
first. A UTF-8 BOM is dropped; after a UTF-16 BOM (LE or BE) the file is UTF-16 text; other bytes
are read as Latin-1, so every byte is one character and non-ASCII text outside blocks (a
`friendlyName` in `Bag Attributes`) is simply ignored. CRLF and lone CR become LF. Boundaries are
`-----BEGIN label-----` / `-----END label-----` on lines of their own; text outside blocks is
ignored, and inside a block all ASCII whitespace is dropped (blank lines, trailing spaces, any line
length). Without any BEGIN line the file is DER: exactly one structure, no trailing bytes.

Mixed labels: G4–G8 run in order over all labels before any block is decoded, so a private key
anywhere wins over a CSR, then PKCS#7, then the first other non-`CERTIFICATE` label; then the block
count, then G9. `PRIVATE KEY` is matched case-insensitively and on END lines too (a key must never
slip through); other labels exactly, as RFC 7468 labels are case-sensitive. A `CERTIFICATE` block
whose content is a key, PFX, CSR or PKCS#7 is reported under that gate (same precedence over all
blocks) rather than as malformed.
"""

from __future__ import annotations

import binascii
import re
import unicodedata
import warnings
from dataclasses import dataclass
from typing import NoReturn

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from interca.domain.x509.der import outer_status, sniff
from interca.domain.x509.findings import Finding, FindingsError

CERT_MAX_BYTES = 65536
CHAIN_MAX_BYTES = 1048576
CHAIN_MAX_BLOCKS = 16
MAX_FILE_NAME = 64

_MESSAGES = {
    "invalid_file_name": "The file name must be at most 64 characters without control characters.",
    "empty_upload": "The uploaded file is empty.",
    "private_key_in_upload": (
        "The file contains a private key. Upload the certificate only, and treat that private key as exposed."
    ),
    "pkcs12_uploaded": (
        "PKCS#12 (PFX) files can carry private keys and are not accepted; upload the certificate "
        "alone, as PEM or DER."
    ),
    "csr_uploaded": (
        "This is a certificate signing request. Have the organization's CA sign it and upload the "
        "certificate it returns."
    ),
    "pkcs7_uploaded": (
        "PKCS#7 files are not accepted; extract the certificates (openssl pkcs7 -print_certs -in "
        "FILE) and upload them as PEM."
    ),
}
# What der.sniff finds -> its gate, in gate order (the precedence when several blocks hide things).
_SNIFFED = {
    "private key": "private_key_in_upload",
    "pkcs12": "pkcs12_uploaded",
    "csr": "csr_uploaded",
    "pkcs7": "pkcs7_uploaded",
}
_CSR_LABELS = frozenset({"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"})
_PKCS7_LABELS = frozenset({"PKCS7", "CMS"})

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_ASCII_WS = " \t\n\r\x0b\x0c"
_DROP_WS = str.maketrans("", "", _ASCII_WS)
# Linear: anchored at line starts, greedy tail, no nested quantifiers (input is hostile).
_BOUNDARY = re.compile(r"^[ \t]*-----(BEGIN|END)([^\n]*)", re.MULTILINE)
_LABEL_SHOWN = 40


@dataclass(frozen=True)
class Upload:
    """What a multipart part gave us: its bytes and its filename as sent (may hold a path)."""

    data: bytes
    filename: str | None


@dataclass(frozen=True)
class _Block:
    """One BEGIN…END block. `problem` is set when its boundaries are incomplete or mismatched."""

    label: str
    body: str
    problem: str | None


def base_name(filename: str | None) -> str | None:
    """The part's filename after the last `/` or `\\` (browsers on Windows may send a full path)."""
    if filename is None:
        return None
    return re.split(r"[/\\]", filename)[-1]


def decode_upload(
    upload: Upload, *, subject: str, max_bytes: int, max_blocks: int | None = None
) -> list[x509.Certificate]:
    """The certificates of an uploaded file, in file order, or FindingsError with one error finding.

    Gates in order, stopping at the first failure: G1 invalid_file_name, G2 payload_too_large
    (`max_bytes`: CERT_MAX_BYTES for uploadCert, CHAIN_MAX_BYTES for uploadCertChain),
    G3 empty_upload, G4 private_key_in_upload, G5 pkcs12_uploaded, G6 csr_uploaded,
    G7 pkcs7_uploaded, G8 wrong_pem_type, chain_too_long (only when `max_blocks` is given; blocks
    are counted before any is decoded), G9 malformed_certificate. `subject` becomes the finding's
    subject ("fileUpload" or "chainUpload").

    Never raises anything but FindingsError on any bytes; cryptography's warnings (e.g. negative
    serials, reported later as F19) are suppressed here. `warnings.catch_warnings` is
    process-global, so a warning from another thread during the call may be suppressed too.
    """
    name = base_name(upload.filename)
    if name is not None and (len(name) > MAX_FILE_NAME or any(unicodedata.category(c) == "Cc" for c in name)):
        _refuse("invalid_file_name", _MESSAGES["invalid_file_name"], subject)
    if (size := len(upload.data)) > max_bytes:
        too_large = f"File size cannot exceed {_size_text(max_bytes)}; this file has {size} bytes."
        _refuse("payload_too_large", too_large, subject)
    text, der = _as_text(upload.data)
    if not text.strip(_ASCII_WS):
        _refuse("empty_upload", _MESSAGES["empty_upload"], subject)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        blocks, boundary_labels = _scan(text)
        if not blocks:
            return [_decode_der(der, subject)]
        _check_labels(blocks, boundary_labels, subject)
        if max_blocks is not None and len(blocks) > max_blocks:
            too_long = f"This certificate chain has {len(blocks)} elements; at most {max_blocks} are allowed."
            _refuse("chain_too_long", too_long, subject)
        return _decode_blocks(blocks, subject)


def _refuse(finding_id: str, text: str, subject: str) -> NoReturn:
    raise FindingsError([Finding.error(finding_id, text, subject)])


def _malformed(reason: str, subject: str) -> NoReturn:
    _refuse("malformed_certificate", f"The file is not a valid PEM or DER certificate ({reason}).", subject)


def _size_text(max_bytes: int) -> str:
    """65536 -> "64K", 1048576 -> "1M" (the wording of certificates.md §2 and §3)."""
    if max_bytes % (1 << 20) == 0:
        return f"{max_bytes >> 20}M"
    if max_bytes % (1 << 10) == 0:
        return f"{max_bytes >> 10}K"
    return f"{max_bytes} bytes"


def _as_text(raw: bytes) -> tuple[str, bytes | None]:
    """(text to scan for PEM, with LF line ends; bytes for the DER path, None for UTF-16 text)."""
    der: bytes | None
    if raw[:2] in _UTF16_BOMS:
        # The codec reads the BOM and picks the byte order; a cut-off last byte becomes U+FFFD.
        text, der = raw.decode("utf-16", errors="replace"), None
    else:
        der = raw[len(_UTF8_BOM) :] if raw.startswith(_UTF8_BOM) else raw
        text = der.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n"), der


def _boundary_label(tail: str) -> tuple[str, bool]:
    """The label of a boundary line from what follows `-----BEGIN`/`-----END`, and whether the
    line is well formed (`" " label "-----"`, or just `-----` for the empty label)."""
    tail = tail.rstrip(_ASCII_WS)
    if tail == "-----":
        return "", True
    if tail.startswith(" ") and tail.endswith("-----") and len(tail) >= 6:
        return tail[1:-5], True
    return tail.strip(" -"), False


def _scan(text: str) -> tuple[list[_Block], list[str]]:
    """All BEGIN…END blocks in file order, and the labels of every boundary line (BEGIN and END).
    A block is "truncated" when a BEGIN or the end of the file comes before its END, the END's
    label differs, or a boundary line is malformed. A stray END is ignored (its label counts for G4).
    """
    blocks: list[_Block] = []
    labels: list[str] = []
    open_label: str | None = None
    open_ok, body_start = True, 0
    for match in _BOUNDARY.finditer(text):
        label, well_formed = _boundary_label(match.group(2))
        labels.append(label)
        if open_label is not None:
            matched = match.group(1) == "END" and well_formed and open_ok and label == open_label
            problem = None if matched else "truncated"
            blocks.append(_Block(open_label, text[body_start : match.start()], problem))
            open_label = None
            if match.group(1) == "END":
                continue
        if match.group(1) == "BEGIN":
            open_label, open_ok, body_start = label, well_formed, match.end()
    if open_label is not None:
        blocks.append(_Block(open_label, text[body_start:], "truncated"))
    return blocks, labels


def _check_labels(blocks: list[_Block], boundary_labels: list[str], subject: str) -> None:
    """G4–G8 on labels alone, before any block is decoded."""
    if any("PRIVATE KEY" in label.upper() for label in boundary_labels):
        _refuse("private_key_in_upload", _MESSAGES["private_key_in_upload"], subject)
    # G5 has no PEM label: PFX is only ever DER (base64 of one in a block is caught by sniffing).
    for finding_id, wanted in (("csr_uploaded", _CSR_LABELS), ("pkcs7_uploaded", _PKCS7_LABELS)):
        if any(b.label in wanted for b in blocks):
            _refuse(finding_id, _MESSAGES[finding_id], subject)
    for block in blocks:
        if block.label != "CERTIFICATE":
            shown = "".join(c if " " <= c <= "~" and c != '"' else "?" for c in block.label[:_LABEL_SHOWN])
            ellipsis = "..." if len(block.label) > _LABEL_SHOWN else ""
            _refuse("wrong_pem_type", f'Expected CERTIFICATE blocks but found "{shown}{ellipsis}".', subject)


def _decode_der(der: bytes | None, subject: str) -> x509.Certificate:
    """G4–G7 by content, then G9, for a file without any BEGIN line."""
    if der is None:  # UTF-16 text without a PEM block cannot be DER
        _malformed("not a certificate", subject)
    kind = sniff(der)
    if kind is not None:
        _refuse(_SNIFFED[kind], _MESSAGES[_SNIFFED[kind]], subject)
    result = _load_certificate(der)
    if isinstance(result, str):
        _malformed(result, subject)
    return result


def _decode_blocks(blocks: list[_Block], subject: str) -> list[x509.Certificate]:
    """G9 over every block. All are decoded first so that a key disguised as a CERTIFICATE
    block anywhere is reported as G4, not hidden behind an earlier malformed block."""
    certificates: list[x509.Certificate] = []
    first_reason: str | None = None
    sniffed: set[str] = set()
    for block in blocks:
        der, reason = _block_der(block)
        if der is not None:
            result = _load_certificate(der)
            if not isinstance(result, str):
                certificates.append(result)
                continue
            reason = result
            kind = sniff(der)
            if kind is not None:
                sniffed.add(_SNIFFED[kind])
        first_reason = first_reason or reason
    for finding_id in _SNIFFED.values():
        if finding_id in sniffed:
            _refuse(finding_id, _MESSAGES[finding_id], subject)
    if first_reason is not None:
        _malformed(first_reason, subject)
    return certificates


def _block_der(block: _Block) -> tuple[bytes | None, str]:
    """(DER, "") for a sound block, else (None, reason)."""
    if block.problem is not None:
        return None, block.problem
    b64 = block.body.translate(_DROP_WS)
    if not b64.isascii():
        return None, "bad base64"
    try:
        return binascii.a2b_base64(b64, strict_mode=True), ""
    except binascii.Error:
        pass
    # A block cut short (e.g. half a file with the END line re-added) usually ends mid-quantum:
    # call it truncated when the whole quanta decode to the start of a longer DER structure.
    whole = b64[: len(b64) - len(b64) % 4]
    try:
        prefix = binascii.a2b_base64(whole, strict_mode=True)
    except binascii.Error:
        return None, "bad base64"
    return None, "truncated" if whole != b64 and outer_status(prefix) == "truncated" else "bad base64"


def _load_certificate(der: bytes) -> x509.Certificate | str:
    """The certificate, or the G9 reason. The outer length is checked first (to say "trailing
    data"); lazily parsed names, extensions and key are forced so garbage is refused here. Let
    through for later checks: negative serials (F19), v1/v2 (G13), unknown algorithms (F17, F18)."""
    status = outer_status(der)
    if status != "ok":
        return status
    try:
        certificate = x509.load_der_x509_certificate(der)
        _ = (certificate.serial_number, certificate.issuer, certificate.subject, certificate.extensions)
    except Exception:  # any parser complaint means the same to the uploader
        return "not a certificate"
    try:
        certificate.public_key()
    except UnsupportedAlgorithm:
        pass
    except Exception:  # e.g. an EC point not on its curve
        return "not a certificate"
    return certificate
