"""Settings precedence: overrides > INTERCA_* environment > TOML file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from interca.config import load_settings


def test_defaults_derive_from_the_data_dir(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path / 'interca.db'}"
    assert s.master_key_path == tmp_path / "master.key"
    assert (s.subscription, s.session_idle_timeout, s.leaf_lifetime_days) == ("cloud_hsm", 300, 90)


def test_toml_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "interca.toml").write_text('subscription = "software"\nsession_idle_timeout = 60\n')
    monkeypatch.setenv("INTERCA_DATA_DIR", str(tmp_path))
    s = load_settings()
    assert (s.subscription, s.session_idle_timeout) == ("software", 60)
    monkeypatch.setenv("INTERCA_SUBSCRIPTION", "cloud_hsm")
    assert load_settings().subscription == "cloud_hsm"
    assert load_settings(session_idle_timeout=5).session_idle_timeout == 5


def test_explicit_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "other.toml"
    conf.write_text('rate_limit_profile = "zia"\n')
    monkeypatch.setenv("INTERCA_CONFIG_FILE", str(conf))
    assert load_settings(data_dir=tmp_path / "d").rate_limit_profile == "zia"


@pytest.mark.parametrize(
    ("name", "value"), [("subscription", "gold"), ("leaf_lifetime_days", 200), ("token_lifetime", 1)]
)
def test_invalid_values_refuse_to_start(tmp_path: Path, name: str, value: object) -> None:
    with pytest.raises(ValidationError):
        load_settings(data_dir=tmp_path, **{name: value})


def test_settings_travel_to_a_child_process_as_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`interca attestor ...` children load exactly the parent's settings (overrides included)."""
    parent = load_settings(
        data_dir=tmp_path, hsm_us_token_label="t-us", hsm_us_pin_file=tmp_path / "pin",
        attestor_socket=tmp_path / "a.sock", leaf_crl_dp=False, edit_lock_wait=0.5,
    )  # fmt: skip
    env = parent.as_env()
    assert env["INTERCA_LEAF_CRL_DP"] == "false" and "INTERCA_HSM_ASIA_TOKEN_LABEL" not in env
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_settings() == parent
    assert parent.as_env("data_dir") == {"INTERCA_DATA_DIR": str(tmp_path)}
