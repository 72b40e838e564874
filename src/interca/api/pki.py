"""`/pki/crl/{certId}.crl` and `/pki/ca/{certId}.crt` (api.md rows 24-25, certificates.md §6.4):
what minted leaves point to. Public by design, never rate-limited, no prefix; served alike by
the API listener and the plain-HTTP `/pki/*` listener (`pki_listener`). Also the app's lifespan
task that re-issues due CRLs in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, FastAPI
from starlette.responses import Response

from interca.api.deps import MAX_CERT_ID, not_rate_limited, services
from interca.errors import NotFound
from interca.service.pki import PkiService
from interca.service.registry import Services

log = logging.getLogger(__name__)
router = APIRouter()
CACHE_CONTROL = "max-age=3600"
REFRESH_INTERVAL_SECONDS = 3600.0  # CRLs are re-issued at 24 h and valid for 7 days


def public_cert_id(raw: str) -> int:
    """`{certId}` of a public URL: a decimal 1-2147483647; anything else is an unknown path
    (404 rather than the authenticated routes' 400: there is nothing to correct)."""
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_CERT_ID:
        raise NotFound("The requested resource was not found.")
    return int(raw)


def _der(body: bytes, media_type: str) -> Response:
    return Response(body, media_type=media_type, headers={"Cache-Control": CACHE_CONTROL})


@router.get("/pki/crl/{certId}.crl", dependencies=[not_rate_limited()])
def get_crl(certId: str, s: Services = Depends(services)) -> Response:
    return _der(s.pki.crl(public_cert_id(certId)), "application/pkix-crl")


@router.get("/pki/ca/{certId}.crt", dependencies=[not_rate_limited()])
def get_ca_certificate(certId: str, s: Services = Depends(services)) -> Response:
    return _der(s.pki.ca_certificate(public_cert_id(certId)), "application/pkix-cert")


@contextlib.asynccontextmanager
async def crl_upkeep(app: FastAPI) -> AsyncIterator[None]:
    """The app's lifespan: `PkiService.refresh_crls` every `REFRESH_INTERVAL_SECONDS` while the
    API listener runs (not at start: fetches re-issue due CRLs on demand anyway). Safe with
    several processes: each re-issue holds the CA's edit lock and re-checks that it is due."""
    task = asyncio.create_task(_refresh_forever(app.state.services.pki))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _refresh_forever(pki: PkiService) -> None:
    while True:
        await asyncio.sleep(REFRESH_INTERVAL_SECONDS)
        try:
            await asyncio.to_thread(pki.refresh_crls)  # signing and locks block: not on the loop
        except Exception:
            log.exception("the periodic CRL refresh failed")  # the next round tries again
