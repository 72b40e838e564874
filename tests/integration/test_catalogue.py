"""The hostile-input catalogue of certificates.md §8, over real HTTP: every U and C row goes
through validateCert (row 50) and then through the real upload, which must agree with the
validator; every refusal leaves the certificate exactly as it was."""

from __future__ import annotations

import codecs
import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.conftest import Api, R
from tests.integration.helpers import CSR_FIELDS, snapshot, upload
from tests.pki import CA, TestPKI, new_key, openssl, pem

NOW = dt.datetime.now(dt.UTC)
CDP = x509.CRLDistributionPoints(
    [
        x509.DistributionPoint(
            [x509.UniformResourceIdentifier("http://pki.example.test/root.crl")], None, None, None
        )
    ]
)
SELF_TEST_IDS = {"root_unknown", "crl_url_loopback"}


@dataclass
class Ctx:
    """What a row's builder may use: the test PKIs, the CA's CSR, a scratch directory."""

    pki: TestPKI
    rsa_pki: TestPKI
    csr: x509.CertificateSigningRequest
    tmp: Path

    def good(self, issuer: CA | None = None, **kw: Any) -> x509.Certificate:
        """A well-formed intermediate for this CSR (with a CDP, so F24 stays quiet)."""
        extra = [(CDP, False), *kw.pop("extra_extensions", ())]
        return self.pki.sign_ca(self.csr, issuer=issuer, extra_extensions=extra, **kw)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def key_pem(key: Any, password: bytes | None = None) -> bytes:
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def openssl_v1(c: Ctx) -> bytes:
    """`openssl x509 -req` without an extensions file: a version 1 certificate."""
    c.tmp.mkdir(parents=True, exist_ok=True)
    (c.tmp / "csr.pem").write_bytes(c.csr.public_bytes(serialization.Encoding.PEM))
    (c.tmp / "root.pem").write_bytes(c.pki.root.cert_pem)
    (c.tmp / "root.key").write_bytes(c.pki.root.key_pem)
    result = openssl("x509", "-req", "-in", "csr.pem", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial",
                     "-days", "365", "-sha256", "-out", "v1.pem", cwd=c.tmp)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return (c.tmp / "v1.pem").read_bytes()


def reordered_subject(c: Ctx) -> x509.Name:
    """The CSR's subject with OU dropped and the RDNs in another order (CN first)."""
    attrs = [a for a in c.csr.subject if a.oid != NameOID.ORGANIZATIONAL_UNIT_NAME]
    return x509.Name(sorted(attrs, key=lambda a: a.oid != NameOID.COMMON_NAME))


def pss_max_salt(c: Ctx) -> bytes:
    builder = (
        x509.CertificateBuilder()
        .subject_name(c.csr.subject)
        .issuer_name(c.rsa_pki.root.cert.subject)
        .public_key(c.csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(c.csr.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(c.rsa_pki.root.cert.public_key()),
            critical=False,
        )  # type: ignore[arg-type]
        .add_extension(CDP, critical=False)
    )
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
    return pem(builder.sign(c.rsa_pki.root.key, hashes.SHA256(), rsa_padding=pss))


def critical(ext: x509.ExtensionType) -> tuple[x509.ExtensionType, bool]:
    return (ext, True)


@dataclass
class Row:
    """One catalogue input: `build` makes the file; `ids` lists the expected ids, the gate or
    first error first; `accepted` says whether the upload must pass."""

    name: str
    build: Callable[[Ctx], bytes]
    ids: list[str] = field(default_factory=list)
    accepted: bool = False
    filename: str = "certificate.pem"
    csr_fields: dict[str, Any] = field(default_factory=dict)
    selftest_error: str | None = None  # an accepted upload that the finalize self-test still refuses


P = pem
U_ROWS = [
    Row("1-pem", lambda c: P(c.good()), accepted=True),
    Row("1-der", lambda c: der(c.good()), accepted=True),
    Row("2-bom-crlf", lambda c: codecs.BOM_UTF8 + P(c.good()).replace(b"\n", b"\r\n"), accepted=True),
    Row("2-utf16", lambda c: P(c.good()).decode().encode("utf-16"), accepted=True),
    Row(
        "3-bag-attributes",
        lambda c: b"Bag Attributes\n    friendlyName: x\nsubject=/CN=x\n\n" + P(c.good()) + b"\n\n",
        accepted=True,
    ),  # fmt: skip
    Row(
        "3-one-line",
        lambda c: (
            b"-----BEGIN CERTIFICATE-----\n"
            + __import__("base64").b64encode(der(c.good()))
            + b"\n-----END CERTIFICATE-----\n"
        ),
        accepted=True,
    ),  # fmt: skip
    Row("4-file-name", lambda c: P(c.good()), ["invalid_file_name"], filename="x" * 61 + ".pem"),
    Row("5-large", lambda c: os.urandom(5_000_000), ["payload_too_large"]),
    Row(
        "5-just-over",
        lambda c: b"-----BEGIN CERTIFICATE-----\n" + b"QUFB\n" * 13107 + b"-----END CERTIFICATE-----\n",
        ["payload_too_large"],
    ),  # fmt: skip
    Row("6-empty", lambda c: b"", ["empty_upload"]),
    Row("6-whitespace", lambda c: b" \n\t\r\n ", ["empty_upload"]),
    Row("7-key-before-cert", lambda c: key_pem(new_key()) + P(c.good()), ["private_key_in_upload"]),
    Row("7-encrypted-key", lambda c: key_pem(new_key(), b"pw"), ["private_key_in_upload"]),
    Row(
        "7-der-key",
        lambda c: new_key().private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        ["private_key_in_upload"],
    ),  # fmt: skip
    Row(
        "8-pfx",
        lambda c: pkcs12.serialize_key_and_certificates(
            b"x", c.pki.root.key, c.pki.root.cert, None, serialization.NoEncryption()
        ),
        ["pkcs12_uploaded"],
    ),  # fmt: skip
    Row("9-csr-pem", lambda c: c.csr.public_bytes(serialization.Encoding.PEM), ["csr_uploaded"]),
    Row("9-csr-der", lambda c: c.csr.public_bytes(serialization.Encoding.DER), ["csr_uploaded"]),
    Row(
        "10-pkcs7-pem",
        lambda c: pkcs7.serialize_certificates([c.good()], serialization.Encoding.PEM),
        ["pkcs7_uploaded"],
    ),
    Row(
        "10-pkcs7-der",
        lambda c: pkcs7.serialize_certificates([c.good()], serialization.Encoding.DER),
        ["pkcs7_uploaded"],
    ),
    Row("11-crl", lambda c: b"-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n", ["wrong_pem_type"]),
    Row(
        "11-public-key",
        lambda c: c.csr.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        ["wrong_pem_type"],
    ),  # fmt: skip
    Row("12-random", lambda c: os.urandom(1500), ["malformed_certificate"]),
    Row(
        "12-half",
        lambda c: P(c.good())[: len(P(c.good())) // 2] + b"\n-----END CERTIFICATE-----\n",
        ["malformed_certificate"],
    ),
    Row("12-trailing", lambda c: der(c.good()) + b"0123456789", ["malformed_certificate"]),
    Row("13-with-root", lambda c: P(c.good(), c.pki.root.cert), ["expected_single_certificate"]),
    Row("14-root", lambda c: P(c.pki.root.cert), ["self_signed"]),
    Row(
        "15-other-key",
        lambda c: P(c.pki.sign_ca(new_key().public_key(), subject=c.csr.subject)),
        ["public_key_mismatch"],
    ),
    Row("16-v1", openssl_v1, ["not_v3"]),
    Row("17-ca-false", lambda c: P(c.good(basic_constraints=False)), ["not_a_ca"]),
    Row("17-no-bc", lambda c: P(c.good(basic_constraints=None)), ["not_a_ca"]),
    Row("18-bc-not-critical", lambda c: P(c.good(bc_critical=False)), ["basic_constraints_not_critical"]),
    Row(
        "19-pathlen",
        lambda c: P(c.good(path_length=1)),
        ["path_length_mismatch"],
        csr_fields={"pathLengthConstraint": 0},
    ),
    Row("20-no-pathlen", lambda c: P(c.good(path_length=None)), ["path_length_unconstrained"], accepted=True),
    Row("21-no-ku", lambda c: P(c.good(key_usage=None)), ["key_usage_missing"]),
    Row(
        "21-ku-ds-ke",
        lambda c: P(c.good(key_usage=("digital_signature", "key_encipherment"))),
        ["no_key_cert_sign", "no_crl_sign"],
    ),  # fmt: skip
    Row(
        "22-ku-noncritical",
        lambda c: P(c.good(key_usage=("key_cert_sign",), key_usage_critical=False)),
        ["key_usage_not_critical", "no_crl_sign"],
        accepted=True,
    ),  # fmt: skip
    Row(
        "23-eku-client",
        lambda c: P(c.good(eku=[ExtendedKeyUsageOID.CLIENT_AUTH])),
        ["eku_excludes_server_auth"],
    ),
    Row(
        "24-eku-server-client",
        lambda c: P(c.good(eku=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])),
        accepted=True,
    ),  # fmt: skip
    Row(
        "24-eku-any",
        lambda c: P(c.good(eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])),
        accepted=True,
        # OpenSSL accepts only serverAuth in a CA's EKU for server chains (anyExtendedKeyUsage does not
        # count): the real handshake fails, so finalize would refuse. The validator says so up front.
        selftest_error="selftest_handshake_failed",
    ),
    Row("25-no-ski", lambda c: P(c.good(ski=False)), ["ski_missing"]),
    Row("25-no-aki", lambda c: P(c.good(aki=False)), ["aki_missing"]),
    Row(
        "26-eku-critical",
        lambda c: P(
            c.good(extra_extensions=[critical(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]))])
        ),
        ["critical_extension_not_allowed"],
    ),  # fmt: skip
    Row(
        "26-aki-critical",
        lambda c: P(
            c.good(
                aki=False,
                extra_extensions=[
                    critical(x509.AuthorityKeyIdentifier.from_issuer_public_key(c.pki.root.cert.public_key()))
                ],
            )
        ),
        ["critical_extension_not_allowed"],
    ),  # fmt: skip
    Row(
        "26-policies-critical",
        lambda c: P(
            c.good(
                extra_extensions=[
                    critical(
                        x509.CertificatePolicies(
                            [x509.PolicyInformation(x509.ObjectIdentifier("2.5.29.32.0"), None)]
                        )
                    )
                ]
            )
        ),
        ["critical_extension_not_allowed"],
    ),  # fmt: skip
    Row(
        "27-unknown-critical",
        lambda c: P(
            c.good(
                extra_extensions=[
                    critical(
                        x509.UnrecognizedExtension(
                            x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.1"), b"\x05\x00"
                        )
                    )
                ]
            )
        ),
        ["unknown_critical_extension"],
    ),  # fmt: skip
    Row(
        "28-expired",
        lambda c: P(c.good(not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1))),
        ["expired"],
    ),  # fmt: skip
    Row("28-not-yet", lambda c: P(c.good(not_before=NOW + dt.timedelta(days=2))), ["not_yet_valid"]),
    # Within the skew the upload passes; a leaf cannot be valid before its CA, so the self-test
    # (and finalize) wait until the CA's notBefore has come.
    Row(
        "28-skew",
        lambda c: P(c.good(not_before=NOW + dt.timedelta(minutes=2))),
        accepted=True,
        selftest_error="selftest_verifier_failed",
    ),  # fmt: skip
    Row("28-too-soon", lambda c: P(c.good(not_after=NOW + dt.timedelta(days=10))), ["expires_too_soon"]),
    Row(
        "29-sha1",
        lambda c: P(c.rsa_pki.sign_ca(c.csr, hash_alg=hashes.SHA1(), extra_extensions=[(CDP, False)])),
        ["weak_signature"],
    ),  # fmt: skip
    Row(
        "29-md5",
        lambda c: P(c.rsa_pki.sign_ca(c.csr, hash_alg=hashes.MD5(), extra_extensions=[(CDP, False)])),
        ["weak_signature"],
    ),  # fmt: skip
    Row("29-pss-max-salt", pss_max_salt, ["unsupported_signature"]),
    Row("31-negative-serial", lambda c: P(c.good(serial=-0x5A5A)), ["negative_serial"]),
    # RFC 5280 verifiers (cryptography's among them) refuse a CA serial over 20 octets outright.
    Row(
        "31-long-serial",
        lambda c: P(c.good(serial=1 << 170)),
        ["serial_too_long"],
        accepted=True,
        selftest_error="selftest_verifier_failed",
    ),  # fmt: skip
    Row("32-other-cn", lambda c: P(c.good(subject="Someone Else CA")), ["subject_mismatch"]),
    Row(
        "32-reordered", lambda c: P(c.good(subject=reordered_subject(c))), ["subject_differs"], accepted=True
    ),
    Row(
        "33-name-constraints",
        lambda c: P(
            c.good(extra_extensions=[critical(x509.NameConstraints([x509.DNSName("allowed.test")], None))])
        ),
        ["name_constraints"],
        accepted=True,
    ),  # fmt: skip
]


@pytest.fixture(scope="module")
def rsa_pki() -> TestPKI:
    return TestPKI(key_type="rsa")


def csr_ca(api: Api, **csr_fields: Any) -> tuple[int, x509.CertificateSigningRequest]:
    ca_id = api.create("Catalogue CA", keyType="EC_P256")["id"]
    assert api.admin.post(f"{R}/keyPair/{ca_id}").status_code == 200
    resp = api.admin.post(f"{R}/generateCsr/{ca_id}", json={**CSR_FIELDS, **csr_fields})
    assert resp.status_code == 200, resp.text
    return ca_id, x509.load_pem_x509_csr(api.admin.get(f"{R}/downloadCsr/{ca_id}").content)


def validate(api: Api, ca_id: int, part: str, data: bytes, filename: str) -> dict[str, Any]:
    resp = api.admin.post(
        f"{R}/validateCert/{ca_id}", files={part: (filename, data, "application/octet-stream")}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def ids_of(report: dict[str, Any]) -> list[str]:
    return [f["id"] for f in report["findings"] if f["id"] not in SELF_TEST_IDS]


def check_row(api: Api, ca_id: int, step: str, part: str, row: Row, data: bytes) -> None:
    before = snapshot(api, ca_id)
    report = validate(api, ca_id, part, data, row.filename)
    found = ids_of(report)
    assert set(row.ids) <= set(found), (row.name, found)
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    if not row.accepted:
        assert report["valid"] is False and errors[0]["id"] == row.ids[0], (row.name, found)
    elif row.selftest_error:
        assert report["valid"] is False and [e["id"] for e in errors] == [row.selftest_error], (
            row.name,
            found,
        )
        assert set(found) - {row.selftest_error} == set(row.ids), (row.name, found)
    else:
        assert report["valid"] is True and set(found) == set(row.ids), (row.name, found)
    assert snapshot(api, ca_id) == before  # the validator changed nothing

    resp = upload(api.admin, step, ca_id, data, row.filename)
    if row.accepted:
        assert resp.status_code == 200, (row.name, resp.text)
    else:
        assert resp.status_code == 400, (row.name, resp.text)
        body = resp.json()
        assert body["code"] == "INVALID_INPUT_ARGUMENT"
        assert body["message"] == " ".join(f["message"] for f in errors), row.name  # the upload agrees
        assert snapshot(api, ca_id) == before


@pytest.mark.parametrize("row", U_ROWS, ids=lambda r: r.name)
def test_upload_cert_catalogue(api: Api, pki: TestPKI, rsa_pki: TestPKI, row: Row, tmp_path: Path) -> None:
    ca_id, csr = csr_ca(api, **row.csr_fields)
    ctx = Ctx(pki, rsa_pki, csr, tmp_path)
    check_row(api, ca_id, "uploadCert", "fileUpload", row, row.build(ctx))


# Chain rows: `build` returns the intermediate to upload first and the chain file.
@dataclass
class ChainRow:
    name: str
    build: Callable[[Ctx], tuple[x509.Certificate, bytes]]
    ids: list[str] = field(default_factory=list)
    accepted: bool = False
    filename: str = "chain.pem"
    csr_fields: dict[str, Any] = field(default_factory=dict)


def under_policy(c: Ctx, policy: CA | None = None) -> tuple[x509.Certificate, CA]:
    policy = policy or c.pki.sub_ca("Policy CA", path_length=1)
    return c.good(issuer=policy), policy


def look_alike_root(c: Ctx) -> CA:
    return c.pki.new_root(c.pki.root.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def encoding_mismatch(c: Ctx) -> tuple[x509.Certificate, bytes]:
    """The root's name in PrintableString, the intermediate's issuer in UTF8String."""
    from cryptography.x509.name import _ASN1Type  # test-only access to string types

    key = new_key()
    printable = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "Encoding Root", _ASN1Type.PrintableString)]
    )
    utf8 = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Encoding Root", _ASN1Type.UTF8String)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    root = (
        x509.CertificateBuilder().subject_name(printable).issuer_name(printable).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(ski, critical=False).sign(key, hashes.SHA256())
    )  # fmt: skip
    fake_issuer = CA(key, root)
    inter = c.good(issuer=fake_issuer)
    # Re-issue with the issuer name in UTF8String, signed by the same key.
    rebuilt = (
        x509.CertificateBuilder().subject_name(inter.subject).issuer_name(utf8).public_key(inter.public_key())
        .serial_number(inter.serial_number).not_valid_before(inter.not_valid_before_utc)
        .not_valid_after(inter.not_valid_after_utc)
    )  # fmt: skip
    for ext in inter.extensions:
        rebuilt = rebuilt.add_extension(ext.value, ext.critical)
    return rebuilt.sign(key, hashes.SHA256()), P(root)


def loop(c: Ctx) -> tuple[x509.Certificate, bytes]:
    """Two CAs that sign each other, no root; the intermediate under one of them."""
    ka, kb = new_key(), new_key()
    a_name, b_name = "Loop A", "Loop B"
    a = c.pki.sign_ca(ka.public_key(), subject=a_name, issuer=CA(kb, c.pki.sign_ca(kb.public_key(), subject=b_name)),
                      path_length=None)  # fmt: skip
    b = c.pki.sign_ca(kb.public_key(), subject=b_name, issuer=CA(ka, a), path_length=None)
    return c.good(issuer=CA(ka, a)), P(b, a)


C_ROWS = [
    ChainRow("34-root", lambda c: (c.good(), P(c.pki.root.cert)), accepted=True),
    ChainRow("34-root-der", lambda c: (c.good(), der(c.pki.root.cert)), accepted=True),
    ChainRow(
        "34-policy-root",
        lambda c: (lambda i, p: (i, P(p.cert, c.pki.root.cert)))(*under_policy(c)),
        accepted=True,
    ),
    ChainRow(
        "35-reordered",
        lambda c: (lambda i, p: (i, P(c.pki.root.cert, p.cert)))(*under_policy(c)),
        ["chain_reordered"],
        accepted=True,
    ),  # fmt: skip
    ChainRow(
        "35-with-intermediate",
        lambda c: (lambda i: (i, P(i, c.pki.root.cert)))(c.good()),
        ["chain_contains_intermediate"],
        accepted=True,
    ),  # fmt: skip
    ChainRow(
        "36-duplicate", lambda c: (c.good(), P(c.pki.root.cert, c.pki.root.cert)), ["duplicate_certificate"]
    ),
    ChainRow(
        "36-leaf",
        lambda c: (
            c.good(),
            P(c.pki.sign_ca(new_key().public_key(), basic_constraints=False), c.pki.root.cert),
        ),
        ["non_ca_in_chain"],
    ),  # fmt: skip
    ChainRow("37-missing-policy", lambda c: (under_policy(c)[0], P(c.pki.root.cert)), ["incomplete_chain"]),
    ChainRow("37-no-root", lambda c: (lambda i, p: (i, P(p.cert)))(*under_policy(c)), ["incomplete_chain"]),
    ChainRow("38-look-alike", lambda c: (c.good(), P(look_alike_root(c).cert)), ["signature_mismatch"]),
    ChainRow("40-encoding", encoding_mismatch, ["issuer_name_encoding_mismatch"]),
    ChainRow(
        "41-aki-ski",
        lambda c: (c.good(aki=x509.AuthorityKeyIdentifier(b"\x01" * 20, None, None)), P(c.pki.root.cert)),
        ["aki_ski_mismatch"],
    ),  # fmt: skip
    ChainRow("42-loop", loop, ["chain_loop"]),
    ChainRow(
        "43-pathlen-0",
        lambda c: (lambda i, p: (i, P(p.cert, c.pki.root.cert)))(
            *under_policy(c, c.pki.sub_ca("Policy CA", path_length=0))
        ),
        ["path_length_exceeded"],
    ),  # fmt: skip
    ChainRow(
        "44-policy-expired",
        lambda c: (lambda p: (c.good(issuer=p), P(p.cert, c.pki.root.cert)))(
            CA(
                k := new_key(),
                c.pki.sign_ca(
                    k.public_key(),
                    subject="Expired Policy CA",
                    path_length=None,
                    not_before=NOW - dt.timedelta(days=400),
                    not_after=NOW - dt.timedelta(days=1),
                ),
            )
        ),
        ["expired", "chain_expires_first"],
    ),  # fmt: skip
    ChainRow(
        "45-policy-sha1",
        lambda c: (lambda p: (c.good(issuer=p), P(p.cert, c.rsa_pki.root.cert)))(
            CA(
                k := new_key(),
                c.rsa_pki.sign_ca(
                    k.public_key(), subject="SHA1 Policy CA", path_length=None, hash_alg=hashes.SHA1()
                ),
            )
        ),
        ["weak_signature"],
    ),  # fmt: skip
    ChainRow(
        "45-rsa1024-root",
        lambda c: (lambda r: (c.good(issuer=r), P(r.cert)))(c.pki.new_root("Weak Root", "rsa-1024")),
        ["weak_key"],
    ),  # fmt: skip
    ChainRow(
        "45-policy-client-eku",
        lambda c: (lambda p: (c.good(issuer=p), P(p.cert, c.pki.root.cert)))(
            CA(
                k := new_key(),
                c.pki.sign_ca(
                    k.public_key(),
                    subject="Client Policy CA",
                    path_length=None,
                    eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
                ),
            )
        ),
        ["eku_excludes_server_auth"],
    ),  # fmt: skip
    ChainRow(
        "46-root-expires-first",
        lambda c: (lambda r: (c.good(issuer=r, days=3000), P(r.cert)))(
            c.pki.new_root("Short Root", days=200)
        ),
        ["chain_expires_first"],
        accepted=True,
    ),  # fmt: skip
    ChainRow(
        "47-unused",
        lambda c: (c.good(), P(c.pki.root.cert, c.pki.new_root("Unrelated Root").cert)),
        ["unused_certificate"],
        accepted=True,
    ),  # fmt: skip
    ChainRow(
        "48-too-long",
        lambda c: (c.good(), P(*[c.pki.new_root(f"R{i}").cert for i in range(17)])),
        ["chain_too_long"],
    ),
    ChainRow("48-too-large", lambda c: (c.good(), b"x" * 1_500_000), ["payload_too_large"]),
    ChainRow("49-empty", lambda c: (c.good(), b""), ["empty_upload"]),
    ChainRow("49-hello", lambda c: (c.good(), b"hello world"), ["malformed_certificate"]),
    ChainRow("49-key", lambda c: (c.good(), key_pem(new_key())), ["private_key_in_upload"]),
]


@pytest.mark.parametrize("row", C_ROWS, ids=lambda r: r.name)
def test_upload_chain_catalogue(
    api: Api, pki: TestPKI, rsa_pki: TestPKI, row: ChainRow, tmp_path: Path
) -> None:
    ca_id, csr = csr_ca(api, **row.csr_fields)
    intermediate, chain = row.build(Ctx(pki, rsa_pki, csr, tmp_path))
    first = upload(api.admin, "uploadCert", ca_id, pem(intermediate))
    assert first.status_code == 200, first.text
    check_row(api, ca_id, "uploadCertChain", "chainUpload", Row(row.name, lambda c: chain, row.ids, row.accepted,
              row.filename), chain)  # fmt: skip


def test_any_order_with_the_intermediate_repeated_is_stored_in_path_order(api: Api, pki: TestPKI, rsa_pki: TestPKI,
                                                                         tmp_path: Path) -> None:  # fmt: skip
    ca_id, csr = csr_ca(api)
    intermediate, policy = under_policy(Ctx(pki, rsa_pki, csr, tmp_path))
    assert upload(api.admin, "uploadCert", ca_id, pem(intermediate)).status_code == 200
    chain = P(pki.root.cert, intermediate, policy.cert, intermediate)
    report = validate(api, ca_id, "chainUpload", chain, "chain.pem")
    assert report["valid"] and {"chain_reordered", "chain_contains_intermediate"} <= set(ids_of(report))
    assert upload(api.admin, "uploadCertChain", ca_id, chain).status_code == 200
    stored = x509.load_pem_x509_certificates(api.admin.get(f"{R}/downloadCertChain/{ca_id}").content)
    assert stored == [intermediate, policy.cert, pki.root.cert]
