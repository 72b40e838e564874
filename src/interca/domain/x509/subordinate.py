"""The lab helper's CA (`interca lab`): a throw-away root that plays the organisation's root CA
and signs interca's CSRs the way ZIA's documentation tells administrators to.

Owns the lab root's profile and the subordinate-CA profile it issues. Not used by the service
itself: it exists so demos and tests can complete generateCsr -> uploadCert without a real PKI.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

from interca.domain.x509.builtin import BACKDATE
from interca.domain.x509.csr import SignatureHash, ca_key_usage, signature_valid
from interca.errors import InvalidInput

ROOT_KEY_TYPES = ("rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384")


def create_root(
    common_name: str, now: dt.datetime, key_type: str = "rsa-3072", days: int = 3650
) -> tuple[CertificateIssuerPrivateKeyTypes, x509.Certificate]:
    """Generate a key and a self-signed root certificate `CN=<common_name>`.

    Profile: critical basicConstraints CA:TRUE without pathLen, critical keyUsage keyCertSign +
    cRLSign, SKI; notBefore = `now` - 1 hour, notAfter = `now` + `days`; signed with SHA-384 for
    P-384 and SHA-256 otherwise. `key_type` is one of `ROOT_KEY_TYPES`.

    Raises: `InvalidInput` for an unknown key type, an empty or over-long common name (RFC 5280
    ub-common-name is 64) or `days` < 1.
    """
    if key_type not in ROOT_KEY_TYPES:
        raise InvalidInput(f"Unknown key type {key_type!r}; allowed: {', '.join(ROOT_KEY_TYPES)}.")
    if not common_name.strip() or len(common_name) > 64:
        raise InvalidInput("The common name must be 1-64 characters.")
    if days < 1:
        raise InvalidInput("days must be at least 1.")
    key = _generate_key(key_type)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Backdated like the built-in CA, for clients whose clock runs behind.
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        # RFC 5280 §4.2.1.9: critical in CA certificates; no pathLen, so whatever the CSR
        # requests below it remains a valid path.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, _hash_for(key))
    )
    return key, cert


def sign_subordinate(
    csr: x509.CertificateSigningRequest,
    issuer_cert: x509.Certificate,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    now: dt.datetime,
    days: int = 1825,
    hash_alg: SignatureHash | None = None,
) -> x509.Certificate:
    """Issue a subordinate CA certificate for `csr`, as ZIA tells the organisation's CA to.

    Subject: the CSR's, attribute for attribute (order and string types kept). Issuer: the
    issuer certificate's subject. Extensions: critical basicConstraints CA:TRUE with the pathLen
    the CSR's extensionRequest asks for (0 when it asks for none), critical keyUsage keyCertSign +
    cRLSign, SKI from the CSR's key, AKI = the issuer's SKI value byte for byte. Validity:
    `now` - 1 hour (not before the issuer's notBefore) to `now` + `days`, cut at the issuer's
    notAfter (RFC 5280 §6.1.3 validates every certificate of the path at the same time, so a
    longer life would be unusable). Signed with `hash_alg` (default SHA-256).

    Raises: `InvalidInput` if the CSR signature does not verify, its extensions cannot be read,
    the issuer key does not match the issuer certificate, the issuer is not a CA that may have
    a subordinate CA, the issuer has expired, or `days` < 1.
    """
    if not signature_valid(csr):
        raise InvalidInput("The CSR signature does not verify.")
    if days < 1:
        raise InvalidInput("days must be at least 1.")
    if issuer_key.public_key() != issuer_cert.public_key():
        raise InvalidInput("The issuer key does not match the issuer certificate.")
    _check_issuer_may_sign_ca(issuer_cert)
    not_before = max(now - BACKDATE, issuer_cert.not_valid_before_utc)
    not_after = min(now + dt.timedelta(days=days), issuer_cert.not_valid_after_utc)
    if not_after <= now:
        raise InvalidInput("The issuer certificate has expired.")

    public_key = csr.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(issuer_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=requested_path_length(csr)), critical=True)
        .add_extension(ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        # RFC 5280 §4.2.1.1: AKI non-critical, keyIdentifier = the issuer's SKI as it is written
        # in the issuer certificate (issuers compute SKIs by different methods).
        .add_extension(_authority_key_identifier(issuer_cert), critical=False)
        .sign(issuer_key, hash_alg or hashes.SHA256())
    )


def requested_path_length(csr: x509.CertificateSigningRequest) -> int:
    """The pathLenConstraint in the CSR's extensionRequest; 0 when it names none.

    Raises: `InvalidInput` if the extensionRequest cannot be parsed.
    """
    try:
        constraints = csr.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return 0
    except ValueError as exc:  # DuplicateExtension and malformed DER are ValueErrors
        raise InvalidInput("The CSR's extensionRequest cannot be read.") from exc
    if constraints.ca and constraints.path_length is not None:
        return constraints.path_length
    return 0


def _check_issuer_may_sign_ca(issuer_cert: x509.Certificate) -> None:
    try:
        constraints = issuer_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise InvalidInput("The issuer certificate is not a CA (basicConstraints CA:TRUE).")
    # RFC 5280 §4.2.1.9: pathLen 0 allows no CA certificate below it in a path.
    if constraints.path_length == 0:
        raise InvalidInput("The issuer has pathLenConstraint 0, so it cannot sign a subordinate CA.")


def _authority_key_identifier(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        # No SKI to copy (an old root): RFC 5280 §4.2.1.2 method 1, what most issuers use.
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _generate_key(key_type: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    family, size = key_type.split("-")
    if family == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=int(size))
    return ec.generate_private_key(ec.SECP384R1() if size == "p384" else ec.SECP256R1())


def _hash_for(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> SignatureHash:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()
