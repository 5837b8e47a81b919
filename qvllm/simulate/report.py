"""What a replay means for users and for the bill: percentiles, SLO misses, rejections, GPU-hours, cost, a plot.

Definitions (seconds): TTFT is a request's arrival at the gateway to its first token; queue wait is
arrival to vLLM's admission into its running batch (gateway hold and queue plus vLLM's queue).
Percentiles are over served requests (nearest-rank). The SLO miss share counts a served request
over ``simulation.slo_ttft_seconds`` and every request not served (429, 503, failed) over all
requests. GPU-hours are node lifetimes (launch to termination; EC2 bills per second) times the
GPUs of a vLLM pod, split by capacity type; cost multiplies node-hours by the price table.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qvllm.simulate.cluster import Result

SUMMARY_KEYS = ("p95_ttft_s", "p95_wait_s", "slo_miss_pct", "gpu_hours", "cost_usd", "cold_start_modeled_s")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    """The figures of one replay (see the module docstring for definitions)."""

    label: str
    requests: int
    served: int
    outcomes: dict[str, int]
    p50_ttft_s: float
    p95_ttft_s: float
    p50_wait_s: float
    p95_wait_s: float
    slo_ttft_s: float
    slo_miss_pct: float
    gpu_hours: dict[str, float]
    cost_usd: dict[str, float]
    price_notes: tuple[str, ...]
    max_replicas: int
    pod_starts: int
    warm_starts: int
    cold_start_modeled_s: float
    duration_s: float

    @property
    def total_gpu_hours(self) -> float:
        """GPU-hours of all capacity types."""
        return sum(self.gpu_hours.values())

    @property
    def total_cost_usd(self) -> float:
        """Cost of all capacity types."""
        return sum(self.cost_usd.values())

    def values(self) -> dict[str, float]:
        """The machine-readable figures, keyed as :data:`SUMMARY_KEYS`."""
        return {"p95_ttft_s": self.p95_ttft_s, "p95_wait_s": self.p95_wait_s, "slo_miss_pct": self.slo_miss_pct,
                "gpu_hours": self.total_gpu_hours, "cost_usd": self.total_cost_usd,
                "cold_start_modeled_s": self.cold_start_modeled_s}

    def lines(self) -> list[str]:
        """The terminal summary."""
        rejected = self.outcomes.get("429", 0) + self.outcomes.get("503", 0)
        out = [
            f"{self.label}: {self.requests} requests over {self.duration_s / 60:.1f} min, {self.served} served",
            f"  TTFT        p50 {self.p50_ttft_s:.2f} s   p95 {self.p95_ttft_s:.2f} s",
            f"  queue wait  p50 {self.p50_wait_s:.2f} s   p95 {self.p95_wait_s:.2f} s",
            f"  over the {self.slo_ttft_s:g} s TTFT objective or not served: {self.slo_miss_pct:.2f} %",
            f"  rejected: {rejected} (429: {self.outcomes.get('429', 0)}, 503: {self.outcomes.get('503', 0)}); "
            f"failed in a pod's termination: {self.outcomes.get('failed', 0)}",
            f"  replicas up to {self.max_replicas}; pod starts {self.pod_starts} ({self.warm_starts} on a node already up: warm headroom, or one not yet consolidated); "
            f"modeled cold start of a new node {self.cold_start_modeled_s:.1f} s",
            "  GPU-hours " + ", ".join(f"{k} {v:.2f}" for k, v in self.gpu_hours.items()) +
            f" (total {self.total_gpu_hours:.2f})",
            "  cost USD " + ", ".join(f"{k} {v:.2f}" for k, v in self.cost_usd.items()) +
            f" (total {self.total_cost_usd:.2f})",
        ]
        out += [f"  note: {note}" for note in self.price_notes]
        return out


def summarize(label: str, result: Result, config: Any, cold_start_modeled_s: float) -> Summary:
    """The :class:`Summary` of ``result`` with the prices and objective of ``config``."""
    reqs = result.requests
    served = [r for r in reqs if r.outcome == "ok"]
    ttft = [r.ttft_s for r in served if r.ttft_s is not None]
    wait = [r.wait_s for r in served if r.wait_s is not None]
    slo = config.simulation.slo_ttft_seconds
    misses = sum(1 for r in reqs if r.outcome != "ok" or (r.ttft_s is not None and r.ttft_s > slo))
    gpus = config.vllm.gpus_per_pod
    hours = {"spot": 0.0, "on-demand": 0.0}
    for node in result.nodes:
        hours[node.capacity] += ((node.gone_at if node.gone_at is not None else result.end) - node.launched) / 3600
    sim = config.simulation
    price = sim.prices[sim.instance_type]
    notes = [f"{sim.instance_type} prices: {price.region}, as of {price.as_of}, {price.source}"]
    spot_rate = price.spot_usd_per_hour
    if spot_rate is None:
        spot_rate = price.on_demand_usd_per_hour
        if hours["spot"]:
            notes.append(f"no spot price for {sim.instance_type} in simulation.prices: spot hours priced at On-Demand "
                         "(an upper bound; set spot_usd_per_hour from describe-spot-price-history)")
    cost = {"spot": hours["spot"] * spot_rate, "on-demand": hours["on-demand"] * price.on_demand_usd_per_hour}
    return Summary(
        label=label, requests=len(reqs), served=len(served), outcomes=dict(Counter(r.outcome for r in reqs)),
        p50_ttft_s=percentile(ttft, 50), p95_ttft_s=percentile(ttft, 95),
        p50_wait_s=percentile(wait, 50), p95_wait_s=percentile(wait, 95),
        slo_ttft_s=slo, slo_miss_pct=100.0 * misses / len(reqs) if reqs else 0.0,
        gpu_hours={k: v * gpus for k, v in hours.items()}, cost_usd=cost, price_notes=tuple(notes),
        max_replicas=max([s.desired for s in result.samples] + [0]), pod_starts=len(result.pod_starts),
        warm_starts=sum(1 for _, warm, _ in result.pod_starts if warm),
        cold_start_modeled_s=cold_start_modeled_s, duration_s=result.end,
    )


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def summary_line(summary: Summary, other: Summary | None = None) -> str:
    """``p95_ttft_s=… p95_wait_s=… slo_miss_pct=… gpu_hours=… cost_usd=… cold_start_modeled_s=…``;
    with ``other`` (``--compare``) the same keys prefixed ``b_`` follow."""
    parts = [f"{k}={_fmt(v)}" for k, v in summary.values().items()]
    if other is not None:
        parts += [f"b_{k}={_fmt(v)}" for k, v in other.values().items()]
    return " ".join(parts)


def plot(results: list[tuple[str, Result]], path: str | Path, slo_s: float) -> Path:
    """Write the replica / node timeline and the requests' places (running, waiting, held, queued) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    for label, result in results:
        t = [s.t / 60 for s in result.samples]
        axes[0].step(t, [s.desired for s in result.samples], where="post", label=f"{label}: replicas (Deployment)")
        axes[0].step(t, [s.ready for s in result.samples], where="post", linestyle="--", label=f"{label}: Ready pods")
        axes[0].step(t, [sum(s.nodes.values()) for s in result.samples], where="post", linestyle=":",
                     label=f"{label}: GPU nodes")
        axes[1].plot(t, [s.running for s in result.samples], label=f"{label}: running")
        axes[1].plot(t, [s.waiting + s.held + s.queued for s in result.samples],
                     label=f"{label}: waiting (vLLM + gateway queue + held)")
        served = [r for r in result.requests if r.first_token is not None]
        axes[2].scatter([r.arrival / 60 for r in served], [r.ttft_s for r in served], s=2, label=f"{label}: TTFT")
    axes[2].axhline(slo_s, color="red", linewidth=0.8, label=f"objective {slo_s:g} s")
    axes[0].set_ylabel("count")
    axes[1].set_ylabel("requests")
    axes[2].set_ylabel("TTFT (s)")
    axes[2].set_xlabel("minutes")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
