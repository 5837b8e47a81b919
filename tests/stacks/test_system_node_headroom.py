"""The system node group keeps at least 25 % of its allocatable CPU and memory unrequested.

Nothing scales that node group, so a controller whose requests do not fit stays Pending and its
release's ``helm --wait`` fails the deploy; a rolling update also needs room for one surge pod.
Requests summed: each release's pods with our Helm values from the synthesized template where we
set them, else the chart defaults recorded in tests/stacks/data/system_node_pods.yaml (with their
upstream source and version), CoreDNS, every DaemonSet on every node, and our own Deployments that
tolerate the system taint (they may be scheduled there).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from app_config import config_from_dict
from app_config.constants import SYSTEM_TAINT_KEY
from app_config.quantity import parse_quantity
from tests.support.eks_allocatable import allocatable
from tests.support.kubectl_handler import HELM_CHART_TYPE, MANIFEST_TYPE, IntrinsicResolver

DATA = yaml.safe_load((Path(__file__).parent / "data" / "system_node_pods.yaml").read_text())
MIN_FREE_FRACTION = 0.25


def _lookup(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _requested(requests: dict[str, str]) -> tuple[float, float]:
    """(CPU millicores, memory MiB) of a ``requests`` map."""
    cpu = parse_quantity(requests.get("cpu", "0")) * 1000
    memory = parse_quantity(requests.get("memory", "0")) / 2**20
    return cpu, memory


def system_node_requests(template: dict[str, Any], region: str, nodes: int) -> dict[str, tuple[float, float]]:
    """Pod name -> (CPU m, memory MiB) requested on the system nodes, replicas included."""
    resources = template["Resources"]
    resolver = IntrinsicResolver(resources, region)
    out: dict[str, tuple[float, float]] = {}
    releases = {}
    for resource in resources.values():
        if resource["Type"] == HELM_CHART_TYPE:
            props = resolver.resolve(resource["Properties"])
            releases[props["Release"]] = json.loads(props.get("Values") or "{}")
    assert set(DATA["releases"]) <= set(releases), (sorted(DATA["releases"]), sorted(releases))
    for release, chart in DATA["releases"].items():
        values = releases[release]
        for pod in chart["pods"]:
            replicas = _lookup(values, pod["replicas_path"]) or pod["replicas"]
            requests = _lookup(values, pod["requests_path"])
            cpu, memory = _requested(requests if requests is not None else pod["requests"])
            out[f"{release}/{pod['name']}"] = (cpu * replicas, memory * replicas)
    for name, add_on in DATA["add_ons"].items():
        cpu, memory = _requested(add_on["requests"])
        out[name] = (cpu * add_on["replicas"], memory * add_on["replicas"])
    for name, daemonset in DATA["daemonsets"].items():
        cpu, memory = _requested(daemonset["requests"])
        out[f"{name} (DaemonSet)"] = (cpu * nodes, memory * nodes)
    for resource in resources.values():
        if resource["Type"] != MANIFEST_TYPE:
            continue
        for obj in json.loads(resolver.resolve(resource["Properties"]["Manifest"])):
            if obj["kind"] != "Deployment":
                continue
            pod = obj["spec"]["template"]["spec"]
            if not any(t.get("key") == SYSTEM_TAINT_KEY for t in pod.get("tolerations", [])):
                continue
            replicas = obj["spec"].get("replicas", 1)
            cpu = memory = 0.0
            for container in pod["containers"]:
                c, m = _requested(container.get("resources", {}).get("requests", {}))
                cpu, memory = cpu + c, memory + m
            out[f"ours/{obj['metadata']['name']}"] = (cpu * replicas, memory * replicas)
    return out


def test_b10_system_nodes_keep_a_quarter_of_allocatable_free(default_app) -> None:
    cluster = default_app.stacks.cluster  # built from the default config
    system = config_from_dict({}).cluster.system_nodes
    node = DATA["instance_types"][system.instance_types[0]]
    nodes = system.min_size  # nothing scales the group above it
    cpu_each, memory_each = allocatable(node["vcpu"], node["memory_gib"], node["max_pods"])
    capacity = (cpu_each * nodes, memory_each * nodes)
    template = default_app.templates[cluster.stack_name]
    requests = system_node_requests(template, cluster.region, nodes)
    used = (sum(c for c, _ in requests.values()), sum(m for _, m in requests.values()))
    table = "\n".join(f"  {name}: {c:.0f}m, {m:.0f}Mi" for name, (c, m) in sorted(requests.items()))
    for what, total, cap in (("CPU", used[0], capacity[0]), ("memory", used[1], capacity[1])):
        assert total <= (1 - MIN_FREE_FRACTION) * cap, (
            f"{what}: {total:.0f} of {cap:.0f} allocatable on {nodes} x {system.instance_types[0]} requested "
            f"({total / cap:.0%}; at most {1 - MIN_FREE_FRACTION:.0%}):\n{table}"
        )


def test_b10_headroom_sum_counts_every_system_release(default_app) -> None:
    """The sum is not vacuous: it sees Karpenter's two controllers, KEDA, the add-on, CoreDNS, our collector."""
    cluster = default_app.stacks.cluster
    requests = system_node_requests(default_app.templates[cluster.stack_name], cluster.region, 2)
    assert requests["karpenter/controller"][0] >= 2 * 250
    assert requests["keda/operator"][0] == 100 and requests["keda-otel-scaler/scaler"][0] > 0
    assert requests["coredns"] == (200, 140) and requests["kube-proxy (DaemonSet)"][0] == 200
    assert requests["ours/otel-collector"][0] > 0
