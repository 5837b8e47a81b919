"""The dashboard's poller: scrape, compute desired replicas, and return one :class:`DashboardSnapshot`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from qvllm.dashboard.data.kube import KubeSnapshot, KubeSource
from qvllm.dashboard.data.prom import MetricsSnapshot, ParsedMetrics, snapshot, trigger_values
from qvllm.scaling import Decision, ScalingSpec, desired_replicas


@dataclass(frozen=True)
class DashboardSnapshot:
    """Everything the widgets show at one moment.

    Attributes:
        at: wall-clock time of the scrape (epoch seconds).
        metrics: numbers from the Prometheus text, or None when the scrape failed.
        error: why the scrape failed (shown instead of numbers).
        trigger_values: the ScaledObject's trigger values read from the metrics.
        decision: desired replicas by the scaling math (None without metrics).
        current_replicas: from the HPA (cluster) or the number of engines (local: 1).
        kube: the Kubernetes view, None without a kubeconfig.
    """

    at: float
    metrics: MetricsSnapshot | None
    error: str | None
    trigger_values: Mapping[str, float]
    decision: Decision | None
    current_replicas: int
    kube: KubeSnapshot | None = None


class Poller:
    """Scrapes ``metrics_url`` (and the Kubernetes API when given) each :meth:`poll`.

    The ScaledObject comes from the cluster when it has one, else ``spec`` (default: the
    app config's). Not thread-safe: one poller per worker.
    """

    def __init__(self, metrics_url: str, spec: ScalingSpec, kube: KubeSource | None = None,
                 client: httpx.Client | None = None) -> None:
        self.metrics_url = metrics_url
        self.spec = spec
        self.kube = kube
        self.client = client or httpx.Client(timeout=5)
        self._previous: tuple[float, ParsedMetrics] | None = None

    def poll(self) -> DashboardSnapshot:
        """One scrape; errors become ``DashboardSnapshot.error`` instead of exceptions."""
        now = time.time()
        kube = None
        spec = self.spec
        error = None
        if self.kube is not None:
            try:
                kube = self.kube.snapshot()
                if kube.scaled_object:
                    spec = ScalingSpec.from_scaled_object(kube.scaled_object)
            except Exception as exc:  # noqa: BLE001 - shown in the UI
                error = f"Kubernetes API: {exc}"
        try:
            text = self.client.get(self.metrics_url).text
            parsed = ParsedMetrics.from_text(text)
        except (httpx.HTTPError, ValueError) as exc:
            return DashboardSnapshot(now, None, f"{self.metrics_url}: {exc}", {}, None, 1, kube)
        prev = self._previous
        metrics = snapshot(parsed, prev[1] if prev else None, now - prev[0] if prev else None)
        self._previous = (now, parsed)
        return build_snapshot(now, metrics, parsed, spec, kube, error)


def build_snapshot(now: float, metrics: MetricsSnapshot, parsed: ParsedMetrics, spec: ScalingSpec,
                   kube: KubeSnapshot | None, error: str | None = None) -> DashboardSnapshot:
    """Combine metrics, the scaling math and the Kubernetes view (pure)."""
    current = 1
    if kube is not None:
        current = kube.hpa.current_replicas if kube.hpa else sum(1 for p in kube.pods if p.ready_s is not None)
    values = trigger_values(parsed, [(t.name, t.query) for t in spec.triggers])
    decision = None
    if all(t.name in values for t in spec.triggers if not t.is_resource):
        decision = desired_replicas(spec, values, current)
    return DashboardSnapshot(now, metrics, error, values, decision, current, kube)


def fetch_json(path: str) -> dict[str, Any]:
    """Load a recorded API response (tests, offline demos)."""
    import json
    from pathlib import Path

    return json.loads(Path(path).read_text())
