"""The lifecycle steps of a custom CA (api.md §4.3): key pair, CSR, uploads, finalize, and the
downloads that go with them. Each step: lock and guards (`ServiceContext.editing`, `guard`),
slow work outside any write transaction, then one short write transaction."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from interca.domain import fields
from interca.domain.models import CaKey, CsrRecord, IntermediateCa, UploadedCert
from interca.domain.principal import Principal
from interca.domain.states import State, after_download
from interca.domain.x509 import chain as chain_rules
from interca.domain.x509 import csr as csr_builder
from interca.domain.x509 import pem
from interca.domain.x509.validate import Candidate, check_intermediate, require_valid, spki_der
from interca.errors import InvalidInput, KeyStoreError
from interca.service.context import ServiceContext, guard
from interca.storage.certificates import CertificateRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Download:
    filename: str
    body: str


class LifecycleService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    def _save(self, ca: IntermediateCa) -> IntermediateCa:
        with self._ctx.db.write() as s:
            CertificateRepository(s).save(ca, self._ctx.clock.now())
        return ca

    # keys -----------------------------------------------------------------------------------

    def generate_key_pair(self, principal: Principal, ca_id: int) -> IntermediateCa:
        with self._ctx.editing(ca_id) as ca:
            guard(ca, "keyPair")
            store = self._ctx.keystores.for_new_key(ca.type, ca.region)
            ref = store.create_key(ca.key_type, f"interca-{ca.id}")  # slow: no transaction open
            try:
                public_pem = csr_builder.public_key_pem(store.public_key(ref))
                ca.key = CaKey(ref, public_pem, self._ctx.clock.now())
                ca.state = State.KEYGEN_DONE
                return self._save(ca)
            except BaseException:
                store.destroy(ref)  # nothing points at it: do not leave an orphan behind
                raise

    def download_public_key(self, principal: Principal, ca_id: int) -> Download:
        ca = self._ctx.load(ca_id)
        guard(ca, "downloadPublicKey", builtin_ok=True)
        if principal.is_admin and ca.state is State.KEYGEN_DONE:
            with self._ctx.editing(ca_id) as ca:  # a state-moving download is a mutation
                guard(ca, "downloadPublicKey", builtin_ok=True)
                ca.state = after_download(ca.state, State.PUBKEY_DONE)
                self._save(ca)
        assert ca.key is not None
        return Download(f"{ca.name}-PublicKey.pem", ca.key.public_key_pem)

    def download_attestation(self, principal: Principal, ca_id: int) -> Download:
        ca = self._ctx.load(ca_id)
        guard(ca, "downloadAttestation", hsm_only=True)
        raise self._no_hsm(ca)

    def verify_key_attestation(self, principal: Principal, ca_id: int) -> IntermediateCa:
        with self._ctx.editing(ca_id) as ca:
            guard(ca, "verifyKeyAttestation", hsm_only=True)
            raise self._no_hsm(ca)

    def _no_hsm(self, ca: IntermediateCa) -> KeyStoreError:
        self._ctx.keystores.for_new_key(ca.type, ca.region)  # raises when no HSM is configured
        return KeyStoreError("hsm_attestation_unavailable", "Key attestation is not available.")

    # CSR ------------------------------------------------------------------------------------

    def generate_csr(self, principal: Principal, ca_id: int, body: Mapping[str, Any]) -> IntermediateCa:
        with self._ctx.editing(ca_id) as ca:
            guard(ca, "generateCsr")
            subject = fields.validate_csr_request(ca, body)
            assert ca.key is not None
            signer = self._ctx.keystores.for_ref(ca.key.ref).signer(ca.key.ref)
            request = csr_builder.build_csr(subject, signer)
            ca.csr = CsrRecord(csr_builder.csr_pem(request), subject, self._ctx.clock.now())
            ca.cert = None  # a new CSR drops any uploaded certificate and chain
            ca.state = State.CSRGEN_DONE
            return self._save(ca)

    def download_csr(self, principal: Principal, ca_id: int) -> Download:
        ca = self._ctx.load(ca_id)
        guard(ca, "downloadCsr")
        assert ca.csr is not None
        return Download(f"{ca.csr.subject.csr_file_name}.csr", ca.csr.pem)

    def show_csr(self, principal: Principal, ca_id: int) -> IntermediateCa:
        ca = self._ctx.load(ca_id)
        guard(ca, "showCsr")
        return ca

    # uploads --------------------------------------------------------------------------------

    def upload_cert(self, principal: Principal, ca_id: int, upload: pem.Upload | None) -> IntermediateCa:
        with self._ctx.editing(ca_id) as ca:
            guard(ca, "uploadCert")
            if upload is None:
                raise InvalidInput("No file selected.")
            assert ca.key is not None and ca.csr is not None
            certs = pem.decode_upload(upload, subject="fileUpload", max_bytes=pem.CERT_MAX_BYTES)
            candidate = Candidate(
                certs, _spki_of(ca.key.public_key_pem), ca.csr.subject.path_length_constraint
            )
            warnings = require_valid(check_intermediate(candidate))
            cert = candidate.cert
            ca.cert = UploadedCert(
                der=cert.public_bytes(serialization.Encoding.DER),
                file_name=pem.base_name(upload.filename),
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
                warnings=[w.as_dict() for w in warnings],
            )
            ca.state = State.INTCERT_UPLOAD_DONE
            return self._save(ca)

    def upload_chain(self, principal: Principal, ca_id: int, upload: pem.Upload | None) -> IntermediateCa:
        with self._ctx.editing(ca_id) as ca:
            guard(ca, "uploadCertChain")
            if upload is None:
                raise InvalidInput("No file selected.")
            assert ca.cert is not None
            certs = pem.decode_upload(
                upload, subject="chainUpload", max_bytes=pem.CHAIN_MAX_BYTES, max_blocks=pem.CHAIN_MAX_BLOCKS
            )
            path, findings = chain_rules.build_chain(x509.load_der_x509_certificate(ca.cert.der), certs)
            warnings = require_valid(findings)
            ca.cert.chain_pem = chain_rules.pem_bundle(path)
            ca.cert.chain_file_name = pem.base_name(upload.filename)
            ca.cert.warnings = [w for w in ca.cert.warnings if not w["subject"].startswith("chain")]
            ca.cert.warnings += [w.as_dict() for w in warnings]
            ca.state = State.CERTCHAIN_UPLOAD_DONE
            return self._save(ca)

    def delete_chain(self, principal: Principal, ca_id: int) -> IntermediateCa:
        with self._ctx.editing(ca_id) as ca:
            guard(ca, "deleteCertChain")
            assert ca.cert is not None
            ca.cert.chain_pem = None
            ca.cert.chain_file_name = None
            ca.cert.warnings = [w for w in ca.cert.warnings if not w["subject"].startswith("chain")]
            ca.state = State.INTCERT_UPLOAD_DONE
            return self._save(ca)

    def show_cert(self, principal: Principal, ca_id: int) -> tuple[IntermediateCa, x509.Certificate]:
        ca = self._ctx.load(ca_id)
        guard(ca, "showCert")
        assert ca.cert is not None
        return ca, x509.load_der_x509_certificate(ca.cert.der)

    def download_cert_chain(self, principal: Principal, ca_id: int) -> Download:
        ca = self._ctx.load(ca_id)
        guard(ca, "downloadCertChain", builtin_ok=True)
        assert ca.cert is not None
        cert = x509.load_der_x509_certificate(ca.cert.der)
        return Download(f"{ca.name}-Chain.pem", chain_rules.pem_bundle([cert]) + (ca.cert.chain_pem or ""))

    # finalize -------------------------------------------------------------------------------

    def finalize(self, principal: Principal, ca_id: int) -> IntermediateCa:
        with self._ctx.editing(ca_id) as ca:
            guard(ca, "finalizeCert")
            assert ca.cert is not None and ca.key is not None
            now = self._ctx.clock.now()
            if ca.cert.not_after <= now:
                raise InvalidInput(
                    f"[expired] The certificate expired on {ca.cert.not_after:%Y-%m-%dT%H:%M:%SZ}."
                )
            ca.cert.effective_expiry = _effective_expiry(ca.cert)
            ca.state = State.CERT_READY
            return self._save(ca)


def _spki_of(public_key_pem: str) -> bytes:
    return spki_der(serialization.load_pem_public_key(public_key_pem.encode()))


def _effective_expiry(cert: UploadedCert) -> dt.datetime:
    """The earliest notAfter on the path: issued certificates stop working then."""
    expiries = [cert.not_after]
    if cert.chain_pem:
        expiries += [c.not_valid_after_utc for c in x509.load_pem_x509_certificates(cert.chain_pem.encode())]
    return min(expiries)
