"""Decoding uploaded certificate files: gates G1–G9 and chain_too_long (certificates.md §2, §3, §8
rows 2–12, 48, 49), plus property tests that no input raises anything but FindingsError."""

from __future__ import annotations

import base64
import datetime as dt
import random
import time
import warnings
from typing import NamedTuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from interca.domain.x509.der import looks_like_pfx, looks_like_pkcs7, looks_like_pkcs8, outer_status
from interca.domain.x509.findings import FindingsError
from interca.domain.x509.pem import (
    CERT_MAX_BYTES,
    CHAIN_MAX_BLOCKS,
    CHAIN_MAX_BYTES,
    Upload,
    base_name,
    decode_upload,
)

DER, PEM = serialization.Encoding.DER, serialization.Encoding.PEM
NO_ENC = serialization.NoEncryption()
NOW = dt.datetime.now(dt.UTC)


class Material(NamedTuple):
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate  # self-signed root
    sub: x509.Certificate  # CA certificate issued by the root
    big: x509.Certificate  # RSA certificate whose base64 exceeds 1,500 characters
    rsa_key: rsa.RSAPrivateKey
    csr: x509.CertificateSigningRequest
    crl: x509.CertificateRevocationList


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str, key: object, issuer: str, signer: object, serial: int = 0x5A5A, sans: int = 0
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(serial)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if sans:
        names = [x509.DNSName(f"host-{i}.example.test") for i in range(sans)]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def m() -> Material:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    sub_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name("interca test intermediate"))
        .sign(sub_key, hashes.SHA256())
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(_name("test root"))
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    return Material(
        ca_key,
        _cert("test root", ca_key, "test root", ca_key, serial=1),
        _cert("test sub", sub_key, "test root", ca_key, serial=2),
        _cert("test big", rsa_key, "test big", rsa_key, serial=3, sans=20),
        rsa_key,
        csr,
        crl,
    )


def decode(data: bytes, filename: str | None = "ca.pem", **kw: object) -> list[x509.Certificate]:
    kw.setdefault("subject", "fileUpload")
    kw.setdefault("max_bytes", CERT_MAX_BYTES)
    return decode_upload(Upload(data, filename), **kw)  # type: ignore[arg-type]


def refused(data: bytes, filename: str | None = "ca.pem", **kw: object) -> tuple[str, str]:
    """(id, message) of the single error finding decode_upload raises."""
    subject = str(kw.setdefault("subject", "fileUpload"))
    with pytest.raises(FindingsError) as caught:
        decode(data, filename, **kw)
    (finding,) = caught.value.findings
    assert finding.severity == "error" and finding.subject == subject
    assert finding.message.startswith(f"[{finding.id}] ")
    assert caught.value.message == finding.message
    return finding.id, finding.message


def pem_of(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(PEM) for c in certs)


def key_pem(key: object, fmt: serialization.PrivateFormat, enc: object = NO_ENC) -> bytes:
    return key.private_bytes(PEM, fmt, enc)  # type: ignore[attr-defined,no-any-return]


def bblock(label: str, der: bytes) -> bytes:
    """One PEM block with any label around any DER, 64-character lines (RFC 7468 §2)."""
    b64 = base64.b64encode(der).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return ("\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n").encode()


# --- accepted (rows 1–3) -------------------------------------------------------------------


def test_pem_and_der_accepted(m: Material) -> None:
    assert decode(pem_of(m.sub)) == [m.sub]
    assert decode(m.sub.public_bytes(DER), "ca.der") == [m.sub]


def test_bom_crlf_and_utf16_accepted(m: Material) -> None:
    text = pem_of(m.sub).decode()
    assert decode(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()) == [m.sub]
    assert decode(text.replace("\n", "\r").encode()) == [m.sub]  # lone CR (classic Mac)
    assert decode(text.encode("utf-16")) == [m.sub]  # BOM in native order
    assert decode(b"\xff\xfe" + text.encode("utf-16-le")) == [m.sub]
    assert decode(b"\xfe\xff" + text.replace("\n", "\r\n").encode("utf-16-be")) == [m.sub]


def test_bag_attributes_blank_lines_and_spacing_accepted(m: Material) -> None:
    body = pem_of(m.sub).decode().splitlines()
    text = "\n".join(
        [
            "Bag Attributes",
            "    localKeyID: 01 02 03",
            "    friendlyName: zertifikat \u00fc",
            "subject=CN = test sub",
            "issuer=CN = test root",
            "",
            "  ",
        ]
        + [line + "  \t" for line in body[:2]]
        + [""]
        + body[2:]
        + ["", "", "trailing words"]
    )
    assert decode(text.encode()) == [m.sub]


def test_one_long_base64_line_accepted(m: Material) -> None:
    b64 = base64.b64encode(m.big.public_bytes(DER)).decode()
    assert len(b64) >= 1500
    text = f"-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n"
    assert decode(text.encode()) == [m.big]


def test_multiple_blocks_in_file_order(m: Material) -> None:
    assert decode(pem_of(m.sub, m.ca, m.big, m.ca)) == [m.sub, m.ca, m.big, m.ca]
    chain = pem_of(*[m.ca] * CHAIN_MAX_BLOCKS)
    assert len(decode(chain, subject="chainUpload", max_bytes=CHAIN_MAX_BYTES, max_blocks=16)) == 16


def test_size_limit_is_inclusive(m: Material) -> None:
    data = pem_of(m.sub)
    padded = data + b"\n" * (CERT_MAX_BYTES - len(data))
    assert decode(padded) == [m.sub]
    assert refused(padded + b"\n")[0] == "payload_too_large"


def test_negative_serial_is_left_to_f19_and_no_warning_escapes(m: Material) -> None:
    der = m.sub.public_bytes(DER)
    # Serial 2 (02 01 02) is re-encoded as -2 (02 01 fe): same length, so the DER stays well formed.
    patched = der.replace(b"\xa0\x03\x02\x01\x02\x02\x01\x02", b"\xa0\x03\x02\x01\x02\x02\x01\xfe", 1)
    assert patched != der
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        (cert,) = decode(patched, "neg.der")
    assert seen == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cert.serial_number == -2


def test_unknown_key_type_is_left_to_f18(m: Material) -> None:
    der = m.sub.public_bytes(DER)
    p256 = bytes.fromhex("06082a8648ce3d030107")  # namedCurve prime256v1 in the SPKI
    unknown = der.replace(p256, p256[:-1] + b"\x7f", 1)
    assert unknown != der
    (cert,) = decode(unknown, "odd.der")
    assert cert.public_bytes(DER) == unknown


def test_utf8_bom_before_der_is_dropped(m: Material) -> None:
    assert decode(b"\xef\xbb\xbf" + m.sub.public_bytes(DER), "ca.der") == [m.sub]


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        (None, None),
        ("ca.pem", "ca.pem"),
        ("C:\\Users\\me\\ca.pem", "ca.pem"),
        ("/tmp/x/ca.pem", "ca.pem"),
        ("a/b\\c", "c"),
        ("dir/", ""),
    ],
)
def test_base_name(filename: str | None, expected: str | None) -> None:
    assert base_name(filename) == expected


def test_file_name_limits(m: Material) -> None:
    assert decode(pem_of(m.sub), None) == [m.sub]
    assert decode(pem_of(m.sub), "x" * 64) == [m.sub]
    assert decode(pem_of(m.sub), "C:\\" + "d" * 100 + "\\" + "x" * 64) == [m.sub]  # only the base name counts
    assert refused(pem_of(m.sub), "x" * 65) == (  # row 4
        "invalid_file_name",
        "[invalid_file_name] The file name must be at most 64 characters without control characters.",
    )
    for bad in ("ca\x00.pem", "ca\n.pem", "ca\x7f.pem", "ca\x85.pem"):
        assert refused(pem_of(m.sub), bad)[0] == "invalid_file_name"


# --- refused, in gate order (rows 4–12, 48, 49) ---------------------------------------------


def test_payload_too_large_messages(m: Material) -> None:  # rows 5, 48
    assert refused(b"\0" * 5_000_000) == (
        "payload_too_large",
        "[payload_too_large] File size cannot exceed 64K; this file has 5000000 bytes.",
    )
    pem = pem_of(m.sub)
    looks_valid = b"Bag Attributes\n" * ((CERT_MAX_BYTES + 1 - len(pem)) // 15) + pem
    looks_valid += b"\n" * (CERT_MAX_BYTES + 1 - len(looks_valid))
    assert len(looks_valid) == 65537
    assert refused(looks_valid)[0] == "payload_too_large"
    big = pem_of(m.ca) * (1_500_000 // len(pem_of(m.ca)) + 1)
    assert refused(big, subject="chainUpload", max_bytes=CHAIN_MAX_BYTES, max_blocks=16) == (
        "payload_too_large",
        f"[payload_too_large] File size cannot exceed 1M; this file has {len(big)} bytes.",
    )


@pytest.mark.parametrize(
    "data",
    [b"", b" \n\r\n\t ", b"\xef\xbb\xbf", b"\xef\xbb\xbf \r\n", b"\xff\xfe", " \n".encode("utf-16")],
    ids=["empty", "whitespace", "utf8-bom", "utf8-bom-ws", "utf16-bom", "utf16-ws"],
)
def test_empty_upload(data: bytes) -> None:  # rows 6, 49
    assert refused(data) == ("empty_upload", "[empty_upload] The uploaded file is empty.")
    assert refused(data, subject="chainUpload", max_bytes=CHAIN_MAX_BYTES, max_blocks=16)[0] == "empty_upload"


def test_private_key_in_upload(m: Material) -> None:  # rows 7, 49
    pkcs8 = serialization.PrivateFormat.PKCS8
    trad = serialization.PrivateFormat.TraditionalOpenSSL
    encrypted = serialization.BestAvailableEncryption(b"secret")
    cases = {
        "pem-before-cert": key_pem(m.rsa_key, pkcs8) + pem_of(m.sub),
        "cert-then-rsa-key": pem_of(m.sub) + key_pem(m.rsa_key, trad),
        "encrypted-pem": key_pem(m.ca_key, pkcs8, encrypted),
        "ec-traditional-pem": key_pem(m.ca_key, trad),
        "der-pkcs8": m.rsa_key.private_bytes(DER, pkcs8, NO_ENC),
        "der-pkcs1": m.rsa_key.private_bytes(DER, trad, NO_ENC),
        "der-sec1": m.ca_key.private_bytes(DER, trad, NO_ENC),
        "der-encrypted-pkcs8": m.ca_key.private_bytes(DER, pkcs8, encrypted),
        "key-labelled-certificate": bblock("CERTIFICATE", m.ca_key.private_bytes(DER, pkcs8, NO_ENC)),
        "stray-end-line": pem_of(m.sub) + b"-----END PRIVATE KEY-----\n",
    }
    for name, data in cases.items():
        found = refused(data)
        assert found[0] == "private_key_in_upload", name
        assert "PRIVATE" not in found[1] and "MII" not in found[1]
    assert (
        refused(
            key_pem(m.rsa_key, pkcs8),
            "key.pem",
            subject="chainUpload",
            max_bytes=CHAIN_MAX_BYTES,
            max_blocks=16,
        )[0]
        == "private_key_in_upload"
    )


def test_pkcs12_uploaded(m: Material) -> None:  # row 8
    plain = pkcs12.serialize_key_and_certificates(b"ca", m.ca_key, m.ca, [m.sub], NO_ENC)
    locked = pkcs12.serialize_key_and_certificates(
        b"ca", m.ca_key, m.ca, None, serialization.BestAvailableEncryption(b"pw")
    )
    certs_only = pkcs12.serialize_key_and_certificates(None, None, None, [m.ca], NO_ENC)
    for data in (plain, locked, certs_only, bblock("CERTIFICATE", locked)):
        assert refused(data, "ca.pfx")[0] == "pkcs12_uploaded"


def test_csr_uploaded(m: Material) -> None:  # row 9
    assert refused(m.csr.public_bytes(PEM))[0] == "csr_uploaded"
    assert refused(m.csr.public_bytes(DER), "ca.csr")[0] == "csr_uploaded"
    assert refused(bblock("NEW CERTIFICATE REQUEST", m.csr.public_bytes(DER)))[0] == "csr_uploaded"


def test_pkcs7_uploaded(m: Material) -> None:  # row 10
    assert refused(pkcs7.serialize_certificates([m.sub, m.ca], PEM))[0] == "pkcs7_uploaded"
    assert refused(pkcs7.serialize_certificates([m.sub, m.ca], DER), "ca.p7b")[0] == "pkcs7_uploaded"
    assert refused(bblock("CMS", pkcs7.serialize_certificates([m.sub], DER)))[0] == "pkcs7_uploaded"


def test_wrong_pem_type(m: Material) -> None:  # row 11
    public_key = m.ca_key.public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert refused(m.crl.public_bytes(PEM)) == (
        "wrong_pem_type",
        '[wrong_pem_type] Expected CERTIFICATE blocks but found "X509 CRL".',
    )
    assert refused(public_key)[1].endswith('found "PUBLIC KEY".')
    assert refused(b"-----BEGIN -----\nAAAA\n-----END -----\n")[1].endswith('found "".')
    assert refused(pem_of(m.sub) + bblock("TRUSTED CERTIFICATE", b"0"))[1].endswith('"TRUSTED CERTIFICATE".')
    # An attacker's label is shown tamed: printable ASCII, no quotes, at most 40 characters.
    shown = refused(bblock('X"' + "Y" * 100, b"0"))[1]
    assert shown.endswith('"X?' + "Y" * 38 + '...".')


def test_malformed_certificate(m: Material) -> None:  # rows 12, 49
    der = m.sub.public_bytes(DER)
    text = pem_of(m.sub).decode()
    lines = text.splitlines()
    half = "\n".join(lines[: len(lines) // 2]) + "\n-----END CERTIFICATE-----\n"
    garbled = der.replace(b"test sub", b"test\xffsub")  # same length: the Name's string is not UTF-8
    cases = {
        "random": (random.Random(7).randbytes(1500), None),
        "half-pem": (half.encode(), "truncated"),
        "half-pem-mid-line": (
            text[: len(text) // 2].encode() + b"\n-----END CERTIFICATE-----\n",
            "truncated",
        ),
        "der-plus-10": (der + b"\0" * 10, "trailing data"),
        "pem-of-der-plus-10": (bblock("CERTIFICATE", der + b"0123456789"), "trailing data"),
        "hello": (b"hello world", "not a certificate"),
        "no-end": (text.replace("-----END CERTIFICATE-----", "").encode(), "truncated"),
        "end-label-differs": (text.replace("END CERTIFICATE", "END X509 CRL").encode(), "truncated"),
        "begin-inside-block": (
            text.replace("-----END CERTIFICATE-----\n", "").encode() + text.encode(),
            "truncated",
        ),
        "bad-char": (text.replace(lines[3][:4], lines[3][:3] + "*", 1).encode(), "bad base64"),
        "padding-inside": (text.replace(lines[3], lines[3][:60] + "====", 1).encode(), "bad base64"),
        "empty-block": (b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", "truncated"),
        "garbled-name": (garbled, "not a certificate"),
        "garbled-extension": (
            der.replace(b"\x30\x03\x01\x01\xff", b"\x30\x03\x02\x01\xff"),
            "not a certificate",
        ),
        "utf16-not-pem": ("MIIB not pem".encode("utf-16"), "not a certificate"),
        "bad-then-good": (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" + text.encode(),
            "not a certificate",
        ),
    }
    for name, (data, reason) in cases.items():
        finding_id, message = refused(data)
        assert finding_id == "malformed_certificate", name
        assert message.startswith(
            "[malformed_certificate] The file is not a valid PEM or DER certificate ("
        ), name
        assert message[message.index("(") + 1 : -2] in (
            "bad base64",
            "truncated",
            "trailing data",
            "not a certificate",
        )
        if reason is not None:
            assert message.endswith(f"({reason})."), (name, message)
        assert "MII" not in message and "/" not in message


def test_chain_too_long(m: Material) -> None:  # row 48
    chain = dict(subject="chainUpload", max_bytes=CHAIN_MAX_BYTES, max_blocks=16)
    assert refused(pem_of(*[m.ca] * 17), **chain) == (
        "chain_too_long",
        "[chain_too_long] This certificate chain has 17 elements; at most 16 are allowed.",
    )
    # Counted before decoding: garbage blocks still count, and are not reported as malformed.
    junk = b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n" * 17
    assert refused(junk, **chain)[0] == "chain_too_long"
    assert refused(junk)[0] == "malformed_certificate"  # without max_blocks there is no count gate
    assert len(decode(pem_of(*[m.ca] * 17))) == 17


def test_gate_order_when_labels_mix(m: Material) -> None:
    key = key_pem(m.ca_key, serialization.PrivateFormat.PKCS8)
    csr = m.csr.public_bytes(PEM)
    p7 = pkcs7.serialize_certificates([m.ca], PEM)
    crl = m.crl.public_bytes(PEM)
    chain = dict(subject="chainUpload", max_bytes=CHAIN_MAX_BYTES, max_blocks=16)
    assert refused(crl + p7 + csr + key)[0] == "private_key_in_upload"
    assert refused(crl + p7 + csr)[0] == "csr_uploaded"
    assert refused(crl + p7)[0] == "pkcs7_uploaded"
    assert refused(pem_of(*[m.ca] * 20) + crl, **chain)[0] == "wrong_pem_type"
    assert refused(key + b"\0" * CERT_MAX_BYTES, "k" * 65)[0] == "invalid_file_name"
    assert refused(key + b"\0" * CERT_MAX_BYTES)[0] == "payload_too_large"
    # Content sniffing over all blocks: a disguised CSR after a malformed block still wins.
    disguised = bblock("CERTIFICATE", m.csr.public_bytes(DER))
    assert (
        refused(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" + disguised)[0]
        == "csr_uploaded"
    )


# --- the DER sniffers --------------------------------------------------------------------------


def test_der_sniffers(m: Material) -> None:
    der = m.sub.public_bytes(DER)
    pfx = pkcs12.serialize_key_and_certificates(b"ca", m.ca_key, m.ca, None, NO_ENC)
    p7 = pkcs7.serialize_certificates([m.ca], DER)
    key = m.ca_key.private_bytes(DER, serialization.PrivateFormat.PKCS8, NO_ENC)
    assert [
        outer_status(d)
        for d in (der, der[:-1], der + b"\0", b"", b"\x30", b"\x31\x00", b"\x30\x85" + b"\0" * 9)
    ] == [
        "ok",
        "truncated",
        "trailing data",
        "truncated",
        "truncated",
        "not a certificate",
        "not a certificate",
    ]
    assert outer_status(b"\x30\x80\x00\x00") == "not a certificate"  # BER indefinite length
    assert outer_status(b"\x30\x82\x01") == "truncated"
    for sniff, hit in ((looks_like_pfx, pfx), (looks_like_pkcs7, p7), (looks_like_pkcs8, key)):
        assert sniff(hit)
        assert not any(sniff(other) for other in (der, m.csr.public_bytes(DER), b"", b"\x30\x80", hit[:3]))
    # BER indefinite-length outer SEQUENCE, as some Windows tools write PKCS#7.
    assert looks_like_pkcs7(b"\x30\x80" + p7[4:] + b"\0\0")


# --- robustness ----------------------------------------------------------------------------------


def attempt(data: bytes, **kw: object) -> None:
    """decode_upload may return or raise FindingsError with one error finding; nothing else."""
    kw.setdefault("subject", "chainUpload")
    kw.setdefault("max_bytes", CHAIN_MAX_BYTES)
    try:
        decode_upload(Upload(data, "f.pem"), **kw)  # type: ignore[arg-type]
    except FindingsError as e:
        assert len(e.findings) == 1 and e.findings[0].message.startswith(f"[{e.findings[0].id}] ")


PROPERTY = settings(max_examples=150, deadline=2000)  # deadline: a hang guard (certificates.md §8)


@PROPERTY
@given(st.binary(max_size=4096), st.sampled_from([None, 16]))
def test_arbitrary_bytes_only_raise_findings(data: bytes, max_blocks: int | None) -> None:
    attempt(data, max_blocks=max_blocks)


@PROPERTY
@given(st.text(max_size=600), st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_arbitrary_text_in_certificate_block(body: str, encoding: str) -> None:
    text = f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
    attempt(text.encode(encoding, errors="replace"))


_LINES = st.sampled_from(
    [
        "-----BEGIN CERTIFICATE-----",
        "-----END CERTIFICATE-----",
        "-----BEGIN X509 CRL-----",
        "-----END",
        "-----BEGIN",
        "-----BEGIN PKCS7-----",
        "",
        "  ",
        "MIIB",
        "AAAA",
        "====",
        "Bag Attributes",
        "\r",
        "-----BEGIN  -----",
    ]
)


@PROPERTY
@given(st.lists(st.one_of(_LINES, st.text(max_size=80)), max_size=40), st.sampled_from(["\n", "\r\n", "\r"]))
def test_arbitrary_line_soup(lines: list[str], newline: str) -> None:
    attempt(newline.join(lines).encode("utf-8", errors="replace"), max_blocks=16)


@pytest.fixture(scope="module")
def seeds(m: Material) -> list[bytes]:
    return [
        m.sub.public_bytes(DER),
        pem_of(m.sub, m.ca),
        m.csr.public_bytes(DER),
        pkcs7.serialize_certificates([m.ca], DER),
        pkcs12.serialize_key_and_certificates(b"x", m.ca_key, m.ca, None, NO_ENC),
        m.ca_key.private_bytes(DER, serialization.PrivateFormat.PKCS8, NO_ENC),
    ]


@PROPERTY
@given(st.data())
def test_mutated_valid_inputs(seeds: list[bytes], data: st.DataObject) -> None:
    buf = bytearray(data.draw(st.sampled_from(seeds)))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(buf)))
        op = data.draw(st.sampled_from(["set", "insert", "delete", "cut"]))
        if op == "set" and pos < len(buf):
            buf[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del buf[pos : pos + data.draw(st.integers(1, 8))]
        elif op == "cut":
            del buf[pos:]
    attempt(bytes(buf))


def _nested(depth: int) -> bytes:
    """`depth` SEQUENCEs nested in definite-length DER, built inside out."""
    data = b"\x05\x00"
    for _ in range(depth):
        n = len(data)
        data = b"\x30\x84" + n.to_bytes(4, "big") + data
    return data


@pytest.mark.parametrize(
    "data",
    [
        b"\x30\x80" * (1 << 20),
        _nested(20_000),
        b"-----BEGIN " + b" " * (2 << 20) + b"x",
        b"-----BEGIN CERTIFICATE-----\n" + b"A" * (2 << 20),
        b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n" * 40_000,
        b"\n" * (2 << 20),
        b"x\n" * (1 << 20),
        b"-----BEGIN PRIVATE KEY-----" * 70_000,
    ],
    ids=[
        "ber-nesting",
        "der-nesting",
        "long-boundary",
        "long-body",
        "many-blocks",
        "newlines",
        "lines",
        "one-line",
    ],
)
def test_large_and_nested_input_stays_fast(data: bytes) -> None:
    started = time.monotonic()
    attempt(data[: 2 << 20], max_bytes=2 << 20)
    attempt(data[: 2 << 20], max_bytes=2 << 20, max_blocks=16)
    assert time.monotonic() - started < 4  # two calls, each far below the 2 s hang guard
