"""The dashboard's poller: scrape, compute desired replicas, and return one :class:`DashboardSnapshot`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from qvllm.dashboard.data.kube import KubeSnapshot, KubeSource
from qvllm.dashboard.data.local import EngineRow, LocalEngines
from qvllm.dashboard.data.prom import MetricsSnapshot, ParsedMetrics, snapshot, trigger_values
from qvllm.scaling import Decision, ReactionTimes, ScalingSpec, desired_replicas, reaction_times


@dataclass(frozen=True)
class DashboardSnapshot:
    """Everything the widgets show at one moment.

    Attributes:
        at: wall-clock time of the scrape (epoch seconds).
        metrics: numbers from the Prometheus text, or None when the scrape failed.
        error: why the scrape failed (shown instead of numbers).
        trigger_values: the ScaledObject's trigger values read from the metrics.
        decision: desired replicas by the scaling math (None without metrics).
        current_replicas: from the HPA (cluster), or the local engines that answer.
        kube: the Kubernetes view, None without a kubeconfig.
        reaction: how fast the deployed path reacts (KEDA polling, the configured HPA sync period).
        engines: the local stack's engines (empty against a cluster).
    """

    at: float
    metrics: MetricsSnapshot | None
    error: str | None
    trigger_values: Mapping[str, float]
    decision: Decision | None
    current_replicas: int
    kube: KubeSnapshot | None = None
    reaction: ReactionTimes | None = None
    engines: tuple[EngineRow, ...] = ()


class Poller:
    """Scrapes ``metrics_url`` (and the Kubernetes API when given) each :meth:`poll`; with
    ``local`` instead, every engine of the local stack (their metrics added up).

    The ScaledObject comes from the cluster when it has one, else ``spec`` (default: the
    app config's). ``hpa_sync_period_seconds`` is the cluster's (``cluster.hpa_sync_period_seconds``).
    Not thread-safe: one poller per worker.
    """

    def __init__(self, metrics_url: str | None, spec: ScalingSpec, hpa_sync_period_seconds: float,
                 kube: KubeSource | None = None, client: httpx.Client | None = None,
                 local: LocalEngines | None = None) -> None:
        if (metrics_url is None) == (local is None):
            raise ValueError("give exactly one of metrics_url and local")
        self.metrics_url = metrics_url
        self.spec = spec
        self.hpa_sync_period_seconds = hpa_sync_period_seconds
        self.kube = kube
        self.client = client or httpx.Client(timeout=5)
        self.local = local
        self._previous: tuple[float, ParsedMetrics] | None = None

    def _scrape(self) -> tuple[ParsedMetrics | None, tuple[EngineRow, ...], str | None]:
        if self.local is not None:
            rows, parsed, error = self.local.poll()
            return parsed, tuple(rows), error
        try:
            return ParsedMetrics.from_text(self.client.get(self.metrics_url).text), (), None
        except (httpx.HTTPError, ValueError) as exc:
            return None, (), f"{self.metrics_url}: {exc}"

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
        parsed, engines, scrape_error = self._scrape()
        if parsed is None:
            return DashboardSnapshot(now, None, scrape_error, {}, None, 1, kube,
                                     reaction_times(spec, self.hpa_sync_period_seconds), engines)
        prev = self._previous
        metrics = snapshot(parsed, prev[1] if prev else None, now - prev[0] if prev else None)
        self._previous = (now, parsed)
        return build_snapshot(now, metrics, parsed, spec, kube, error, self.hpa_sync_period_seconds, engines)


def build_snapshot(now: float, metrics: MetricsSnapshot, parsed: ParsedMetrics, spec: ScalingSpec,
                   kube: KubeSnapshot | None, error: str | None = None,
                   hpa_sync_period_seconds: float | None = None,
                   engines: tuple[EngineRow, ...] = ()) -> DashboardSnapshot:
    """Combine metrics, the scaling math and the Kubernetes view (pure).

    Desired replicas are computed once any trigger's metric is on the page; the others read 0,
    as the add-on answers (the decision's steps say which). Current replicas: the HPA's in a
    cluster, the engines that answer on the local stack.
    """
    current = 1
    if kube is not None:
        current = kube.hpa.current_replicas if kube.hpa else sum(1 for p in kube.pods if p.ready_s is not None)
    elif engines:
        current = max(sum(1 for e in engines if e.up), 1)
    values = trigger_values(parsed, [(t.name, t.metric_query) for t in spec.triggers])
    decision = desired_replicas(spec, values, current) if values else None
    reaction = None if hpa_sync_period_seconds is None else reaction_times(spec, hpa_sync_period_seconds)
    return DashboardSnapshot(now, metrics, error, values, decision, current, kube, reaction, engines)


def fetch_json(path: str) -> dict[str, Any]:
    """Load a recorded API response (tests, offline demos)."""
    import json
    from pathlib import Path

    return json.loads(Path(path).read_text())
