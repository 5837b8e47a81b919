"""The dashboard's panels. No I/O: the app sets ``snapshot`` (attributes down)."""

from __future__ import annotations

from collections import deque

from textual.reactive import reactive
from textual.widgets import DataTable, Sparkline, Static

from app_config.cold_start import MILESTONE_NAMES
from qvllm.dashboard.data.sources import DashboardSnapshot

NA = "n/a"


def fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    """A number for display; None is "n/a" (never 0)."""
    return NA if value is None else f"{value:.{digits}f}{unit}"


def throughput_text(snap: DashboardSnapshot | None) -> str:
    """Requests/s and tokens/s (Textual markup), or the scrape's error."""
    if snap is None or snap.metrics is None:
        return f"[b]Throughput[/b]\n{snap.error if snap else 'waiting for the first scrape'}"
    m = snap.metrics
    return f"[b]Throughput[/b]\nrequests/s {fmt(m.requests_per_s, digits=2)}\ntokens/s   {fmt(m.tokens_per_s)}"


def queue_text(snap: DashboardSnapshot | None) -> str:
    """Running and waiting requests and the KV-cache usage (Textual markup)."""
    if snap is None or snap.metrics is None:
        return "[b]Queue[/b]\nn/a"
    m = snap.metrics
    kv = NA if m.kv_cache_usage is None else f"{m.kv_cache_usage:.1%}"
    kv_src = f" ({m.kv_cache_metric})" if m.kv_cache_metric else ""
    spelling = f"metric names found as {m.spelling}..." if m.spelling else "vLLM queue metrics not found"
    return (f"[b]Queue[/b]\nrunning {fmt(m.running, digits=0)}   waiting {fmt(m.waiting, digits=0)}\n"
            f"KV cache {kv}{kv_src}\n[dim]{spelling}[/dim]")


def replicas_text(snap: DashboardSnapshot | None) -> str:
    """Desired vs current replicas with the decision's steps and reaction times (Textual markup)."""
    if snap is None or snap.decision is None:
        return "[b]Replicas[/b]\nn/a (no trigger values)"
    d = snap.decision
    lines = [f"[b]Replicas[/b]\ndesired {d.desired}   current {snap.current_replicas}   composite {d.composite:g}"]
    lines += [f"[dim]{s}[/dim]" for s in d.steps]
    if snap.reaction is not None:
        lines += [f"[dim]reaction: {line}[/dim]" for line in snap.reaction.lines()]
    hpa = snap.kube.hpa if snap.kube else None
    if hpa is not None and hpa.per_pod_value is not None:
        lines.append(
            f"HPA: {hpa.per_pod_value:g} per pod ({hpa.per_pod_text}) x {hpa.current_replicas} pods "
            f"= composite ~{hpa.composite_estimate:g}; target {fmt(hpa.target_per_pod, digits=0)} per pod"
        )
    return "\n".join(lines)


def latency_text(snap: DashboardSnapshot | None) -> str:
    """TTFT and end-to-end p50/p95 from the histogram buckets (Textual markup)."""
    if snap is None or snap.metrics is None:
        return "[b]Latency[/b]\nn/a"
    m = snap.metrics
    return (f"[b]Latency[/b] (from buckets)\nTTFT  p50 {fmt(m.ttft_p50_s, ' s', 2)}  p95 {fmt(m.ttft_p95_s, ' s', 2)}\n"
            f"e2e   p50 {fmt(m.e2e_p50_s, ' s', 2)}  p95 {fmt(m.e2e_p95_s, ' s', 2)}")


# The panels' texts in screen order: the live app and `qvllm dashboard --once` print the same.
PANEL_TEXTS = (throughput_text, latency_text, queue_text, replicas_text)


class SnapshotStatic(Static):
    """A text panel re-rendered whenever ``snapshot`` changes."""

    snapshot: reactive[DashboardSnapshot | None] = reactive(None, always_update=True)

    def watch_snapshot(self, snap: DashboardSnapshot | None) -> None:
        self.update(self.render_text(snap))

    def render_text(self, snap: DashboardSnapshot | None) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


class ThroughputPanel(SnapshotStatic):
    """Requests/s and tokens/s (rates between two scrapes)."""

    def render_text(self, snap: DashboardSnapshot | None) -> str:
        return throughput_text(snap)


class QueuePanel(SnapshotStatic):
    """Running and waiting requests now, and over time (sparklines), plus KV-cache usage."""

    HISTORY = 120

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.running_history: deque[float] = deque(maxlen=self.HISTORY)
        self.waiting_history: deque[float] = deque(maxlen=self.HISTORY)

    def render_text(self, snap: DashboardSnapshot | None) -> str:
        if snap is None or snap.metrics is None:
            return queue_text(snap)
        m = snap.metrics
        self.running_history.append(m.running or 0.0)
        self.waiting_history.append(m.waiting or 0.0)
        for spark_id, data in (("#running-spark", self.running_history), ("#waiting-spark", self.waiting_history)):
            for spark in self.app.query(spark_id):
                spark.data = list(data)
        return queue_text(snap)


class ReplicasPanel(SnapshotStatic):
    """Desired replicas by the scaling math beside current replicas (0 -> 1 by the activation trigger
    included), the reaction times at the configured HPA sync period, and the HPA's per-pod figure
    (the HPA shows an AverageValue metric divided by the replica count)."""

    def render_text(self, snap: DashboardSnapshot | None) -> str:
        return replicas_text(snap)


class LatencyPanel(SnapshotStatic):
    """TTFT and end-to-end latency p50/p95 from histogram buckets (interpolated)."""

    def render_text(self, snap: DashboardSnapshot | None) -> str:
        return latency_text(snap)


POD_COLUMNS = ("pod", "node", "phase", *MILESTONE_NAMES)  # the cold-start model's milestone names
ENGINE_COLUMNS = ("engine", "status", "in flight", "running", "waiting", "time to ready", "process start",
                  "weight loading", "engine init", "api start", "stream MiB/s")
ENGINE_PHASES = ("process_start_s", "weight_loading_s", "engine_init_s", "api_start_s")
CLUSTER_ONLY = "cluster only: no Kubernetes API here (qvllm dashboard --kubeconfig ...)"


class PodsTable(DataTable):
    """vLLM pods and their measured time-to-ready phases (seconds since pod creation); on the
    local stack, its engines: requests in flight and the time-to-ready phases of `local up`."""

    snapshot: reactive[DashboardSnapshot | None] = reactive(None, always_update=True)

    def on_mount(self) -> None:
        self.add_columns(*POD_COLUMNS)

    def _columns(self, names: tuple[str, ...]) -> None:
        if tuple(str(c.label) for c in self.columns.values()) != names:
            self.clear(columns=True)
            self.add_columns(*names)

    def watch_snapshot(self, snap: DashboardSnapshot | None) -> None:
        self.clear()
        if snap is None:
            return
        if snap.kube is not None:
            self._columns(POD_COLUMNS)
            for p in snap.kube.pods:
                self.add_row(p.name, p.node or "-", p.phase, *(fmt(v, " s") for v in
                             (p.scheduled_s, p.image_pulled_s, p.started_s, p.ready_s)))
        elif snap.engines:
            self._columns(ENGINE_COLUMNS)
            for e in snap.engines:
                self.add_row(e.name, "up" if e.up else "no answer", fmt(e.in_flight, digits=0),
                             fmt(e.running, digits=0), fmt(e.waiting, digits=0), fmt(e.time_to_ready_s, " s"),
                             *(fmt(e.phases.get(k), " s") for k in ENGINE_PHASES), fmt(e.stream_rate_mib_s))


class NodesTable(DataTable):
    """GPU nodes: instance type, spot or on-demand, age; plus NodeClaims still launching.
    Without a cluster it says so instead of staying empty."""

    snapshot: reactive[DashboardSnapshot | None] = reactive(None, always_update=True)

    def on_mount(self) -> None:
        self.add_columns("node", "instance type", "capacity", "age", "ready")

    def watch_snapshot(self, snap: DashboardSnapshot | None) -> None:
        self.clear()
        if snap is None:
            return
        if snap.kube is None:
            self.add_row(CLUSTER_ONLY, "", "", "", "")
            return
        for n in snap.kube.nodes:
            self.add_row(n.name, n.instance_type, n.capacity_type, f"{n.age_s / 60:.0f} min", "yes" if n.ready else "no")
        for claim in snap.kube.launching:
            self.add_row(claim, "", "", "launching", "no")


__all__ = ["LatencyPanel", "NodesTable", "PodsTable", "QueuePanel", "ReplicasPanel", "Sparkline", "ThroughputPanel"]
