"""The services of one running deployment, built by the composition root (`interca.app`)."""

from __future__ import annotations

from dataclasses import dataclass

from interca.auth.authenticator import Authenticator
from interca.auth.ratelimit import RateLimiter
from interca.service.audit import AuditLog
from interca.service.certificates import CertificateService
from interca.service.context import ServiceContext
from interca.service.hsm_health import HsmHealth
from interca.service.lifecycle import LifecycleService
from interca.service.pki import PkiService


@dataclass
class Services:
    ctx: ServiceContext
    auth: Authenticator
    certificates: CertificateService
    lifecycle: LifecycleService

    audit: AuditLog
    limiter: RateLimiter
    pki: PkiService
    hsm_health: HsmHealth

    @classmethod
    def build(cls, ctx: ServiceContext, auth: Authenticator, audit: AuditLog) -> Services:
        limiter = RateLimiter(ctx.db, ctx.clock, ctx.settings.rate_limit_profile)
        return cls(
            ctx,
            auth,
            CertificateService(ctx, audit),
            LifecycleService(ctx, audit),
            audit,
            limiter,
            PkiService(ctx, audit),
            HsmHealth(ctx),
        )
