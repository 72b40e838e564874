"""First start: the deployment row, the org API key and the built-in CA (api.md §4.5).

Runs in `interca init` and at every `serve`; idempotent. The built-in keys are generated
before the transaction that records them; if another process initialises first, ours are
destroyed and theirs are kept.
"""

from __future__ import annotations

import logging
import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.exc import IntegrityError

from interca.auth import apikey
from interca.auth.authenticator import Authenticator, local_actor
from interca.domain.models import (
    BUILTIN_ID,
    BUILTIN_NAME,
    CaKey,
    CaType,
    IntermediateCa,
    KeyType,
    Region,
    Status,
    UploadedCert,
)
from interca.domain.states import State
from interca.domain.x509 import builtin
from interca.domain.x509.chain import pem_bundle
from interca.domain.x509.csr import public_key_pem
from interca.domain.x509.validate import Candidate, check_intermediate, spki_der
from interca.keystore.base import KeyStore
from interca.service.audit import AuditLog
from interca.service.context import ServiceContext
from interca.storage.certificates import CertificateRepository
from interca.storage.principals import DeploymentRepository

log = logging.getLogger(__name__)


def is_initialised(ctx: ServiceContext) -> bool:
    with ctx.db.read() as s:
        return DeploymentRepository(s).get() is not None


def initialise(ctx: ServiceContext, auth: Authenticator) -> bool:
    """Create the deployment and the built-in CA unless they exist; True when created now."""
    if is_initialised(ctx):
        return False
    store: KeyStore = ctx.keystores.for_new_key(CaType.CUSTOM_SW, Region.GLOBAL)
    root_ref = store.create_key(KeyType.RSA_3K, "interca-builtin-root")
    int_ref = store.create_key(KeyType.RSA_2K, "interca-builtin-intermediate")
    try:
        created = _record(ctx, auth, store, root_ref, int_ref)
    except BaseException:
        created = False
        raise
    finally:
        if not created:
            store.destroy(root_ref)
            store.destroy(int_ref)
    return created


def _record(ctx: ServiceContext, auth: Authenticator, store: KeyStore, root_ref: str, int_ref: str) -> bool:
    root_key, int_key = store.signer(root_ref), store.signer(int_ref)
    assert isinstance(root_key, rsa.RSAPrivateKey) and isinstance(int_key, rsa.RSAPrivateKey)
    deployment_id = secrets.token_hex(4)
    now = ctx.clock.now()
    root, intermediate = builtin.build_builtin_ca(deployment_id, root_key, int_key, now)

    # First start fails unless the built-in passes the upload checks that apply without a CSR.
    findings = check_intermediate(Candidate([intermediate], spki_der(intermediate), None))
    errors = [f.message for f in findings if f.severity == "error"]
    if errors:
        raise RuntimeError(f"the built-in intermediate fails its own checks: {errors}")

    ca = IntermediateCa(
        id=BUILTIN_ID,
        name=BUILTIN_NAME,
        type=CaType.ZSCALER,
        region=Region.GLOBAL,
        status=Status.ENABLED,
        key_type=KeyType.RSA_2K,
        description=BUILTIN_NAME,
        state=State.CERT_READY,
        key=CaKey(int_ref, public_key_pem(int_key.public_key()), generated_at=None),
        cert=UploadedCert(
            der=intermediate.public_bytes(serialization.Encoding.DER),
            file_name=None,
            not_before=intermediate.not_valid_before_utc,
            not_after=intermediate.not_valid_after_utc,
            chain_pem=pem_bundle([root]),
            effective_expiry=min(intermediate.not_valid_after_utc, root.not_valid_after_utc),
        ),
    )
    try:
        with ctx.db.write() as s:
            DeploymentRepository(s).create(
                deployment_id, auth.seal_api_key(apikey.new_api_key()), root_ref, now
            )
            certs = CertificateRepository(s)
            certs.add(ca, now)
            certs.set_default(BUILTIN_ID)
            detail = f"first start: deployment {deployment_id}, built-in CA"
            AuditLog(ctx).append(s, local_actor(), "create", BUILTIN_ID, "SUCCESS", detail)
    except IntegrityError:
        log.info("another process initialised the deployment first")
        return False
    log.info("initialised deployment %s with its built-in CA", deployment_id)
    return True
