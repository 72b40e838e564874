"""What the plain-HTTP listener beside HTTPS answers (certificates.md §6.4).

Inspected clients fetch the CRL and CA certificates named in minted leaves over `http://`
(`pki_base_url`), so when `interca serve` serves HTTPS it opens a second, plain listener. That
listener must not become a plain-HTTP door to the API: it passes `/pki/*` to the same app and
answers everything else 404 `RESOURCE_NOT_FOUND`, with the usual headers, before any route,
credential or body is looked at. The `/pki` routes live in the app, so they are served alike on
both listeners (certificates.md §6.4 allows plain HTTP for them).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from interca.api.errors import not_found
from interca.api.middleware import EdgeMiddleware

PKI_PREFIX = "/pki/"


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await not_found()(scope, receive, send)


class PkiOnly:
    """An ASGI app serving `app`'s `/pki/*` and nothing else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._refuse = EdgeMiddleware(_not_found)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PKI_PREFIX):
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await self._refuse(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        # lifespan: the API listener runs the app's lifespan; this listener has none of its own
