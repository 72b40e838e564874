"""`Minted`: what the engine hands a TLS terminator for one host: the chain to send and the key."""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass, field
from functools import cached_property

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


@dataclass(frozen=True)
class Minted:
    """A leaf and what goes with it (certificates.md §6.4).

    `ca_id`: the CA that signed it. `chain`: DER, the leaf first, then the intermediate, then the
    uploaded non-root CAs in path order; never the root. `key`: the leaf's private key (a pool
    key, shared by the leaves minted while it is in use; memory only). `not_after`: the leaf's
    notAfter (UTC). `chain_pem` and `key_pem` are computed on first use and kept.
    """

    ca_id: int
    chain: tuple[bytes, ...]
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = field(repr=False)
    not_after: dt.datetime

    @cached_property
    def chain_pem(self) -> str:
        """The chain as PEM text, leaf first."""
        return "".join(ssl.DER_cert_to_PEM_cert(der) for der in self.chain)

    @cached_property
    def key_pem(self) -> bytes:
        """The leaf key as unencrypted PKCS#8 PEM, for TLS libraries that load keys from memory.
        Never write it to disk or a log."""
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
