"""The HSM health check (hsm.md §6.5): at start and every `INTERVAL_SECONDS`, each finalized
CUSTOM_HSM CA key signs a fresh random challenge in its token, and the signature is verified with
the public key stored when the key was made. The last result per CA is kept for the metrics
(`interca_hsm_key_healthy`); a change of state is logged once, never the key or the token's PIN.

It proves what serving needs: the module loads, the token is there, the PIN logs in, the key
with the record's CKA_ID exists, and it is the key the certificate was issued for.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from interca.domain.models import CaType, IntermediateCa
from interca.domain.states import State
from interca.errors import KeyStoreError
from interca.service.context import ServiceContext
from interca.storage.certificates import CertificateRepository

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class KeyHealth:
    """One CA key's last check: `error_id` names the failure (`hsm_unavailable`,
    `hsm_key_not_found`, `hsm_signature_invalid`, ...), None when healthy."""

    ca_id: int
    region: str
    checked_at: dt.datetime
    error_id: str | None = None

    @property
    def healthy(self) -> bool:
        return self.error_id is None


class HsmHealth:
    """Runs the check and keeps the last result of every finalized CUSTOM_HSM CA. Thread-safe."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self._results: dict[int, KeyHealth] = {}

    def check(self) -> list[KeyHealth]:
        """Check every finalized CUSTOM_HSM key now (slow: one token signature each; call from a
        worker thread) and return the results, CAs in id order."""
        with self._ctx.db.read() as s:
            cas = [
                ca
                for ca in CertificateRepository(s).list(None, 0, 2**31)
                if ca.type is CaType.CUSTOM_HSM and ca.state is State.CERT_READY and ca.key is not None
            ]
        results = {ca.id: self._check_one(ca) for ca in cas}
        with self._lock:
            for ca_id, now in results.items():
                before = self._results.get(ca_id)
                if before is None or before.healthy != now.healthy:
                    state = "healthy" if now.healthy else f"FAILING ({now.error_id})"
                    (log.info if now.healthy else log.warning)(
                        "HSM health: certificate %d's key in region %s is %s", ca_id, now.region, state
                    )
            self._results = results  # deleted CAs drop out
        return self.results()

    def results(self) -> list[KeyHealth]:
        """The last check's results (empty before the first)."""
        with self._lock:
            return [self._results[k] for k in sorted(self._results)]

    def _check_one(self, ca: IntermediateCa) -> KeyHealth:
        assert ca.key is not None
        now = self._ctx.clock.now()
        challenge = os.urandom(32)
        try:
            signer = self._ctx.signer(ca)
            public = serialization.load_pem_public_key(ca.key.public_key_pem.encode())
            if isinstance(public, rsa.RSAPublicKey):
                assert isinstance(signer, rsa.RSAPrivateKey)
                signature = signer.sign(challenge, padding.PKCS1v15(), hashes.SHA256())
                public.verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())
            elif isinstance(public, ec.EllipticCurvePublicKey):
                assert isinstance(signer, ec.EllipticCurvePrivateKey)
                signature = signer.sign(challenge, ec.ECDSA(hashes.SHA256()))
                public.verify(signature, challenge, ec.ECDSA(hashes.SHA256()))
            else:  # the key stores make no other kind
                return KeyHealth(ca.id, ca.region.value, now, "key_type_unsupported")
        except KeyStoreError as exc:
            return KeyHealth(ca.id, ca.region.value, now, exc.error_id)
        except InvalidSignature:
            return KeyHealth(ca.id, ca.region.value, now, "hsm_signature_invalid")
        return KeyHealth(ca.id, ca.region.value, now)
