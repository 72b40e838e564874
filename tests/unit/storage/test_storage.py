"""Storage guarantees: WAL mode, one default by construction, lease locks across holders."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from interca.errors import EditLockBusy
from interca.service.registry import Services
from interca.storage.certificates import CertificateRepository
from interca.storage.locks import Locks


def test_sqlite_runs_in_wal_mode_with_foreign_keys(services: Services) -> None:
    with services.ctx.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_two_defaults_are_impossible(services: Services) -> None:
    with pytest.raises(IntegrityError), services.ctx.db.write() as s:
        s.execute(text("INSERT INTO default_certificate (singleton, certificate_id) VALUES (2, 1)"))
    with pytest.raises(IntegrityError), services.ctx.db.write() as s:
        s.execute(text("DELETE FROM certificates WHERE id = 1"))  # the default cannot vanish under it
    with services.ctx.db.read() as s:
        assert CertificateRepository(s).default_id() == 1


def test_ids_are_never_reused(services: Services) -> None:
    from interca.domain.principal import Principal, Role

    admin = Principal("USER", "a@example.com", Role.ADMIN)
    first = services.certificates.create(admin, {"name": "a", "type": "CUSTOM_SW"})
    services.certificates.delete(admin, first.id)
    second = services.certificates.create(admin, {"name": "a", "type": "CUSTOM_SW"})
    assert second.id == first.id + 1


def test_edit_lock_is_exclusive_and_times_out(services: Services) -> None:
    locks: Locks = services.ctx.locks
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with locks.hold("cert:5", wait=1):
            held.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    started = time.monotonic()
    with pytest.raises(EditLockBusy), locks.hold("cert:5", wait=0.3):
        pass
    assert time.monotonic() - started >= 0.3
    with locks.hold("cert:6", wait=0.3):  # other certificates are unaffected
        pass
    release.set()
    t.join()
    with locks.hold("cert:5", wait=0.3):
        assert locks.held("cert:5")
    assert not locks.held("cert:5")


def test_a_crashed_holders_lease_runs_out(services: Services) -> None:
    import datetime as dt

    from interca.storage.tables import LockRow

    with services.ctx.db.write() as s:
        s.add(
            LockRow(
                name="cert:9", holder="dead", expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            )
        )
    with services.ctx.locks.hold("cert:9", wait=0):
        pass
