"""A test PKI made on the fly: the organisation's root, its policy CAs, and intermediates with any
defect a test needs (like trustme, but with knobs).

Deliberately independent of interca's own X.509 builders (`interca.domain.x509.*`): tests that
check interca's certificates against certificates made here must not check code against itself.
`openssl_sign_csr` goes one step further and signs exactly as an administrator would with OpenSSL.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

_KEY_USAGE_FLAGS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


class _FromCsr:
    def __repr__(self) -> str:
        return "FROM_CSR"


FROM_CSR: Any = _FromCsr()
"""`sign_ca(path_length=...)` default: the pathLen the CSR requests, else 0."""


class CA(NamedTuple):
    """A key and its certificate; unpacks as `(key, cert)`."""

    key: Any
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def new_key(key_type: str = "ec") -> Any:
    """`"ec"`/`"ec-p256"`, `"ec-p384"`, `"rsa"`/`"rsa-2048"`, `"rsa-<bits>"`."""
    if key_type in ("ec", "ec-p256"):
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise ValueError(key_type)


def pem(*certs: x509.Certificate) -> bytes:
    """The certificates as one PEM bundle, in the order given."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _name(subject: x509.Name | str) -> x509.Name:
    if isinstance(subject, x509.Name):
        return subject
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])


def _ski_of(cert: x509.Certificate) -> x509.SubjectKeyIdentifier | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None


class TestPKI:
    """An organisation's PKI for one test (or one module): a root made on first use, and
    certificates signed on demand. `now` is fixed at construction so results are reproducible."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, key_type: str = "ec", now: dt.datetime | None = None) -> None:
        self.key_type = key_type
        self.now = now or dt.datetime.now(dt.UTC)
        self._root: CA | None = None

    @property
    def root(self) -> CA:
        """The root (`key_type` "ec" = P-256, "rsa" = RSA-2048), made on first use."""
        if self._root is None:
            self._root = self.new_root("interca Test Root CA", self.key_type)
        return self._root

    def new_root(
        self,
        cn: str | x509.Name,
        key_type: str = "ec",
        *,
        days: int = 3650,
        key: Any = None,
        path_length: int | None = None,
        extra_extensions: Iterable[tuple[x509.ExtensionType, bool]] = (),
    ) -> CA:
        """A self-signed root: critical CA:TRUE (pathLen `path_length`, default none), critical
        keyCertSign + cRLSign, SKI. `cn` may be a whole `x509.Name` (string types kept); `key`
        defaults to a new one of `key_type`; `extra_extensions` are `(extension, critical)` pairs."""
        key = key or new_key(key_type)
        name = _name(cn)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(_key_usage(("key_cert_sign", "crl_sign")), critical=True)
            .add_extension(ski, critical=False)
        )
        for extension, critical in extra_extensions:
            builder = builder.add_extension(extension, critical=critical)
        return CA(key, builder.sign(key, hashes.SHA256()))

    def sign_ca(
        self,
        csr_or_public_key: Any,
        *,
        subject: x509.Name | str | None = None,
        path_length: int | None = FROM_CSR,
        issuer: CA | tuple[Any, x509.Certificate] | None = None,
        days: int = 365,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        hash_alg: hashes.HashAlgorithm | None = hashes.SHA256(),  # noqa: B008
        key_usage: Sequence[str] | None = ("key_cert_sign", "crl_sign"),
        key_usage_critical: bool = True,
        basic_constraints: bool | None = True,
        bc_critical: bool = True,
        ski: bool = True,
        aki: bool | x509.AuthorityKeyIdentifier = True,
        eku: Sequence[x509.ObjectIdentifier] | None = None,
        extra_extensions: Iterable[tuple[x509.ExtensionType, bool]] = (),
        serial: int | None = None,
    ) -> x509.Certificate:
        """Issue a CA certificate for a CSR or a bare public key, defects on request.

        - `subject`: default the CSR's subject, or `CN=Test Intermediate` for a bare key.
        - `path_length`: default the CSR's requested pathLen (0 without one); `None` = no pathLen.
        - `issuer`: default `self.root`.
        - validity: `not_before` (default now - 1 hour) to `not_after` (default now + `days`).
        - `key_usage`: KeyUsage flag names, or `None` to leave the extension out.
        - `basic_constraints`: `True` CA:TRUE, `False` CA:FALSE, `None` leave it out.
        - `ski` / `aki`: include them (AKI = the issuer's SKI, else computed from its key);
          an `AuthorityKeyIdentifier` for `aki` is used as given (a wrong AKI).
        - `eku`: extendedKeyUsage OIDs (non-critical), `None` to leave it out.
        - `extra_extensions`: `(extension, critical)` pairs added last.
        - `hash_alg`: any hash, SHA-1 and MD5 included; `serial`: any integer, <= 0 included.
        """
        if isinstance(csr_or_public_key, x509.CertificateSigningRequest):
            csr: x509.CertificateSigningRequest | None = csr_or_public_key
            public_key = csr_or_public_key.public_key()
        else:
            csr, public_key = None, csr_or_public_key
        if subject is None:
            subject = csr.subject if csr is not None else "Test Intermediate"
        if path_length is FROM_CSR:
            path_length = requested_path_length(csr) if csr is not None else 0
        issuer_key, issuer_cert = issuer if issuer is not None else self.root
        # The builder refuses serials <= 0 or >= 2**159 and SHA-1/MD5: `resign` reaches those.
        buildable = serial is not None and 0 < serial < 2**159

        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(issuer_cert.subject)
            .public_key(public_key)
            .serial_number(serial if buildable else x509.random_serial_number())
            .not_valid_before(not_before or self.now - dt.timedelta(hours=1))
            .not_valid_after(not_after or self.now + dt.timedelta(days=days))
        )
        if basic_constraints is not None:
            builder = builder.add_extension(
                x509.BasicConstraints(
                    ca=basic_constraints, path_length=path_length if basic_constraints else None
                ),
                critical=bc_critical,
            )
        if key_usage is not None:
            builder = builder.add_extension(_key_usage(key_usage), critical=key_usage_critical)
        if ski:
            builder = builder.add_extension(
                x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
            )
        if isinstance(aki, x509.AuthorityKeyIdentifier):
            builder = builder.add_extension(aki, critical=False)
        elif aki:
            issuer_ski = _ski_of(issuer_cert)
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski)
                if issuer_ski is not None
                else x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),
                critical=False,
            )
        if eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        for extension, critical in extra_extensions:
            builder = builder.add_extension(extension, critical=critical)
        legacy_hash = hash_alg is not None and hash_alg.name in ("sha1", "md5")
        if legacy_hash or (serial is not None and not buildable):
            draft = builder.sign(issuer_key, None if hash_alg is None else hashes.SHA256())
            return resign(draft, issuer_key, hash_alg, serial=None if buildable else serial)
        return builder.sign(issuer_key, hash_alg)

    def sub_ca(
        self,
        cn: str,
        issuer: CA | tuple[Any, x509.Certificate] | None = None,
        path_length: int | None = None,
        key_type: str = "ec",
    ) -> CA:
        """A well-formed CA under `issuer` (default the root), e.g. an org's policy CA."""
        key = new_key(key_type)
        cert = self.sign_ca(key.public_key(), subject=cn, issuer=issuer, path_length=path_length, days=1825)
        return CA(key, cert)

    pem = staticmethod(pem)


# Signature algorithms CertificateBuilder refuses but uploads must be tested with (F16).
_LEGACY_SIGNATURES = {
    ("rsa", "sha1"): ("1.2.840.113549.1.1.5", True),
    ("rsa", "md5"): ("1.2.840.113549.1.1.4", True),
    ("ec", "sha1"): ("1.2.840.10045.4.1", False),
}


def resign(
    cert: x509.Certificate,
    issuer_key: Any,
    hash_alg: hashes.HashAlgorithm | None,
    *,
    serial: int | None = None,
) -> x509.Certificate:
    """Re-sign `cert` by hand with `hash_alg`, optionally with another serial: reaches what
    `CertificateBuilder` refuses: serials <= 0 or of 20+ octets (certificates.md F19, F20) and
    SHA-1/MD5 signatures (F16)."""
    tbs, algorithm, _ = _children(cert.public_bytes(serialization.Encoding.DER))
    fields = _children(tbs)
    at = 1 if fields[0][0] == 0xA0 else 0  # [0] version precedes the serial in v2/v3
    if serial is not None:
        length = (serial.bit_length() + 8) // 8  # two's complement, minimal, room for the sign bit
        fields[at] = _tlv(0x02, serial.to_bytes(length, "big", signed=True))
    family = "rsa" if isinstance(issuer_key, rsa.RSAPrivateKey) else "ec"
    legacy = _LEGACY_SIGNATURES.get((family, hash_alg.name)) if hash_alg is not None else None
    if legacy is not None:
        oid, null_params = legacy
        algorithm = _tlv(0x30, _oid(oid) + (b"\x05\x00" if null_params else b""))
        fields[at + 1] = algorithm  # TBSCertificate.signature must equal the outer algorithm
    new_tbs = _tlv(0x30, b"".join(fields))
    if isinstance(issuer_key, rsa.RSAPrivateKey):
        signature = issuer_key.sign(new_tbs, padding.PKCS1v15(), hash_alg)
    elif isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        signature = issuer_key.sign(new_tbs, ec.ECDSA(hash_alg))
    else:
        signature = issuer_key.sign(new_tbs)
    der = _tlv(0x30, new_tbs + algorithm + _tlv(0x03, b"\x00" + signature))
    return x509.load_der_x509_certificate(der)


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(part) for part in dotted.split("."))
    body = bytearray()
    for arc in [40 * first + second, *rest]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _children(der: bytes) -> list[bytes]:
    """The element TLVs inside one DER SEQUENCE (definite lengths only, as DER requires)."""

    def header(at: int) -> tuple[int, int]:
        first = der[at + 1]
        if first < 0x80:
            return 2, first
        count = first & 0x7F
        return 2 + count, int.from_bytes(der[at + 2 : at + 2 + count], "big")

    head, length = header(0)
    at, end, out = head, head + length, []
    while at < end:
        head, length = header(at)
        out.append(der[at : at + head + length])
        at += head + length
    return out


def requested_path_length(csr: x509.CertificateSigningRequest) -> int:
    """The pathLen in the CSR's extensionRequest, 0 when it names none."""
    try:
        value = csr.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return 0
    return value.path_length if value.path_length is not None else 0


def _key_usage(flags: Sequence[str]) -> x509.KeyUsage:
    unknown = set(flags) - set(_KEY_USAGE_FLAGS)
    if unknown:
        raise ValueError(f"unknown keyUsage flags: {sorted(unknown)}")
    return x509.KeyUsage(**{flag: flag in flags for flag in _KEY_USAGE_FLAGS})


def openssl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the openssl CLI; never raises on a non-zero exit (tests look at returncode)."""
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def openssl_sign_csr(
    csr_pem: bytes,
    root_cert_pem: bytes,
    root_key_pem: bytes,
    workdir: Path,
    *,
    path_length: int | None = None,
    days: int = 365,
) -> bytes:
    """Sign a CSR exactly as an administrator following ZIA's instructions would with OpenSSL:

        openssl x509 -req -in csr.pem -CA root.pem -CAkey root.key -CAcreateserial \\
            -days 365 -sha256 -extfile ext.cnf -extensions v3_ca

    with critical basicConstraints CA:TRUE pathlen:<n> (n = `path_length`, default the CSR's
    requested pathLen, else 0), critical keyUsage keyCertSign + cRLSign, SKI (hash) and AKI
    (keyid:always). Returns the certificate PEM; raises `AssertionError` with OpenSSL's stderr
    if it fails.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if path_length is None:
        path_length = requested_path_length(x509.load_pem_x509_csr(csr_pem))
    (workdir / "csr.pem").write_bytes(csr_pem)
    (workdir / "root.pem").write_bytes(root_cert_pem)
    (workdir / "root.key").write_bytes(root_key_pem)
    (workdir / "root.key").chmod(0o600)
    (workdir / "ext.cnf").write_text(
        "[v3_ca]\n"
        f"basicConstraints=critical,CA:TRUE,pathlen:{path_length}\n"
        "keyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid:always\n"
    )
    result = openssl(
        "x509", "-req", "-in", "csr.pem", "-CA", "root.pem", "-CAkey", "root.key",
        "-CAcreateserial", "-days", str(days), "-sha256",
        "-extfile", "ext.cnf", "-extensions", "v3_ca", "-out", "cert.pem",
        cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return (workdir / "cert.pem").read_bytes()


def openssl_verify(
    workdir: Path, cafile_pem: bytes, cert_pem: bytes, untrusted_pem: bytes | None = None, *extra: str
) -> subprocess.CompletedProcess[str]:
    """`openssl verify -x509_strict -CAfile ca.pem [-untrusted chain.pem] cert.pem` in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "verify-ca.pem").write_bytes(cafile_pem)
    (workdir / "verify-cert.pem").write_bytes(cert_pem)
    args = ["verify", "-x509_strict", "-CAfile", "verify-ca.pem", *extra]
    if untrusted_pem is not None:
        (workdir / "verify-untrusted.pem").write_bytes(untrusted_pem)
        args += ["-untrusted", "verify-untrusted.pem"]
    return openssl(*args, "verify-cert.pem", cwd=workdir)
