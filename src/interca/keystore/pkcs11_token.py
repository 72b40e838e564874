"""How to find one region's PKCS#11 token and where its user PIN comes from (hsm.md §2).

PINs are opaque (vendors use forms like `<user>:<password>`): read from an environment variable
or a file of mode 0600/0400 owned by the service user, when logging in, and never kept, logged
or shown.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from interca.errors import KeyStoreError


@dataclass(frozen=True)
class PinSource:
    """Where a token's user PIN comes from: an environment variable or a 0600/0400 file."""

    region: str
    env: str | None
    file: Path | None
    env_setting: str
    file_setting: str

    def read(self) -> str:
        if self.env:
            value = os.environ.get(self.env, "")
            if not value:
                raise _pin_missing(f"The environment variable named by {self.env_setting} is unset or empty.")
            return value
        if self.file is None:
            raise _pin_missing(
                f"No PIN is configured for region {self.region}: "
                f"set {self.env_setting} or {self.file_setting}."
            )
        self.check_file()
        try:
            value = self.file.read_text().rstrip("\r\n")
        except (OSError, UnicodeDecodeError):
            raise _pin_missing(f"The PIN file named by {self.file_setting} cannot be read.") from None
        if not value:
            raise _pin_missing(f"The PIN file named by {self.file_setting} is empty.")
        return value

    def check_file(self) -> None:
        """Refuse a PIN file that is missing, not a regular file, not ours, or open to others."""
        assert self.file is not None
        try:
            st = self.file.stat()
        except OSError:
            raise _pin_missing(
                f"The PIN file named by {self.file_setting} does not exist for region {self.region}."
            ) from None
        if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077 or st.st_uid != os.geteuid():
            raise _pin_missing(
                f"The PIN file named by {self.file_setting} must be a file of mode 0600 or 0400 "
                "owned by the service user."
            )


def _pin_missing(message: str) -> KeyStoreError:
    return KeyStoreError("hsm_pin_missing", message)


@dataclass(frozen=True)
class TokenConfig:
    """How to find and log in to one region's token."""

    region: str
    label: str
    serial: str | None
    pin: PinSource
    label_setting: str
    serial_setting: str

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.label, self.serial)
