"""Trigger queries read only our series: the collector's relabeling, run by Prometheus' own code,
and the Kedify add-on's query semantics, over the rendered collector config and ScaledObject.

The collector's Prometheus receiver relabels targets with Prometheus' relabel package; here the
same rules run in ``promtool check service-discovery`` (Prometheus 2.42 from Debian, unpacked by
``make deps-promtool``). Kubernetes pod discovery needs an API server, so each job's
``kubernetes_sd_configs`` is replaced by static targets carrying the meta labels pod discovery
sets (Prometheus docs, kubernetes_sd_config role ``pod``:
https://prometheus.io/docs/prometheus/latest/configuration/configuration/#kubernetes_sd_config),
built from the rendered Deployments. The relabeled target labels then become the series'
data-point attributes (all but ``job``, ``instance`` and ``__`` labels: the receiver's
``getSortedNotUsefulLabels``), which is what the add-on stores and matches
(:mod:`app_config.metric_query`, kedify/otel-add-on v0.1.4).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from app_config import config_from_dict
from app_config import constants as c
from app_config.metric_query import parse_metric_query
from qvllm.dashboard.data.prom import ParsedMetrics
from tests.charts.conftest import REPO_ROOT, find

VLLM_PAGE = REPO_ROOT / "tests" / "cli" / "data" / "vllm_metrics_queue.txt"  # recorded from the CPU engine
NOT_ATTRIBUTES = {"job", "instance"}  # become resource attributes, not data-point attributes


def _promtool() -> str:
    found = os.environ.get("PROMTOOL") or (
        str(REPO_ROOT / ".tools" / "promtool") if (REPO_ROOT / ".tools" / "promtool").exists() else shutil.which("promtool")
    )
    assert found, "promtool is missing: run `make deps-promtool` (make test does)"
    return found


def _unescape(value: Any) -> Any:
    """The collector's config expansion turns ``$$`` into ``$`` before Prometheus sees the text."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    if isinstance(value, dict):
        return {k: _unescape(v) for k, v in value.items()}
    return value


def _collector_jobs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    text = find(objects, "ConfigMap", c.OTEL_COLLECTOR_NAME)["data"][c.OTEL_COLLECTOR_CONFIG_KEY]
    config = _unescape(yaml.safe_load(text))
    return {job["job_name"]: job for job in config["receivers"]["prometheus"]["config"]["scrape_configs"]}


def _sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _pod_targets(deployment: dict[str, Any], pod_hash: str, ip: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """The targets pod discovery gives for one pod of ``deployment`` (one per container port)."""
    template = deployment["spec"]["template"]
    replica_set = f"{deployment['metadata']['name']}-{pod_hash}"
    labels = {
        "__meta_kubernetes_namespace": namespace or deployment["metadata"]["namespace"],
        "__meta_kubernetes_pod_name": f"{replica_set}-x7k2p",
        "__meta_kubernetes_pod_ip": ip,
        "__meta_kubernetes_pod_controller_kind": "ReplicaSet",
        "__meta_kubernetes_pod_controller_name": replica_set,
        "__meta_kubernetes_pod_ready": "true",
        **{f"__meta_kubernetes_pod_label_{_sanitize(k)}": v for k, v in template["metadata"]["labels"].items()},
    }
    targets = []
    for container in template["spec"]["containers"]:
        for port in container.get("ports", []):
            targets.append({
                "targets": [f"{ip}:{port['containerPort']}"],
                "labels": {
                    **labels,
                    "__meta_kubernetes_pod_container_name": container["name"],
                    "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
                    "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                    "__meta_kubernetes_pod_container_port_protocol": port.get("protocol", "TCP"),
                },
            })
    return targets


def _discover(job: dict[str, Any], targets: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, str]]:
    """Run the job's relabeling in promtool over ``targets``; return the kept targets' labels."""
    static_job = {k: v for k, v in job.items() if k != "kubernetes_sd_configs"}
    static_job["static_configs"] = targets
    path = tmp_path / f"{job['job_name']}.yml"
    path.write_text(yaml.safe_dump({"scrape_configs": [static_job]}))
    result = subprocess.run([_promtool(), "check", "service-discovery", "--timeout=1s", str(path), job["job_name"]],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [t["labels"] for t in json.loads(result.stdout) if t["labels"]]


@pytest.fixture(scope="module")
def pods(all_objects) -> list[dict[str, Any]]:
    """Targets of two vLLM pods, two gateway pods and the collector's own pod."""
    vllm = find(all_objects, "Deployment", c.VLLM_NAME)
    gateway = find(all_objects, "Deployment", c.GATEWAY_NAME)
    collector = find(all_objects, "Deployment", c.OTEL_COLLECTOR_NAME)
    return [
        *_pod_targets(vllm, "6b7f9c5d4", "10.0.64.11"),
        *_pod_targets(vllm, "6b7f9c5d4", "10.0.64.12"),
        *_pod_targets(gateway, "58d9bc7f6", "10.0.65.21"),
        *_pod_targets(gateway, "58d9bc7f6", "10.0.65.22"),
        *_pod_targets(collector, "7c9d5b8f4", "10.0.66.31"),
    ]


def test_collector_labels_series_with_namespace_pod_and_deployment(all_objects, pods, tmp_path):
    """Each job keeps only its own pods on its own port and labels them namespace/pod/deployment."""
    jobs = _collector_jobs(all_objects)
    assert set(jobs) == {c.VLLM_NAME, c.GATEWAY_NAME}
    for name, port, path in ((c.VLLM_NAME, c.VLLM_PORT, c.VLLM_METRICS_PATH),
                             (c.GATEWAY_NAME, c.GATEWAY_PORT, c.GATEWAY_METRICS_PATH)):
        kept = _discover(jobs[name], pods, tmp_path)
        assert len(kept) == 2, kept
        for labels in kept:
            assert labels["__address__"].endswith(f":{port}") and labels["__metrics_path__"] == path
            assert labels[c.SERIES_NAMESPACE_LABEL] == c.INFERENCE_NAMESPACE
            assert labels[c.SERIES_DEPLOYMENT_LABEL] == name
            assert labels[c.SERIES_POD_LABEL].startswith(f"{name}-")


def _series(page: str, metric: str, target_labels: dict[str, str]) -> list[tuple[dict[str, str], float]]:
    """The add-on's stored series of ``metric`` from one scraped page: sample labels + target labels."""
    attributes = {k: v for k, v in target_labels.items() if not k.startswith("__") and k not in NOT_ATTRIBUTES}
    _, samples = ParsedMetrics.from_text(page).find(metric)
    return [({**s.labels, **attributes}, s.value) for s in samples]


def _held_page(value: float) -> str:
    registry = CollectorRegistry()
    Gauge(c.GATEWAY_HELD_REQUESTS_METRIC, "requests held: no vLLM endpoint ready", registry=registry).set(value)
    return generate_latest(registry).decode()


def test_trigger_queries_read_only_our_namespace_and_deployment(all_objects, pods, tmp_path):
    """Every trigger sums our two pods' series and nothing else: series of the same name from
    another namespace or Deployment (another team's vLLM feeding the same add-on) are left out.
    Without the scope the same query would have summed them too."""
    jobs = _collector_jobs(all_objects)
    pages = {c.VLLM_NAME: VLLM_PAGE.read_text(), c.GATEWAY_NAME: _held_page(3)}
    ours: dict[str, list[tuple[dict[str, str], float]]] = {}
    for job_name, job in jobs.items():
        for target in _discover(job, pods, tmp_path):
            for metric in (c.METRIC_RUNNING, c.METRIC_WAITING, c.GATEWAY_HELD_REQUESTS_METRIC):
                ours.setdefault(metric, []).extend(_series(pages[job_name], metric, target))
    expected = {c.METRIC_RUNNING: 4.0, c.METRIC_WAITING: 20.0, c.GATEWAY_HELD_REQUESTS_METRIC: 6.0}  # 2 pods each
    triggers = find(all_objects, "ScaledObject")["spec"]["triggers"]
    assert len(triggers) == 3
    for trigger in triggers:
        query = parse_metric_query(trigger["metadata"]["metricQuery"])
        foreign = [({**labels, c.SERIES_NAMESPACE_LABEL: "other-team"}, 1000.0) for labels, _ in ours[query.name]]
        foreign += [({**labels, c.SERIES_DEPLOYMENT_LABEL: "vllm-canary"}, 1000.0) for labels, _ in ours[query.name]]
        assert query.answer(ours[query.name]) == (expected[query.name], True)
        assert query.answer(ours[query.name] + foreign) == (expected[query.name], True), trigger["name"]
        unscoped = parse_metric_query(f"{query.aggregation}({query.name})")
        assert unscoped.answer(ours[query.name] + foreign)[0] > expected[query.name]


def test_user_labels_are_kept_and_conflicting_scope_is_refused():
    """A trigger's own label filter stays; one that contradicts the scope fails at config load."""
    from app_config.scaled_object import ScaledObjectProps, scaled_object_manifest

    triggers = [
        {"name": "running", "metric_query": "sum(vllm:num_requests_running{model_name=mistral-7b-awq})", "target_value": 25},
        {"name": "held", "metric_query": f"sum({c.GATEWAY_HELD_REQUESTS_METRIC})", "target_value": 1, "source": "gateway"},
    ]
    config = config_from_dict({"scaling": {"triggers": triggers, "formula": "running + held"}})
    manifest, _ = scaled_object_manifest(ScaledObjectProps(scaling=config.scaling))
    assert manifest["spec"]["triggers"][0]["metadata"]["metricQuery"] == (
        "sum(vllm:num_requests_running{namespace=inference,deployment=vllm,model_name=mistral-7b-awq})"
    )
    triggers[0]["metric_query"] = "sum(vllm:num_requests_running{namespace=default})"
    with pytest.raises(ValueError, match=r"scaling\.triggers\.0\.metric_query.*namespace=default"):
        config_from_dict({"scaling": {"triggers": triggers, "formula": "running + held"}})
