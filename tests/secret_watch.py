"""Secrets hygiene across the whole suite (issue 4): every secret interca generates in this
process is remembered, every log record of the run is kept, and at the end of the session no log
line may contain one of those secrets or any private key. API responses seen by the test
clients are checked the same way as they arrive.

The generators are wrapped, not replaced: they still produce real random secrets."""

from __future__ import annotations

import logging
import threading

from interca.auth import apikey, hashing

PRIVATE_KEY_MARKERS = ("PRIVATE KEY", "PRIVATE_KEY")


class SecretWatch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.secrets: set[str] = set()
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def remember(self, *values: str | None) -> None:
        with self._lock:
            self.secrets.update(v for v in values if v and len(v) >= 8)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # noqa: BLE001 - a broken record must not break the suite
            text = str(record.msg)
        with self._lock:
            self.lines.append(text)

    def leaks(self, text: str) -> list[str]:
        """What in `text` should never be there: a known secret (shown shortened) or a key."""
        with self._lock:
            found = [f"{s[:4]}…" for s in self.secrets if s in text]
        found += [m for m in PRIVATE_KEY_MARKERS if m in text]
        return found

    def leaked_lines(self) -> list[tuple[str, list[str]]]:
        with self._lock:
            lines = list(self.lines)
        return [(line[:200], hits) for line in lines if (hits := self.leaks(line))]


WATCH = SecretWatch()
WATCH.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))


def install() -> None:
    """Keep every log record of the run, and remember every secret the generators make."""
    root = logging.getLogger()
    root.addHandler(WATCH)
    logging.getLogger("interca").setLevel(logging.DEBUG)

    def remembering(fn):  # noqa: ANN001, ANN202
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            value = fn(*args, **kwargs)
            WATCH.remember(value)
            return value

        return wrapper

    hashing.new_secret = remembering(hashing.new_secret)
    hashing.new_token = remembering(hashing.new_token)
    hashing.new_session_id = remembering(hashing.new_session_id)
    apikey.new_api_key = remembering(apikey.new_api_key)
    original_hash = hashing.hash_password

    def hash_and_remember(password: str) -> str:
        WATCH.remember(password)
        return original_hash(password)

    hashing.hash_password = hash_and_remember
