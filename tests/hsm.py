"""SoftHSM2 tokens made on the fly (hsm.md §3), like python-pkcs11's own test suite.

Per pytest session: a temporary directory with `tokens/` and a `softhsm2.conf`, exported as
`SOFTHSM2_CONF` before this process's first `pkcs11.lib()` (SoftHSM reads it in `C_Initialize`,
and the library is cached per path). Per test: a fresh token with a unique label and a random
PIN in a 0600 file, then a re-initialise of the module (tokens made later stay invisible).

SoftHSM2 missing is a failure, never a skip: CI installs it (`make test`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.secret_watch import WATCH

from interca.config import SOFTHSM2_MODULE
from interca.keystore.pkcs11 import KeyRef, Pkcs11KeyStore
from interca.keystore.pkcs11_session import HsmBackend, backend_for
from interca.keystore.pkcs11_token import PinSource, TokenConfig

SOFTHSM2_UTIL = "/usr/bin/softhsm2-util"


@dataclass
class TestToken:
    """One fresh token: its label, serial, PIN (in a 0600 file) and directory."""

    hsm: SoftHsm
    label: str
    serial: str
    pin: str
    pin_file: Path

    __test__ = False  # not a test class

    @property
    def directory(self) -> Path:
        # SoftHSM names a token's directory by a UUID whose last 16 hex digits are the serial.
        (found,) = [p for p in self.hsm.tokendir.iterdir() if p.name.replace("-", "").endswith(self.serial)]
        return found

    def config(self, region: str = "US", pin_file: Path | None = None) -> TokenConfig:
        pin = PinSource(region, None, pin_file or self.pin_file, "PIN_ENV", f"INTERCA_HSM_{region}_PIN_FILE")
        return TokenConfig(region, self.label, self.serial, pin, "LABEL", "SERIAL")

    def store(self, region: str = "US", pin_file: Path | None = None) -> Pkcs11KeyStore:
        return Pkcs11KeyStore(SOFTHSM2_MODULE, self.config(region, pin_file), str(self.hsm.conf))

    def settings(self, region: str) -> dict[str, Any]:
        """The `load_settings` overrides that point `region` at this token."""
        r = region.lower()
        return {
            f"hsm_{r}_token_label": self.label,
            f"hsm_{r}_token_serial": self.serial,
            f"hsm_{r}_pin_file": self.pin_file,
        }

    @contextmanager
    def removed(self) -> Iterator[None]:
        """Take the token away (its directory out of `tokendir`), and back afterwards."""
        directory = self.directory
        away = self.hsm.root / f"away-{directory.name}"
        directory.rename(away)
        try:
            yield
        finally:
            away.rename(directory)

    def objects(self, key_id: bytes) -> list[str]:
        """The classes of the objects carrying CKA_ID `key_id`, read through the backend."""
        from pkcs11 import Attribute

        cfg = self.config()
        return self.hsm.backend.run(
            cfg,
            lambda tok: sorted(
                o[Attribute.CLASS].name for o in tok.session.get_objects({Attribute.ID: key_id})
            ),
        )

    def public_object(self, ref: str) -> Any:
        """The key's public object as python-pkcs11 decodes it: SPKI DER via its own encoders."""
        from pkcs11 import Attribute, ObjectClass
        from pkcs11 import KeyType as P11KeyType
        from pkcs11.util.ec import encode_ec_public_key
        from pkcs11.util.rsa import encode_rsa_public_key

        key_id = KeyRef.parse(ref).key_id  # type: ignore[union-attr]

        def read(tok: Any) -> bytes:
            pub = tok.session.get_key(object_class=ObjectClass.PUBLIC_KEY, id=key_id)
            if pub.key_type == P11KeyType.RSA:
                from asn1crypto.keys import PublicKeyInfo, RSAPublicKey

                rsa_der = encode_rsa_public_key(pub)
                return PublicKeyInfo(
                    {"algorithm": {"algorithm": "rsa"}, "public_key": RSAPublicKey.load(rsa_der)}
                ).dump()
            assert pub[Attribute.KEY_TYPE] == P11KeyType.EC
            return encode_ec_public_key(pub)

        from cryptography.hazmat.primitives.serialization import load_der_public_key

        return load_der_public_key(self.hsm.backend.run(self.config(), read))


@dataclass
class SoftHsm:
    """The session's SoftHSM2: its directory, configuration and the process's backend."""

    root: Path
    conf: Path
    tokendir: Path

    @property
    def backend(self) -> HsmBackend:
        return backend_for(SOFTHSM2_MODULE, str(self.conf))

    def env(self) -> dict[str, str]:
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}

    def new_token(self, workdir: Path) -> TestToken:
        label = f"t-{uuid.uuid4().hex[:30]}"  # token labels hold 32 bytes
        pin, so_pin = secrets.token_hex(8), secrets.token_hex(8)
        WATCH.remember(pin, so_pin)  # no log line of the run may carry them
        made = subprocess.run(
            [SOFTHSM2_UTIL, "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin],
            env=self.env(), capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr  # not the command line: it has the PINs
        serial = self._serial(label)
        pin_file = workdir / f"{label}.pin"
        pin_file.write_text(pin + "\n")
        pin_file.chmod(0o600)
        self.backend.reinitialize()  # before any session: newer tokens stay invisible otherwise
        return TestToken(self, label, serial, pin, pin_file)

    def _serial(self, label: str) -> str:
        out = subprocess.run(
            [SOFTHSM2_UTIL, "--show-slots"], env=self.env(), check=True, capture_output=True, text=True
        ).stdout
        serial = ""
        for line in out.splitlines():
            name, _, value = line.strip().partition(":")
            if name == "Serial number":
                serial = value.strip()
            elif name == "Label" and value.strip() == label:
                return serial
        raise AssertionError(f"token {label} not listed")


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    for path in (SOFTHSM2_MODULE, SOFTHSM2_UTIL):
        if not os.path.exists(path):
            pytest.fail(f"SoftHSM2 is not installed ({path} is missing): apt-get install softhsm2")
    root = tmp_path_factory.mktemp("softhsm")
    tokendir = root / "tokens"
    tokendir.mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokendir}\nobjectstore.backend = file\nlog.level = ERROR\n"
        "slots.removable = false\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)  # before the first pkcs11.lib() of this process
    return SoftHsm(root, conf, tokendir)


@pytest.fixture
def hsm_token(softhsm: SoftHsm, tmp_path: Path) -> Iterator[TestToken]:
    token = softhsm.new_token(tmp_path)
    yield token
    shutil.rmtree(token.directory, ignore_errors=True)  # gone at the next re-initialise


@pytest.fixture
def fast_backoff(softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outage tests: retry after 10 ms instead of 1 s."""
    monkeypatch.setattr(softhsm.backend, "backoff_base", 0.01)
