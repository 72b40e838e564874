"""Which CA the engine mints with: the default pointer and its record, read from storage, and the
record turned into a `LeafTemplate` (certificates.md §6.1, §6.4).

The chain to serve, the leaf profile and the effective expiry are the ones finalize stored and
checked (`service.validation`): the stored chain is the path above the intermediate, root last
when one was uploaded; the served chain leaves that root out. Without an uploaded root, a root of
`org_roots_file` that signed the top of the path joins the path for the name-constraint check
(as it anchors the finalize self-test), since clients enforce its constraints too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509

from interca.domain.models import IntermediateCa, Status
from interca.domain.states import State
from interca.domain.x509.chain import find_org_root
from interca.domain.x509.issuance_links import raw_names, signed_by
from interca.issuance.template import LeafTemplate
from interca.service.context import ServiceContext
from interca.service.validation import Validator
from interca.storage.certificates import CertificateRepository

# Bump when the bytes a template encodes change for the same inputs, so no cache entry made by
# an older profile is ever served (§6.2: the cache key includes the profile version).
PROFILE_VERSION = "leaf-profile-1"


@dataclass(frozen=True)
class DefaultCa:
    """The default pointer as read: the CA when it can mint, else why not (`reason`)."""

    ca: IntermediateCa | None
    reason: str
    identity: str = ""
    """A digest of everything a template is built from, to rebuild only on change."""


def read_default(ctx: ServiceContext) -> DefaultCa:
    """The default CA if it is usable: enabled, finalized (CERT_READY) and with a key and a
    certificate. Raises what the database raises (`ServiceUnavailable`)."""
    with ctx.db.read() as s:
        repo = CertificateRepository(s)
        ca_id = repo.default_id()
        ca = repo.get(ca_id) if ca_id is not None else None
    if ca_id is None:
        return DefaultCa(None, "No certificate is the default.")
    if ca is None:
        return DefaultCa(None, f"The default certificate {ca_id} no longer exists.")
    if ca.status is not Status.ENABLED:
        return DefaultCa(None, f"The default certificate {ca_id} is disabled.")
    if ca.state is not State.CERT_READY or ca.cert is None or ca.key is None:
        return DefaultCa(None, f"The default certificate {ca_id} is not finalized.")
    cfg = ctx.settings
    digest = hashlib.sha256()
    for part in (
        str(ca.id),
        ca.key.ref,
        ca.cert.chain_pem or "",
        str(ca.cert.effective_expiry),
        PROFILE_VERSION,
        repr(
            (
                cfg.leaf_lifetime_days,
                cfg.leaf_backdate_minutes,
                cfg.leaf_crl_dp,
                cfg.leaf_aia,
                cfg.pki_base_url,
            )
        ),
    ):
        digest.update(part.encode() + b"\0")
    digest.update(ca.cert.der)
    return DefaultCa(ca, "", digest.hexdigest())


def build_template(ctx: ServiceContext, validator: Validator, ca: IntermediateCa) -> LeafTemplate:
    """The template of a usable default CA (`read_default`). Slow-ish (parses the chain, may log
    in to an HSM): the engine calls it only when the default or its record changed.

    Raises: `KeyStoreError` (the key's store is missing or unavailable), `ServiceUnavailable`
    (`org_roots_file` unreadable), `TypeError` / `ValueError` (a CA the leaf profile cannot
    serve: another key type, no subjectKeyIdentifier).
    """
    assert ca.cert is not None and ca.key is not None
    intermediate = x509.load_der_x509_certificate(ca.cert.der)
    chain = x509.load_pem_x509_certificates(ca.cert.chain_pem.encode()) if ca.cert.chain_pem else []
    served, above = chain, list(chain)
    if chain and _self_signed(chain[-1]):
        served = chain[:-1]  # §6.4: never the root (harmless, measured, but useless)
    else:
        root = find_org_root(chain[-1] if chain else intermediate, validator.org_roots())
        if root is not None:
            above.append(root)
    expiry = ca.cert.effective_expiry or min(c.not_valid_after_utc for c in [intermediate, *chain])
    signer = ctx.signer(ca)
    return LeafTemplate(
        ca.id,
        intermediate,
        signer,
        path=above,
        served_chain=served,
        effective_expiry=expiry,
        profile=validator.leaf_profile(ca.id, intermediate),
        profile_version=PROFILE_VERSION,
        key_ref=ca.key.ref,
    )


def _self_signed(cert: x509.Certificate) -> bool:
    issuer, subject = raw_names(cert)
    return issuer == subject and signed_by(cert, cert)
