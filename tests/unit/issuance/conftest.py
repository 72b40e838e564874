"""A deployment for the engine tests: the real services over a copy of the template data
directory (built-in CA included), a frozen clock, and custom CAs signed by the test PKI and taken
through the real lifecycle services (key pair, CSR, upload, chain, finalize) on demand."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from tests.conftest import make_settings
from tests.pki import CA, TestPKI, pem

from interca.app import build_services
from interca.clock import FrozenClock
from interca.domain.principal import Principal
from interca.domain.x509.pem import Upload
from interca.issuance import Engine, LeafKeyPool
from interca.service.registry import Services

CSR_FIELDS = {
    "csrFileName": "branch", "commName": "Engine Test CA", "orgName": "Example Org", "deptName": "Security",
    "city": "London", "state": "England", "country": "COUNTRY_GB", "pathLengthConstraint": 0,
}  # fmt: skip
ADMIN = Principal.system("engine-tests")


@dataclass
class Finalized:
    """A custom CA at CERT_READY: its id, its certificate and the chain uploaded above it."""

    id: int
    cert: x509.Certificate
    chain: list[x509.Certificate]


@dataclass
class Deployment:
    services: Services
    clock: FrozenClock
    pki: TestPKI
    engines: list[Engine] = field(default_factory=list)
    pools: list[LeafKeyPool] = field(default_factory=list)
    _count: int = 0

    def finalized(
        self,
        key_type: str = "EC_P256",
        *,
        issuer: CA | None = None,
        chain: list[x509.Certificate] | None = None,
        **knobs: Any,
    ) -> Finalized:
        """A software CA of `key_type`, signed by `issuer` (default the PKI's root) with
        `pki.sign_ca` `knobs`, with `chain` uploaded (default `[root]`; `[]` uploads none)."""
        self._count += 1
        who, life = ADMIN, self.services.lifecycle
        body = {"name": f"Engine CA {self._count}", "type": "CUSTOM_SW", "keyType": key_type}
        ca = self.services.certificates.create(who, body)
        life.generate_key_pair(who, ca.id)
        life.download_public_key(who, ca.id)
        life.generate_csr(who, ca.id, CSR_FIELDS)
        csr = x509.load_pem_x509_csr(life.download_csr(who, ca.id).body.encode())
        cert = self.pki.sign_ca(csr, issuer=issuer, **knobs)
        life.upload_cert(who, ca.id, Upload(pem(cert), "intermediate.pem"))
        chain = [self.pki.root.cert] if chain is None else chain
        if chain:
            life.upload_chain(who, ca.id, Upload(pem(*chain), "chain.pem"))
        life.finalize(who, ca.id)
        return Finalized(ca.id, cert, chain)

    def make_default(self, ca_id: int) -> None:
        self.services.certificates.make_default(ADMIN, ca_id)

    def engine(self, **kwargs: Any) -> Engine:
        """An engine over this deployment (poll 0 unless told: every mint sees the pointer);
        closed at the end of the test."""
        kwargs.setdefault("default_poll_seconds", 0)
        made = Engine(self.services.ctx, **kwargs)
        self.engines.append(made)
        return made


@pytest.fixture
def deployment(data_dir: Path, pki: TestPKI) -> Iterator[Deployment]:
    clock = FrozenClock()
    services = build_services(make_settings(data_dir), clock)
    made = Deployment(services, clock, pki)
    yield made
    for engine in made.engines:
        engine.close()
    for pool in made.pools:
        pool.close()
    services.ctx.db.dispose()
