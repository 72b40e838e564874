"""The PKCS#10 request a custom CA sends to the organisation's CA (api.md §3.3), and the
public-key facts shown next to it (SPKI PEM, key size).

Owns the CSR profile: subject RDN order and string types, the extensionRequest (critical
basicConstraints with the requested pathLen, critical keyUsage keyCertSign + cRLSign) and the
signature hash. Signing goes through the key object's own `sign`, so software and HSM keys
take the same path (hsm.md §5).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from interca.domain.models import CsrSubject, SignatureAlgorithm
from interca.errors import InvalidInput, KeyStoreError

# The hashes a CA signature may use here (certificates.md F16/F17 accept no others).
SignatureHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512

_HASHES: dict[SignatureAlgorithm, type[SignatureHash]] = {
    SignatureAlgorithm.SHA256: hashes.SHA256,
    SignatureAlgorithm.SHA384: hashes.SHA384,
    SignatureAlgorithm.SHA512: hashes.SHA512,
}


def hash_for(algorithm: SignatureAlgorithm) -> SignatureHash:
    """The `cryptography` hash object for a `signatureAlgorithm` value."""
    return _HASHES[algorithm]()


def subject_name(subject: CsrSubject) -> x509.Name:
    """The CSR subject: one attribute per RDN, encoded in the order C, ST, L, O, OU, CN.

    `x509.Name` encodes its list in order, so the most general RDN comes first (RFC 5280
    §4.1.2.4 compares names RDN by RDN, so order is part of the name). countryName is a
    PrintableString (RFC 5280 Appendix A: `X520countryName ::= PrintableString (SIZE (2))`);
    everything else is UTF8String, which RFC 5280 §4.1.2.4 says conforming CAs MUST use for
    DirectoryString. No C attribute when `country` is `NONE`.
    """
    utf8 = _ASN1Type.UTF8String
    attributes: list[x509.NameAttribute[str]] = []
    code = subject.country_code
    if code is not None:
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, code, _ASN1Type.PrintableString))
    attributes += [
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, subject.state, utf8),
        x509.NameAttribute(NameOID.LOCALITY_NAME, subject.city, utf8),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject.org_name, utf8),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, subject.dept_name, utf8),
        x509.NameAttribute(NameOID.COMMON_NAME, subject.comm_name, utf8),
    ]
    return x509.Name(attributes)


def ca_key_usage() -> x509.KeyUsage:
    """keyCertSign + cRLSign and nothing else: what a CA that only issues certificates and CRLs
    needs (RFC 5280 §4.2.1.3); digitalSignature is left out, as the leaf profile never uses the CA
    key for anything but certificate and CRL signatures."""
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def build_csr(
    subject: CsrSubject, private_key: CertificateIssuerPrivateKeyTypes
) -> x509.CertificateSigningRequest:
    """Build and sign the PKCS#10 request of a custom CA (api.md §3.3).

    Subject: `subject_name(subject)` (C, ST, L, O, OU, CN). extensionRequest: critical
    basicConstraints CA:TRUE with pathLenConstraint = `subject.path_length_constraint`, critical
    keyUsage keyCertSign + cRLSign. Signature: `subject.signature_algorithm` with RSA PKCS#1 v1.5
    or ECDSA, whichever the key is.

    `private_key` may be an HSM-backed object that subclasses `rsa.RSAPrivateKey` or
    `ec.EllipticCurvePrivateKey` and implements only `sign` and `public_key`: nothing else is
    called on it, and the one `sign` call happens inside the builder.

    Pre: `subject` was validated (api.md §3.3); `subject.key_size` agrees with the key.
    Post: the returned request's signature verifies under its own public key.
    Raises: `InvalidInput` if `subject.key_size` differs from the key's size; `TypeError` for a
    key that is neither RSA nor EC; `KeyStoreError("signature_invalid")` if the key store returned
    a signature that does not verify (e.g. a mislabelled mechanism, hsm.md §5); whatever the key
    object's `sign` raises (key stores raise `KeyStoreError`).
    """
    if not isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise TypeError(f"A CA key must be RSA or EC, not {type(private_key).__name__}")
    bits = key_size(private_key.public_key())
    if subject.key_size != bits:
        raise InvalidInput(f"keySize {subject.key_size} does not match the key ({bits} bits).")

    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject_name(subject))
        # RFC 5280 §4.2.1.9: basicConstraints MUST be critical in CA certificates; the request
        # carries the pathLen the CA asks for, and uploadCert checks the issued one against it.
        .add_extension(
            x509.BasicConstraints(ca=True, path_length=subject.path_length_constraint), critical=True
        )
        # RFC 5280 §4.2.1.3: keyUsage SHOULD be critical; strict clients insist on it for CAs.
        .add_extension(ca_key_usage(), critical=True)
    )
    # For RSA keys the builder defaults to PKCS#1 v1.5; ECDSA needs no padding.
    csr = builder.sign(private_key, hash_for(subject.signature_algorithm))
    if not signature_valid(csr):
        raise KeyStoreError(
            "signature_invalid", "The key store produced a CSR signature that does not verify."
        )
    return csr


def signature_valid(csr: x509.CertificateSigningRequest) -> bool:
    """True when the request's signature verifies with its own key."""
    # A garbled ECDSA signature can fail to decode instead of failing to verify; both mean "no".
    try:
        return csr.is_signature_valid
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False


def csr_pem(csr: x509.CertificateSigningRequest) -> str:
    """The request as PEM text (`CERTIFICATE REQUEST`), `\\n` line ends, ending in `\\n`."""
    return _pem_text(csr.public_bytes(serialization.Encoding.PEM))


def public_key_pem(public_key: PublicKeyTypes) -> str:
    """The key as SubjectPublicKeyInfo PEM (`PUBLIC KEY`), `\\n` line ends, ending in `\\n`."""
    return _pem_text(
        public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def key_size(public_key: PublicKeyTypes) -> int:
    """RSA modulus bits, or the EC curve's bits (256 for P-256, 384 for P-384).

    Raises: `TypeError` for any other key type.
    """
    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key.key_size
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return public_key.curve.key_size
    raise TypeError(f"No key size for {type(public_key).__name__}")


def _pem_text(data: bytes) -> str:
    text = data.decode("ascii").replace("\r\n", "\n")
    return text if text.endswith("\n") else text + "\n"
