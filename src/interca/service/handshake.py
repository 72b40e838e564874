"""The self-test's TLS handshake (certificates.md §5 step 5): a server presenting a leaf and its
chain and a strict client trusting one certificate, as two in-memory `ssl` objects, so that a
certificate the verifier accepted is also proved against OpenSSL.

OpenSSL checks validity at the real clock, never at a chosen time; see `selftest.py`.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

_HANDSHAKE_ROUNDS = 20  # a TLS 1.2 handshake needs 4 flights, TLS 1.3 3; the rest is headroom


def handshake(
    leaf: x509.Certificate,
    leaf_key: CertificateIssuerPrivateKeyTypes,
    host: str,
    *,
    trusted: x509.Certificate,
    untrusted: Sequence[x509.Certificate],
    partial_chain: bool,
) -> str | None:
    """A TLS 1.2+ handshake between two in-memory `ssl` objects; the failure text or `None`.

    Server: the leaf, then `untrusted` (intermediate first, no root, §6.4). Client:
    `ssl.create_default_context` trusting only `trusted`, hostname `host` checked, X.509 strict
    (plus partial chains with `partial_chain`, for a trusted certificate that is not a root). `ssl`
    loads keys only from files, so the leaf key is written to a 0600 file in a 0700 temporary
    directory that is removed on return.
    """
    with tempfile.TemporaryDirectory(prefix="interca-selftest-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o700)  # mkdtemp makes it 0700 already; say so for the reader
        chain_file, key_file, store_file = folder / "chain.pem", folder / "key.pem", folder / "store.pem"
        key_pem = leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key_pem)
        chain_file.write_bytes(b"".join(_pem(c) for c in [leaf, *untrusted]))
        store_file.write_bytes(_pem(trusted))

        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.minimum_version = ssl.TLSVersion.TLSv1_2
        server.load_cert_chain(chain_file, key_file)
        client = ssl.create_default_context(cafile=str(store_file))
        client.minimum_version = ssl.TLSVersion.TLSv1_2
        client.check_hostname = True
        client.verify_flags |= ssl.VERIFY_X509_STRICT
        if partial_chain:
            client.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    # Both contexts hold what they loaded; the files are gone from here on.
    return _pump(client, server, host)


def _pump(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, host: str) -> str | None:
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_out, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(to_client, client_out, server_hostname=host)
    server = server_ctx.wrap_bio(to_server, server_out, server_side=True)
    client_done = server_done = False
    for _ in range(_HANDSHAKE_ROUNDS):
        try:
            if not client_done:
                client.do_handshake()
                client_done = True
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLCertVerificationError as exc:
            return str(exc.verify_message)
        except ssl.SSLError as exc:
            return f"client: {exc.reason or exc}"
        to_server.write(client_out.read())
        try:
            if not server_done:
                server.do_handshake()
                server_done = True
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            return f"server: {exc.reason or exc}"
        to_client.write(server_out.read())
        if client_done and server_done:
            return None
    return "the handshake did not complete"


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
