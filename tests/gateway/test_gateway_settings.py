"""Settings from GATEWAY_* variables, and their agreement with app_config."""

from __future__ import annotations

import pytest

from services.gateway import settings as s


def test_app_config_takes_the_gateway_defaults() -> None:
    """One owner: app_config's gateway section reads its defaults from the gateway's settings
    (the source of GatewayConfig must not spell the numbers out again)."""
    import inspect

    from app_config import model

    source = inspect.getsource(model.GatewayConfig)
    for field in ("max_in_flight", "max_queue", "queue_timeout_seconds", "heartbeat_interval_seconds",
                  "connect_timeout_seconds", "read_timeout_seconds", "max_body_bytes", "max_held_requests",
                  "hold_timeout_seconds", "prefix_affinity", "prefix_affinity_chars", "prefix_affinity_load_factor"):
        assert f'gateway_default("{field}")' in source, field


def test_one_endpoint_source_at_most() -> None:
    with pytest.raises(s.SettingsError, match="GATEWAY_UPSTREAM_ENDPOINTS, GATEWAY_UPSTREAM_SERVICE"):
        s.load_settings({"GATEWAY_UPSTREAM_ENDPOINTS": "http://a:1", "GATEWAY_UPSTREAM_SERVICE": "vllm"})
    got = s.load_settings({"GATEWAY_UPSTREAM_ENDPOINTS": "http://a:1/, http://b:2"})
    assert got.upstream_endpoints == ("http://a:1", "http://b:2")
    with pytest.raises(s.SettingsError, match="GATEWAY_UPSTREAM_ENDPOINTS.*http://"):
        s.load_settings({"GATEWAY_UPSTREAM_ENDPOINTS": "a:1"})
    assert s.ENV_VARS["upstream_endpoints"] == s.ENV_UPSTREAM_ENDPOINTS  # the contract's names
    assert s.ENV_VARS["upstream_endpoints_file"] == s.ENV_UPSTREAM_ENDPOINTS_FILE


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


def test_a_misspelt_variable_is_refused_with_the_closest_name() -> None:
    with pytest.raises(s.SettingsError, match=r"GATEWAY_MAX_INFLIGHT \(did you mean GATEWAY_MAX_IN_FLIGHT\?\)"):
        s.load_settings({"GATEWAY_MAX_INFLIGHT": "5"})


def test_kubernetes_service_link_variables_are_not_settings() -> None:
    """Kubernetes injects these for our Service named "gateway"; they must not stop the pod."""
    got = s.load_settings({
        "GATEWAY_SERVICE_HOST": "172.20.0.10", "GATEWAY_SERVICE_PORT": "80",
        "GATEWAY_PORT_80_TCP": "tcp://172.20.0.10:80", "GATEWAY_PORT_80_TCP_ADDR": "172.20.0.10",
        "GATEWAY_PORT": "8000",
    })
    assert got.port == 8000


def test_a_missing_key_file_is_named_at_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(s.SettingsError, match="GATEWAY_API_KEYS_FILE.*not a readable file"):
        s.load_settings({"GATEWAY_API_KEYS_FILE": str(tmp_path / "absent")})


@pytest.mark.parametrize("env", [{"GATEWAY_MAX_IN_FLIGHT": "-1"}, {"GATEWAY_MAX_INFLIGHT": "5"}])
def test_python_m_gateway_says_one_line_and_exits_2(env) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    out = subprocess.run([sys.executable, "-m", "services.gateway"], cwd=REPO_ROOT, env={**clean, **env},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith("gateway: "), out.stderr
    assert next(iter(env)) in out.stderr
