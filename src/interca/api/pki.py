"""`/pki/crl/{certId}.crl` and `/pki/ca/{certId}.crt` (api.md rows 24-25, certificates.md §6.4):
what minted leaves point to. Public by design, never rate-limited, no prefix; served alike by
the API listener and the plain-HTTP `/pki/*` listener (`pki_listener`). The periodic re-issue
is in `upkeep.py`."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.responses import Response

from interca.api.deps import MAX_CERT_ID, not_rate_limited, services
from interca.errors import NotFound
from interca.service.registry import Services

router = APIRouter()
CACHE_CONTROL = "max-age=3600"


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
