"""Kubernetes facts for the dashboard, from API JSON (as the API returns it) to typed rows.

Pure functions take the documented API shapes (core/v1 Pod, Node, Event lists;
autoscaling/v2 HorizontalPodAutoscaler; karpenter.sh/v1 NodeClaim), so recorded responses
test them. :class:`KubeSource` fetches those lists through the official ``kubernetes`` client
(raw JSON, ``_preload_content=False``) given a kubeconfig.

Time-to-ready phases of a pod are measured, never typed in: from ``metadata.creationTimestamp``
to the ``PodScheduled`` condition, the kubelet's ``Pulled`` event (image pulled), its
``Started`` event (container started) and the ``Ready`` condition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from app_config.constants import GPU_NODEPOOL_NAME, INFERENCE_NAMESPACE, VLLM_APP_LABEL, VLLM_NAME
from app_config.quantity import parse_quantity

CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
NODEPOOL_LABEL = "karpenter.sh/nodepool"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
KEDA_HPA_PREFIX = "keda-hpa-"  # KEDA names the HPA it owns keda-hpa-<ScaledObject name>


def parse_time(text: str | None) -> datetime | None:
    """RFC 3339 timestamp (``2026-11-29T10:00:00Z``, optional fraction) -> aware datetime."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class PodPhases:
    """One pod and its measured time-to-ready phases (seconds since creation; None = not yet)."""

    name: str
    node: str | None
    phase: str
    scheduled_s: float | None
    image_pulled_s: float | None
    started_s: float | None
    ready_s: float | None
    pull_message: str | None = None


def _condition_time(pod: Mapping[str, Any], kind: str) -> datetime | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
    return None


def _event_time(event: Mapping[str, Any]) -> datetime | None:
    return parse_time(event.get("eventTime") or event.get("firstTimestamp") or event.get("lastTimestamp")
                      or (event.get("metadata") or {}).get("creationTimestamp"))


def pod_phases(pod: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> PodPhases:
    """Phases of ``pod`` from its conditions and the events whose involvedObject is the pod."""
    meta = pod.get("metadata") or {}
    name = meta.get("name", "?")
    created = parse_time(meta.get("creationTimestamp"))
    mine = [e for e in events if (e.get("involvedObject") or {}).get("name") == name
            and (e.get("involvedObject") or {}).get("kind", "Pod") == "Pod"]

    def first(reason: str) -> tuple[datetime | None, str | None]:
        hits = sorted(((_event_time(e), e.get("message")) for e in mine if e.get("reason") == reason),
                      key=lambda x: x[0] or datetime.max.replace(tzinfo=timezone.utc))
        return hits[0] if hits else (None, None)

    pulled, pull_message = first("Pulled")
    started, _ = first("Started")

    def since(t: datetime | None) -> float | None:
        return None if t is None or created is None else round((t - created).total_seconds(), 1)

    return PodPhases(
        name=name,
        node=(pod.get("spec") or {}).get("nodeName"),
        phase=(pod.get("status") or {}).get("phase", "Unknown"),
        scheduled_s=since(_condition_time(pod, "PodScheduled")),
        image_pulled_s=since(pulled),
        started_s=since(started),
        ready_s=since(_condition_time(pod, "Ready")),
        pull_message=pull_message,
    )


@dataclass(frozen=True)
class NodeRow:
    """A GPU node: instance type, capacity type (spot / on-demand), age in seconds."""

    name: str
    instance_type: str
    capacity_type: str
    age_s: float
    ready: bool


def gpu_nodes(nodes: Mapping[str, Any], now: datetime, nodepool: str = GPU_NODEPOOL_NAME) -> list[NodeRow]:
    """Rows for the nodes of ``nodepool`` (Karpenter's ``karpenter.sh/nodepool`` label)."""
    rows = []
    for node in nodes.get("items", []):
        labels = (node.get("metadata") or {}).get("labels") or {}
        if labels.get(NODEPOOL_LABEL) != nodepool:
            continue
        created = parse_time(node["metadata"].get("creationTimestamp"))
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (node.get("status") or {}).get("conditions") or [])
        rows.append(NodeRow(node["metadata"]["name"], labels.get(INSTANCE_TYPE_LABEL, "?"),
                            labels.get(CAPACITY_TYPE_LABEL, "?"),
                            round((now - created).total_seconds()) if created else 0.0, ready))
    return sorted(rows, key=lambda r: r.name)


def pending_nodeclaims(claims: Mapping[str, Any], nodepool: str = GPU_NODEPOOL_NAME) -> list[str]:
    """NodeClaims of ``nodepool`` without a node yet (launching): ``name (instance type)``."""
    out = []
    for claim in claims.get("items", []):
        labels = (claim.get("metadata") or {}).get("labels") or {}
        if labels.get(NODEPOOL_LABEL) != nodepool or (claim.get("status") or {}).get("nodeName"):
            continue
        out.append(f"{claim['metadata']['name']} ({labels.get(INSTANCE_TYPE_LABEL, '?')})")
    return out


@dataclass(frozen=True)
class HpaView:
    """The HPA KEDA owns: replicas and its metric, read correctly (the HPA
    reports an AverageValue external metric per pod, in milli-units, not as the raw value).

    ``per_pod_value`` is ``status.currentMetrics[0].external.current.averageValue`` as a number
    (``"1334m"`` -> 1.334): an average per pod, not a count. ``composite_estimate`` is
    per-pod x current replicas, the raw composite the HPA divided.
    """

    name: str
    current_replicas: int
    desired_replicas: int
    per_pod_value: float | None
    per_pod_text: str | None
    composite_estimate: float | None
    target_per_pod: float | None


def hpa_view(hpa: Mapping[str, Any]) -> HpaView:
    """Read an autoscaling/v2 HorizontalPodAutoscaler object."""
    status = hpa.get("status") or {}
    current = int(status.get("currentReplicas") or 0)
    per_pod_text = None
    for metric in status.get("currentMetrics") or []:
        ext = metric.get("external") or {}
        value = (ext.get("current") or {}).get("averageValue") or (ext.get("current") or {}).get("value")
        if value is not None:
            per_pod_text = str(value)
            break
    target = None
    for metric in (hpa.get("spec") or {}).get("metrics") or []:
        t = (metric.get("external") or {}).get("target") or {}
        if t.get("averageValue") is not None:
            target = parse_quantity(t["averageValue"])
            break
    per_pod = parse_quantity(per_pod_text) if per_pod_text is not None else None
    return HpaView(
        name=(hpa.get("metadata") or {}).get("name", "?"),
        current_replicas=current,
        desired_replicas=int(status.get("desiredReplicas") or 0),
        per_pod_value=per_pod,
        per_pod_text=per_pod_text,
        composite_estimate=None if per_pod is None else round(per_pod * current, 3),
        target_per_pod=target,
    )


@dataclass(frozen=True)
class KubeSnapshot:
    """What the Kubernetes API says at one moment."""

    pods: tuple[PodPhases, ...]
    nodes: tuple[NodeRow, ...]
    launching: tuple[str, ...]
    hpa: HpaView | None
    scaled_object: Mapping[str, Any] | None


def kube_snapshot(pods: Mapping[str, Any], events: Mapping[str, Any], nodes: Mapping[str, Any],
                  claims: Mapping[str, Any] | None, hpas: Mapping[str, Any], scaled_objects: Mapping[str, Any] | None,
                  now: datetime, target: str = VLLM_NAME) -> KubeSnapshot:
    """Combine the raw lists (API JSON) into a :class:`KubeSnapshot`."""
    event_items = events.get("items", [])
    pod_rows = tuple(sorted((pod_phases(p, event_items) for p in pods.get("items", [])), key=lambda r: r.name))
    hpa = next((h for h in hpas.get("items", []) if h["metadata"]["name"] == KEDA_HPA_PREFIX + target), None)
    so = next((s for s in (scaled_objects or {}).get("items", []) if s["metadata"]["name"] == target), None)
    return KubeSnapshot(pod_rows, tuple(gpu_nodes(nodes, now)), tuple(pending_nodeclaims(claims or {})),
                        hpa_view(hpa) if hpa else None, so)


class KubeSource:
    """Reads the lists above through the official client (raw JSON) for one namespace.

    Args:
        kubeconfig: path of the kubeconfig (``aws eks update-kubeconfig`` writes one).
        context: kubeconfig context (default: current).
        namespace: where vLLM, its HPA and ScaledObject live.
    """

    def __init__(self, kubeconfig: str | None = None, context: str | None = None,
                 namespace: str = INFERENCE_NAMESPACE) -> None:
        from kubernetes import client, config

        api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
        self.core = client.CoreV1Api(api_client)
        self.autoscaling = client.AutoscalingV2Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.namespace = namespace

    @staticmethod
    def _json(resp: Any) -> dict[str, Any]:
        return json.loads(resp.data)

    def snapshot(self, now: datetime | None = None) -> KubeSnapshot:
        """Fetch pods (``app=vllm``), events, nodes, NodeClaims, HPAs and ScaledObjects."""
        from kubernetes.client.rest import ApiException

        ns = self.namespace
        pods = self._json(self.core.list_namespaced_pod(ns, label_selector=f"app={VLLM_APP_LABEL}",
                                                        _preload_content=False))
        events = self._json(self.core.list_namespaced_event(ns, _preload_content=False))
        nodes = self._json(self.core.list_node(_preload_content=False))
        hpas = self._json(self.autoscaling.list_namespaced_horizontal_pod_autoscaler(ns, _preload_content=False))
        try:
            claims = self._json(self.custom.list_cluster_custom_object("karpenter.sh", "v1", "nodeclaims",
                                                                       _preload_content=False))
        except ApiException:
            claims = {"items": []}
        try:
            sos = self._json(self.custom.list_namespaced_custom_object("keda.sh", "v1alpha1", ns, "scaledobjects",
                                                                       _preload_content=False))
        except ApiException:
            sos = {"items": []}
        return kube_snapshot(pods, events, nodes, claims, hpas, sos, now or datetime.now(timezone.utc))
