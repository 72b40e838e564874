"""The per-process PKCS#11 backend (hsm.md §6): the module, one logged-in anchor session per
token, one lock, the key-object cache, and reconnect-and-retry-once.

python-pkcs11 initialises modules with `C_Initialize(NULL)`, promising no concurrent calls, yet
releases the GIL around each `C_*` call: concurrent sessions crashed SoftHSM (SIGSEGV), so every
call sequence (find + sign, generate + read back) runs under the backend's lock. Closing a
session that logged in logs out every session of the token, so the anchor session is never
closed; sessions end only when the module is finalised (reconnect, or the process exits).

Error messages name the setting or region to fix, never a PIN, a module path or a token serial:
those go to the log (the PIN nowhere).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pkcs11
from pkcs11 import Mechanism, ObjectClass
from pkcs11 import exceptions as p11e

from interca.errors import KeyStoreError
from interca.keystore.pkcs11_token import TokenConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

# hsm.md §6.5: what a vanished session, token or device looks like.
RECONNECT_ERRORS: tuple[type[Exception], ...] = (
    p11e.SessionHandleInvalid,
    p11e.SessionClosed,
    p11e.DeviceRemoved,
    p11e.DeviceError,
    p11e.TokenNotPresent,
    p11e.UserNotLoggedIn,
    p11e.GeneralError,
    p11e.ObjectHandleInvalid,
    p11e.KeyHandleInvalid,
)


class Reconnect(Exception):
    """Raised inside a call sequence: drop everything, re-initialise, log in, retry once."""


@dataclass
class OpenToken:
    """A token's anchor session and what was learned about it since the last (re)initialise."""

    session: Any  # pkcs11.Session, logged in
    serial: str
    mechanisms: frozenset[Mechanism]
    keys: dict[tuple[bytes, ObjectClass], Any] = field(default_factory=dict)


@dataclass
class _Gate:
    """Back-off after an outage: 1 s doubling to 30 s before the module is touched again."""

    retry_at: float = 0.0
    delay: float = 0.0


class HsmBackend:
    """One PKCS#11 module in this process. Create through `backend_for`, never directly."""

    backoff_base = 1.0
    backoff_max = 30.0
    rescan_interval = 5.0  # a token never seen: re-initialise at most this often to look again

    def __init__(self, module: str, softhsm2_conf: str | None) -> None:
        self.module = module
        self.softhsm2_conf = softhsm2_conf
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._lib: Any = None
        self._tokens: dict[tuple[str, str | None], OpenToken] = {}
        self._seen_tokens: set[tuple[str, str | None]] = set()
        self._seen_keys: set[bytes] = set()
        self._gates: dict[tuple[str, str | None], _Gate] = {}
        self._rescanned: dict[tuple[str, str | None], float] = {}
        self._bad_pins: dict[tuple[str, str | None], bytes] = {}
        self._retrying = False  # in the one retry after a re-initialise

    # the one entry point -----------------------------------------------------------------------

    def run(self, cfg: TokenConfig, op: Callable[[OpenToken], T]) -> T:
        """Run `op` on `cfg`'s token under the lock; on a session or device error, re-initialise,
        log in again and retry once, then raise `hsm_unavailable` (and back off)."""
        if self._pid != os.getpid():  # inline, not _locked(): this is every signature's hot path
            self._after_fork()
        with self._lock:
            gate = self._gates.get(cfg.key)
            if gate is not None and time.monotonic() < gate.retry_at:
                raise _unavailable(cfg)
            try:
                result = self._attempt(cfg, op)
            except Reconnect as first:
                log.warning("HSM region %s: %s; re-initialising the module", cfg.region, first)
                try:
                    self._reset()
                    self._retrying = True
                    result = self._attempt(cfg, op)
                except Reconnect as second:
                    gate = self._gates.setdefault(cfg.key, _Gate())
                    gate.delay = min(self.backoff_max, gate.delay * 2 or self.backoff_base)
                    gate.retry_at = time.monotonic() + gate.delay
                    log.warning("HSM region %s unavailable (%s); next attempt in %.2f s",
                                cfg.region, second, gate.delay)  # fmt: skip
                    raise _unavailable(cfg) from None
                finally:
                    self._retrying = False
            self._gates.pop(cfg.key, None)
            return result

    def reinitialize(self) -> None:
        """Finalise and initialise the module: drops every session; tokens made since appear."""
        with self._locked():
            if self._lib is not None:
                self._reset()

    def mark_key_seen(self, key_id: bytes) -> None:
        self._seen_keys.add(key_id)

    def forget_key(self, key_id: bytes) -> None:
        """After a destroy: a later lookup is `hsm_key_not_found`, not an outage."""
        self._seen_keys.discard(key_id)

    def find(self, tok: OpenToken, cfg: TokenConfig, key_id: bytes, cls: ObjectClass) -> Any:
        """The object of class `cls` with CKA_ID `key_id` (cached). Call inside `run`."""
        obj = tok.keys.get((key_id, cls))
        if obj is not None:
            return obj
        try:
            obj = tok.session.get_key(object_class=cls, id=key_id)
        except p11e.NoSuchKey:
            # What a vanished token looks like, unless the token was just found again.
            if key_id in self._seen_keys and not self._retrying:
                raise Reconnect("a key found before has vanished") from None
            raise KeyStoreError(
                "hsm_key_not_found",
                f"Region {cfg.region}'s token holds no key with id {key_id.hex()}.",
            ) from None
        except p11e.MultipleObjectsReturned:
            raise KeyStoreError(
                "hsm_key_ambiguous",
                f"Region {cfg.region}'s token holds several keys with id {key_id.hex()}.",
            ) from None
        tok.keys[(key_id, cls)] = obj
        self._seen_keys.add(key_id)
        return obj

    # internals --------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            yield

    def _after_fork(self) -> None:
        """Never use state inherited through fork (hsm.md §6.1): finalise (ignoring its error) and
        initialise again; sessions and handles of the parent are dropped unclosed."""
        self._lock = threading.Lock()  # the parent's may have been held by another thread
        self._pid = os.getpid()
        self._tokens.clear()
        if self._lib is not None:
            with suppress(p11e.PKCS11Error):
                self._lib.finalize()
            with suppress(p11e.PKCS11Error):  # else the first call finds it uninitialised: reconnect
                self._initialize()

    def _attempt(self, cfg: TokenConfig, op: Callable[[OpenToken], T]) -> T:
        try:
            return op(self._open(cfg))
        except RECONNECT_ERRORS as exc:
            raise Reconnect(type(exc).__name__) from None
        except p11e.MechanismInvalid:
            raise KeyStoreError(
                "hsm_mechanism_unsupported", f"Region {cfg.region}'s token refused the signing mechanism."
            ) from None
        except p11e.PKCS11Error as exc:
            if "not initialized" in str(exc):  # CKR_CRYPTOKI_NOT_INITIALIZED has no class of its own
                raise Reconnect("CryptokiNotInitialized") from None
            log.warning("HSM region %s: %s", cfg.region, type(exc).__name__)
            raise KeyStoreError(
                "hsm_unavailable", f"Region {cfg.region}'s HSM refused the operation; retry later."
            ) from None

    def _load(self) -> Any:
        if self._lib is None:
            self._export_conf()
            try:
                self._lib = pkcs11.lib(self.module)
            except (p11e.PKCS11Error, OSError) as exc:
                log.warning("cannot load PKCS#11 module %s: %s: %s", self.module, type(exc).__name__, exc)
                raise KeyStoreError(
                    "hsm_module_not_loadable",
                    "The PKCS#11 module cannot be loaded or initialised: check INTERCA_HSM_MODULE (or "
                    "INTERCA_HSM_<REGION>_MODULE) and, for SoftHSM2, INTERCA_SOFTHSM2_CONF "
                    "(exported as SOFTHSM2_CONF).",
                ) from None
        return self._lib

    def _export_conf(self) -> None:
        # SoftHSM reads SOFTHSM2_CONF in C_Initialize, so it must be right before every initialise.
        if self.softhsm2_conf:
            os.environ["SOFTHSM2_CONF"] = self.softhsm2_conf

    def _initialize(self) -> None:
        self._export_conf()
        self._lib.initialize()

    def _reset(self) -> None:
        """Drop every session and cached handle, finalise and initialise the module again."""
        self._tokens.clear()
        if self._lib is None:
            return
        with suppress(p11e.PKCS11Error):  # already gone: initialise anyway
            self._lib.finalize()
        try:
            self._initialize()
        except p11e.PKCS11Error as exc:
            raise Reconnect(f"re-initialise failed: {type(exc).__name__}") from None

    def _open(self, cfg: TokenConfig) -> OpenToken:
        tok = self._tokens.get(cfg.key)
        if tok is not None:
            return tok
        token = self._find_token(cfg)
        pin = cfg.pin.read()
        digest = hashlib.sha256(pin.encode()).digest()
        if self._bad_pins.get(cfg.key) == digest:  # never retry a refused PIN: HSMs lock after a few
            raise _pin_incorrect(cfg)
        try:
            session = token.open(rw=True, user_pin=pin)
        except p11e.PinIncorrect:
            self._bad_pins[cfg.key] = digest
            raise _pin_incorrect(cfg) from None
        except p11e.PinLocked:
            raise KeyStoreError(
                "hsm_pin_locked",
                f"The user PIN of region {cfg.region}'s token is locked; unlocking needs the SO PIN.",
            ) from None
        except p11e.UserAlreadyLoggedIn:
            session = token.open(rw=True)  # login is per application: this session is logged in too
        except RECONNECT_ERRORS as exc:
            raise Reconnect(type(exc).__name__) from None
        self._bad_pins.pop(cfg.key, None)
        try:
            mechanisms = frozenset(token.slot.get_mechanisms())
        except RECONNECT_ERRORS as exc:
            raise Reconnect(type(exc).__name__) from None
        serial = token.serial.decode("ascii", "replace") if isinstance(token.serial, bytes) else token.serial
        tok = OpenToken(session, serial.strip(), mechanisms)
        self._tokens[cfg.key] = tok
        self._seen_tokens.add(cfg.key)
        log.info("HSM region %s: logged in to token serial %s", cfg.region, tok.serial)
        return tok

    def _find_token(self, cfg: TokenConfig) -> Any:
        lib = self._load()
        criteria: dict[str, Any] = {"token_label": cfg.label}
        if cfg.serial:
            criteria["token_serial"] = cfg.serial.encode()
        for attempt in range(2):
            try:
                return lib.get_token(**criteria)
            except p11e.NoSuchToken:
                if cfg.key in self._seen_tokens:
                    raise Reconnect("a token found before has vanished") from None
                # Tokens made after C_Initialize stay invisible until the module is initialised again.
                last = self._rescanned.get(cfg.key, -self.rescan_interval)
                if attempt == 0 and time.monotonic() - last >= self.rescan_interval:
                    self._rescanned[cfg.key] = time.monotonic()
                    self._reset()
                    continue
                raise KeyStoreError(
                    "hsm_token_not_found",
                    f"No token for region {cfg.region}: check {cfg.label_setting} and {cfg.serial_setting}.",
                ) from None
            except p11e.MultipleTokensReturned:
                raise KeyStoreError(
                    "hsm_token_ambiguous",
                    f"Several tokens match region {cfg.region}'s label: set {cfg.serial_setting}.",
                ) from None
            except RECONNECT_ERRORS as exc:
                raise Reconnect(type(exc).__name__) from None
        raise AssertionError("unreachable")


def _pin_incorrect(cfg: TokenConfig) -> KeyStoreError:
    return KeyStoreError(
        "hsm_pin_incorrect",
        f"The token of region {cfg.region} refused its PIN: correct {cfg.pin.env_setting} or "
        f"{cfg.pin.file_setting}. It is not tried again until it changes.",
    )


def _unavailable(cfg: TokenConfig) -> KeyStoreError:
    return KeyStoreError("hsm_unavailable", f"Region {cfg.region}'s HSM cannot be reached; retry later.")


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.backends: dict[str, HsmBackend] = {}


_REGISTRY = _Registry()


def backend_for(module: str, softhsm2_conf: str | None) -> HsmBackend:
    """This process's backend of `module`, made on first use. A module is initialised once per
    process, so every region using it shares the backend, and so its SoftHSM configuration."""
    if _REGISTRY.pid != os.getpid():  # forked: the parent's lock may have been held by a thread
        _REGISTRY.lock, _REGISTRY.pid = threading.Lock(), os.getpid()
    with _REGISTRY.lock:
        backend = _REGISTRY.backends.get(module)
        if backend is None:
            backend = _REGISTRY.backends[module] = HsmBackend(module, softhsm2_conf)
        elif softhsm2_conf and backend.softhsm2_conf != softhsm2_conf:
            raise KeyStoreError(
                "hsm_module_not_loadable",
                "This process already loaded the PKCS#11 module with another SoftHSM2 configuration; "
                "one INTERCA_SOFTHSM2_CONF per process: restart to change it.",
            )
    return backend
