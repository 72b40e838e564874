"""What minted leaves point at (certificates.md §6.4; api.md rows 24-25): each CA's CRL and its
certificate, served without authentication, and the upkeep that keeps the CRLs fresh.

A CRL is re-issued when it is `REISSUE_AFTER` old: on demand when fetched, and by
`refresh_crls` for a periodic task. Re-issuing holds the CA's edit lock and re-reads the record
under it, so concurrent fetches (in any process) bump the cRLNumber once; the key store signs
outside any write transaction, then one short transaction stores the CRL and its audit entry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from interca.auth.authenticator import local_actor
from interca.domain.models import CrlRecord, IntermediateCa
from interca.domain.states import State
from interca.domain.x509.crl import REISSUE_AFTER, build_crl, can_sign_crl
from interca.errors import EditLockBusy, IntercaError, NotFound, ServiceUnavailable
from interca.service.audit import AuditLog
from interca.service.context import ServiceContext
from interca.storage.certificates import CertificateRepository

log = logging.getLogger(__name__)

AUDIT_ACTION = "issue_crl"
_PAGE = 500


def not_found(ca_id: int) -> NotFound:
    """One answer for every refusal: the public routes say nothing about which CAs exist."""
    return NotFound(f"Certificate {ca_id} not found.")


def crl_issuer(ca: IntermediateCa, now: dt.datetime) -> x509.Certificate | None:
    """The certificate whose key signs `ca`'s CRL, or None when `ca` has no CRL to serve: not
    finalized, past its notAfter, or without cRLSign (F8). The built-in CA qualifies."""
    if ca.state is not State.CERT_READY or ca.cert is None or ca.key is None or ca.cert.not_after <= now:
        return None
    cert = x509.load_der_x509_certificate(ca.cert.der)
    return cert if can_sign_crl(cert) else None


def is_due(crl: CrlRecord | None, now: dt.datetime) -> bool:
    """True when there is no CRL yet or the stored one is at least `REISSUE_AFTER` old."""
    return crl is None or now - crl.issued_at >= REISSUE_AFTER


class PkiService:
    """Serves CRLs and CA certificates by certificate id and keeps the CRLs fresh."""

    def __init__(self, ctx: ServiceContext, audit: AuditLog) -> None:
        self._ctx = ctx
        self._audit = audit

    def ca_certificate(self, ca_id: int) -> bytes:
        """The uploaded (or built-in) intermediate as DER. Raises `NotFound` for an unknown id
        and for a CA without an uploaded certificate."""
        ca = self._load(ca_id)
        if ca.cert is None:
            raise not_found(ca_id)
        return ca.cert.der

    def crl(self, ca_id: int) -> bytes:
        """The CA's current CRL as DER, re-issued first when it is due (a CA finalized without a
        stored CRL, such as the built-in one, gets its first here).

        Raises `NotFound` for an unknown id and for a CA without a CRL to serve (`crl_issuer`).
        When the re-issue fails (key store down, edit lock busy) the stored CRL is served while
        it is before its nextUpdate; otherwise `KeyStoreError` or `ServiceUnavailable`."""
        ca = self._load(ca_id)
        now = self._ctx.clock.now()
        if crl_issuer(ca, now) is None:
            raise not_found(ca_id)
        if not is_due(ca.crl, now):
            assert ca.crl is not None
            return ca.crl.der
        try:
            return self._reissue(ca_id)[0].der
        except NotFound:
            raise
        except IntercaError as exc:
            if ca.crl is None or not _still_current(ca.crl, now):
                if isinstance(exc, EditLockBusy):  # a 409 would ask a mere reader to resolve a conflict
                    raise ServiceUnavailable("The CRL is being re-issued; retry in a few seconds.") from exc
                raise
            log.warning(
                "CRL of certificate %s not re-issued (%s); serving CRL %s", ca_id, exc.code, ca.crl.number
            )
            return ca.crl.der

    def refresh_crls(self) -> list[int]:
        """Re-issue every due CRL (for a periodic task); returns the ids of the CAs whose CRL
        was re-issued. A CA that fails (its key store down, its lock busy) is logged and skipped,
        so one unreachable HSM does not hold back the others."""
        refreshed = []
        now = self._ctx.clock.now()
        for ca in self._all():
            if crl_issuer(ca, now) is None or not is_due(ca.crl, now):
                continue
            try:
                if self._reissue(ca.id)[1]:
                    refreshed.append(ca.id)
            except IntercaError as exc:
                log.warning("CRL of certificate %s not re-issued: %s", ca.id, exc.code)
        return refreshed

    # ---------------------------------------------------------------------------------------

    def _load(self, ca_id: int) -> IntermediateCa:
        with self._ctx.db.read() as s:
            ca = CertificateRepository(s).get(ca_id)
        if ca is None:
            raise not_found(ca_id)
        return ca

    def _all(self) -> list[IntermediateCa]:
        found: list[IntermediateCa] = []
        while True:
            with self._ctx.db.read() as s:
                page = CertificateRepository(s).list(None, len(found), _PAGE)
            found += page
            if len(page) < _PAGE:
                return found

    def _reissue(self, ca_id: int) -> tuple[CrlRecord, bool]:
        """Issue the next CRL under the edit lock, unless another caller did while we waited:
        (the current CRL, whether this call issued it).
        Recorded as a SYSTEM action (api.md §3.6); a failure changes nothing and goes to the
        server log only, since unauthenticated fetches must not be able to fill the audit log."""
        with self._ctx.editing(ca_id) as ca:
            now = self._ctx.clock.now()
            issuer = crl_issuer(ca, now)
            if issuer is None:
                raise not_found(ca_id)
            if not is_due(ca.crl, now):
                assert ca.crl is not None
                return ca.crl, False
            assert ca.key is not None
            signer = self._ctx.signer(ca)
            number = (ca.crl.number if ca.crl else 0) + 1
            der = build_crl(issuer, signer, number, now).public_bytes(serialization.Encoding.DER)
            ca.crl = CrlRecord(number, der, now)
            with self._ctx.db.write() as s:
                CertificateRepository(s).save(ca, now)
                detail = f"CRL {number} sha256:{hashlib.sha256(der).hexdigest()}"
                self._audit.append(s, local_actor(), AUDIT_ACTION, ca_id, "SUCCESS", detail)
            log.info("issued CRL %s of certificate %s", number, ca_id)
            return ca.crl, True


def _still_current(crl: CrlRecord, now: dt.datetime) -> bool:
    """True while `now` is before the CRL's nextUpdate."""
    next_update = x509.load_der_x509_crl(crl.der).next_update_utc
    return next_update is not None and now < next_update
