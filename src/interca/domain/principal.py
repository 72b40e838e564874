"""The authenticated caller of a request."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum


class Role(Enum):
    ADMIN = "admin"
    AUDITOR = "auditor"


@dataclass(frozen=True)
class Principal:
    """`kind` is USER (legacy session), CLIENT (OAuth2 bearer token) or SYSTEM (first start and
    the CLI's local commands, named after the OS user); `name` is the username, client_id or OS
    user; `session_hash` identifies the legacy session, if any; `source_address` is the peer."""

    kind: str
    name: str
    role: Role
    session_hash: str | None = None
    source_address: str | None = None

    def at(self, source_address: str | None) -> Principal:
        """The same caller, seen from `source_address`."""
        return replace(self, source_address=source_address)

    @classmethod
    def system(cls, name: str) -> Principal:
        return cls("SYSTEM", name, Role.ADMIN)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN
