"""Everything interca checks about an intermediate before trusting it (certificates.md §2-§5):
the upload checks, the chain path, and the finalize self-test, for uploads, for the dry-run
validator and for finalize alike. Nothing here writes; callers decide what to store."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from interca.domain.models import CaType, IntermediateCa
from interca.domain.x509 import chain as chain_rules
from interca.domain.x509 import pem
from interca.domain.x509.crl import can_sign_crl
from interca.domain.x509.findings import Finding, FindingsError, has_errors
from interca.domain.x509.leaf import LeafProfile
from interca.domain.x509.policy import CheckPolicy
from interca.domain.x509.validate import Candidate, check_intermediate, failing_gate, spki_der
from interca.errors import ServiceUnavailable
from interca.service.context import ServiceContext
from interca.service.selftest import SelfTestInput, run_self_test


@dataclass
class Evaluation:
    """The outcome of checking an intermediate and its chain. `intermediate` is None when the
    certificate upload itself was refused by a gate."""

    findings: list[Finding] = field(default_factory=list)
    intermediate: x509.Certificate | None = None
    chain: chain_rules.ChainResult | None = None

    @property
    def valid(self) -> bool:
        return not has_errors(self.findings)

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]


class Validator:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._roots_cache: tuple[float, list[x509.Certificate]] | None = None

    def policy(self) -> CheckPolicy:
        s = self._ctx.settings
        return CheckPolicy(self._ctx.clock.now(), s.min_remaining_days, s.clock_skew_seconds)

    def org_roots(self) -> list[x509.Certificate]:
        """The roots of `org_roots_file`, re-read when the file changes."""
        path: Path | None = self._ctx.settings.org_roots_file
        if path is None:
            return []
        try:
            mtime = path.stat().st_mtime
            if self._roots_cache is None or self._roots_cache[0] != mtime:
                self._roots_cache = (mtime, x509.load_pem_x509_certificates(path.read_bytes()))
        except (OSError, ValueError) as exc:
            raise ServiceUnavailable(
                "INTERCA_ORG_ROOTS_FILE cannot be read as PEM certificates "
                f"({type(exc).__name__}); fix it or unset it."
            ) from None
        return self._roots_cache[1]

    # §2 -------------------------------------------------------------------------------------

    def check_upload(self, ca: IntermediateCa, upload: pem.Upload) -> Evaluation:
        """Gates and checks on an uploaded intermediate; a gate failure is the only finding."""
        try:
            certs = pem.decode_upload(upload, subject="fileUpload", max_bytes=pem.CERT_MAX_BYTES)
        except FindingsError as refused:
            return Evaluation(list(refused.findings))
        return self.check_intermediate(ca, certs)

    def check_intermediate(self, ca: IntermediateCa, certs: list[x509.Certificate]) -> Evaluation:
        assert ca.key is not None and ca.csr is not None
        csr = x509.load_pem_x509_csr(ca.csr.pem.encode())
        candidate = Candidate(
            certs=certs,
            expected_spki=spki_der(serialization.load_pem_public_key(ca.key.public_key_pem.encode())),
            csr_path_length=ca.csr.subject.path_length_constraint,
            csr_subject=csr.subject,
            policy=self.policy(),
            allow_path_length_change=ca.type is CaType.CUSTOM_SW,
        )
        gate = failing_gate(candidate)
        if gate is not None:  # later checks would describe the wrong input
            return Evaluation([gate])
        return Evaluation(check_intermediate(candidate), certs[0])

    # §3 -------------------------------------------------------------------------------------

    def check_chain_upload(self, intermediate: x509.Certificate, upload: pem.Upload) -> Evaluation:
        try:
            certs = pem.decode_upload(
                upload, subject="chainUpload", max_bytes=pem.CHAIN_MAX_BYTES, max_blocks=pem.CHAIN_MAX_BLOCKS
            )
        except FindingsError as refused:
            return Evaluation(list(refused.findings), intermediate)
        return self.check_chain(intermediate, certs)

    def check_chain(self, intermediate: x509.Certificate, certs: list[x509.Certificate]) -> Evaluation:
        result = chain_rules.build_chain(intermediate, certs, self.policy(), self.org_roots())
        return Evaluation(list(result.findings), intermediate, result)

    # §5 -------------------------------------------------------------------------------------

    def self_test(
        self, ca: IntermediateCa, intermediate: x509.Certificate, chain: list[x509.Certificate]
    ) -> list[Finding]:
        """Mint a canary with the CA's real key and prove it verifies and handshakes."""
        assert ca.key is not None
        signer = self._ctx.signer(ca)
        expiries = [intermediate.not_valid_after_utc, *(c.not_valid_after_utc for c in chain)]
        findings = run_self_test(
            SelfTestInput(
                intermediate=intermediate,
                chain=chain,
                org_roots=self.org_roots(),
                signer=signer,
                effective_expiry=min(expiries),
                now=self._ctx.clock.now(),
                leaf_key_type=self._ctx.settings.leaf_key_type,
                profile=self.leaf_profile(ca.id, intermediate),
            )
        )
        if self._loopback_pki_url():
            findings.append(
                Finding.warning(
                    "crl_url_loopback",
                    f"pki_base_url is {self._ctx.settings.pki_base_url}, a loopback address: inspected "
                    "clients cannot fetch the CRL there; point INTERCA_PKI_BASE_URL at an address "
                    "they can reach.",
                    f"intermediate: {intermediate.subject.rfc4514_string()}",
                )
            )
        return findings

    def leaf_profile(self, ca_id: int, intermediate: x509.Certificate) -> LeafProfile:
        """The deployment's leaf settings for this CA, with its CRL and CA URLs (§6.1, §6.4)."""
        s = self._ctx.settings
        base = s.pki_base_url.rstrip("/")
        return LeafProfile(
            lifetime_days=s.leaf_lifetime_days,
            backdate_minutes=s.leaf_backdate_minutes,
            crl_url=f"{base}/pki/crl/{ca_id}.crl" if s.leaf_crl_dp and can_sign_crl(intermediate) else None,
            aia_url=f"{base}/pki/ca/{ca_id}.crt" if s.leaf_aia else None,
        )

    def _loopback_pki_url(self) -> bool:
        import ipaddress
        from urllib.parse import urlsplit

        host = urlsplit(self._ctx.settings.pki_base_url).hostname or ""
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    # The whole report -----------------------------------------------------------------------

    def evaluate(
        self,
        ca: IntermediateCa,
        cert_upload: pem.Upload | None,
        chain_upload: pem.Upload | None,
        *,
        with_self_test: bool,
    ) -> Evaluation:
        """§2 on the uploaded (else stored) intermediate, §3 on the uploaded (else stored, unless
        a new intermediate was given) chain, then the self-test when nothing so far is an error."""
        if cert_upload is not None:
            ev = self.check_upload(ca, cert_upload)
        else:
            assert ca.cert is not None
            ev = self.check_intermediate(ca, [x509.load_der_x509_certificate(ca.cert.der)])
        if ev.intermediate is None:
            return ev
        chain_certs: list[x509.Certificate] | None = None
        if chain_upload is not None:
            chain_ev = self.check_chain_upload(ev.intermediate, chain_upload)
        elif cert_upload is None and ca.cert is not None and ca.cert.chain_pem:
            chain_certs = x509.load_pem_x509_certificates(ca.cert.chain_pem.encode())
            chain_ev = self.check_chain(ev.intermediate, chain_certs)
        else:
            chain_ev = None
        if chain_ev is not None:
            ev.findings += chain_ev.findings
            ev.chain = chain_ev.chain
        if with_self_test and ev.valid:
            path = ev.chain.path if ev.chain is not None else []
            ev.findings += self.self_test(ca, ev.intermediate, path)
        return ev


def signing_failure(findings: list[Finding]) -> Finding | None:
    """The self-test's key-store failure, which is the service's fault, not the certificate's."""
    return next((f for f in findings if f.id == "selftest_signing_failed"), None)


def effective_expiry(intermediate: x509.Certificate, chain: chain_rules.ChainResult | None) -> dt.datetime:
    return chain.effective_expiry if chain is not None else intermediate.not_valid_after_utc
