"""The database tables (SQLAlchemy 2 declarative). Rows are mapped to domain objects by the
repositories; nothing outside `storage` sees these classes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from interca.storage.columns import UTCDateTime


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime}


class CertificateRow(Base):
    __tablename__ = "certificates"
    # AUTOINCREMENT: SQLite never hands out a deleted certificate's id again (api.md §3.1).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    name_key: Mapped[str] = mapped_column(String(128), unique=True)  # casefolded: unique ignoring case
    type: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    key_type: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(32))

    key_ref: Mapped[str | None] = mapped_column(String(512))
    public_key_pem: Mapped[str | None] = mapped_column(Text)
    key_generated_at: Mapped[dt.datetime | None]
    attestation_verified_at: Mapped[dt.datetime | None]
    attestation_pem: Mapped[str | None] = mapped_column(Text)  # creation-time statement (hsm.md §8.5)

    csr_pem: Mapped[str | None] = mapped_column(Text)
    csr_subject: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    csr_generated_at: Mapped[dt.datetime | None]

    cert_der: Mapped[bytes | None] = mapped_column(LargeBinary)
    cert_file_name: Mapped[str | None] = mapped_column(String(255))
    cert_not_before: Mapped[dt.datetime | None]
    cert_not_after: Mapped[dt.datetime | None]
    chain_pem: Mapped[str | None] = mapped_column(Text)
    chain_file_name: Mapped[str | None] = mapped_column(String(255))
    effective_expiry: Mapped[dt.datetime | None]
    warnings: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)

    crl_number: Mapped[int] = mapped_column(Integer, default=0)  # last cRLNumber issued (monotonic)
    crl_der: Mapped[bytes | None] = mapped_column(LargeBinary)
    crl_issued_at: Mapped[dt.datetime | None]

    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class DefaultCertificateRow(Base):
    """The default certificate: one pointer. The CHECK allows a single row, so two defaults are
    impossible; RESTRICT keeps the default from being deleted underneath it."""

    __tablename__ = "default_certificate"
    __table_args__ = (CheckConstraint("singleton = 1", name="one_default"),)

    singleton: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id", ondelete="RESTRICT"))


class DeploymentRow(Base):
    """Facts about this deployment (one organisation): a single row."""

    __tablename__ = "deployment"
    __table_args__ = (CheckConstraint("singleton = 1", name="one_deployment"),)

    singleton: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    deployment_id: Mapped[str] = mapped_column(String(8))
    api_key_sealed: Mapped[bytes] = mapped_column(LargeBinary)  # AES-256-GCM under the master key
    api_key_version: Mapped[int] = mapped_column(Integer, default=1)
    builtin_root_key_ref: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[dt.datetime]


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(254), unique=True)  # lower-cased email
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime]


class ClientRow(Base):
    __tablename__ = "oauth_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str | None] = mapped_column(String(255))
    public_key_pem: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime]


class SessionRow(Base):
    """A legacy login session; only the SHA-256 of the cookie value is kept."""

    __tablename__ = "sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    api_key_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]


class TokenRow(Base):
    """An OAuth2 access token; only its SHA-256 is kept."""

    __tablename__ = "access_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class LockRow(Base):
    """A lease lock (api.md §4.6): held until released or until `expires_at`, so a crashed
    holder frees it by itself."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime]


class AuditRow(Base):
    """One audit entry. Append-only; `entry_hash` chains it to the entry before (api.md §3.6)."""

    __tablename__ = "audit_log"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[dt.datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(254), index=True)
    actor_type: Mapped[str] = mapped_column(String(8))
    source_address: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32), index=True)
    cert_id: Mapped[int | None] = mapped_column(Integer, index=True)
    outcome: Mapped[str] = mapped_column(String(8))
    detail: Mapped[str] = mapped_column(Text, default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The newest entry's id and hash: every append updates this one row, which serialises
    appends across processes and lets verification notice a removed tail."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("singleton = 1", name="one_audit_head"),)

    singleton: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    last_id: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class RateEventRow(Base):
    """One counted request (api.md §4.8) or failed login (§5.3): `key` names the counter, e.g.
    `rate:<credential>:<METHOD template>` or `login:user:<name>`. Sliding windows count rows."""

    __tablename__ = "rate_events"
    __table_args__ = (Index("ix_rate_events_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(400))
    at: Mapped[dt.datetime]


class UsedAssertionRow(Base):
    """A client assertion's `jti`, kept until its `exp` so it cannot be replayed (api.md §5.4)."""

    __tablename__ = "used_assertions"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)  # client_id + jti
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
