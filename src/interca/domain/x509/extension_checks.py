"""The per-certificate F checks that look at a certificate's extensions (certificates.md §2):
basicConstraints (F1-F2), keyUsage (F5-F8), extendedKeyUsage, the key identifiers and critical
extensions (F9-F13), name constraints (F23) and revocation information (F24).

Each check is a function of a `Target` returning its findings; `profile_checks.py` numbers them
and decides which run on a certificate.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, ExtensionOID

from interca.domain.x509.check_target import Target, printable
from interca.domain.x509.findings import Finding

# F12: the only extensions that may be critical (certificates.md §2, "Why" F12/F13).
CRITICAL_ALLOWED = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.NAME_CONSTRAINTS,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
)
_SUBTREES_SHOWN = 10


# F1–F2 basicConstraints ----------------------------------------------------------------------


def check_not_a_ca(t: Target) -> list[Finding]:
    bc = t.extension(x509.BasicConstraints)
    if bc is not None and bc.value.ca:
        return []
    return t.error(
        "not_a_ca",
        "basicConstraints does not assert cA=TRUE, so this certificate cannot issue certificates; "
        "have it signed as a subordinate CA.",
    )


def check_bc_critical(t: Target) -> list[Finding]:
    """Only when basicConstraints is present (an absent one is F1's)."""
    bc = t.extension(x509.BasicConstraints)
    if bc is None or bc.critical:
        return []
    return t.error(
        "basic_constraints_not_critical", "basicConstraints must be critical (RFC 5280 section 4.2.1.9)."
    )


# F5–F8 keyUsage ------------------------------------------------------------------------------


def check_key_usage_missing(t: Target) -> list[Finding]:
    if t.extension(x509.KeyUsage) is not None:
        return []
    return t.error(
        "key_usage_missing",
        "keyUsage is missing; strict clients (Python 3.13 and later) reject every certificate issued "
        "under this CA.",
    )


def check_key_cert_sign(t: Target) -> list[Finding]:
    ku = t.extension(x509.KeyUsage)
    if ku is None or ku.value.key_cert_sign:
        return []
    return t.error(
        "no_key_cert_sign",
        "keyUsage does not include keyCertSign, so this certificate cannot issue certificates.",
    )


def check_key_usage_critical(t: Target) -> list[Finding]:
    ku = t.extension(x509.KeyUsage)
    if ku is None or ku.critical:
        return []
    return t.warning("key_usage_not_critical", "keyUsage should be critical (RFC 5280 section 4.2.1.3).")


def check_crl_sign(t: Target) -> list[Finding]:
    ku = t.extension(x509.KeyUsage)
    if ku is None or ku.value.crl_sign:
        return []
    return t.warning(
        "no_crl_sign",
        "keyUsage does not include cRLSign; interca cannot sign a CRL with this CA and will leave the "
        "CRL distribution point out of its leaves.",
    )


# F9–F13 other extensions ---------------------------------------------------------------------


def check_eku(t: Target) -> list[Finding]:
    eku = t.extension(x509.ExtendedKeyUsage)
    allowed = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
    if eku is None or allowed & set(eku.value):
        return []
    return t.error(
        "eku_excludes_server_auth",
        "extendedKeyUsage lacks serverAuth; browsers, OpenSSL, curl, Go and Node reject server "
        "certificates issued under this CA.",
    )


def check_ski(t: Target) -> list[Finding]:
    if t.extension(x509.SubjectKeyIdentifier) is not None:
        return []
    return t.error(
        "ski_missing",
        "subjectKeyIdentifier is missing; leaves need it for their authorityKeyIdentifier and strict "
        "clients reject its absence.",
    )


def check_aki(t: Target) -> list[Finding]:
    if t.extension(x509.AuthorityKeyIdentifier) is not None or is_self_issued(t.cert):
        return []
    return t.error(
        "aki_missing",
        "authorityKeyIdentifier is missing; strict clients (Python 3.13 and later) reject every "
        "certificate issued under this CA.",
    )


def is_self_issued(cert: x509.Certificate) -> bool:
    return cert.issuer.public_bytes() == cert.subject.public_bytes()


def check_critical_known(t: Target) -> list[Finding]:
    """F12: every extension `cryptography` parses (so has a name for) outside the allow-list."""
    found: list[Finding] = []
    for ext in t.cert.extensions:
        if (
            ext.critical
            and not isinstance(ext.value, x509.UnrecognizedExtension)
            and ext.oid not in CRITICAL_ALLOWED
        ):
            name = ext.oid._name if ext.oid._name != "Unknown OID" else type(ext.value).__name__
            found += t.error(
                "critical_extension_not_allowed",
                f"{name} ({ext.oid.dotted_string}) is marked critical; it must be non-critical.",
            )
    return found


def check_critical_unknown(t: Target) -> list[Finding]:
    """F13: every critical extension `cryptography` does not parse (`UnrecognizedExtension`)."""
    return [
        finding
        for ext in t.cert.extensions
        if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension)
        for finding in t.error(
            "unknown_critical_extension",
            f"Critical extension {ext.oid.dotted_string} is not understood by TLS clients; they would "
            "reject every certificate issued under this CA.",
        )
    ]


# F23–F24 name constraints, revocation --------------------------------------------------------


def general_name(name: x509.GeneralName) -> str:
    if isinstance(name, x509.DNSName):
        return f"DNS:{printable(name.value)}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.RFC822Name):
        return f"email:{printable(name.value)}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{printable(name.value)}"
    if isinstance(name, x509.DirectoryName):
        return f"DirName:{printable(name.value.rfc4514_string())}"
    if isinstance(name, x509.RegisteredID):
        return f"RID:{name.value.dotted_string}"
    if isinstance(name, x509.OtherName):
        return f"othername:{name.type_id.dotted_string}"
    return type(name).__name__


def subtrees(names: Sequence[x509.GeneralName] | None) -> str:
    if not names:
        return "none"
    shown = ", ".join(general_name(n) for n in names[:_SUBTREES_SHOWN])
    more = len(names) - _SUBTREES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def check_name_constraints(t: Target) -> list[Finding]:
    nc = t.extension(x509.NameConstraints)
    if nc is None:
        return []
    permitted, excluded = subtrees(nc.value.permitted_subtrees), subtrees(nc.value.excluded_subtrees)
    return t.warning(
        "name_constraints",
        f"This CA is name-constrained (permitted: {permitted}; excluded: {excluded}); hosts outside "
        "cannot be inspected and will be passed through.",
    )


def check_revocation_info(t: Target) -> list[Finding]:
    """F24: a cRLDistributionPoints extension, or an authorityInfoAccess naming an OCSP responder."""
    if t.extension(x509.CRLDistributionPoints) is not None:
        return []
    aia = t.extension(x509.AuthorityInformationAccess)
    if aia is not None and any(d.access_method == AuthorityInformationAccessOID.OCSP for d in aia.value):
        return []
    return t.warning(
        "no_revocation_info",
        "The certificate has no revocation information; Windows clients that check the whole chain "
        "(Schannel, curl.exe) may refuse connections.",
    )
