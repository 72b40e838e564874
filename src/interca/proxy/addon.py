"""The mitmproxy addons of `interca proxy` (certificates.md §6.3-§6.4, §7). Needs mitmproxy
(the `proxy` extra, own virtualenv); written against mitmproxy 11.0.2, whose internals it uses.

`Inspect` must come before mitmproxy's own `TlsConfig` in the addon chain (`run.py` adds it
first): `TlsConfig.tls_start_client` returns early when an addon already set `ssl_conn`, and
mitmproxy runs every hook addon by addon in chain order. For each client ClientHello:

- `tls_clienthello`: mint a leaf for the SNI (without SNI, the CONNECT host or destination
  address) in a worker thread, so a slow mint never stalls the event loop. A refusal sets
  `ignore_connection`: the bytes pass through uninspected and the client sees the upstream's
  own certificate (§6.3).
- `tls_start_client`: the client-side `SSL.Connection` with the leaf, its key (in memory only)
  and the intermediate + non-root CAs, with mitmproxy's TLS settings and ALPN choice. Without a
  leaf (the engine failed) it halts the hook chain, so mitmproxy's own CA never answers: the
  connection fails closed.

The addon keeps no leaf beyond one handshake; the engine caches, keyed by the signing CA.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from typing import Any

from cryptography import x509
from mitmproxy import certs, connection, ctx, exceptions, tls
from mitmproxy.addons import tlsconfig
from mitmproxy.net import tls as net_tls
from mitmproxy.proxy import server_hooks
from mitmproxy.proxy.layers import modes
from OpenSSL import SSL

from interca.domain.x509.hostnames import HostName
from interca.domain.x509.leaf_refusal import LeafRefused
from interca.proxy.minter import Minted, Minter, Outcomes, names_for, shown

log = logging.getLogger(__name__)

_CHAIN_CACHE = 32  # parsed CA chains; a default switch adds one


class Inspect:
    """Serve leaves from `minter` to clients; pass refused names through uninspected."""

    name = "interca_inspect"

    def __init__(self, minter: Minter, outcomes: Outcomes | None = None) -> None:
        self._minter = minter
        self._outcomes = outcomes
        self._minted: dict[str, Minted] = {}  # client connection id -> leaf, between two hooks
        self._chains: dict[tuple[bytes, ...], tuple[certs.Cert, ...]] = {}

    async def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        client = data.context.client
        names: list[HostName] = []
        try:
            names = names_for(_raw_sni(data.client_hello), _destination(data.context.server))
            minted = await asyncio.to_thread(self._minter.mint, names)
        except LeafRefused as exc:
            data.ignore_connection = True
            self._count(exc.id)
            log.info("passing %s through uninspected: %s", shown(names), exc.message)
            return
        except Exception:
            self._count("error")
            log.exception("minting a leaf for %s failed; closing the connection", shown(names))
            return
        self._count("minted")
        self._minted[client.id] = minted

    def tls_start_client(self, data: tls.TlsData) -> None:
        minted = self._minted.pop(data.context.client.id, None)
        if minted is None:
            raise exceptions.AddonHalt  # TlsConfig would answer with mitmproxy's own CA
        client_ctx = net_tls.create_client_proxy_context(
            method=net_tls.Method.DTLS_SERVER_METHOD if data.is_dtls else net_tls.Method.TLS_SERVER_METHOD,
            min_version=net_tls.Version[ctx.options.tls_version_client_min],
            max_version=net_tls.Version[ctx.options.tls_version_client_max],
            cipher_list=_ciphers(),
            ecdh_curve=ctx.options.tls_ecdh_curve_client,
            chain_file=None,
            alpn_select_callback=tlsconfig.alpn_select_callback,
            request_client_cert=False,
            extra_chain_certs=self._chain(minted.chain[1:]),
            dhparams=_dhparams(),
        )
        ssl_conn = SSL.Connection(client_ctx)
        ssl_conn.use_certificate(x509.load_der_x509_certificate(minted.chain[0]))
        ssl_conn.use_privatekey(minted.key)
        # As TlsConfig: a client speaking TLS to the proxy itself gets HTTP/1.1 (no CONNECT over
        # HTTP/2); otherwise mirror what the upstream negotiated.
        layers = data.context.layers
        to_proxy = len(layers) == 2 and isinstance(layers[0], modes.HttpProxy)
        ssl_conn.set_app_data(
            tlsconfig.AppData(
                client_alpn=b"http/1.1" if to_proxy else data.context.client.alpn,
                server_alpn=data.context.server.alpn,
                http2=ctx.options.http2,
            )
        )
        ssl_conn.set_accept_state()
        data.ssl_conn = ssl_conn

    def client_disconnected(self, client: connection.Client) -> None:
        self._minted.pop(client.id, None)  # a handshake that never reached tls_start_client

    def _chain(self, intermediates: tuple[bytes, ...]) -> tuple[certs.Cert, ...]:
        # Equal Cert tuples hit mitmproxy's lru_cache of contexts: one SSL context per CA chain.
        chain = self._chains.get(intermediates)
        if chain is None:
            if len(self._chains) >= _CHAIN_CACHE:
                self._chains.clear()
            chain = tuple(certs.Cert(x509.load_der_x509_certificate(der)) for der in intermediates)
            self._chains[intermediates] = chain
        return chain

    def _count(self, outcome: str) -> None:
        if self._outcomes is not None:
            self._outcomes.count(outcome)


class HostMap:
    """Connect to a fixed address instead of resolving a host name, like a hosts file for the
    proxy alone: `{"good.example.test": "127.0.0.1", "*.allowed.test": "127.0.0.1"}`. A lab and
    test aid (`interca proxy --map`); the port and the SNI sent upstream stay the client's."""

    name = "interca_host_map"

    def __init__(self, mapping: dict[str, str]) -> None:
        self._mapping = {host.lower().rstrip("."): address for host, address in mapping.items()}

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        if data.server.address is None:
            return
        host, port, *_ = data.server.address
        wanted = str(host).lower().rstrip(".")
        for pattern, address in self._mapping.items():
            if fnmatch.fnmatchcase(wanted, pattern):
                data.server.address = (address, port)
                return


def _raw_sni(client_hello: tls.ClientHello) -> str | None:
    """The SNI host name exactly as sent. mitmproxy's `ClientHello.sni` drops names it deems
    invalid (a `*`, say), which would mint for the destination instead of refusing (§6.3)."""
    for ext_type, body in client_hello.extensions:
        if ext_type != 0 or len(body) < 5:
            continue
        # RFC 6066 §3: ServerNameList length (2), then entries: type (1), length (2), name.
        at, end = 2, min(len(body), 2 + int.from_bytes(body[0:2], "big"))
        while at + 3 <= end:
            name_type, length = body[at], int.from_bytes(body[at + 1 : at + 3], "big")
            name = body[at + 3 : at + 3 + length]
            if name_type == 0:
                return name.decode("utf-8", "replace")
            at += 3 + length
    return None


def _destination(server: connection.Server) -> str | None:
    return str(server.address[0]) if server.address else None


def _ciphers() -> tuple[str, ...]:
    if ctx.options.ciphers_client:
        return tuple(ctx.options.ciphers_client.split(":"))
    # mitmproxy's own client-side default (it names ciphers so that HTTP/2 can be negotiated).
    return tlsconfig._default_ciphers(net_tls.Version[ctx.options.tls_version_client_min])


def _dhparams() -> Any:
    config = ctx.master.addons.get("tlsconfig")
    return config.certstore.dhparams if config is not None and config.certstore is not None else None
