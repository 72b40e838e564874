"""The one table from error kinds to HTTP statuses (api.md §4.6), and the error bodies."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from interca import errors

# First match wins, so subclasses come before their bases.
STATUS: list[tuple[type[errors.IntercaError], int]] = [
    (errors.BuiltinGuard, 403),
    (errors.InvalidInput, 400),
    (errors.LoginFailed, 400),
    (errors.SessionNotValid, 401),
    (errors.NotAuthorized, 403),
    (errors.LimitExceeded, 403),
    (errors.NotSubscribed, 403),
    (errors.NotFound, 404),
    (errors.EditLockBusy, 409),
    (errors.RateLimited, 429),
    (errors.KeyStoreError, 503),
    (errors.ServiceUnavailable, 503),
]


def status_of(exc: errors.IntercaError) -> int:
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 503 if exc.code == "SERVICE_UNAVAILABLE" else 500


def error_response(exc: errors.IntercaError) -> Response:
    if isinstance(exc, errors.OAuthError):
        status = 401 if exc.error == "invalid_client" else 400
        return JSONResponse(
            {"error": exc.error, "error_description": exc.message},
            status_code=status,
            headers={"Cache-Control": "no-store"},
        )
    if isinstance(exc, errors.RateLimited):
        # api.md §4.8: not the {code,message} shape. The header is a bare integer (§6 rule 8:
        # the OneAPI SDK cannot parse "1 seconds"); the body repeats it as ZIA words it.
        return JSONResponse(
            {"message": exc.message, "Retry-After": f"{exc.retry_after} seconds"},
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )
    status = status_of(exc)
    headers: dict[str, str] = {}
    if status == 503:
        headers["Retry-After"] = "10"
    if isinstance(exc, errors.SessionNotValid) and exc.bearer:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    code = exc.code if status != 500 else "UNEXPECTED_ERROR"
    message = exc.message if status != 500 else "An unexpected error has occurred."
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


def unexpected() -> Response:
    return JSONResponse({"code": "UNEXPECTED_ERROR", "message": "An unexpected error has occurred."}, 500)


def not_found() -> Response:
    return JSONResponse(
        {"code": "RESOURCE_NOT_FOUND", "message": "The requested resource was not found."}, 404
    )
