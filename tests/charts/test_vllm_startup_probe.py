"""vLLM's startup probe allows the modeled worst-case engine start with margin
(app_config/startup_budget.py), read from the rendered Deployment: a probe shorter than the start
restarts pods that are still loading (CrashLoopBackOff while users wait); a much longer one delays
the restart of a pod that hangs.

The kubelet restarts the container after ``failureThreshold`` failed probes ``periodSeconds``
apart, so the budget the pod gets is their product (Kubernetes "Configure Liveness, Readiness and
Startup Probes": https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/).
"""

from __future__ import annotations

import math

import pytest

from app_config import config_from_dict
from app_config import constants as c
from app_config.gpu_instances import gpu_instance_types
from app_config.startup_budget import (
    STARTUP_MARGIN,
    engine_start_worst_case,
    startup_budget_seconds,
)
from k8s_charts import render_all
from tests.charts.conftest import find


def _startup_probe(config) -> dict:
    objects = [obj for objs in render_all(config).values() for obj in objs]
    (container,) = [
        ct for ct in find(objects, "Deployment", c.VLLM_NAME)["spec"]["template"]["spec"]["containers"]
        if ct["name"] == c.VLLM_NAME
    ]
    return container["startupProbe"]


def _allowed_seconds(probe: dict) -> int:
    return probe["failureThreshold"] * probe["periodSeconds"]


def _smallest_gpu_gib(families: list[str]) -> int:
    return min(t.gpu_memory_gib for t in gpu_instance_types() if t.family in families)


@pytest.mark.parametrize(
    "override",
    [
        {},  # g6, g6e, g5: the smallest GPU is 24 GiB
        {"karpenter": {"gpu": {"instance_families": ["g6e"]}}},  # 48 GiB L40S only: larger weights fit
        {"karpenter": {"gpu": {"instance_families": ["g4dn"]}}},  # 16 GiB T4
        {"vllm": {"max_num_seqs": 256, "gpu_memory_utilization": 0.95}},  # more capture sizes, more memory
    ],
    ids=["default", "g6e", "g4dn", "256-seqs"],
)
def test_startup_probe_allows_the_modeled_worst_case_with_margin(override):
    config = config_from_dict(override)
    families = config.karpenter.gpu.instance_families
    phases = engine_start_worst_case(
        _smallest_gpu_gib(families), config.vllm.gpu_memory_utilization, len(config.vllm.capture_sizes)
    )
    needed = sum(phases.values()) * STARTUP_MARGIN
    probe = _startup_probe(config)
    # at least the worst case with margin, and no more than one probe period above it
    assert needed <= _allowed_seconds(probe) < needed + probe["periodSeconds"] + 1


def test_an_explicit_startup_timeout_is_the_probe_budget():
    probe = _startup_probe(config_from_dict({"vllm": {"startup_timeout_seconds": 600}}))
    assert _allowed_seconds(probe) == 600


def test_default_budget_is_near_the_demo_probe():
    # The reference demo's startup probe allowed ~330 s for the same model and GPUs.
    assert 300 <= _allowed_seconds(_startup_probe(config_from_dict({}))) <= 360


def test_phases_sum_to_the_budget_before_margin():
    phases = engine_start_worst_case(24, 0.9, 7)
    assert set(phases) == {"weights", "compile", "cuda_graphs", "engine_init"}
    assert startup_budget_seconds(24, 0.9, 7) == math.ceil(sum(phases.values()) * STARTUP_MARGIN)
    # weights scale with the GPU memory vLLM may use, CUDA graphs with the number of capture sizes
    assert engine_start_worst_case(48, 0.9, 7)["weights"] == pytest.approx(2 * phases["weights"])
    assert engine_start_worst_case(24, 0.9, 14)["cuda_graphs"] == pytest.approx(2 * phases["cuda_graphs"])


@pytest.mark.parametrize("args", [(0, 0.9, 7), (24, 0, 7), (24, 1.1, 7), (24, 0.9, -1)])
def test_impossible_inputs_are_refused(args):
    with pytest.raises(ValueError, match="gpu_memory_gib > 0"):
        engine_start_worst_case(*args)
