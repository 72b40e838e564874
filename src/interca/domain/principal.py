"""The authenticated caller of a request."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Role(Enum):
    ADMIN = "admin"
    AUDITOR = "auditor"


@dataclass(frozen=True)
class Principal:
    """`kind` is USER (legacy session) or CLIENT (OAuth2 bearer token); `name` is the username
    or client_id; `session_hash` identifies the legacy session, if any."""

    kind: str
    name: str
    role: Role
    session_hash: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN
