"""Local stack preflight (case B24). The engine tests of the whole stack (up -> queue -> dashboard
data -> down, the real model) are in tests/cli/."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from qvllm.local.env import PreflightError, missing_env, streamer_env
from qvllm.local.stack import DEFAULT_VLLM_PYTHON, LocalOptions, up


# ----------------------------------------------------------------------------- B24 preflight (no engine)
def test_b24_streamer_env_is_complete():
    """Case B24: endpoint, path-style addressing, metadata off, dummy keys and a region."""
    env = streamer_env("http://127.0.0.1:9000")
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert env["RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING"] == "0"
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"] and env["AWS_DEFAULT_REGION"]
    assert missing_env(env) == []
    assert "RUNAI_STREAMER_S3_ENDPOINT" not in streamer_env("http://x", streamer_version=(0, 17, 0))
    assert streamer_env("http://x", streamer_version=(0, 11, 2))["RUNAI_STREAMER_S3_ENDPOINT"] == "http://x"


def test_b24_failing_input_names_what_is_missing():
    """Case B24's failing input: only AWS_ENDPOINT_URL set."""
    problems = missing_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"})
    text = "\n".join(problems)
    for name in ("RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING", "AWS_EC2_METADATA_DISABLED", "AWS_ACCESS_KEY_ID",
                 "AWS_DEFAULT_REGION"):
        assert name in text
    assert "AWS_ENDPOINT_URL" not in text


@pytest.mark.engine  # needs the engine venv (.venv-vllm), which make test-fast does not install
def test_b24_up_stops_in_preflight_without_endpoint(tmp_path):
    # make test installs the engine venv; without it this preflight would stop on the interpreter instead.
    assert DEFAULT_VLLM_PYTHON.exists(), "the engine venv is missing (make deps-engine)"
    with pytest.raises(PreflightError, match="AWS_ENDPOINT_URL is not set"):
        up(LocalOptions(run_dir=tmp_path, env_overrides=(("AWS_ENDPOINT_URL", None),)), echo=lambda s: None)
    assert not (tmp_path / "state.json").exists()  # nothing was started


def test_b24_up_stops_without_streamer_s3_extra(tmp_path):
    """The main venv has no runai-model-streamer[s3]: preflight names it instead of failing in the engine."""
    with pytest.raises(PreflightError, match=r"runai-model-streamer\[s3\] is not installed"):
        up(LocalOptions(run_dir=tmp_path, vllm_python=Path(sys.executable)), echo=lambda s: None)
    with pytest.raises(PreflightError, match="does not exist"):
        up(LocalOptions(run_dir=tmp_path, vllm_python=tmp_path / "nope" / "python"), echo=lambda s: None)
