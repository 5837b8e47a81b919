"""The cold-start model: how long a new vLLM pod takes from "pending" to "Ready", phase by phase.

One pure module (standard library only) for everything that reasons about a pod's time to ready:
``qvllm simulate`` (pod readiness in its replay), the probes and the warm-headroom settings of the
chart, and the dashboard, whose measured milestones (:data:`MILESTONES`) carry the same names as
the model's, so a modeled budget and a real pod can be laid side by side.

Phases, in order (:data:`PHASES`), each with the source of its default (a :class:`ColdStartParameters`
field, overridable from the config's ``simulation.cold_start`` section):

``node_launch``
    Karpenter batches the pending pod (``BATCH_IDLE_DURATION`` 1 s, https://karpenter.sh/docs/reference/settings/),
    EC2 launches the instance, Bottlerocket boots, the kubelet registers and the GPU is advertised.
    47 s on g5 (the reference demo's written breakdown: Mistral-7B AWQ on g5.2xlarge spot). Other
    families default to the same figure until measured (``node_launch_seconds`` per family).
    0 on a warm node (a headroom placeholder preempted, or an empty node not yet consolidated).
``image_pull``
    The vLLM image. Measured by AWS on the same kind of node and settings as ours (Karpenter
    blueprint "SOCI snapshotter parallel pull/unpack mode", a 10,778,400,361-byte vLLM image on
    Bottlerocket with 20 concurrent downloads, 16 MB chunks, 12 unpacks): 44.974 s with SOCI
    parallel pull, 112.33 s with containerd's default pull
    (https://github.com/aws-samples/karpenter-blueprints/tree/main/blueprints/soci-snapshotter).
    Scaled by image size. 0 when the node already holds the image (it ran a vLLM pod, or a
    placeholder pulled it).
``weights_stream``
    The Run:ai streamer reads the weights from S3: model size / bandwidth. The bandwidth is the
    reference demo's breakdown, 3.9 GiB (Mistral-7B AWQ) in ~2 s (1.95 GiB/s), the same figures the
    startup probe's budget uses (:mod:`app_config.startup_budget`); the demo's headline streaming
    rates (~750 MiB/s, later 1.6 GiB/s) were not measured on that breakdown's run.
``load_to_gpu``
    Weights to GPU memory and quantized-kernel repacking: ~23 s for 3.9 GiB in the reference demo,
    scaled by size (5.9 s/GiB).
``compile``
    vLLM's torch.compile: ~8 s with a compile-cache hit (the reference demo, cache on EFS);
    31.58 s cold ("torch.compile took 31.58 s in total", an AWQ model on vLLM in 2026,
    https://github.com/vllm-project/vllm/pull/57047). The cache key covers the model, the config
    and the code (https://docs.vllm.ai/en/latest/design/torch_compile/), so only a shared cache
    that an earlier pod filled can hit.
``cuda_graphs``
    CUDA-graph capture: ~1 s with capture sizes bounded by ``max_num_seqs`` (the reference demo).
``engine_init``
    KV-cache profiling and allocation, warm-up, API server start: ~17 s (the reference demo).
``readiness``
    From vLLM's ``/health`` answering to the pod's Ready condition: the startup probe's next run
    (period :data:`app_config.constants.VLLM_STARTUP_PROBE_PERIOD_SECONDS`) then the readiness
    probe's (:data:`~app_config.constants.VLLM_READINESS_PROBE_PERIOD_SECONDS`). Modeled at half
    of each period (probes are not aligned with the start); the worst case is both full periods.

The worst cases of the engine phases are the startup probe's (:mod:`app_config.startup_budget`,
one owner of those figures): compile without a cache hit even when a cache is on (evicted, another
vLLM version), and CUDA graphs at its seconds per capture size.

The reference demo's whole breakdown (node 47 s, image 44 s, vLLM 51 s) is the default budget of
a cold node with SOCI and a compile-cache hit, less the readiness phase it did not list.

Errors: :class:`ColdStartError` for a negative or missing parameter, naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app_config.constants import VLLM_READINESS_PROBE_PERIOD_SECONDS, VLLM_STARTUP_PROBE_PERIOD_SECONDS
from app_config.startup_budget import (
    COMPILE_MISS_SECONDS,
    CUDA_GRAPH_SECONDS_PER_SIZE,
    DEMO_LOAD_TO_GPU_SECONDS,
    DEMO_STREAM_SECONDS,
    DEMO_WEIGHTS_GIB,
    ENGINE_INIT_SECONDS,
)

GIB = 1024**3

PHASES: tuple[str, ...] = (
    "node_launch", "image_pull", "weights_stream", "load_to_gpu", "compile", "cuda_graphs", "engine_init", "readiness",
)

# What the dashboard measures on a real pod (seconds since its creation), and the model phases that
# end at each: ``scheduled`` (PodScheduled condition) once a node is there, ``image pulled`` (the
# kubelet's Pulled event), ``started`` (its Started event: the container runs, vLLM begins), ``ready``
# (the Ready condition).
MILESTONES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("scheduled", ("node_launch",)),
    ("image pulled", ("image_pull",)),
    ("started", ()),
    ("ready", ("weights_stream", "load_to_gpu", "compile", "cuda_graphs", "engine_init", "readiness")),
)
MILESTONE_NAMES: tuple[str, ...] = tuple(name for name, _ in MILESTONES)

REFERENCE_DEMO = "reference demo breakdown (Mistral-7B AWQ, g5.2xlarge spot)"
SOCI_BLUEPRINT = "https://github.com/aws-samples/karpenter-blueprints/tree/main/blueprints/soci-snapshotter"
VLLM_COMPILE_LOG = "https://github.com/vllm-project/vllm/pull/57047"


class ColdStartError(ValueError):
    """A cold-start parameter is missing or out of range; the message names it."""


@dataclass(frozen=True)
class ColdStartParameters:
    """Every figure the model uses, with its default's source (see the module docstring).

    Attributes:
        node_launch_seconds: instance family -> seconds from pending pod to a Ready GPU node.
        node_launch_default_seconds: families not in ``node_launch_seconds`` (the g5 figure).
        image_bytes: size of the vLLM image (bytes, compressed, as the registry reports it).
        reference_image_bytes: the image AWS measured its pull times on.
        image_pull_soci_seconds: that image's pull with SOCI parallel pull/unpack (Bottlerocket).
        image_pull_plain_seconds: the same with containerd's default pull.
        model_gib: weights size, GiB.
        stream_gib_per_second: Run:ai streamer throughput from S3, GiB/s.
        load_seconds_per_gib: weights to GPU, seconds per GiB.
        compile_hit_seconds / compile_miss_seconds: torch.compile with / without a cache hit.
        cuda_graphs_seconds: CUDA-graph capture.
        engine_init_seconds: KV cache, warm-up, API server.
        startup_probe_period_seconds / readiness_probe_period_seconds: the chart's probe periods.
    """

    node_launch_seconds: Mapping[str, float] = field(default_factory=lambda: {"g5": 47.0})
    node_launch_default_seconds: float = 47.0
    image_bytes: float = 10_778_400_361
    reference_image_bytes: float = 10_778_400_361
    image_pull_soci_seconds: float = 44.974
    image_pull_plain_seconds: float = 112.33
    model_gib: float = DEMO_WEIGHTS_GIB
    stream_gib_per_second: float = DEMO_WEIGHTS_GIB / DEMO_STREAM_SECONDS
    load_seconds_per_gib: float = DEMO_LOAD_TO_GPU_SECONDS / DEMO_WEIGHTS_GIB
    compile_hit_seconds: float = 8.0
    compile_miss_seconds: float = 31.58
    cuda_graphs_seconds: float = 1.0
    engine_init_seconds: float = ENGINE_INIT_SECONDS
    startup_probe_period_seconds: float = VLLM_STARTUP_PROBE_PERIOD_SECONDS
    readiness_probe_period_seconds: float = VLLM_READINESS_PROBE_PERIOD_SECONDS

    def __post_init__(self) -> None:
        for name in ("node_launch_default_seconds", "image_bytes", "reference_image_bytes", "image_pull_soci_seconds",
                     "image_pull_plain_seconds", "model_gib", "load_seconds_per_gib", "compile_hit_seconds",
                     "compile_miss_seconds", "cuda_graphs_seconds", "engine_init_seconds",
                     "startup_probe_period_seconds", "readiness_probe_period_seconds"):
            if getattr(self, name) < 0:
                raise ColdStartError(f"cold start {name} must be >= 0, got {getattr(self, name)}")
        for positive in ("stream_gib_per_second", "reference_image_bytes"):
            if getattr(self, positive) <= 0:
                raise ColdStartError(f"cold start {positive} must be > 0, got {getattr(self, positive)}")
        for family, seconds in self.node_launch_seconds.items():
            if seconds < 0:
                raise ColdStartError(f"cold start node_launch_seconds[{family!r}] must be >= 0, got {seconds}")

    def node_launch_for(self, instance_type: str) -> tuple[float, str]:
        """``(seconds, source)`` of a node launch for ``instance_type`` (family = text before the dot)."""
        family = instance_type.split(".")[0]
        if family in self.node_launch_seconds:
            return self.node_launch_seconds[family], (
                REFERENCE_DEMO if family == "g5" and self.node_launch_seconds[family] == 47.0 else "config")
        return self.node_launch_default_seconds, f"no figure for family {family!r}: the default (g5's)"


@dataclass(frozen=True)
class Phase:
    """One phase of a pod's start: ``seconds`` modeled (expected), ``worst_seconds``, and why."""

    name: str
    seconds: float
    worst_seconds: float
    source: str


@dataclass(frozen=True)
class ColdStartBudget:
    """A per-phase budget for one pod start (all :data:`PHASES`, in order; seconds).

    Attributes:
        phases: the phases.
        conditions: the switches it was computed for (``warm_node``, ``soci``, ``image_cached``,
            ``compile_cache_hit``, ``instance_type``), for printing.
    """

    phases: tuple[Phase, ...]
    conditions: Mapping[str, Any]

    @property
    def total_s(self) -> float:
        """Expected seconds from a pending pod to Ready: the sum of the phases."""
        return sum(p.seconds for p in self.phases)

    @property
    def worst_case_s(self) -> float:
        """The sum of each phase's worst case (the probe budget must exceed it)."""
        return sum(p.worst_seconds for p in self.phases)

    def seconds(self, name: str) -> float:
        """One phase's expected seconds.

        Raises:
            KeyError: not a phase name.
        """
        for phase in self.phases:
            if phase.name == name:
                return phase.seconds
        raise KeyError(name)

    def milestones(self) -> dict[str, float]:
        """Cumulative expected seconds at each of the dashboard's :data:`MILESTONES`."""
        out, elapsed = {}, 0.0
        for name, phases in MILESTONES:
            elapsed += sum(self.seconds(p) for p in phases)
            out[name] = elapsed
        return out

    def lines(self) -> list[str]:
        """The budget as text: one line per phase with its source, then the milestones and the total."""
        width = max(len(p) for p in PHASES)
        out = [f"  {p.name:<{width}} {p.seconds:7.1f} s   {p.source}" for p in self.phases]
        out.append("  milestones (seconds since the pod was created, as the dashboard measures them): " +
                   ", ".join(f"{k} {v:.1f} s" for k, v in self.milestones().items()))
        out.append(f"  total {self.total_s:.1f} s (worst case {self.worst_case_s:.1f} s)")
        return out


def cold_start_budget(
    params: ColdStartParameters,
    *,
    instance_type: str,
    soci: bool,
    warm_node: bool = False,
    image_cached: bool = False,
    compile_cache_hit: bool = False,
    capture_sizes: int | None = None,
) -> ColdStartBudget:
    """The per-phase budget of one vLLM pod start.

    Args:
        params: the figures.
        instance_type: EC2 instance type of the node (its family picks the node-launch figure).
        soci: SOCI parallel pull on the node (``karpenter.gpu.soci_parallel_pull``).
        warm_node: the pod lands on a node that is already up (a preempted headroom placeholder's,
            or an empty one Karpenter has not consolidated yet): no node launch.
        image_cached: that node already holds the vLLM image: no pull.
        compile_cache_hit: a shared compile cache that an earlier pod filled.
        capture_sizes: how many CUDA-graph capture sizes the pod gets (``vllm.capture_sizes``); the
            CUDA-graph phase's worst case counts :data:`~app_config.startup_budget.CUDA_GRAPH_SECONDS_PER_SIZE`
            for each. None: the expected figure is the worst case too.

    Returns:
        The budget (expected and worst-case seconds per phase, with sources).
    """
    node_s, node_src = (0.0, "warm node: already up") if warm_node else params.node_launch_for(instance_type)
    if image_cached:
        pull_s, pull_src = 0.0, "image already on the node"
    else:
        base = params.image_pull_soci_seconds if soci else params.image_pull_plain_seconds
        pull_s = base * params.image_bytes / params.reference_image_bytes
        pull_src = (f"{'SOCI parallel pull' if soci else 'default pull'}: {base:g} s for "
                    f"{params.reference_image_bytes / 1e9:.2f} GB, scaled to {params.image_bytes / 1e9:.2f} GB "
                    f"({SOCI_BLUEPRINT})")
    stream_s = params.model_gib / params.stream_gib_per_second
    load_s = params.model_gib * params.load_seconds_per_gib
    compile_s = params.compile_hit_seconds if compile_cache_hit else params.compile_miss_seconds
    compile_src = (f"compile-cache hit ({REFERENCE_DEMO})" if compile_cache_hit
                   else f"no cache hit: {VLLM_COMPILE_LOG}")
    probes = params.startup_probe_period_seconds + params.readiness_probe_period_seconds
    # Worst cases are the startup probe's own (app_config/startup_budget.py): a cache that misses
    # (evicted, another vLLM version) compiles from scratch, and each capture size costs its share.
    compile_worst = max(compile_s, COMPILE_MISS_SECONDS)
    graphs_worst = max(params.cuda_graphs_seconds,
                       (capture_sizes or 0) * CUDA_GRAPH_SECONDS_PER_SIZE)
    phases = (
        Phase("node_launch", node_s, node_s, node_src),
        Phase("image_pull", pull_s, pull_s, pull_src),
        Phase("weights_stream", stream_s, stream_s,
              f"{params.model_gib:g} GiB at {params.stream_gib_per_second:g} GiB/s ({REFERENCE_DEMO})"),
        Phase("load_to_gpu", load_s, load_s, f"{params.load_seconds_per_gib:.2f} s/GiB ({REFERENCE_DEMO})"),
        Phase("compile", compile_s, compile_worst, compile_src),
        Phase("cuda_graphs", params.cuda_graphs_seconds, graphs_worst, REFERENCE_DEMO),
        Phase("engine_init", params.engine_init_seconds, params.engine_init_seconds, REFERENCE_DEMO),
        Phase("readiness", probes / 2, probes,
              f"half of the startup ({params.startup_probe_period_seconds:g} s) and readiness "
              f"({params.readiness_probe_period_seconds:g} s) probe periods"),
    )
    conditions = {"instance_type": instance_type, "soci": soci, "warm_node": warm_node, "image_cached": image_cached,
                  "compile_cache_hit": compile_cache_hit}
    return ColdStartBudget(phases, conditions)


def deployment_switches(config: Any) -> dict[str, Any]:
    """The cold-start switches the configured deployment sets (``config``: :class:`app_config.model.AppConfig`):
    ``karpenter.gpu.soci_parallel_pull``, ``scaling.warm_gpu_nodes`` (warm GPU headroom: placeholder
    pods on spare nodes) and ``vllm.compile_cache.enabled`` (the shared torch.compile cache on EFS).

    Returns:
        ``{"soci": bool, "warm_gpu_nodes": int, "compile_cache": bool}``.
    """
    return {
        "soci": bool(config.karpenter.gpu.soci_parallel_pull),
        "warm_gpu_nodes": int(config.scaling.warm_gpu_nodes),
        "compile_cache": bool(config.vllm.compile_cache.enabled),
    }


def deployment_budget(config: Any, *, warm_node: bool | None = None,
                      compile_cache_hit: bool | None = None) -> ColdStartBudget:
    """The budget of the configured deployment's next pod (``config``: :class:`app_config.model.AppConfig`).

    Defaults: a warm node when ``scaling.warm_gpu_nodes`` > 0 (the placeholder pods pre-pull the
    vLLM image, so the image is cached too); a compile-cache hit when ``vllm.compile_cache`` is on
    (an earlier pod filled it). Pass ``warm_node`` / ``compile_cache_hit`` to ask for another case.
    The worst cases use the pod's CUDA-graph capture sizes (``vllm.capture_sizes``).
    """
    switches = deployment_switches(config)
    sim = config.simulation
    warm = switches["warm_gpu_nodes"] > 0 if warm_node is None else warm_node
    hit = switches["compile_cache"] if compile_cache_hit is None else compile_cache_hit
    return cold_start_budget(sim.cold_start.parameters(), instance_type=sim.instance_type, soci=switches["soci"],
                             warm_node=warm, image_cached=warm, compile_cache_hit=hit,
                             capture_sizes=len(config.vllm.capture_sizes))


__all__ = [
    "ColdStartBudget", "ColdStartError", "ColdStartParameters", "MILESTONES", "MILESTONE_NAMES", "PHASES", "Phase",
    "cold_start_budget", "deployment_budget", "deployment_switches",
]
