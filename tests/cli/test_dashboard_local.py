"""The dashboard on the local stack: every engine scraped over HTTP (recorded vLLM metrics pages),
each engine's requests in flight and time-to-ready phases in the pod table, the engines' queues
added up for the scaling math, and a GPU-node table that says it is cluster-only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from textual.widgets import DataTable, Label

from app_config.loader import config_from_dict
from qvllm.dashboard.app import DashboardApp
from qvllm.dashboard.data.local import LocalEngines
from qvllm.dashboard.data.sources import Poller
from qvllm.dashboard.widgets.panels import CLUSTER_ONLY
from qvllm.local.state import RunState
from qvllm.scaling import ScalingSpec
from tests.support.metrics_server import metrics_server

PHASES = {"process_start_s": 40.86, "weight_loading_s": 8.27, "engine_init_s": 131.22, "api_start_s": 2.53}


@pytest.fixture
def local_stack(tmp_path):
    """A run folder whose state names two engines: one with a queue, one idle; a third that is gone."""
    busy, idle = metrics_server("vllm_metrics_queue.txt"), metrics_server("vllm_metrics_idle.txt")
    urls = {"vllm-0": f"http://127.0.0.1:{busy.server_address[1]}",
            "vllm-1": f"http://127.0.0.1:{idle.server_address[1]}"}
    engines = {name: {"url": url, "time_to_ready_s": 182.88, "phases": PHASES,
                      "weights_stream": {"seconds": 7.59, "size": "256.6 MiB", "rate_mib_s": 33.8}}
               for name, url in urls.items()}
    RunState(run_dir=str(tmp_path), pids={"vllm-0": os.getpid(), "vllm-1": os.getpid()}, urls=urls,
             engines=engines).save()
    yield tmp_path
    busy.shutdown()
    idle.shutdown()


def _poller(run_dir: Path) -> Poller:
    config = config_from_dict({})
    return Poller(None, ScalingSpec.from_config(config.scaling), config.cluster.hpa_sync_period_seconds,
                  local=LocalEngines(run_dir))


def test_poller_scrapes_every_engine_and_adds_them_up(local_stack):
    snap = _poller(local_stack).poll()
    assert snap.error is None
    rows = {e.name: e for e in snap.engines}
    assert (rows["vllm-0"].running, rows["vllm-0"].waiting, rows["vllm-0"].in_flight) == (2, 10, 12)
    assert rows["vllm-1"].in_flight == 0 and rows["vllm-1"].up
    assert rows["vllm-0"].phases == PHASES and rows["vllm-0"].stream_rate_mib_s == 33.8
    assert (snap.metrics.running, snap.metrics.waiting) == (2, 10)  # the sum over both engines
    assert snap.current_replicas == 2
    assert snap.decision.desired > 2  # composite 2 + 10 x 10 = 102, target 25 -> 5


async def test_pod_table_shows_local_engines_and_gpu_table_says_cluster_only(local_stack):
    poller = _poller(local_stack)
    app = DashboardApp(poller.poll, interval_s=3600)
    async with app.run_test(size=(200, 60)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        pods = app.query_one("#pods", DataTable)
        assert [str(c.label) for c in pods.columns.values()][:3] == ["engine", "status", "in flight"]
        assert pods.row_count == 2
        assert [str(c) for c in pods.get_row_at(0)] == [
            "vllm-0", "up", "12", "2", "10", "182.9 s", "40.9 s", "8.3 s", "131.2 s", "2.5 s", "33.8"]
        assert [str(c) for c in pods.get_row_at(1)][:3] == ["vllm-1", "up", "0"]
        assert "vLLM engines (local)" in str(app.query_one("#pods-title", Label).render())
        nodes = app.query_one("#nodes", DataTable)
        assert nodes.row_count == 1 and str(nodes.get_row_at(0)[0]) == CLUSTER_ONLY


def test_an_engine_that_does_not_answer_is_shown_as_such(local_stack):
    state_file = local_stack / "state.json"
    data = json.loads(state_file.read_text())
    data["urls"]["vllm-1"] = data["engines"]["vllm-1"]["url"] = "http://127.0.0.1:9"
    state_file.write_text(json.dumps(data))
    snap = _poller(local_stack).poll()
    rows = {e.name: e for e in snap.engines}
    assert not rows["vllm-1"].up and rows["vllm-1"].in_flight is None
    assert snap.current_replicas == 1 and snap.metrics.waiting == 10


def test_the_gateways_held_requests_reach_the_activation_trigger(local_stack):
    """The local gateway's /metrics (rendered by the gateway's own metrics code) is scraped too,
    as the collector scrapes it in the cluster: the held trigger reads its gauge, not "no value"."""
    from services.gateway.metrics import GatewayMetrics

    metrics = GatewayMetrics()
    metrics.held.set(3)
    gateway = metrics_server(metrics.render()[0])
    from qvllm.local.state import read_state

    state = read_state(local_stack)
    state.urls["gateway"] = f"http://127.0.0.1:{gateway.server_address[1]}"
    state.save()
    try:
        snap = _poller(local_stack).poll()
    finally:
        gateway.shutdown()
    assert snap.trigger_values["held"] == 3
    assert not any("no value for" in step for step in snap.decision.steps), snap.decision.steps

