"""`authenticatedSession` (legacy login, api.md §5.3) and the OAuth2 token endpoint (§5.4)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from urllib.parse import parse_qs, unquote_plus

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from interca.api.bodies import json_response
from interca.api.deps import principal, rate_limited, services
from interca.auth.ratelimit import RateClass
from interca.domain.principal import Principal
from interca.errors import InvalidInput, LoginFailed, OAuthError
from interca.service.registry import Services

router = APIRouter()
token_router = APIRouter()

_ADMIN_LOGIN = {"authType": "ADMIN_LOGIN", "obfuscateApiKey": True}
_NAME_MAX = 254


async def presented_username(request: Request) -> str | None:
    """Login requests count against the username presented (api.md §4.8); a body without one
    presents nobody and is not counted (it is refused as malformed)."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return None
    name = body.get("username") if isinstance(body, dict) else None
    return f"user:{name.strip().lower()[:_NAME_MAX]}" if isinstance(name, str) and name.strip() else None


async def presented_client(request: Request) -> str | None:
    """Token requests count against the client_id presented: the form's, else HTTP Basic's."""
    try:
        form = parse_qs((await request.body()).decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        form = {}
    client_id = (form.get("client_id") or [""])[0]
    header = request.headers.get("authorization", "")
    if not client_id and header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
            client_id = unquote_plus(decoded.partition(":")[0])
        except (binascii.Error, UnicodeDecodeError):
            client_id = ""
    return f"client:{client_id[:_NAME_MAX]}" if client_id else None


@router.post("/authenticatedSession", dependencies=[rate_limited(RateClass.READ, presented_username)])
async def login(request: Request) -> Response:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("Request body is invalid.") from None
    s: Services = services(request)
    try:
        session_id = await run_in_threadpool(s.auth.login, body, _source(request))
    except LoginFailed as refused:
        # The growing failure delay (api.md §5.3) waits on the event loop, never in a worker thread.
        await asyncio.sleep(refused.delay)
        raise
    secure = "; Secure" if request.url.scheme == "https" else ""
    # The value must be followed directly by ';' (clients extract it with JSESSIONID=(.*?);).
    cookie = f"JSESSIONID={session_id}; Path=/{secure}; HttpOnly"
    return JSONResponse(_ADMIN_LOGIN, headers={"Set-Cookie": cookie})


@router.get("/authenticatedSession", dependencies=[rate_limited(RateClass.READ)])
def validate(caller: Principal = Depends(principal)) -> Response:
    return json_response(_ADMIN_LOGIN if caller.kind == "USER" else {"authType": "OAUTH2_CLIENT"})


@router.delete("/authenticatedSession", dependencies=[rate_limited(RateClass.READ)])
def logout(caller: Principal = Depends(principal), s: Services = Depends(services)) -> Response:
    s.auth.logout(caller)  # a bearer token stays valid: the OneAPI SDK calls this on exit
    return json_response({"status": "ACTIVE"})


@token_router.post("/oauth2/v1/token", dependencies=[rate_limited(RateClass.READ, presented_client)])
async def token(request: Request) -> Response:
    if (
        request.headers.get("content-type", "").split(";")[0].strip().lower()
        != "application/x-www-form-urlencoded"
    ):
        raise OAuthError("invalid_request", "The request must be application/x-www-form-urlencoded.")
    try:
        form = parse_qs((await request.body()).decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "The request body is not valid form data.") from None
    s: Services = services(request)
    issued = await run_in_threadpool(
        s.auth.issue_token, form, request.headers.get("authorization"), _source(request)
    )
    return JSONResponse(
        {"access_token": issued.access_token, "token_type": "Bearer", "expires_in": issued.expires_in},
        headers={"Cache-Control": "no-store"},
    )


def _source(request: Request) -> str | None:
    return request.client.host if request.client else None
