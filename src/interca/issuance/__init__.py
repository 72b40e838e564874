"""The issuing engine (certificates.md §6): mints leaf certificates for TLS inspection with the
default CA, from a per-CA DER template, a leaf-key pool and a bounded single-flight cache.

    engine = Engine(ctx)
    minted = engine.mint(["www.example.com"])   # raises LeafRefused
    minted.chain, minted.key, minted.chain_pem, minted.key_pem

No HTTP here; the proxy and the edge serve what `Engine.mint` returns.
"""

from interca.domain.x509.leaf_refusal import LeafRefused
from interca.issuance.engine import Engine
from interca.issuance.keypool import LeafKeyPool
from interca.issuance.metrics import EngineMetrics
from interca.issuance.minted import Minted

__all__ = ["Engine", "EngineMetrics", "LeafKeyPool", "LeafRefused", "Minted"]
