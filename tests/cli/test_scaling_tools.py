"""`qvllm scale-math` and the dashboard: the 0 -> 1 activation by the gateway's held requests, the
configured HPA sync period, and trigger values read with the ScaledObject's own scoped queries."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from app_config import config_from_dict
from qvllm.cli import main
from qvllm.dashboard.data.prom import ParsedMetrics, snapshot
from qvllm.dashboard.data.sources import build_snapshot
from qvllm.scaling import ControlLoop, ScalingSpec, desired_replicas


def _timeline(tmp_path, sync: int) -> list[str]:
    config = tmp_path / f"sync{sync}.yaml"
    # EKS takes 10-15 s, below 15 s only on a Provisioned Control Plane (app_config.model.ClusterConfig).
    tier = "standard" if sync == 15 else "tier-xl"
    config.write_text(
        f"scaling: {{min_replicas: 0}}\ncluster: {{hpa_sync_period_seconds: {sync}, control_plane_tier: {tier}}}\n"
    )
    result = CliRunner().invoke(main, ["scale-math", "--config", str(config), "--current", "0", "-v", "held=3",
                                       "--timeline"])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


@pytest.mark.parametrize("sync", [10, 12, 15])
def test_timeline_uses_the_configured_hpa_sync_period(tmp_path, sync):
    """0 -> 1 at KEDA's first poll (2 s), 1 -> 2 one configured HPA sync period later; the reaction
    times printed are the configured ones."""
    lines = _timeline(tmp_path, sync)
    assert "  t=     2s  (keda) replicas 1" in lines
    assert f"  t={2 + sync:>6}s  (hpa) replicas 2" in lines
    assert any(f"the HPA syncs every {sync} s (cluster.hpa_sync_period_seconds)" in line for line in lines)
    assert any(f"HPA sync {sync}s" in line for line in lines)


def test_scale_math_names_the_activation_trigger():
    result = CliRunner().invoke(main, ["scale-math", "--current", "0", "-v", "held=3"])
    assert result.exit_code == 0, result.output
    assert "(activation trigger held=3): KEDA activates to max(minReplicaCount 1, 1) = 1" in result.output


def test_control_loop_zero_to_n_and_back_to_zero():
    """KEDA wakes vLLM on held requests, the HPA scales 1 -> 10 at its next sync (KEDA's 0 -> 1 does
    not use up the 9-pods policy), and with the load gone KEDA returns to 0 after cooldownPeriod."""
    config = config_from_dict({"scaling": {"min_replicas": 0}})
    spec = ScalingSpec.from_config(config.scaling)
    loop = ControlLoop(spec, 0, config.cluster.hpa_sync_period_seconds, keda_first_poll=2, hpa_first_sync=10)
    for t in range(0, 700):
        loop.step(t, {"held": 100} if t < 100 else {})
    assert [(e.time, e.source, e.before, e.after) for e in loop.events] == [
        (2, "keda", 0, 1),
        (10, "hpa", 1, 10),
        (385, "hpa", 10, 5),  # the last loaded sync (85) leaves the 300 s window; 50 % per 60 s
        (398, "keda", 5, 0),  # last active poll at 98 + cooldownPeriod 300: straight to 0
    ]
    assert "skipping the HPA policies" in loop.notes[0]


def test_scale_math_and_its_scaling_spec_need_no_jsii():
    """The CLI builds the ScaledObject with the pure module: no cdk8s, no jsii, no Node process."""
    code = (
        "import sys; from click.testing import CliRunner; from qvllm.cli import main; "
        "r = CliRunner().invoke(main, ['scale-math', '-v', 'waiting=3', '--timeline']); "
        "assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jsii', 'cdk8s', 'constructs', 'k8s_charts')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


PAGE = """# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{deployment="vllm",engine="0",job="vllm",model_name="m",namespace="inference",pod="vllm-6b7f9c5d4-a"} 4
vllm:num_requests_waiting{deployment="vllm",engine="0",job="vllm",model_name="m",namespace="inference",pod="vllm-6b7f9c5d4-b"} 2
vllm:num_requests_waiting{deployment="vllm",engine="0",job="vllm",model_name="m",namespace="other-team",pod="vllm-5c8d-x"} 100
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{deployment="vllm",engine="0",job="vllm",model_name="m",namespace="inference",pod="vllm-6b7f9c5d4-a"} 5
vllm:num_requests_running{deployment="vllm-canary",engine="0",job="vllm",model_name="m",namespace="inference",pod="vllm-canary-7d-c"} 50
"""


def test_dashboard_reads_trigger_values_with_the_scoped_queries():
    """The collector's :8889 page holds another team's series too; the dashboard counts ours only,
    as the add-on does, and states the reaction time at the configured sync period."""
    config = config_from_dict({"cluster": {"hpa_sync_period_seconds": 10, "control_plane_tier": "tier-xl"}})
    spec = ScalingSpec.from_config(config.scaling)
    parsed = ParsedMetrics.from_text(PAGE)
    snap = build_snapshot(0, snapshot(parsed), parsed, spec, None, None, config.cluster.hpa_sync_period_seconds)
    assert snap.trigger_values == {"running": 5, "waiting": 6}
    assert snap.decision.composite == 65 and snap.decision.desired == 3
    assert any("no value for held: 0" in step for step in snap.decision.steps)
    assert snap.reaction.sync_seconds == 10
    from qvllm.dashboard.widgets.panels import ReplicasPanel

    text = ReplicasPanel().render_text(snap)
    assert "the HPA syncs every 10 s (cluster.hpa_sync_period_seconds)" in text and "desired 3" in text


def test_dashboard_models_zero_to_one_by_the_held_trigger():
    spec = ScalingSpec.from_config(config_from_dict({"scaling": {"min_replicas": 0}}).scaling)
    parsed = ParsedMetrics.from_text(
        '# TYPE qvllm_gateway_held_requests gauge\n'
        'qvllm_gateway_held_requests{deployment="gateway",namespace="inference",pod="gateway-58d9bc7f6-a"} 2\n')
    values = build_snapshot(0, snapshot(parsed), parsed, spec, None).trigger_values
    assert values == {"held": 2}
    decision = desired_replicas(spec, values, current=0)
    assert decision.active and decision.desired == 1
    assert any("activation trigger held=2" in step and "KEDA activates" in step for step in decision.steps)
