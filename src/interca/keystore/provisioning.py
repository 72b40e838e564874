"""Embedded SoftHSM2 provisioning (hsm.md §2): the configuration file, one token per region with
its PIN files, and a record of the tokens' serials. Run by `interca init` and at every `serve`
(through `interca.app.prepare`); idempotent.

Everything happens through `softhsm2-util` in a child process with its own `SOFTHSM2_CONF`: the
module is never loaded here, so the configuration this process later loads it with is not
fixed by provisioning. The PINs appear once on the child's command line (`--init-token`), which
hsm.md §9 accepts for a local one-time initialisation; they never reach a log.

Layout under `$DATA/hsm`: `softhsm2.conf`; `tokens/` (the token directories); `pins/<REGION>`
and `pins/<REGION>.so` (0600; the service never reads the SO PIN); `tokens.json`, region ->
token serial, which the composition root hands to the key stores (labels are not unique).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from interca.config import HSM_REGIONS, HsmRegionSettings, Settings

log = logging.getLogger(__name__)

TOKENS_FILE = "tokens.json"
SOFTHSM2_UTIL = "softhsm2-util"


def softhsm2_conf_text(tokendir: Path) -> str:
    return (
        "# Written by interca (hsm.md §2); rewritten when the data directory moves.\n"
        f"directories.tokendir = {tokendir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )


def provision_embedded(settings: Settings) -> dict[str, str]:
    """Make sure every embedded region has its token; return region -> token serial.

    Regions whose module or configuration is not the embedded SoftHSM2 are left alone. Without
    `softhsm2-util` nothing is provisioned (a warning): CUSTOM_HSM key pairs then answer 503."""
    regions = [r for r in (settings.hsm_region(name) for name in HSM_REGIONS) if r.embedded]
    if not regions:
        return {}
    util = shutil.which(SOFTHSM2_UTIL) or next(
        (p for p in ("/usr/bin/softhsm2-util", "/usr/local/bin/softhsm2-util") if os.access(p, os.X_OK)), None
    )
    if util is None:
        log.warning(
            "softhsm2-util is not installed: the embedded HSM is not provisioned (apt install softhsm2)"
        )
        return recorded_serials(settings)
    conf = regions[0].softhsm2_conf
    assert conf is not None  # embedded regions always have one
    tokendir = settings.hsm_dir / "tokens"
    for directory in (settings.hsm_dir, tokendir, settings.hsm_dir / "pins"):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_if_changed(conf, softhsm2_conf_text(tokendir))
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}

    serials: dict[str, str] = {}
    present = tokens_by_label(util, env)
    for region in regions:
        if region.token_label not in present and region.pin_file is not None:
            _init_token(util, env, region, region.pin_file)
            present = tokens_by_label(util, env)
        found = present.get(region.token_label, [])
        if len(found) == 1:
            serials[region.region] = found[0]
        elif found:
            log.warning("embedded HSM: %d tokens are labelled %s", len(found), region.token_label)
    _write_if_changed(settings.hsm_dir / TOKENS_FILE, json.dumps(serials, indent=2, sort_keys=True) + "\n")
    return serials


def recorded_serials(settings: Settings) -> dict[str, str]:
    """What the last provisioning recorded (empty when there is none)."""
    try:
        data = json.loads((settings.hsm_dir / TOKENS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def _init_token(util: str, env: dict[str, str], region: HsmRegionSettings, pin_file: Path) -> None:
    pin, so_pin = secrets.token_hex(16), secrets.token_hex(16)
    write_secret(pin_file, pin)
    write_secret(pin_file.with_name(pin_file.name + ".so"), so_pin)
    result = subprocess.run(
        [util, "--init-token", "--free", "--label", region.token_label, "--so-pin", so_pin, "--pin", pin],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:  # its output names no PIN; keep it short
        log.warning("embedded HSM: softhsm2-util could not make region %s's token: %s",
                    region.region, result.stderr.strip()[:200])  # fmt: skip
    else:
        log.info("embedded HSM: made token %s for region %s", region.token_label, region.region)


def tokens_by_label(util: str, env: dict[str, str]) -> dict[str, list[str]]:
    """label -> serials of the initialised tokens, from `softhsm2-util --show-slots`."""
    result = subprocess.run([util, "--show-slots"], env=env, capture_output=True, text=True, check=False)
    found: dict[str, list[str]] = {}
    serial, initialised = "", False
    for raw in result.stdout.splitlines():
        name, _, value = raw.strip().partition(":")
        value = value.strip()
        if name == "Serial number":
            serial, initialised = value, False
        elif name == "Initialized":
            initialised = value == "yes"
        elif name == "Label" and initialised and serial:
            found.setdefault(value, []).append(serial)
    return found


def write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    os.replace(tmp, path)
