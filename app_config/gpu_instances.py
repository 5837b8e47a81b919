"""NVIDIA GPU instance types the GPU NodePool may launch: vCPUs, memory and GPUs per type.

Data: ``app_config/data/gpu_instances.yaml`` (its header names the AWS pages it was read from).
Used by the config's NodePool-limit check and by the chart tests (the vLLM pod must fit).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

DATA_FILE = Path(__file__).resolve().parent / "data" / "gpu_instances.yaml"


@dataclass(frozen=True)
class GpuInstanceType:
    """One EC2 instance type. ``memory_gib``: GiB of memory; ``gpus``: NVIDIA GPUs per instance;
    ``gpu_memory_gib``: GiB of memory of each GPU."""

    name: str
    family: str
    vcpu: int
    memory_gib: int
    gpus: int
    gpu_memory_gib: int
    compute_capability: float


@lru_cache(maxsize=1)
def gpu_instance_types() -> tuple[GpuInstanceType, ...]:
    """Every instance type of the data file."""
    rows = yaml.safe_load(DATA_FILE.read_text())["instances"]
    return tuple(
        GpuInstanceType(
            name=name,
            family=row["family"],
            vcpu=row["vcpu"],
            memory_gib=row["memory_gib"],
            gpus=row["gpus"],
            gpu_memory_gib=row["gpu_memory_gib"],
            compute_capability=row["compute_capability"],
        )
        for name, row in rows.items()
    )


def known_families() -> frozenset[str]:
    """Families the data file describes."""
    return frozenset(t.family for t in gpu_instance_types())


def smallest_instance(families: list[str], gpus: int) -> GpuInstanceType | None:
    """The smallest (vCPUs, then memory) known type of ``families`` with exactly ``gpus`` GPUs, or None."""
    candidates = [t for t in gpu_instance_types() if t.family in families and t.gpus == gpus]
    return min(candidates, key=lambda t: (t.vcpu, t.memory_gib), default=None)


def weights_bound_gib(families: list[str]) -> int:
    """GiB of memory of the smallest single GPU among the known types of ``families``: the model's
    weights per GPU must fit every GPU Karpenter may pick, so they are at most this. Of the largest
    known GPU when the data file describes none of ``families`` (the conservative choice)."""
    known = [t.gpu_memory_gib for t in gpu_instance_types() if t.family in families]
    return min(known) if known else max(t.gpu_memory_gib for t in gpu_instance_types())
