"""`qvllm local up` when S3 becomes unreachable while the engine starts: the engine fails (it
cannot list or stream the model), and `local up` says so in a few lines (the S3 server does not
answer, the engine's own last error, the log to read), exits non-zero, shows no traceback, and
leaves nothing running. Real command, real moto server (killed), real vLLM (tiny model)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from qvllm.local.processes import group_alive
from tests.support.local_stack import REPO_ROOT, cli

pytestmark = pytest.mark.engine


@pytest.mark.timeout(900)
def test_s3_unreachable_during_engine_start_is_reported_by_local_up(tmp_path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    up = subprocess.Popen([sys.executable, "-m", "qvllm.cli", "local", "up", "--run-dir", str(run), "--model", "tiny",
                           "--ready-timeout", "600"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    killed: dict[str, int] = {}

    def kill_s3_once_the_engine_starts() -> None:
        while up.poll() is None:
            try:
                pids = json.loads((run / "state.json").read_text()).get("pids", {})
            except (OSError, ValueError):
                pids = {}
            if "vllm-0" in pids:  # the model is uploaded and the engine process started
                os.killpg(pids["s3"], signal.SIGKILL)
                killed.update(pids)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_s3_once_the_engine_starts, daemon=True)
    killer.start()
    try:
        output, _ = up.communicate(timeout=800)
    finally:
        cli("local", "down", "--run-dir", str(run), timeout=180)
    print(output)
    assert killed, "the engine never started"
    assert up.returncode == 1
    error = output[output.index("Error: "):]
    assert "vLLM engine vllm-0 exited before it was ready." in error
    s3_url = json.loads((run / "state.json").read_text())["urls"]["s3"]
    assert f"The S3 server (moto) at {s3_url} does not answer" in error, error
    assert "Engine error: botocore.exceptions.EndpointConnectionError: Could not connect to the endpoint URL" in error
    assert f"Full log: {run / 'logs' / 'vllm-0.log'}" in error
    assert "Traceback" not in output and 'File "' not in output
    assert len(error.splitlines()) <= 5, error
    assert not any(group_alive(pid) for pid in killed.values())  # up stopped what it started
