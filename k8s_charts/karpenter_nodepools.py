"""Karpenter NodePools and EC2NodeClasses: a GPU pool for vLLM and a CPU pool for the gateway.

GPU pool (DESIGN section 2): spot + on-demand, current NVIDIA families (g6, g6e, g5) with exactly
the vLLM pod's GPU count, no metal sizes, amd64, tainted ``nvidia.com/gpu=:NoSchedule``, limits cpu 400 / memory 1600Gi plus a GPU
count limit, consolidation WhenEmpty after 30 s. Its EC2NodeClass runs Bottlerocket (the alias
picks the NVIDIA variant for GPU instances) with a 4 GiB root and a 50 GiB gp3 data volume
(4000 IOPS, 1000 MiB/s, encrypted) and the SOCI snapshotter in parallel-pull-unpack mode
(Bottlerocket >= 1.44 settings, see bottlerocket.dev "container-runtime-plugins").

CPU pool: on-demand, c/m/r, amd64 + arm64, no taint.
Apply after the Karpenter chart (CRDs and controller).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cdk8s
from constructs import Construct

from app_config.constants import (
    CPU_NODECLASS_NAME,
    CPU_NODEPOOL_NAME,
    GPU_NODECLASS_NAME,
    GPU_NODEPOOL_NAME,
    GPU_RESOURCE,
    GPU_TAINT_KEY,
    KARPENTER_DISCOVERY_TAG,
    PROJECT_TAG_KEY,
)
from app_config.model import CpuNodePoolConfig, GpuNodePoolConfig, KarpenterConfig
from k8s_charts.common import k8s_object, ARCH_LABEL_KEY, OS_LABEL_KEY, PART_OF_VALUE, QvllmChart, common_labels

NODEPOOL_API_VERSION = "karpenter.sh/v1"
NODECLASS_API_VERSION = "karpenter.k8s.aws/v1"
NODECLASS_GROUP = "karpenter.k8s.aws"
CAPACITY_TYPE_KEY = "karpenter.sh/capacity-type"
INSTANCE_CATEGORY_KEY = "karpenter.k8s.aws/instance-category"
INSTANCE_SIZE_KEY = "karpenter.k8s.aws/instance-size"
GPU_MANUFACTURER_KEY = "karpenter.k8s.aws/instance-gpu-manufacturer"
INSTANCE_FAMILY_KEY = "karpenter.k8s.aws/instance-family"
GPU_COUNT_KEY = "karpenter.k8s.aws/instance-gpu-count"
# NVIDIA families the default model cannot run on, excluded from the GPU pool (beyond DESIGN
# section 2): `--quantization awq_marlin` needs compute capability >= 8.0 (Ampere), which rules
# out T4 (g4dn, 7.5), V100 (p3, p3dn), M60 (g3, g3s) and K80 (p2); g6f/gr6f carry a fraction of
# an L4 (3-12 GB), too small for the 7B model plus KV cache.
DEFAULT_EXCLUDED_GPU_FAMILIES: tuple[str, ...] = ("g3", "g3s", "g4dn", "p2", "p3", "p3dn", "g6f", "gr6f")
EXPIRE_AFTER = "720h"  # Karpenter's default, written out for review
CPU_ROOT_VOLUME_GIB = 4
CPU_DATA_VOLUME_GIB = 20
CPU_AMI_ALIAS = "bottlerocket@latest"

# SOCI parallel pull (DESIGN section 2): 20 concurrent downloads per image, 16 MB chunks,
# 12 unpacks per image, unpacked layers discarded after unpack.
SOCI_MAX_CONCURRENT_DOWNLOADS_PER_IMAGE = 20
SOCI_DOWNLOAD_CHUNK_SIZE = "16mb"
SOCI_MAX_CONCURRENT_UNPACKS_PER_IMAGE = 12


def soci_user_data() -> str:
    """Bottlerocket TOML user data turning on the SOCI snapshotter in parallel-pull-unpack mode.

    Karpenter merges its own cluster settings into Bottlerocket user data, so only our extra
    settings go here.
    """
    return (
        "[settings.container-runtime]\n"
        'snapshotter = "soci"\n'
        "\n"
        "[settings.container-runtime-plugins.soci-snapshotter]\n"
        'pull-mode = "parallel-pull-unpack"\n'
        "\n"
        "[settings.container-runtime-plugins.soci-snapshotter.parallel-pull-unpack]\n"
        f"max-concurrent-downloads-per-image = {SOCI_MAX_CONCURRENT_DOWNLOADS_PER_IMAGE}\n"
        f'concurrent-download-chunk-size = "{SOCI_DOWNLOAD_CHUNK_SIZE}"\n'
        f"max-concurrent-unpacks-per-image = {SOCI_MAX_CONCURRENT_UNPACKS_PER_IMAGE}\n"
        "discard-unpacked-layers = true\n"
    )


def gpu_requirements(
    gpu: GpuNodePoolConfig,
    excluded_families: tuple[str, ...] = DEFAULT_EXCLUDED_GPU_FAMILIES,
    gpus_per_node: int = 1,
) -> list[dict[str, Any]]:
    """NodePool ``requirements`` of the GPU pool (config values first, then extra ones).

    ``gpus_per_node`` (the vLLM pod's GPU count) pins the instance GPU count exactly, so one pod
    never holds a larger node whose other GPUs sit idle (a 1-GPU pod on an 8-GPU p5).
    """
    reqs = [
        {"key": CAPACITY_TYPE_KEY, "operator": "In", "values": list(gpu.capacity_types)},
        {"key": INSTANCE_FAMILY_KEY, "operator": "In", "values": list(gpu.instance_families)},
        {"key": GPU_COUNT_KEY, "operator": "In", "values": [str(gpus_per_node)]},
        {"key": GPU_MANUFACTURER_KEY, "operator": "In", "values": [gpu.gpu_manufacturer]},
        {"key": INSTANCE_SIZE_KEY, "operator": "NotIn", "values": ["metal"]},
        {"key": ARCH_LABEL_KEY, "operator": "In", "values": list(gpu.architectures)},
        {"key": OS_LABEL_KEY, "operator": "In", "values": ["linux"]},
    ]
    if excluded_families:
        reqs.append({"key": INSTANCE_FAMILY_KEY, "operator": "NotIn", "values": list(excluded_families)})
    for extra in gpu.extra_requirements:
        item: dict[str, Any] = {"key": extra.key, "operator": extra.operator}
        if extra.values:
            item["values"] = list(extra.values)
        reqs.append(item)
    return reqs


def cpu_requirements(cpu: CpuNodePoolConfig) -> list[dict[str, Any]]:
    """NodePool ``requirements`` of the CPU pool."""
    return [
        {"key": CAPACITY_TYPE_KEY, "operator": "In", "values": list(cpu.capacity_types)},
        {"key": INSTANCE_CATEGORY_KEY, "operator": "In", "values": list(cpu.instance_categories)},
        {"key": INSTANCE_SIZE_KEY, "operator": "NotIn", "values": ["metal"]},
        {"key": ARCH_LABEL_KEY, "operator": "In", "values": list(cpu.architectures)},
        {"key": OS_LABEL_KEY, "operator": "In", "values": ["linux"]},
    ]


def _ebs(size_gib: int, **extra: Any) -> dict[str, Any]:
    return {
        "volumeSize": f"{size_gib}Gi",
        "volumeType": "gp3",
        "encrypted": True,
        "deleteOnTermination": True,
        **extra,
    }


@dataclass(frozen=True)
class KarpenterNodePoolsProps:
    """Props of :class:`KarpenterNodePoolsChart`.

    Attributes:
        karpenter: the ``karpenter`` config section (GPU and CPU pools).
        cluster_name: EKS cluster name = value of the ``karpenter.sh/discovery`` tag on the
            subnets and security groups nodes launch into (may be a CDK token).
        node_role_name: IAM role name of Karpenter nodes (the role with the EC2_LINUX access entry).
        excluded_gpu_families: instance families the GPU pool never launches (default: GPUs
            older than Ampere and fractional GPUs; see :data:`DEFAULT_EXCLUDED_GPU_FAMILIES`).
        project_name: value of the project tag on the instances Karpenter launches (the stacks
            carry the same tag, ``config.project_name``).
        gpus_per_node: GPUs of each GPU node, exactly (``config.vllm.gpus_per_pod``).
    """

    karpenter: KarpenterConfig
    cluster_name: str
    node_role_name: str
    excluded_gpu_families: tuple[str, ...] = DEFAULT_EXCLUDED_GPU_FAMILIES
    project_name: str = PART_OF_VALUE
    gpus_per_node: int = 1


class KarpenterNodePoolsChart(QvllmChart):
    """GPU and CPU ``NodePool`` (karpenter.sh/v1) + ``EC2NodeClass`` (karpenter.k8s.aws/v1)."""

    def __init__(self, scope: Construct, id: str, props: KarpenterNodePoolsProps) -> None:
        super().__init__(scope, id)
        gpu, cpu = props.karpenter.gpu, props.karpenter.cpu
        discovery = [{"tags": {KARPENTER_DISCOVERY_TAG: props.cluster_name}}]
        metadata_options = {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": 1,  # pods cannot reach IMDS (and the node role) through the node
            "httpTokens": "required",
        }
        tags = {PROJECT_TAG_KEY: props.project_name}

        self._node_class(
            GPU_NODECLASS_NAME,
            {
                "role": props.node_role_name,
                "amiSelectorTerms": [{"alias": gpu.ami_alias}],
                "subnetSelectorTerms": discovery,
                "securityGroupSelectorTerms": discovery,
                "metadataOptions": metadata_options,
                "blockDeviceMappings": [
                    {"deviceName": "/dev/xvda", "ebs": _ebs(gpu.root_volume_gib)},
                    {
                        "deviceName": "/dev/xvdb",
                        "ebs": _ebs(
                            gpu.data_volume_gib,
                            iops=gpu.data_volume_iops,
                            throughput=gpu.data_volume_throughput_mibps,
                        ),
                    },
                ],
                **({"userData": soci_user_data()} if gpu.soci_parallel_pull else {}),
                "tags": tags,
            },
        )
        self._node_pool(
            GPU_NODEPOOL_NAME,
            GPU_NODECLASS_NAME,
            requirements=gpu_requirements(gpu, props.excluded_gpu_families, props.gpus_per_node),
            taints=[{"key": GPU_TAINT_KEY, "effect": "NoSchedule"}],
            limits={"cpu": gpu.limit_cpu, "memory": gpu.limit_memory, GPU_RESOURCE: str(gpu.limit_gpus)},
            disruption={"consolidationPolicy": gpu.consolidation_policy, "consolidateAfter": gpu.consolidate_after},
        )
        self._node_class(
            CPU_NODECLASS_NAME,
            {
                "role": props.node_role_name,
                "amiSelectorTerms": [{"alias": CPU_AMI_ALIAS}],
                "subnetSelectorTerms": discovery,
                "securityGroupSelectorTerms": discovery,
                "metadataOptions": metadata_options,
                "blockDeviceMappings": [
                    {"deviceName": "/dev/xvda", "ebs": _ebs(CPU_ROOT_VOLUME_GIB)},
                    {"deviceName": "/dev/xvdb", "ebs": _ebs(CPU_DATA_VOLUME_GIB)},
                ],
                "tags": tags,
            },
        )
        self._node_pool(
            CPU_NODEPOOL_NAME,
            CPU_NODECLASS_NAME,
            requirements=cpu_requirements(cpu),
            taints=[],
            limits={"cpu": cpu.limit_cpu, "memory": cpu.limit_memory},
            disruption={"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": cpu.consolidate_after},
        )
        self._check()

    def _node_class(self, name: str, spec: dict[str, Any]) -> None:
        k8s_object(
            self,
            f"ec2nodeclass-{name}",
            api_version=NODECLASS_API_VERSION,
            kind="EC2NodeClass",
            metadata=cdk8s.ApiObjectMetadata(name=name, labels=common_labels(f"nodeclass-{name}")),
            spec=spec,
        )

    def _node_pool(
        self,
        name: str,
        node_class: str,
        *,
        requirements: list[dict[str, Any]],
        taints: list[dict[str, Any]],
        limits: dict[str, str],
        disruption: dict[str, Any],
    ) -> None:
        template_spec: dict[str, Any] = {
            "nodeClassRef": {"group": NODECLASS_GROUP, "kind": "EC2NodeClass", "name": node_class},
            "requirements": requirements,
            "expireAfter": EXPIRE_AFTER,
        }
        if taints:
            template_spec["taints"] = taints
        k8s_object(
            self,
            f"nodepool-{name}",
            api_version=NODEPOOL_API_VERSION,
            kind="NodePool",
            metadata=cdk8s.ApiObjectMetadata(name=name, labels=common_labels(f"nodepool-{name}")),
            spec={
                "template": {"spec": template_spec},
                "limits": limits,
                "disruption": disruption,
            },
        )
