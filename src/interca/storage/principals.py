"""Repositories of who may call the API: the deployment row (org API key), admin users, OAuth
clients, and the server-side sessions and tokens they hold. Only hashes of session ids and
tokens are stored; the API key is sealed by the caller before it gets here."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from interca.storage.tables import ClientRow, DeploymentRow, SessionRow, TokenRow, UserRow


@dataclass(frozen=True)
class Deployment:
    deployment_id: str
    api_key_sealed: bytes
    api_key_version: int
    builtin_root_key_ref: str


@dataclass(frozen=True)
class User:
    id: int
    username: str
    password_hash: str
    role: str


@dataclass(frozen=True)
class Client:
    id: int
    client_id: str
    name: str
    role: str
    secret_hash: str | None
    public_key_pem: str | None


@dataclass(frozen=True)
class SessionRecord:
    user: User
    api_key_version: int
    created_at: dt.datetime
    last_seen_at: dt.datetime


class DeploymentRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def get(self) -> Deployment | None:
        row = self._s.get(DeploymentRow, 1)
        if row is None:
            return None
        return Deployment(
            row.deployment_id, row.api_key_sealed, row.api_key_version, row.builtin_root_key_ref
        )

    def create(self, deployment_id: str, api_key_sealed: bytes, root_key_ref: str, now: dt.datetime) -> None:
        self._s.add(
            DeploymentRow(
                singleton=1,
                deployment_id=deployment_id,
                api_key_sealed=api_key_sealed,
                api_key_version=1,
                builtin_root_key_ref=root_key_ref,
                created_at=now,
            )
        )
        self._s.flush()

    def set_api_key(self, api_key_sealed: bytes) -> int:
        """Store a new sealed API key; returns the new key version."""
        row = self._s.get(DeploymentRow, 1)
        assert row is not None
        row.api_key_sealed = api_key_sealed
        row.api_key_version += 1
        self._s.flush()
        return row.api_key_version


def _user(row: UserRow) -> User:
    return User(row.id, row.username, row.password_hash, row.role)


class UserRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def by_username(self, username: str) -> User | None:
        row = self._s.scalar(select(UserRow).where(UserRow.username == username.lower()))
        return _user(row) if row else None

    def add(self, username: str, password_hash: str, role: str, now: dt.datetime) -> User:
        row = UserRow(username=username.lower(), password_hash=password_hash, role=role, created_at=now)
        self._s.add(row)
        self._s.flush()
        return _user(row)

    def set_password(self, user_id: int, password_hash: str) -> None:
        row = self._s.get(UserRow, user_id)
        assert row is not None
        row.password_hash = password_hash

    def count(self) -> int:
        return len(self._s.scalars(select(UserRow.id)).all())


def _client(row: ClientRow) -> Client:
    return Client(row.id, row.client_id, row.name, row.role, row.secret_hash, row.public_key_pem)


class ClientRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def by_client_id(self, client_id: str) -> Client | None:
        row = self._s.scalar(select(ClientRow).where(ClientRow.client_id == client_id))
        return _client(row) if row else None

    def by_pk(self, pk: int) -> Client | None:
        row = self._s.get(ClientRow, pk)
        return _client(row) if row else None

    def add(
        self,
        client_id: str,
        name: str,
        role: str,
        secret_hash: str | None,
        public_key_pem: str | None,
        now: dt.datetime,
    ) -> Client:
        row = ClientRow(
            client_id=client_id,
            name=name,
            role=role,
            secret_hash=secret_hash,
            public_key_pem=public_key_pem,
            created_at=now,
        )
        self._s.add(row)
        self._s.flush()
        return _client(row)


class SessionRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, id_hash: str, user_id: int, api_key_version: int, now: dt.datetime) -> None:
        self._s.add(
            SessionRow(
                id_hash=id_hash,
                user_id=user_id,
                api_key_version=api_key_version,
                created_at=now,
                last_seen_at=now,
            )
        )
        self._s.flush()

    def get(self, id_hash: str) -> SessionRecord | None:
        row = self._s.get(SessionRow, id_hash)
        if row is None:
            return None
        user = self._s.get(UserRow, row.user_id)
        if user is None:
            return None
        return SessionRecord(_user(user), row.api_key_version, row.created_at, row.last_seen_at)

    def touch(self, id_hash: str, now: dt.datetime) -> None:
        row = self._s.get(SessionRow, id_hash)
        if row is not None:
            row.last_seen_at = now

    def delete(self, id_hash: str) -> None:
        self._s.execute(delete(SessionRow).where(SessionRow.id_hash == id_hash))

    def delete_all(self) -> None:
        self._s.execute(delete(SessionRow))

    def delete_idle(self, idle_before: dt.datetime, created_before: dt.datetime) -> None:
        self._s.execute(
            delete(SessionRow).where(
                (SessionRow.last_seen_at < idle_before) | (SessionRow.created_at < created_before)
            )
        )


class TokenRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, token_hash: str, client_pk: int, now: dt.datetime, expires_at: dt.datetime) -> None:
        self._s.add(
            TokenRow(token_hash=token_hash, client_pk=client_pk, created_at=now, expires_at=expires_at)
        )
        self._s.flush()

    def get(self, token_hash: str) -> tuple[Client, dt.datetime] | None:
        row = self._s.get(TokenRow, token_hash)
        if row is None:
            return None
        client = self._s.get(ClientRow, row.client_pk)
        return (_client(client), row.expires_at) if client else None

    def delete_expired(self, now: dt.datetime) -> None:
        self._s.execute(delete(TokenRow).where(TokenRow.expires_at <= now))
