"""The CA's certificate revocation list (certificates.md §6.4).

Leaves are short-lived and never revoked one by one, so the list is always empty; it exists
because Windows Schannel hard-fails a chain without reachable revocation information.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from interca.domain.x509.leaf import leaf_signature_hash

THIS_UPDATE_BACKDATE = dt.timedelta(hours=1)  # tolerate clients whose clock runs behind
VALIDITY = dt.timedelta(days=7)
REISSUE_AFTER = dt.timedelta(hours=24)


def can_sign_crl(ca_cert: x509.Certificate) -> bool:
    """True when the CA's keyUsage allows cRLSign (F8: otherwise leaves carry no CDP)."""
    try:
        return bool(ca_cert.extensions.get_extension_for_class(x509.KeyUsage).value.crl_sign)
    except x509.ExtensionNotFound:
        return False


def build_crl(
    ca_cert: x509.Certificate, signer: CertificateIssuerPrivateKeyTypes, number: int, now: dt.datetime
) -> x509.CertificateRevocationList:
    """A v2 CRL with no entries: issuer = the CA's subject bytes, thisUpdate = now - 1 h,
    nextUpdate = thisUpdate + 7 days, AKI = the CA's SKI (byte for byte) and cRLNumber."""
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    this_update = now - THIS_UPDATE_BACKDATE
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(this_update)
        .next_update(this_update + VALIDITY)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    return builder.sign(signer, leaf_signature_hash(ca_cert.public_key()))
