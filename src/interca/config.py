"""Settings: `INTERCA_*` environment variables over an optional TOML file.

Nothing reads settings at import time: `load_settings()` builds a `Settings` when the composition
root (`interca.app`) or the CLI asks. Precedence: explicit overrides > environment > TOML file >
defaults. The TOML file is `config_file`, default `$DATA/interca.toml` when it exists.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "INTERCA_"


def _default_data_dir() -> Path:
    return Path("~/.local/share/interca").expanduser()


SOFTHSM2_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
HSM_REGIONS = ("GLOBAL", "ASIA", "EUROPE", "US")


@dataclass(frozen=True)
class HsmRegionSettings:
    """One region's PKCS#11 settings, resolved (hsm.md §2). `embedded` is the SoftHSM2 of this
    data directory: the SoftHSM module with the default `softhsm2_conf`, provisioned by
    `interca init`; only then do the PIN files default to `$DATA/hsm/pins/<REGION>`."""

    region: str
    module: str  # "" = no HSM for this region
    token_label: str
    token_serial: str | None
    pin_env: str | None
    pin_file: Path | None
    softhsm2_conf: Path | None  # exported as SOFTHSM2_CONF before the module loads; None = leave alone
    embedded: bool

    def setting(self, name: str) -> str:
        """The variable of this region's setting `name` (`pin_file` -> INTERCA_HSM_US_PIN_FILE)."""
        return f"{ENV_PREFIX}HSM_{self.region}_{name.upper()}"


def is_softhsm(module: str) -> bool:
    return Path(module).name == Path(SOFTHSM2_MODULE).name


class Settings(BaseSettings):
    """Every server setting, named as in the specs (api.md §1, certificates.md §1, hsm.md §2)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str = ""  # default: SQLite $DATA/interca.db
    master_key_file: Path | None = None  # default: $DATA/master.key
    config_file: Path | None = None

    subscription: Literal["cloud_hsm", "software"] = "cloud_hsm"
    rate_limit_profile: Literal["standard", "zia", "off"] = "standard"
    edit_lock_wait: float = Field(2, ge=0)
    session_idle_timeout: int = Field(300, ge=1)
    session_max_lifetime: int = Field(28800, ge=1)
    login_max_failures: int = Field(5, ge=1)
    login_lockout: int = Field(900, ge=1)
    token_lifetime: int = Field(3600, ge=60)

    min_remaining_days: int = Field(30, ge=0)
    clock_skew_seconds: int = Field(300, ge=0)
    org_roots_file: Path | None = None
    leaf_lifetime_days: int = Field(90, ge=1, le=199)
    leaf_backdate_minutes: int = Field(60, ge=0, le=1440)
    leaf_key_type: Literal["ec-p256", "rsa-2048"] = "ec-p256"
    leaf_crl_dp: bool = True
    leaf_aia: bool = False
    pki_base_url: str = "http://127.0.0.1:8080"
    # certificates.md §6.4: how often an engine process re-reads the default pointer (never per handshake)
    default_poll_seconds: float = Field(1.0, gt=0, le=60)

    # hsm.md §2. Empty `hsm_module` = no HSM at all (CUSTOM_HSM key pairs answer 503).
    hsm_module: str = SOFTHSM2_MODULE
    hsm_thread_safe: bool = False  # reserved: the session pool of hsm.md §6.3 is not built yet
    softhsm2_conf: Path | None = None  # default (embedded): $DATA/hsm/softhsm2.conf
    hsm_global_module: str | None = None
    hsm_global_token_label: str | None = None
    hsm_global_token_serial: str | None = None
    hsm_global_pin_env: str | None = None
    hsm_global_pin_file: Path | None = None
    hsm_asia_module: str | None = None
    hsm_asia_token_label: str | None = None
    hsm_asia_token_serial: str | None = None
    hsm_asia_pin_env: str | None = None
    hsm_asia_pin_file: Path | None = None
    hsm_europe_module: str | None = None
    hsm_europe_token_label: str | None = None
    hsm_europe_token_serial: str | None = None
    hsm_europe_pin_env: str | None = None
    hsm_europe_pin_file: Path | None = None
    hsm_us_module: str | None = None
    hsm_us_token_label: str | None = None
    hsm_us_token_serial: str | None = None
    hsm_us_pin_env: str | None = None
    hsm_us_pin_file: Path | None = None
    attestor_socket: Path | None = None  # default: $DATA/attestor/attestor.sock (hsm.md §8.1)

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        data_dir = self.data_dir.expanduser()
        object.__setattr__(self, "data_dir", data_dir)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{data_dir / 'interca.db'}")
        if self.master_key_file is None:
            object.__setattr__(self, "master_key_file", data_dir / "master.key")
        return self

    @property
    def master_key_path(self) -> Path:
        assert self.master_key_file is not None  # set by _derive_paths
        return self.master_key_file

    @property
    def keys_dir(self) -> Path:
        """Where the software key store keeps its encrypted keys."""
        return self.data_dir / "keys"

    @property
    def attestor_socket_path(self) -> Path:
        """The Unix socket of the emulated HSM attestor (hsm.md §8.1)."""
        return self.attestor_socket or self.data_dir / "attestor" / "attestor.sock"

    def as_env(self, *names: str) -> dict[str, str]:
        """These settings (every one set, when no names are given) as `INTERCA_*` variables, so a
        child process (`interca attestor ...`) loads exactly what this process runs with."""
        env = {}
        for name in names or tuple(type(self).model_fields):
            value = getattr(self, name)
            if value is None:
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            env[ENV_PREFIX + name.upper()] = text
        return env

    @property
    def hsm_dir(self) -> Path:
        """The embedded SoftHSM2: `softhsm2.conf`, `tokens/`, `pins/`, `tokens.json`."""
        return self.data_dir / "hsm"

    def hsm_region(self, region: str) -> HsmRegionSettings:
        """The resolved HSM settings of `region` (`GLOBAL`, `ASIA`, `EUROPE` or `US`)."""
        r = region.lower()

        def own(name: str) -> Any:
            return getattr(self, f"hsm_{r}_{name}")

        module = own("module") if own("module") is not None else self.hsm_module
        embedded = bool(module) and is_softhsm(module) and self.softhsm2_conf is None
        conf = self.softhsm2_conf or (self.hsm_dir / "softhsm2.conf" if embedded else None)
        pin_env, pin_file = own("pin_env") or None, own("pin_file")
        if embedded and not pin_env and pin_file is None:
            pin_file = self.hsm_dir / "pins" / region
        return HsmRegionSettings(
            region=region,
            module=module,
            token_label=own("token_label") or f"interca-{region}",
            token_serial=own("token_serial") or None,
            pin_env=pin_env,
            pin_file=pin_file,
            softhsm2_conf=conf,
            embedded=embedded,
        )


def _config_path(overrides: dict[str, Any]) -> Path:
    if overrides.get("config_file"):
        return Path(overrides["config_file"])
    if os.environ.get(ENV_PREFIX + "CONFIG_FILE"):
        return Path(os.environ[ENV_PREFIX + "CONFIG_FILE"])
    data_dir = overrides.get("data_dir") or os.environ.get(ENV_PREFIX + "DATA_DIR")
    return Path(data_dir).expanduser() if data_dir else _default_data_dir()


def load_settings(**overrides: Any) -> Settings:
    """Build the settings. A value from the TOML file applies only where no environment variable
    and no override names it, so the environment wins over the file."""
    path = _config_path(overrides)
    if path.is_dir() or not path.suffix:
        path = path / "interca.toml"
    file_values: dict[str, Any] = {}
    if path.is_file():
        with path.open("rb") as fh:
            file_values = tomllib.load(fh)
    from_file = {
        k: v
        for k, v in file_values.items()
        if k in Settings.model_fields and ENV_PREFIX + k.upper() not in os.environ and k not in overrides
    }
    return Settings(**from_file, **overrides)
