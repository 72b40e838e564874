"""The lifecycle steps of a custom CA (api.md §4.3): key pair, CSR, uploads, finalize, and the
downloads that go with them. Each step: lock and guards (`ServiceContext.editing`, `guard`),
slow work outside any write transaction, then one short write transaction."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from interca.domain import fields
from interca.domain.attestation.backend import EmulatedHsmVerifier
from interca.domain.attestation.report import VerificationReport
from interca.domain.models import CaKey, CaType, CrlRecord, CsrRecord, IntermediateCa, UploadedCert
from interca.domain.principal import Principal
from interca.domain.states import State, after_download
from interca.domain.x509 import chain as chain_rules
from interca.domain.x509 import csr as csr_builder
from interca.domain.x509 import pem
from interca.domain.x509.crl import build_crl, can_sign_crl
from interca.domain.x509.findings import Finding, FindingsError
from interca.errors import InvalidInput, KeyStoreError, ServiceUnavailable
from interca.service.audit import AuditLog, PendingEntry
from interca.service.context import ServiceContext, guard
from interca.service.validation import Evaluation, Validator, effective_expiry, signing_failure
from interca.storage.certificates import CertificateRepository

ON_DEMAND_MAX_AGE = dt.timedelta(minutes=5)
log = logging.getLogger(__name__)


def read_pins(path: Path) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """(pinned root fingerprints, denied AK certificate fingerprints) from the pins file's
    `pin <hex>` and `deny <hex>` lines (hsm.md §8.2); nothing pinned when it is missing."""
    found: dict[str, list[bytes]] = {"pin": [], "deny": []}
    try:
        text = path.read_text()
    except OSError:
        return (), ()
    for line in text.splitlines():
        kind, _, value = line.strip().partition(" ")
        try:
            raw = bytes.fromhex(value.replace(":", "").strip())
        except ValueError:
            continue
        if kind in found and len(raw) == 32:
            found[kind].append(raw)
    return tuple(found["pin"]), tuple(found["deny"])


@dataclass(frozen=True)
class Download:
    filename: str
    body: str


class LifecycleService:
    def __init__(self, ctx: ServiceContext, audit: AuditLog) -> None:
        self._ctx = ctx
        self._audit = audit
        self._validator = Validator(ctx)

    @contextmanager
    def _step(
        self, principal: Principal, action: str, ca_id: int
    ) -> Iterator[tuple[IntermediateCa, PendingEntry]]:
        """An audited change: the entry, then the edit lock and the record read under it."""
        with self._audit.action(principal, action, ca_id) as entry, self._ctx.editing(ca_id) as ca:
            yield ca, entry

    def _save(self, ca: IntermediateCa, entry: PendingEntry, detail: str = "") -> IntermediateCa:
        """Store the changed record and its audit entry in one transaction."""
        with self._ctx.db.write() as s:
            CertificateRepository(s).save(ca, self._ctx.clock.now())
            entry.success(s, detail)
        return ca

    # keys -----------------------------------------------------------------------------------

    def generate_key_pair(self, principal: Principal, ca_id: int) -> IntermediateCa:
        with self._step(principal, "generate_key_pair", ca_id) as (ca, entry):
            guard(ca, "keyPair")
            store = self._ctx.keystores.for_new_key(ca.type, ca.region)
            label = f"interca-{ca.id}"
            if ca.pending_key_ref is not None:  # an attempt was cut short: clear what it left
                self._ctx.keystores.for_ref(ca.pending_key_ref).destroy(ca.pending_key_ref)
            # hsm.md §4: the reference is recorded before the key exists, so no crash can leave
            # a key in the store that no record points at, and the next attempt cleans up.
            ref = ca.pending_key_ref = store.new_ref(label)
            self._set_pending_key(ca.id, ref)
            try:
                store.create_key(ca.key_type, label, ref)  # slow: no transaction open
                public_pem = csr_builder.public_key_pem(store.public_key(ref))
                ca.key, ca.pending_key_ref = CaKey(ref, public_pem, self._ctx.clock.now()), None
                attestation = self._ctx.attestation
                if ca.type is CaType.CUSTOM_HSM and attestation and attestation.covers(ca.region.value):
                    # hsm.md §8.4: the creation-time statement, right after generation.
                    attestor = attestation.attestor
                    bundle = attestor.attest(ca.region.value, attestor.key_id_of(ref))
                    ca.key.attestation_pem = bundle.decode("ascii")
                ca.state = State.KEYGEN_DONE
                return self._save(ca, entry, f"{ca.key_type.value} public key {fingerprint(public_pem)}")
            except BaseException:
                try:
                    store.destroy(ref)
                except KeyStoreError:  # the pending reference stays: the next attempt or delete cleans up
                    log.warning("certificate %s: a failed keyPair's key could not be destroyed now", ca.id)
                else:
                    self._set_pending_key(ca.id, None)
                raise

    def _set_pending_key(self, ca_id: int, ref: str | None) -> None:
        with self._ctx.db.write() as s:
            repo = CertificateRepository(s)
            ca = repo.get(ca_id)
            if ca is not None and ca.key is None:
                ca.pending_key_ref = ref
                repo.save(ca, self._ctx.clock.now())

    def download_public_key(self, principal: Principal, ca_id: int) -> Download:
        ca = self._ctx.load(ca_id)
        guard(ca, "downloadPublicKey", builtin_ok=True)
        if principal.is_admin and ca.state is State.KEYGEN_DONE:
            with self._step(principal, "download_public_key", ca_id) as (
                ca,
                entry,
            ):  # state-moving: a mutation
                guard(ca, "downloadPublicKey", builtin_ok=True)
                ca.state = after_download(ca.state, State.PUBKEY_DONE)
                self._save(ca, entry, "state PUBKEY_DONE")
        assert ca.key is not None
        return Download(f"{ca.name}-PublicKey.pem", ca.key.public_key_pem)

    def download_attestation(self, principal: Principal, ca_id: int) -> Download:
        ca = self._ctx.load(ca_id)
        guard(ca, "downloadAttestation", hsm_only=True)
        if ca.key is None or ca.key.attestation_pem is None:
            raise self._no_hsm(ca)
        if principal.is_admin and ca.state < State.ATTESTATION_DONE:
            with self._step(principal, "download_attestation", ca_id) as (ca, entry):  # state-moving
                guard(ca, "downloadAttestation", hsm_only=True)
                ca.state = after_download(ca.state, State.ATTESTATION_DONE)
                self._save(ca, entry, "state ATTESTATION_DONE")
        assert ca.key is not None and ca.key.attestation_pem is not None
        return Download(f"{ca.name}-Attestation.pem", ca.key.attestation_pem)

    def verify_key_attestation(self, principal: Principal, ca_id: int) -> IntermediateCa:
        """hsm.md §8.6: the stored creation-time statement (V1-V8), then a fresh on-demand one
        with a new 32-byte nonce and a 5-minute maximum age (V1-V9). Any failure: 400 and
        nothing changes."""
        with self._step(principal, "verify_key_attestation", ca_id) as (ca, entry):
            guard(ca, "verifyKeyAttestation", hsm_only=True)
            attestation = self._ctx.attestation
            if attestation is None or ca.key is None or ca.key.attestation_pem is None:
                raise self._no_hsm(ca)
            attestor = attestation.attestor
            pins, denied = read_pins(attestation.pins_file)
            verifier = EmulatedHsmVerifier(pins, denied, self._ctx.settings.clock_skew_seconds)
            public = serialization.load_pem_public_key(ca.key.public_key_pem.encode())
            spki = public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            key_id = attestor.key_id_of(ca.key.ref)
            region = ca.region.value
            checks, _ = verifier.verify(
                ca.key.attestation_pem.encode("ascii"), spki, region, key_id, self._ctx.clock.now()
            )
            VerificationReport(checks, None, None).raise_for_failure()
            nonce = os.urandom(32)
            fresh = attestor.attest(region, key_id, nonce)  # slow-ish: no transaction open
            now = self._ctx.clock.now()
            checks, _ = verifier.verify(fresh, spki, region, key_id, now, nonce, ON_DEMAND_MAX_AGE)
            VerificationReport(checks, None, None).raise_for_failure()
            ca.key.attestation_verified_at = now
            ca.state = after_download(ca.state, State.ATTESTATION_VERIFY_DONE)
            return self._save(ca, entry, "creation-time and on-demand statements verified")

    def _no_hsm(self, ca: IntermediateCa) -> KeyStoreError:
        self._ctx.keystores.for_new_key(ca.type, ca.region)  # raises when no HSM is configured
        return KeyStoreError(
            "hsm_attestation_unavailable",
            f"Key attestation is not available yet: region {ca.region.value}'s HSM holds the key, but "
            "no attestor is set up to vouch for it (hsm.md §8); retry once attestation is enabled.",
        )

    # CSR ------------------------------------------------------------------------------------

    def generate_csr(self, principal: Principal, ca_id: int, body: Mapping[str, Any]) -> IntermediateCa:
        with self._step(principal, "generate_csr", ca_id) as (ca, entry):
            guard(ca, "generateCsr")
            subject = fields.validate_csr_request(ca, body)
            assert ca.key is not None
            signer = self._ctx.signer(ca)
            request = csr_builder.build_csr(subject, signer)
            ca.csr = CsrRecord(csr_builder.csr_pem(request), subject, self._ctx.clock.now())
            ca.cert = None  # a new CSR drops any uploaded certificate and chain
            ca.state = State.CSRGEN_DONE
            return self._save(ca, entry, f"{subject.csr_file_name}.csr {fingerprint(ca.csr.pem)}")

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
        with self._step(principal, "upload_cert", ca_id) as (ca, entry):
            guard(ca, "uploadCert")
            if upload is None:
                raise InvalidInput("No file selected.")
            ev = self._validator.check_upload(ca, upload)
            if not ev.valid or ev.intermediate is None:
                raise FindingsError(ev.findings)
            cert = ev.intermediate
            ca.cert = UploadedCert(
                der=cert.public_bytes(serialization.Encoding.DER),
                file_name=pem.base_name(upload.filename),
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
                effective_expiry=cert.not_valid_after_utc,
                warnings=[w.as_dict() for w in ev.warnings],
            )  # a new certificate drops any chain
            ca.state = State.INTCERT_UPLOAD_DONE
            return self._save(ca, entry, _described(ev, [cert]))

    def upload_chain(self, principal: Principal, ca_id: int, upload: pem.Upload | None) -> IntermediateCa:
        with self._step(principal, "upload_chain", ca_id) as (ca, entry):
            guard(ca, "uploadCertChain")
            if upload is None:
                raise InvalidInput("No file selected.")
            assert ca.cert is not None
            intermediate = x509.load_der_x509_certificate(ca.cert.der)
            ev = self._validator.check_chain_upload(intermediate, upload)
            if not ev.valid or ev.chain is None:
                raise FindingsError(ev.findings)
            own = self._validator.check_intermediate(ca, [intermediate])
            ca.cert.chain_pem = chain_rules.pem_bundle(ev.chain.path)
            ca.cert.chain_file_name = pem.base_name(upload.filename)
            ca.cert.effective_expiry = ev.chain.effective_expiry
            ca.cert.warnings = [w.as_dict() for w in [*own.warnings, *ev.warnings]]
            ca.state = State.CERTCHAIN_UPLOAD_DONE
            return self._save(ca, entry, _described(ev, ev.chain.path))

    def delete_chain(self, principal: Principal, ca_id: int) -> IntermediateCa:
        with self._step(principal, "delete_chain", ca_id) as (ca, entry):
            guard(ca, "deleteCertChain")
            assert ca.cert is not None
            intermediate = x509.load_der_x509_certificate(ca.cert.der)
            ca.cert.chain_pem = None
            ca.cert.chain_file_name = None
            ca.cert.effective_expiry = ca.cert.not_after
            ca.cert.warnings = [
                w.as_dict() for w in self._validator.check_intermediate(ca, [intermediate]).warnings
            ]
            ca.state = State.INTCERT_UPLOAD_DONE
            return self._save(ca, entry, "chain removed")

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

    # validate and finalize --------------------------------------------------------------------

    def validate_cert(
        self,
        principal: Principal,
        ca_id: int,
        cert_upload: pem.Upload | None,
        chain_upload: pem.Upload | None,
        refused: list[Finding] | None = None,
    ) -> Evaluation:
        """The dry-run validator (certificates.md §4): the full report, nothing changed.
        `refused` carries what the HTTP edge already refused (a body over the size cap)."""
        with self._audit.action(principal, "validate", ca_id) as entry:
            ca = self._ctx.load(ca_id)
            guard(ca, "validateCert")
            if refused:
                ev = Evaluation(list(refused))
            elif ca.cert is None and cert_upload is None:
                raise InvalidInput("No file selected.")
            else:
                ev = self._validator.evaluate(ca, cert_upload, chain_upload, with_self_test=True)
                _raise_if_key_store_failed(ev)
            with self._ctx.db.write() as s:
                entry.success(
                    s, ("valid " if ev.valid else "invalid ") + " ".join(f"[{f.id}]" for f in ev.findings)
                )
            return ev

    def finalize(self, principal: Principal, ca_id: int) -> IntermediateCa:
        with self._step(principal, "finalize", ca_id) as (ca, entry):
            guard(ca, "finalizeCert")
            assert ca.cert is not None and ca.key is not None
            # Time has passed since the upload: every check runs again, then the self-test.
            ev = self._validator.evaluate(ca, None, None, with_self_test=True)
            _raise_if_key_store_failed(ev)
            if not ev.valid or ev.intermediate is None:
                raise FindingsError(ev.findings)
            ca.cert.effective_expiry = effective_expiry(ev.intermediate, ev.chain)
            ca.cert.warnings = [w.as_dict() for w in ev.warnings]
            if can_sign_crl(ev.intermediate):
                signer = self._ctx.signer(ca)
                number = (ca.crl.number if ca.crl else 0) + 1
                now = self._ctx.clock.now()
                crl = build_crl(ev.intermediate, signer, number, now)
                ca.crl = CrlRecord(number, crl.public_bytes(serialization.Encoding.DER), now)
            ca.state = State.CERT_READY
            expiry = ca.cert.effective_expiry
            return self._save(
                ca,
                entry,
                f"effective expiry {expiry:%Y-%m-%d}" + (f", CRL {ca.crl.number}" if ca.crl else ""),
            )


def _raise_if_key_store_failed(ev: Evaluation) -> None:
    """A key store that cannot sign is the service's problem, not the certificate's: 503."""
    failed = signing_failure(ev.findings)
    if failed is not None:
        raise ServiceUnavailable(failed.message)


def fingerprint(pem_or_der: str | bytes) -> str:
    """`sha256:<hex>` of what was stored (PEM text is fingerprinted as its DER)."""
    data = pem_or_der.encode() if isinstance(pem_or_der, str) else pem_or_der
    if data.startswith(b"-----BEGIN"):
        body = b"".join(line for line in data.splitlines() if line and not line.startswith(b"-----"))
        data = base64.b64decode(body)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _described(ev: Evaluation, certs: list[x509.Certificate]) -> str:
    """An upload's audit detail: the certificates' fingerprints and the warning ids."""
    parts = [fingerprint(c.public_bytes(serialization.Encoding.DER)) for c in certs]
    parts += [f"[{w.id}]" for w in ev.warnings]
    return " ".join(parts)
