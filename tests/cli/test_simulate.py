"""`qvllm simulate`: the replay runs scale-math's own control loop on the metrics it scrapes (a step
load gives exactly scale-math's timeline), a fixed seed gives one summary, bad input is one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from app_config import config_from_dict
from qvllm.cli import main
from qvllm.scaling import ScalingSpec
from qvllm.simulate.cluster import SimulationError, simulate
from qvllm.simulate.engine import ServiceCurve
from qvllm.simulate.workload import RequestSpec, Trace, WorkloadError, diurnal, parse_trace

NEVER_ENDS = 10**7  # output tokens: no request finishes within the window, so the metrics hold still


def _scale_math_scale_up(config_file, values: dict[str, int], current: int) -> list[tuple[float, str, int]]:
    args = ["scale-math", "--config", str(config_file), "--current", str(current), "--timeline"]
    for name, value in values.items():
        args += ["-v", f"{name}={value}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    section = result.output.split("scale-up with these values")[1].split("scale-down after")[0]
    return [(float(t), src, int(n)) for t, src, n in re.findall(r"t=\s*(\d+)s\s+\((\w+)\) replicas (\d+)", section)]


@pytest.mark.parametrize("overrides, requests, current, values", [
    # 1 ready replica, 230 requests: 32 run (max_num_seqs), 198 wait; policies 2 pods / 15 s: 1 -> 3 -> 5 ...
    ({"scaling": {"scale_up": {"stabilization_window_seconds": 0,
                               "policies": [{"type": "Pods", "value": 2, "period_seconds": 15}]}}},
     230, 1, {"running": 32, "waiting": 198}),
    # the defaults: one decision takes 1 replica to 10
    ({}, 230, 1, {"running": 32, "waiting": 198}),
    # scale to zero: 5 requests held by the gateway wake KEDA (0 -> 1), then the HPA
    ({"scaling": {"min_replicas": 0}}, 5, 0, {"held": 5}),
])
def test_step_load_reproduces_scale_math(tmp_path, overrides, requests, current, values):
    """A step of requests at t=0: the replay's scrape feeds ControlLoop the same trigger values scale-math
    is given, at the same KEDA and HPA phases, so every replica change matches `scale-math --timeline`."""
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(overrides))
    expected = _scale_math_scale_up(config_file, values, current)
    config = config_from_dict(overrides)
    spec = ScalingSpec.from_config(config.scaling)
    poll, sync = spec.polling_interval_seconds, config.cluster.hpa_sync_period_seconds
    window = poll + sync * 8  # scale-math's scale-up window; new pods are not Ready before it ends
    trace = Trace("step", tuple(RequestSpec(0.0, 10, NEVER_ENDS) for _ in range(requests)))
    cluster_result = simulate(config, spec, ServiceCurve.from_config(config), trace, keda_first_poll=poll,
                              hpa_first_sync=(poll if current == 0 else 0) + sync, until=window)
    got = [(e.time, e.source, e.after) for e in cluster_result.events if e.time <= window]
    assert got == expected
    assert len(expected) >= 1


def test_default_one_decision_is_one_to_ten(tmp_path):
    (tmp_path / "c.yaml").write_text("{}")
    assert _scale_math_scale_up(tmp_path / "c.yaml", {"running": 32, "waiting": 198}, 1) == [(15.0, "hpa", 10)]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qvllm.cli", "simulate", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


@pytest.mark.slow  # the CLI twice in a subprocess, under two hash seeds
def test_fixed_seed_gives_a_stable_summary(tmp_path):
    """The same seed gives the same output in two processes with different hash seeds (no set or
    dict order leaks into the replay); the summary's figures hang together."""
    runs = [_cli("--profile", "short", "--seed", "3", "--png", "", env={"PYTHONHASHSEED": seed}) for seed in ("1", "2")]
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    last = dict(pair.split("=") for pair in runs[0].stdout.strip().splitlines()[-1].split())
    assert list(last) == ["p95_ttft_s", "p95_wait_s", "slo_miss_pct", "gpu_hours", "cost_usd", "cold_start_modeled_s"]
    assert float(last["p95_ttft_s"]) >= float(last["p95_wait_s"]) >= 0
    assert float(last["cost_usd"]) == pytest.approx(float(last["gpu_hours"]) * 1.006, abs=2e-3)
    assert float(last["cold_start_modeled_s"]) > 100
    assert diurnal(7) == diurnal(7) and diurnal(7) != diurnal(8)


def test_compare_prices_spot_against_on_demand(tmp_path):
    """Same load, same GPU-hours; cost in the ratio of the configured prices; the PNG is written."""
    price = {"on_demand_usd_per_hour": 1.006, "spot_usd_per_hour": 0.4, "region": "us-east-1",
             "as_of": "2026-07-06", "source": "test"}
    spot, od = tmp_path / "spot.yaml", tmp_path / "od.yaml"
    spot.write_text(yaml.safe_dump({"simulation": {"spot_share": 1, "prices": {"g5.xlarge": price}}}))
    od.write_text(yaml.safe_dump({"simulation": {"spot_share": 0, "prices": {"g5.xlarge": price}}}))
    png = tmp_path / "t.png"
    run = _cli("--profile", "short", "--config", str(od), "--compare", str(spot), "--png", str(png))
    assert run.returncode == 0, run.stderr
    last = dict(pair.split("=") for pair in run.stdout.strip().splitlines()[-1].split())
    assert last["gpu_hours"] == last["b_gpu_hours"]
    hours = float(last["gpu_hours"])
    assert float(last["cost_usd"]) == pytest.approx(hours * 1.006, abs=2e-3)
    assert float(last["b_cost_usd"]) == pytest.approx(hours * 0.4, abs=2e-3)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, text, code", [
    (["--profile", "weekly"], "Invalid value for '--profile': 'weekly' is not one of 'demo', 'short', 'diurnal'", 2),
    (["--seed", "x"], "'--seed'", 2),
    (["--trace", "TRACE"], "line 3: prompt_tokens 'many' is not an integer", 1),
    (["--config", "CONFIG"], "simulation.spot_share", 1),
])
def test_bad_input_is_one_clear_line(tmp_path, args, text, code):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,10,20\n1.5,many,20\n")
    config = tmp_path / "c.yaml"
    config.write_text("simulation: {spot_share: 2}\n")
    args = [str(trace) if a == "TRACE" else str(config) if a == "CONFIG" else a for a in args]
    result = CliRunner().invoke(main, ["simulate", "--png", "", *args])
    assert result.exit_code == code, result.output
    assert text in result.output and "Traceback" not in result.output


def test_trace_errors_name_the_field():
    with pytest.raises(WorkloadError, match="missing output_tokens"):
        parse_trace(["arrival_s,prompt_tokens", "0,1"], "t.csv")
    with pytest.raises(WorkloadError, match="t.csv line 2: arrival_s -1.0 must be"):
        parse_trace(["arrival_s,prompt_tokens,output_tokens", "-1,1,1"], "t.csv")
    assert parse_trace(["arrival_s,prompt_tokens,output_tokens", "2,1,1", "1,1,1"], "t").requests[0].arrival_s == 1


def test_a_trigger_on_an_unsimulated_metric_is_named():
    config = config_from_dict({"scaling": {"triggers": [
        {"name": "kv", "metric_query": "avg(vllm:kv_cache_usage_perc)", "target_value": 0.8}], "formula": "kv"}})
    spec = ScalingSpec.from_config(config.scaling)
    with pytest.raises(SimulationError, match="trigger 'kv' reads vllm:kv_cache_usage_perc"):
        simulate(config, spec, ServiceCurve.from_config(config), Trace("t", (RequestSpec(0, 1, 1),)))


def test_calibrate_against_nothing_is_one_line(tmp_path):
    from tests.support.vllm_server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, ["simulate", "--calibrate", "--url", url, "--out", str(tmp_path / "c.yaml")])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: calibration against {url} failed:") and "Traceback" not in result.output


def test_engine_file_replaces_the_service_curve(tmp_path):
    """A calibration file (what --calibrate writes) drives the replay: a slower curve, a slower TTFT."""
    def p95(*extra: str) -> float:
        result = CliRunner().invoke(main, ["simulate", "--profile", "short", "--png", "", *extra])
        assert result.exit_code == 0, result.output
        return float(result.output.strip().splitlines()[-1].split()[0].split("=")[1])

    slow = tmp_path / "slow.yaml"
    slow.write_text(yaml.safe_dump({"simulation": {"engine": {"ttft_base_seconds": 1.5, "itl_base_seconds": 0.05}}}))
    assert p95("--engine", str(slow)) > p95() + 1
    broken = tmp_path / "broken.yaml"
    broken.write_text("simulation: {}\n")
    result = CliRunner().invoke(main, ["simulate", "--png", "", "--engine", str(broken)])
    assert result.exit_code == 2 and "has no simulation.engine mapping" in result.output


def test_a_scaled_in_pod_aborts_what_still_runs_when_vllms_drain_ends():
    # A burst scales 1 -> 2; two 2000-s answers start on the two pods at 400 s; running 2 asks for one
    # pod, so after the scale-down window the newer pod is deleted with its answer in flight. vLLM
    # aborts it after the preStop sleep and --shutdown-timeout (15 + 90 s), not at the end of the
    # whole grace (120 s); the other answer, on the pod that stays, completes.
    config = config_from_dict({"scaling": {"min_replicas": 1, "max_replicas": 2}, "vllm": {"max_num_seqs": 4}})
    curve = ServiceCurve(4, 0.05, 0.0, 0.02, 0.0)
    burst = [RequestSpec(i * 0.05, 20, 64) for i in range(2000)]
    long = [RequestSpec(400.0, 20, 100_000), RequestSpec(400.1, 20, 100_000)]
    result = simulate(config, ScalingSpec.from_config(config.scaling), curve, Trace("scale-in", tuple(burst + long)))
    (scale_in,) = [e for e in result.events if (e.before, e.after) == (2, 1)]
    cut, kept = sorted((r for r in result.requests if r.output_tokens == 100_000), key=lambda r: r.outcome)
    assert (cut.outcome, kept.outcome) == ("failed", "ok")
    vllm = config.vllm
    assert cut.done == pytest.approx(scale_in.time + vllm.pre_stop_delay_seconds + vllm.shutdown_timeout_seconds)
