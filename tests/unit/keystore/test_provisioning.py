"""Embedded SoftHSM2 provisioning (hsm.md §2) and the HSM settings it follows."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.hsm import SoftHsm
from tests.secret_watch import WATCH

from interca.app import hsm_stores
from interca.config import HSM_REGIONS, SOFTHSM2_MODULE, load_settings
from interca.domain.models import Region
from interca.errors import KeyStoreError
from interca.keystore.provisioning import provision_embedded, recorded_serials


def test_region_settings_resolve_embedded_and_explicit_modules(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path)
    us = s.hsm_region("US")
    assert us.embedded and us.module == SOFTHSM2_MODULE and us.token_label == "interca-US"
    assert us.pin_file == tmp_path / "hsm" / "pins" / "US" and us.pin_env is None
    assert us.softhsm2_conf == tmp_path / "hsm" / "softhsm2.conf" and us.token_serial is None

    vendor = load_settings(data_dir=tmp_path, hsm_module="/opt/cloudhsm/lib/libcloudhsm_pkcs11.so",
                           hsm_europe_module=SOFTHSM2_MODULE, hsm_us_pin_env="HSM_PIN",
                           hsm_us_token_label="partition-1", hsm_us_token_serial="42")  # fmt: skip
    us = vendor.hsm_region("US")
    assert not us.embedded and us.softhsm2_conf is None and us.pin_file is None and us.pin_env == "HSM_PIN"
    assert (us.token_label, us.token_serial, us.setting("pin_env")) == (
        "partition-1",
        "42",
        "INTERCA_HSM_US_PIN_ENV",
    )
    assert vendor.hsm_region("EUROPE").embedded  # a region may keep the embedded SoftHSM2

    own_conf = load_settings(data_dir=tmp_path, softhsm2_conf=tmp_path / "mine.conf")
    assert not own_conf.hsm_region("ASIA").embedded and own_conf.hsm_region("ASIA").pin_file is None
    assert own_conf.hsm_region("ASIA").softhsm2_conf == tmp_path / "mine.conf"
    assert load_settings(data_dir=tmp_path, hsm_module="").hsm_region("GLOBAL").module == ""
    assert hsm_stores(load_settings(data_dir=tmp_path, hsm_module="")) == {}


def test_provisioning_makes_one_token_per_region_once(softhsm: SoftHsm, tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = load_settings(data_dir=data)
    serials = provision_embedded(settings)
    assert sorted(serials) == sorted(HSM_REGIONS) and len(set(serials.values())) == 4
    hsm = data / "hsm"
    assert f"directories.tokendir = {hsm / 'tokens'}\n" in (hsm / "softhsm2.conf").read_text()
    assert json.loads((hsm / "tokens.json").read_text()) == serials == recorded_serials(settings)
    pins = {}
    for region in HSM_REGIONS:
        for name in (region, f"{region}.so"):
            path = hsm / "pins" / name
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            pins[name] = path.read_text()
            assert len(pins[name].strip()) == 32 and int(pins[name], 16) >= 0
    assert len(set(pins.values())) == 8
    WATCH.remember(*(p.strip() for p in pins.values()))  # no log line of the run may carry them
    assert len(list((hsm / "tokens").iterdir())) == 4

    assert provision_embedded(settings) == serials  # idempotent: no new token, PINs kept
    assert {n: (hsm / "pins" / n).read_text() for n in pins} == pins
    assert len(list((hsm / "tokens").iterdir())) == 4

    moved = tmp_path / "moved"  # a copied data directory gets a configuration of its own
    shutil.copytree(data, moved)
    moved_settings = load_settings(data_dir=moved)
    assert provision_embedded(moved_settings) == serials
    assert (
        f"directories.tokendir = {moved / 'hsm' / 'tokens'}\n"
        in (moved / "hsm" / "softhsm2.conf").read_text()
    )
    stores = hsm_stores(moved_settings)
    assert {r: s.token.serial for r, s in stores.items()} == {Region(r): v for r, v in serials.items()}

    # The embedded defaults work end to end in a process of their own (SOFTHSM2_CONF is per process).
    script = textwrap.dedent(f"""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from interca.app import hsm_stores
        from interca.config import load_settings
        from interca.domain.models import KeyType
        for region, store in hsm_stores(load_settings(data_dir={str(moved)!r})).items():
            key = store.signer(store.create_key(KeyType.EC_P256, "interca-provisioned"))
            key.public_key().verify(key.sign(b"x", ec.ECDSA(hashes.SHA256())), b"x", ec.ECDSA(hashes.SHA256()))
            print(region.value)
    """)
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF" and not k.startswith("INTERCA_")}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == list(HSM_REGIONS)


def test_a_pin_file_others_can_read_refuses_to_start(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    pin = settings.hsm_region("ASIA").pin_file
    assert pin is not None
    for store in hsm_stores(settings).values():
        store.check_pin_file()  # no PIN file yet: nothing to refuse (keyPair will say what is missing)
    pin.parent.mkdir(parents=True)
    pin.write_text("0123456789abcdef\n")
    pin.chmod(0o640)
    with pytest.raises(
        KeyStoreError, match=r"^\[hsm_pin_missing\] .*INTERCA_HSM_ASIA_PIN_FILE .*0600 or 0400"
    ):
        hsm_stores(settings)[Region.ASIA].check_pin_file()
    pin.chmod(0o400)
    hsm_stores(settings)[Region.ASIA].check_pin_file()
