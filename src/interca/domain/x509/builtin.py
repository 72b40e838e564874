"""The built-in CA's certificates (certificates.md §6.5): a root and the intermediate it signs.

Owns the profile of both certificates: names, validity, extensions and serials. The keys come
from the caller (the key store), and the first-start service stores the result and runs the §2
and §5 checks on the intermediate.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from interca.domain.x509.csr import ca_key_usage

ROOT_KEY_BITS = 3072
INTERMEDIATE_KEY_BITS = 2048
ROOT_YEARS = 30
INTERMEDIATE_YEARS = 25
# Both certificates start an hour in the past: a client whose clock runs behind ours would
# otherwise see a CA that is "not yet valid" (RFC 5280 §4.1.2.5) for as long as it lags, and
# reject every leaf minted under it in the first minutes after first start.
BACKDATE = dt.timedelta(hours=1)

_DEPLOYMENT_ID = re.compile(r"[0-9a-fA-F]{8}")


def build_builtin_ca(
    deployment_id: str,
    root_key: rsa.RSAPrivateKey,
    intermediate_key: rsa.RSAPrivateKey,
    now: dt.datetime,
) -> tuple[x509.Certificate, x509.Certificate]:
    """Make the built-in root and intermediate certificates; returns `(root, intermediate)`.

    Root `CN=interca Built-in Root CA {id},O=interca`: self-signed with `root_key` (RSA-3072),
    30 years, critical basicConstraints CA:TRUE without pathLen, critical keyUsage keyCertSign +
    cRLSign, SKI. Intermediate `CN=interca Built-in Intermediate CA {id},O=interca`: carries
    `intermediate_key` (RSA-2048), signed by the root, 25 years, critical basicConstraints CA:TRUE
    pathLen 0, critical keyUsage keyCertSign + cRLSign, SKI, AKI = the root's SKI. Both are
    sha256WithRSAEncryption, notBefore = `now` - 1 hour, serial = 16 random bytes with the top
    bit cleared (positive, never zero).

    The keys may be key-store objects that implement only `sign` and `public_key`.

    Pre: `deployment_id` is 8 hex digits; `now` is timezone-aware.
    Raises: `ValueError` if a precondition fails or a key has the wrong size.
    """
    if not _DEPLOYMENT_ID.fullmatch(deployment_id):
        raise ValueError("deployment_id must be 8 hex digits")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    root_public = root_key.public_key()
    intermediate_public = intermediate_key.public_key()
    for name, public, bits in (
        ("root", root_public, ROOT_KEY_BITS),
        ("intermediate", intermediate_public, INTERMEDIATE_KEY_BITS),
    ):
        if not isinstance(public, rsa.RSAPublicKey) or public.key_size != bits:
            raise ValueError(f"The built-in {name} key must be RSA-{bits}")

    not_before = now - BACKDATE
    root_name = _name(f"interca Built-in Root CA {deployment_id}")
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_public)
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_public)
        .serial_number(new_serial())
        .not_valid_before(not_before)
        # Past 2049 the builder switches to GeneralizedTime, as RFC 5280 §4.1.2.5 requires.
        .not_valid_after(add_years(now, ROOT_YEARS))
        # RFC 5280 §4.2.1.9: critical in CA certificates; no pathLen, so the root can carry
        # the intermediate (pathLen 0) and nothing stops a later second intermediate.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ca_key_usage(), critical=True)
        # RFC 5280 §4.2.1.2: SKI MUST be present in CA certificates (method 1, SHA-1 of the key).
        # A self-signed root may omit AKI (RFC 5280 §4.2.1.1), so it has none.
        .add_extension(root_ski, critical=False)
        .sign(root_key, hashes.SHA256())
    )
    intermediate = (
        x509.CertificateBuilder()
        .subject_name(_name(f"interca Built-in Intermediate CA {deployment_id}"))
        .issuer_name(root_name)
        .public_key(intermediate_public)
        .serial_number(new_serial())
        .not_valid_before(not_before)
        .not_valid_after(add_years(now, INTERMEDIATE_YEARS))
        # pathLen 0: it issues leaves only (leaves are not counted, RFC 5280 §4.2.1.9).
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(intermediate_public), critical=False)
        # RFC 5280 §4.2.1.1: AKI MUST be present and non-critical; take the root's SKI byte for
        # byte so path builders match it exactly.
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    return root, intermediate


def new_serial() -> int:
    """16 random bytes with the top bit cleared, never zero.

    RFC 5280 §4.1.2.2: positive, at most 20 octets; CA/B Forum wants at least 64 random bits.
    Clearing the top bit keeps the DER INTEGER at 16 octets (no 0x00 sign pad), and Go refuses
    certificates with serial <= 0.
    """
    while True:
        serial = int.from_bytes(secrets.token_bytes(16), "big") & ((1 << 127) - 1)
        if serial:
            return serial


def add_years(when: dt.datetime, years: int) -> dt.datetime:
    """The same calendar moment `years` later; 29 February becomes 28 February."""
    try:
        return when.replace(year=when.year + years)
    except ValueError:
        return when.replace(year=when.year + years, day=28)


def _name(common_name: str) -> x509.Name:
    # Encoded O first, CN last, so RFC 4514 (which writes the last RDN first) reads
    # "CN=...,O=interca" as in certificates.md §6.5.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "interca"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
