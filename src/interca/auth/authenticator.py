"""Logins, sessions, tokens and the credentials behind them (api.md §5).

Sessions and tokens live in the database as SHA-256 hashes, so every process honours them and
they survive restarts. Every failure of the legacy login looks the same to the caller.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import getpass
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from interca.auth import apikey, hashing
from interca.auth.assertion import ASSERTION_TYPE, ClientAuthRefused, normalise_client_key, verify_assertion
from interca.auth.lockout import MAX_DELAY, LoginGuard
from interca.clock import Clock
from interca.config import Settings
from interca.domain.principal import Principal, Role
from interca.errors import InvalidInput, LoginFailed, OAuthError, SessionNotValid
from interca.keystore.master_key import MasterKey
from interca.service.audit import AuditLog
from interca.storage.assertions import UsedAssertionRepository
from interca.storage.db import Database
from interca.storage.principals import (
    ClientRepository,
    DeploymentRepository,
    SessionRepository,
    TokenRepository,
    UserRepository,
)

TIMESTAMP_WINDOW = dt.timedelta(hours=2)
AUDIENCE = "https://api.zscaler.com"
_API_KEY_AAD = b"org-api-key"


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


class Authenticator:
    def __init__(
        self, db: Database, clock: Clock, settings: Settings, master_key: MasterKey, audit: AuditLog
    ) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self._master = master_key
        self._audit = audit
        self._guard = LoginGuard(clock, settings.login_max_failures, settings.login_lockout)

    # org API key -------------------------------------------------------------------------

    def seal_api_key(self, key: str) -> bytes:
        return self._master.seal(key.encode(), _API_KEY_AAD)

    def api_key(self) -> str:
        with self._db.read() as s:
            deployment = DeploymentRepository(s).get()
        if deployment is None:
            raise InvalidInput("The deployment is not initialised; run 'interca init'.")
        return self._master.open(deployment.api_key_sealed, _API_KEY_AAD).decode()

    def rotate_api_key(self, actor: Principal | None = None) -> str:
        """A new org API key; every session opened with the old one ends."""
        key = apikey.new_api_key()
        with self._db.write() as s:
            version = DeploymentRepository(s).set_api_key(self.seal_api_key(key))
            SessionRepository(s).delete_all()
            self._audit.append(
                s, actor or local_actor(), "apikey_rotate", None, "SUCCESS", f"key version {version}"
            )
        return key

    # principals ----------------------------------------------------------------------------

    def add_user(
        self, username: str, role: Role, password: str | None = None, actor: Principal | None = None
    ) -> str:
        """Create an admin-portal user; returns the password (generated when none is given)."""
        username = username.strip()
        if not username or "@" not in username or len(username) > 254:
            raise InvalidInput("The username must be an email address.")
        password = password or secrets.token_urlsafe(18)
        if len(password) < 12:
            raise InvalidInput("The password must be at least 12 characters.")
        with self._db.write() as s:
            users = UserRepository(s)
            if users.by_username(username) is not None:
                raise InvalidInput(f"A user named '{username}' already exists.")
            users.add(username, hashing.hash_password(password), role.value, self._clock.now())
            self._audit.append(
                s, actor or local_actor(), "user_add", None, "SUCCESS", f"{username.lower()} {role.value}"
            )
        return password

    def add_client(
        self, name: str, role: Role, public_key_pem: str | None = None, actor: Principal | None = None
    ) -> tuple[str, str | None]:
        """Register an OAuth client; returns (client_id, client_secret), no secret with a public key.
        A public key must be RSA of at least 2048 bits (`InvalidInput` otherwise); it is stored
        as an SPKI PEM and the client then authenticates with signed JWTs only (api.md §5.4)."""
        if public_key_pem is not None:
            public_key_pem = normalise_client_key(public_key_pem)
        client_id = "interca-" + secrets.token_hex(8)
        secret = None if public_key_pem else hashing.new_secret()
        with self._db.write() as s:
            ClientRepository(s).add(
                client_id,
                name,
                role.value,
                hashing.hash_password(secret) if secret else None,
                public_key_pem,
                self._clock.now(),
            )
            method = "public key" if public_key_pem else "secret"
            self._audit.append(
                s, actor or local_actor(), "client_add", None, "SUCCESS", f"{client_id} {role.value} {method}"
            )
        return client_id, secret

    # legacy login --------------------------------------------------------------------------

    def login(self, body: Any, source: str | None = None) -> str:
        """Check a `POST authenticatedSession` body; returns the new session id (the cookie).

        Every refusal is the same `LoginFailed`, whose `delay` the edge waits before answering:
        growing with the username's recent failures, at most 1 s. While the username or the
        source address is locked (api.md §5.3, `LoginGuard`) every login is refused unchecked."""
        if not isinstance(body, Mapping):
            raise InvalidInput("Request body is invalid.")
        username, password, sent_key = body.get("username"), body.get("password"), body.get("apiKey")
        ts = body.get("timestamp")
        if isinstance(ts, int) and not isinstance(ts, bool):
            ts = str(ts)
        if not all(isinstance(v, str) and v for v in (username, password, sent_key, ts)):
            raise InvalidInput("Request body is invalid.")
        assert isinstance(username, str) and isinstance(password, str) and isinstance(ts, str)
        assert isinstance(sent_key, str)
        if not ts.isdigit() or len(ts) < 6:
            raise InvalidInput("Request body is invalid.")

        now = self._clock.now()
        sent_at = dt.datetime.fromtimestamp(int(ts) / 1000, dt.UTC) if len(ts) < 16 else None
        who = Principal("USER", username.strip().lower()[:254], Role.AUDITOR, source_address=source)
        with self._db.read() as s:
            locked = self._guard.is_locked(s, who.name, source)
            user = UserRepository(s).by_username(username)
            deployment = DeploymentRepository(s).get()
        if locked:
            self._audit.record(who, "login_failed", None, "FAILURE", "locked")
            raise LoginFailed(delay=MAX_DELAY)
        # Verify the password even for an unknown user so timing does not tell them apart.
        password_ok = hashing.verify_password(user.password_hash if user else None, password)
        key_ok = deployment is not None and apikey.matches(
            self._master.open(deployment.api_key_sealed, _API_KEY_AAD).decode(), ts, sent_key
        )
        in_window = sent_at is not None and abs(now - sent_at) <= TIMESTAMP_WINDOW
        if not (user and password_ok and key_ok and in_window) or deployment is None:
            # For the audit log only (admins may see why); the caller learns nothing.
            reason = (
                "unknown user" if user is None else "wrong password" if not password_ok
                else "wrong API key" if not key_ok else "timestamp outside the window"
            )  # fmt: skip
            with self._db.write() as s:
                failure = self._guard.record_failure(s, who.name, source)
                self._audit.append(s, who, "login_failed", None, "FAILURE", reason)
                for lock in failure.locks:  # once per lock: only the failure that sets it
                    self._audit.append(s, who, "login_locked", None, "FAILURE", lock)
            raise LoginFailed(delay=failure.delay)

        session_id = hashing.new_session_id()
        with self._db.write() as s:
            SessionRepository(s).add(hashing.digest(session_id), user.id, deployment.api_key_version, now)
            self._guard.clear(s, who.name)
            self._audit.append(s, who, "login", None, "SUCCESS", f"role {user.role}")
        return session_id

    def check_session(self, session_id: str) -> Principal:
        """The session's user, resetting its idle timer; `SessionNotValid` if it has ended."""
        id_hash = hashing.digest(session_id)
        now = self._clock.now()
        with self._db.write() as s:
            record = SessionRepository(s).get(id_hash)
            deployment = DeploymentRepository(s).get()
            if (
                record is None
                or deployment is None
                or record.api_key_version != deployment.api_key_version
                or now - record.last_seen_at > dt.timedelta(seconds=self._settings.session_idle_timeout)
                or now - record.created_at > dt.timedelta(seconds=self._settings.session_max_lifetime)
            ):
                if record is not None:
                    SessionRepository(s).delete(id_hash)
                raise SessionNotValid()
            SessionRepository(s).touch(id_hash, now)
        return Principal("USER", record.user.username, Role(record.user.role), session_hash=id_hash)

    def logout(self, principal: Principal) -> None:
        """End a legacy session (a bearer token stays valid: the OneAPI SDK logs out on exit)."""
        if principal.session_hash:
            with self._db.write() as s:
                SessionRepository(s).delete(principal.session_hash)
                self._audit.append(s, principal, "logout", None, "SUCCESS", "session ended")

    # OAuth2 client credentials (RFC 6749 §4.4) -------------------------------------------------

    def issue_token(
        self, form: Mapping[str, list[str]], authorization: str | None, source: str | None = None
    ) -> IssuedToken:
        """Check a token request (form fields as lists, to catch duplicates) and issue a token.
        Every request is audited: `token_issued`, or `token_failed` with the RFC 6749 error."""
        try:
            return self._issue_token(form, authorization, source)
        except OAuthError as exc:
            basic = None
            with contextlib.suppress(OAuthError):
                basic = _basic_credentials(authorization)
            presented = (form.get("client_id") or [basic[0] if basic else "unknown"])[0][:64] or "unknown"
            who = Principal("CLIENT", presented, Role.AUDITOR, source_address=source)
            # The reason id says why (for admins); it never quotes the request.
            reason = f" [{exc.reason}]" if isinstance(exc, ClientAuthRefused) else ""
            self._audit.record(who, "token_failed", None, "FAILURE", exc.error + reason)
            raise

    def _issue_token(
        self, form: Mapping[str, list[str]], authorization: str | None, source: str | None
    ) -> IssuedToken:

        def field(name: str) -> str | None:
            values = form.get(name, [])
            if len(values) > 1:
                raise OAuthError("invalid_request", f"The parameter {name} is given more than once.")
            return values[0] if values else None

        grant = field("grant_type")
        if grant is None:
            raise OAuthError("invalid_request", "grant_type is required.")
        if grant != "client_credentials":
            raise OAuthError("unsupported_grant_type", "Only the client_credentials grant is supported.")
        audience = field("audience")
        if audience is not None and audience != AUDIENCE:
            raise OAuthError("invalid_request", f"audience must be {AUDIENCE}.")
        client_id, secret = field("client_id"), field("client_secret")
        assertion, assertion_type = field("client_assertion"), field("client_assertion_type")
        uses_assertion = assertion is not None or assertion_type is not None
        basic = _basic_credentials(authorization)
        if [basic is not None, secret is not None, uses_assertion].count(True) > 1:
            raise OAuthError("invalid_request", "Use exactly one client authentication method.")
        if basic:
            if client_id is not None and client_id != basic[0]:
                raise OAuthError("invalid_request", "client_id differs from the Basic credentials.")
            client_id, secret = basic
        if uses_assertion:
            if assertion is None or assertion_type != ASSERTION_TYPE:
                raise OAuthError(
                    "invalid_request",
                    f"client_assertion needs client_assertion_type={ASSERTION_TYPE}, and the reverse.",
                )
            if not client_id:
                raise OAuthError("invalid_request", "client_id is required.")
        elif not client_id or secret is None:
            raise OAuthError("invalid_request", "client_id and client_secret are required.")

        with self._db.read() as s:
            client = ClientRepository(s).by_client_id(client_id)
        now = self._clock.now()
        verified = None
        if assertion is not None:
            # The method must match the registration: a secret client cannot sign, a key client
            # has no secret. Both refusals look like an unknown client to the caller.
            if client is None or client.public_key_pem is None:
                raise ClientAuthRefused("unknown_client" if client is None else "method_mismatch")
            key_pem = client.public_key_pem
            verified = verify_assertion(
                assertion, client_id=client_id, public_key_pem=key_pem, audience=AUDIENCE, now=now
            )
        else:
            assert secret is not None
            # Verified even for an unknown or key-registered client, so timing tells nothing apart.
            secret_ok = hashing.verify_password(client.secret_hash if client else None, secret)
            if client is None or not secret_ok:
                reason = (
                    "unknown_client" if client is None else "method_mismatch" if client.secret_hash is None
                    else "wrong_secret"
                )  # fmt: skip
                raise ClientAuthRefused(reason)

        token = hashing.new_token()
        lifetime = self._settings.token_lifetime
        with self._db.write() as s:
            # RFC 7523 §3 item 7: a jti is single-use until its exp (the assertion's whole life).
            if (
                verified is not None
                and verified.jti is not None
                and not UsedAssertionRepository(s).use(verified.replay_key, verified.expires_at, now)
            ):
                raise ClientAuthRefused(
                    "assertion_replayed", "The client assertion was used already; sign one with a new jti."
                )
            tokens = TokenRepository(s)
            tokens.delete_expired(now)
            tokens.add(hashing.digest(token), client.id, now, now + dt.timedelta(seconds=lifetime))
            who = Principal("CLIENT", client.client_id, Role(client.role), source_address=source)
            self._audit.append(s, who, "token_issued", None, "SUCCESS", f"expires in {lifetime} s")
        return IssuedToken(token, lifetime)

    def check_bearer(self, token: str) -> Principal:
        with self._db.read() as s:
            found = TokenRepository(s).get(hashing.digest(token))
        if found is None or found[1] <= self._clock.now():
            raise SessionNotValid(bearer=True)
        client = found[0]
        return Principal("CLIENT", client.client_id, Role(client.role))


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """HTTP Basic client credentials, form-urlencoded inside (RFC 6749 §2.3.1)."""
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "The Basic credentials are malformed.") from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "The Basic credentials are malformed.")
    return unquote_plus(user), unquote_plus(password)


def local_actor() -> Principal:
    """Who runs a local CLI command: the OS user, as a SYSTEM actor (api.md §3.6)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Principal.system(name)
