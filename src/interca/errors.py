"""Error kinds of the core, each with a stable code.

The core raises these; the edges map them: `interca.api.errors` holds the one kind -> HTTP status
table, the CLI maps them to exit status 1. No HTTP knowledge lives here.
"""

from __future__ import annotations


class IntercaError(Exception):
    """Base of every expected failure. `code` is the ZIA error code; `message` is safe to show."""

    code = "UNEXPECTED_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(IntercaError):
    """A request field, body or upload is not acceptable (ZIA INVALID_INPUT_ARGUMENT)."""

    code = "INVALID_INPUT_ARGUMENT"


class InvalidState(InvalidInput):
    """The operation is not allowed in the certificate's lifecycle state (api.md §4.3)."""


class BuiltinGuard(IntercaError):
    """The operation does not apply to the built-in certificate (api.md §4.5)."""

    code = "INVALID_INPUT_ARGUMENT"

    def __init__(self) -> None:
        super().__init__("This operation is not applicable for the built-in certificate")


class NotFound(IntercaError):
    code = "RESOURCE_NOT_FOUND"


class EditLockBusy(IntercaError):
    code = "EDIT_LOCK_NOT_AVAILABLE"

    def __init__(self) -> None:
        super().__init__("Another change to this certificate is in progress; retry in a few seconds.")


class LimitExceeded(IntercaError):
    code = "LIMIT_EXCEEDED"


class NotSubscribed(IntercaError):
    code = "NOT_SUBSCRIBED"


class NotAuthorized(IntercaError):
    code = "NOT_AUTHORIZED"

    def __init__(self, message: str = "This operation requires the admin role.") -> None:
        super().__init__(message)


class SessionNotValid(IntercaError):
    """No valid session or token. `bearer` tells the edge which message and header to use."""

    code = "SESSION_NOT_VALID"

    def __init__(self, bearer: bool = False) -> None:
        self.bearer = bearer
        super().__init__(
            "The access token is not valid or has expired; request a new token."
            if bearer
            else "The session is not valid or has expired; log in again."
        )


class LoginFailed(IntercaError):
    """Legacy login refused; one message for every cause so nothing leaks (api.md §5.3)."""

    code = "INVALID_USERNAME_OR_PASSWORD"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay  # seconds the edge waits before answering (the growing failure delay)
        super().__init__("Invalid email or password")


class RateLimited(IntercaError):
    """A rate-limit window is full (api.md §4.8): `limit` per `unit` (SECOND, MINUTE or HOUR)
    tripped, and the request would pass in `retry_after` whole seconds (at least 1)."""

    code = "RATE_LIMIT_EXCEEDED"

    def __init__(self, limit: int, unit: str, retry_after: int) -> None:
        self.limit = limit
        self.unit = unit
        self.retry_after = max(1, retry_after)
        super().__init__(f"Rate Limit ({limit}/{unit}) exceeded")


class OAuthError(IntercaError):
    """RFC 6749 §5.2 token endpoint error; `error` is the RFC error code."""

    def __init__(self, error: str, description: str) -> None:
        self.error = error
        super().__init__(description)


class ServiceUnavailable(IntercaError):
    """A key store (HSM) or the database cannot be reached right now."""

    code = "SERVICE_UNAVAILABLE"


class KeyStoreError(IntercaError):
    """A key store failed; `error_id` is the stable id of hsm.md §6 (e.g. `hsm_unavailable`)."""

    code = "SERVICE_UNAVAILABLE"

    def __init__(self, error_id: str, message: str) -> None:
        self.error_id = error_id
        super().__init__(f"[{error_id}] {message}")
