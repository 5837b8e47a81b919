"""Settings from GATEWAY_* variables, and their agreement with app_config."""

from __future__ import annotations

import pytest

from app_config.model import GatewayConfig
from services.gateway import settings as s


def test_defaults_match_app_config() -> None:
    cfg, gw = GatewayConfig(), s.GatewaySettings()
    assert gw.max_in_flight == cfg.max_in_flight
    assert gw.max_queue == cfg.max_queue
    assert gw.queue_timeout_seconds == cfg.queue_timeout_seconds
    assert gw.heartbeat_interval_seconds == cfg.heartbeat_interval_seconds
    assert gw.connect_timeout_seconds == cfg.upstream_connect_timeout_seconds
    assert gw.read_timeout_seconds == cfg.upstream_read_timeout_seconds
    assert gw.max_body_bytes == cfg.max_body_bytes


def test_env_names_are_constants() -> None:
    constants_by_value = {v for k, v in vars(s).items() if k.startswith("ENV_") and isinstance(v, str)}
    assert set(s.ENV_VARS.values()) <= constants_by_value
    assert s.ENV_VARS["upstream_url"] == s.ENV_UPSTREAM_URL == "GATEWAY_UPSTREAM_URL"


def test_load_settings_parses_env(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {
        "GATEWAY_UPSTREAM_URL": "http://vllm.inference:8000/",
        "GATEWAY_SERVED_MODEL_NAME": "m",
        "GATEWAY_MAX_IN_FLIGHT": "8",
        "GATEWAY_API_KEYS": "a, b,,",
        "GATEWAY_API_KEYS_FILE": str(tmp_path / "k"),
        "GATEWAY_LOG_LEVEL": "debug",
        "UNRELATED": "x",
    }
    (tmp_path / "k").write_text("c\n\n# comment\n")
    got = s.load_settings(env)
    assert got.upstream_url == "http://vllm.inference:8000"
    assert got.max_in_flight == 8 and got.log_level == "DEBUG"
    assert got.api_keys == ("a", "b") and got.all_api_keys() == {"a", "b", "c"}


def test_bad_env_names_the_variable() -> None:
    with pytest.raises(s.SettingsError, match="GATEWAY_MAX_QUEUE") as info:
        s.load_settings({"GATEWAY_MAX_QUEUE": "-1"})
    assert "greater than or equal to 0" in str(info.value)
    with pytest.raises(s.SettingsError, match="GATEWAY_UPSTREAM_URL.*http://"):
        s.load_settings({"GATEWAY_UPSTREAM_URL": "vllm:8000"})


def test_settings_env_round_trip() -> None:
    env = s.settings_env(upstream_url="http://x:1", api_keys=["a", "b"], max_queue=3, heartbeat_interval_seconds=5.5)
    assert env == {
        "GATEWAY_UPSTREAM_URL": "http://x:1",
        "GATEWAY_API_KEYS": "a,b",
        "GATEWAY_MAX_QUEUE": "3",
        "GATEWAY_HEARTBEAT_INTERVAL_SECONDS": "5.5",
    }
    back = s.load_settings(env)
    assert back.api_keys == ("a", "b") and back.max_queue == 3
    with pytest.raises(s.SettingsError, match="unknown gateway setting.*nope"):
        s.settings_env(nope=1)
    with pytest.raises(s.SettingsError):
        s.settings_env(max_in_flight=0)
