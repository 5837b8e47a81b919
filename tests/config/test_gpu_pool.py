"""GPU pool cost bounds: each GPU node has exactly the GPUs one vLLM pod asks for, from current
families, and the NodePool's limits can hold scaling.max_replicas such nodes (checked at synth).

Label names: karpenter.k8s.aws/instance-family and karpenter.k8s.aws/instance-gpu-count are
Karpenter's well-known labels (aws/karpenter-provider-aws v1.14.1 pkg/apis/v1/labels.go,
LabelInstanceFamily / LabelInstanceGPUCount), which Karpenter sets from EC2's instance data.
"""

from __future__ import annotations

import pytest

from app_config import ConfigError, config_from_dict
from app_config.gpu_instances import gpu_instance_types
from k8s_charts import render_all

FAMILY, GPU_COUNT = "karpenter.k8s.aws/instance-family", "karpenter.k8s.aws/instance-gpu-count"


def _gpu_requirements(data: dict) -> list[dict]:
    rendered = render_all(config_from_dict(data))
    (pool,) = [o for o in rendered["karpenter_nodepools"] if o["kind"] == "NodePool" and o["metadata"]["name"] == "gpu"]
    return pool["spec"]["template"]["spec"]["requirements"]


def _admits(requirements: list[dict], instance) -> bool:
    """What Karpenter does with In/NotIn on these labels for one instance type of the table."""
    labels = {FAMILY: instance.family, GPU_COUNT: str(instance.gpus)}
    for req in requirements:
        value = labels.get(req["key"])
        if value is None:
            continue
        if (req["operator"] == "In") != (value in req.get("values", [])):
            return False
    return True


@pytest.mark.parametrize("gpus_per_pod", [1, 4])
def test_b10_gpu_nodes_have_exactly_the_pods_gpus(gpus_per_pod: int) -> None:
    # 10 four-GPU nodes (g5.12xlarge: 48 vCPU, 192 GiB) need larger limits than the defaults.
    limits = {"limit_cpu": "480", "limit_memory": "1920Gi"} if gpus_per_pod == 4 else {}
    requirements = _gpu_requirements({"vllm": {"gpus_per_pod": gpus_per_pod}, "karpenter": {"gpu": limits}})
    assert {"key": GPU_COUNT, "operator": "In", "values": [str(gpus_per_pod)]} in requirements
    admitted = [t for t in gpu_instance_types() if _admits(requirements, t)]
    assert admitted and {t.gpus for t in admitted} == {gpus_per_pod}
    assert not {t.family for t in admitted} & {"p4d", "p5", "g4dn"}, [t.name for t in admitted]


def test_b10_gpu_families_are_current_and_configurable() -> None:
    assert {"key": FAMILY, "operator": "In", "values": ["g6", "g6e", "g5"]} in _gpu_requirements({})
    assert {"key": FAMILY, "operator": "In", "values": ["g6"]} in _gpu_requirements(
        {"karpenter": {"gpu": {"instance_families": ["g6"]}}}
    )


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"karpenter": {"gpu": {"limit_cpu": "lots"}}}, "karpenter.gpu.limit_cpu: 'lots' is not a Kubernetes quantity"),
        ({"karpenter": {"gpu": {"limit_memory": "1.6T B"}}}, "karpenter.gpu.limit_memory"),
        ({"scaling": {"max_replicas": 200}}, "karpenter.gpu.limit_cpu: 400 cannot hold scaling.max_replicas (200) nodes of the smallest allowed GPU instance g5.xlarge (4 vCPU each)"),
        ({"karpenter": {"gpu": {"limit_memory": "100Gi"}}}, "karpenter.gpu.limit_memory: 100Gi cannot hold scaling.max_replicas (10)"),
        ({"karpenter": {"gpu": {"limit_gpus": 5}}}, "karpenter.gpu.limit_gpus: 5 cannot hold scaling.max_replicas (10)"),
        ({"karpenter": {"gpu": {"instance_families": ["g6"]}}, "vllm": {"gpus_per_pod": 3}}, "karpenter.gpu.instance_families: no instance type of ['g6'] has exactly 3 GPUs"),
    ],
)
def test_b10_gpu_pool_limits_fail_naming_the_field(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert expected in str(info.value), str(info.value)


def test_b10_default_limits_hold_max_replicas() -> None:
    config = config_from_dict({})
    assert config.scaling.max_replicas * 4 <= int(config.karpenter.gpu.limit_cpu)
