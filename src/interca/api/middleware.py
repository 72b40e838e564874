"""Cross-cutting HTTP behaviour as one pure ASGI middleware (api.md §1, §6 rule 11):
one trailing `/` ignored, the security headers and `X-Transaction-Id` on every response, any
unexpected exception turned into the 500 body, logged under the transaction id, and each request
counted in the app's metrics (`api/metrics.py`)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from interca.api.errors import unexpected

log = logging.getLogger("interca.api")

_COMMON = [
    (b"cache-control", b"no-store, no-cache"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]


class EdgeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path[:-1], "raw_path": scope.get("raw_path", b"").rstrip(b"/") or b"/"}
        began = time.perf_counter()
        txid = str(uuid.uuid4())
        scope.setdefault("state", {})["transaction_id"] = txid
        https = scope.get("scheme") == "https"
        started = False
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            nonlocal status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                # Downloads and the token endpoint set their own Cache-Control.
                extra = [(k, v) for k, v in _COMMON if k not in names]
                extra.append((b"x-transaction-id", txid.encode()))
                content_type = dict(headers).get(b"content-type", b"")
                if content_type.startswith(b"application/json") and b"content-disposition" not in names:
                    extra.append((b"content-disposition", b'attachment; filename="api.json"'))
                if https:
                    extra.append((b"strict-transport-security", b"max-age=31536000"))
                message = {**message, "headers": headers + extra}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("unexpected error, transaction %s", txid)
            if started:
                raise
            response: Any = unexpected()
            await response(scope, receive, send_with_headers)
        finally:
            # One line per request under its transaction id; the path only, never a query string.
            log.info("%s %s %s %s", txid, scope["method"], scope["path"], status)
            metrics = getattr(getattr(scope.get("app"), "state", None), "metrics", None)
            if metrics is not None:  # the route template, set by routing (None: nothing matched)
                route = getattr(scope.get("route"), "path", None)
                metrics.observe(scope["method"], route, status, time.perf_counter() - began)
