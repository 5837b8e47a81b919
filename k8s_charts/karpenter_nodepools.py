"""Karpenter NodePools and EC2NodeClasses: a GPU pool for vLLM and a CPU pool for the gateway.

GPU pool (the reference demo's): spot + on-demand, current NVIDIA families (g6, g6e, g5) with exactly
the vLLM pod's GPU count, no metal sizes, amd64, tainted ``nvidia.com/gpu=:NoSchedule``, limits cpu 400 / memory 1600Gi plus a GPU
count limit, consolidation WhenEmpty after 30 s. Its EC2NodeClass runs Bottlerocket (the alias
picks the NVIDIA variant for GPU instances) with a 4 GiB root and a 50 GiB gp3 data volume
(4000 IOPS, 1000 MiB/s, encrypted) and the SOCI snapshotter in parallel-pull-unpack mode
(Bottlerocket >= 1.44 settings, see bottlerocket.dev "container-runtime-plugins").

CPU pool: on-demand, c/m/r, amd64 + arm64, no taint.
Apply after the Karpenter chart (CRDs and controller).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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
from k8s_charts.common import (
    ARCH_LABEL_KEY,
    OS_LABEL_KEY,
    PART_OF_VALUE,
    QvllmChart,
    common_labels,
    custom_meta,
    wire_enum,
)
from k8s_charts.imports.aws.k8s import karpenter as ec2
from k8s_charts.imports.sh import karpenter

NODECLASS_GROUP = "karpenter.k8s.aws"
CAPACITY_TYPE_KEY = "karpenter.sh/capacity-type"
INSTANCE_CATEGORY_KEY = "karpenter.k8s.aws/instance-category"
INSTANCE_SIZE_KEY = "karpenter.k8s.aws/instance-size"
GPU_MANUFACTURER_KEY = "karpenter.k8s.aws/instance-gpu-manufacturer"
INSTANCE_FAMILY_KEY = "karpenter.k8s.aws/instance-family"
GPU_COUNT_KEY = "karpenter.k8s.aws/instance-gpu-count"
# NVIDIA families the default model cannot run on, excluded from the GPU pool (beyond the
# reference demo): `--quantization awq_marlin` needs compute capability >= 8.0 (Ampere), which rules
# out T4 (g4dn, 7.5), V100 (p3, p3dn), M60 (g3, g3s) and K80 (p2); g6f/gr6f carry a fraction of
# an L4 (3-12 GB), too small for the 7B model plus KV cache.
DEFAULT_EXCLUDED_GPU_FAMILIES: tuple[str, ...] = ("g3", "g3s", "g4dn", "p2", "p3", "p3dn", "g6f", "gr6f")
EXPIRE_AFTER = "720h"  # Karpenter's default, written out for review
CPU_ROOT_VOLUME_GIB = 4
CPU_DATA_VOLUME_GIB = 20
CPU_AMI_ALIAS = "bottlerocket@latest"

# SOCI parallel pull (the reference demo's settings): 20 concurrent downloads per image, 16 MB chunks,
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


Requirement = karpenter.NodePoolSpecTemplateSpecRequirements
Operator = karpenter.NodePoolSpecTemplateSpecRequirementsOperator


def _in(key: str, values: Iterable[str]) -> Requirement:
    return Requirement(key=key, operator=Operator.IN, values=list(values))


def _not_in(key: str, values: Iterable[str]) -> Requirement:
    return Requirement(key=key, operator=Operator.NOT_IN, values=list(values))


def gpu_requirements(
    gpu: GpuNodePoolConfig,
    excluded_families: tuple[str, ...] = DEFAULT_EXCLUDED_GPU_FAMILIES,
    gpus_per_node: int = 1,
) -> list[Requirement]:
    """NodePool ``requirements`` of the GPU pool (config values first, then extra ones).

    ``gpus_per_node`` (the vLLM pod's GPU count) pins the instance GPU count exactly, so one pod
    never holds a larger node whose other GPUs sit idle (a 1-GPU pod on an 8-GPU p5).
    """
    reqs = [
        _in(CAPACITY_TYPE_KEY, gpu.capacity_types),
        _in(INSTANCE_FAMILY_KEY, gpu.instance_families),
        _in(GPU_COUNT_KEY, [str(gpus_per_node)]),
        _in(GPU_MANUFACTURER_KEY, [gpu.gpu_manufacturer]),
        _not_in(INSTANCE_SIZE_KEY, ["metal"]),
        _in(ARCH_LABEL_KEY, gpu.architectures),
        _in(OS_LABEL_KEY, ["linux"]),
    ]
    if excluded_families:
        reqs.append(_not_in(INSTANCE_FAMILY_KEY, excluded_families))
    for extra in gpu.extra_requirements:
        reqs.append(
            Requirement(
                key=extra.key, operator=wire_enum(Operator, extra.operator), values=list(extra.values) or None
            )
        )
    return reqs


def cpu_requirements(cpu: CpuNodePoolConfig) -> list[Requirement]:
    """NodePool ``requirements`` of the CPU pool."""
    return [
        _in(CAPACITY_TYPE_KEY, cpu.capacity_types),
        _in(INSTANCE_CATEGORY_KEY, cpu.instance_categories),
        _not_in(INSTANCE_SIZE_KEY, ["metal"]),
        _in(ARCH_LABEL_KEY, cpu.architectures),
        _in(OS_LABEL_KEY, ["linux"]),
    ]


def _ebs(size_gib: int, *, iops: int | None = None, throughput: int | None = None) -> ec2.Ec2NodeClassSpecBlockDeviceMappingsEbs:
    """An encrypted gp3 volume, deleted with the instance."""
    return ec2.Ec2NodeClassSpecBlockDeviceMappingsEbs(
        volume_size=f"{size_gib}Gi",
        volume_type=ec2.Ec2NodeClassSpecBlockDeviceMappingsEbsVolumeType.GP3,
        encrypted=True,
        delete_on_termination=True,
        iops=iops,
        throughput=throughput,
    )


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
        gpu_volumes = [
            ("/dev/xvda", _ebs(gpu.root_volume_gib)),
            ("/dev/xvdb", _ebs(gpu.data_volume_gib, iops=gpu.data_volume_iops, throughput=gpu.data_volume_throughput_mibps)),
        ]
        self._node_class(
            GPU_NODECLASS_NAME,
            props,
            ami_alias=gpu.ami_alias,
            volumes=gpu_volumes,
            user_data=soci_user_data() if gpu.soci_parallel_pull else None,
        )
        self._node_pool(
            GPU_NODEPOOL_NAME,
            GPU_NODECLASS_NAME,
            requirements=gpu_requirements(gpu, props.excluded_gpu_families, props.gpus_per_node),
            taints=[
                karpenter.NodePoolSpecTemplateSpecTaints(
                    key=GPU_TAINT_KEY, effect=karpenter.NodePoolSpecTemplateSpecTaintsEffect.NO_SCHEDULE
                )
            ],
            limits={"cpu": gpu.limit_cpu, "memory": gpu.limit_memory, GPU_RESOURCE: str(gpu.limit_gpus)},
            consolidation_policy=gpu.consolidation_policy,
            consolidate_after=gpu.consolidate_after,
        )
        cpu_volumes = [("/dev/xvda", _ebs(CPU_ROOT_VOLUME_GIB)), ("/dev/xvdb", _ebs(CPU_DATA_VOLUME_GIB))]
        self._node_class(CPU_NODECLASS_NAME, props, ami_alias=CPU_AMI_ALIAS, volumes=cpu_volumes)
        self._node_pool(
            CPU_NODEPOOL_NAME,
            CPU_NODECLASS_NAME,
            requirements=cpu_requirements(cpu),
            taints=None,
            limits={"cpu": cpu.limit_cpu, "memory": cpu.limit_memory},
            consolidation_policy="WhenEmptyOrUnderutilized",
            consolidate_after=cpu.consolidate_after,
        )
        self._check()

    def _node_class(
        self,
        name: str,
        props: KarpenterNodePoolsProps,
        *,
        ami_alias: str,
        volumes: list[tuple[str, ec2.Ec2NodeClassSpecBlockDeviceMappingsEbs]],
        user_data: str | None = None,
    ) -> None:
        discovery = {KARPENTER_DISCOVERY_TAG: props.cluster_name}
        ec2.Ec2NodeClass(
            self,
            f"ec2nodeclass-{name}",
            metadata=custom_meta(name, common_labels(f"nodeclass-{name}")),
            spec=ec2.Ec2NodeClassSpec(
                role=props.node_role_name,
                ami_selector_terms=[ec2.Ec2NodeClassSpecAmiSelectorTerms(alias=ami_alias)],
                subnet_selector_terms=[ec2.Ec2NodeClassSpecSubnetSelectorTerms(tags=discovery)],
                security_group_selector_terms=[ec2.Ec2NodeClassSpecSecurityGroupSelectorTerms(tags=discovery)],
                metadata_options=ec2.Ec2NodeClassSpecMetadataOptions(
                    http_endpoint=ec2.Ec2NodeClassSpecMetadataOptionsHttpEndpoint.ENABLED,
                    http_protocol_i_pv6=ec2.Ec2NodeClassSpecMetadataOptionsHttpProtocolIPv6.DISABLED,
                    http_put_response_hop_limit=1,  # pods cannot reach IMDS (and the node role) through the node
                    http_tokens=ec2.Ec2NodeClassSpecMetadataOptionsHttpTokens.REQUIRED,
                ),
                block_device_mappings=[
                    ec2.Ec2NodeClassSpecBlockDeviceMappings(device_name=device, ebs=ebs) for device, ebs in volumes
                ],
                user_data=user_data,
                tags={PROJECT_TAG_KEY: props.project_name},
            ),
        )

    def _node_pool(
        self,
        name: str,
        node_class: str,
        *,
        requirements: list[Requirement],
        taints: list[karpenter.NodePoolSpecTemplateSpecTaints] | None,
        limits: dict[str, str],
        consolidation_policy: str,
        consolidate_after: str,
    ) -> None:
        karpenter.NodePool(
            self,
            f"nodepool-{name}",
            metadata=custom_meta(name, common_labels(f"nodepool-{name}")),
            spec=karpenter.NodePoolSpec(
                template=karpenter.NodePoolSpecTemplate(
                    spec=karpenter.NodePoolSpecTemplateSpec(
                        node_class_ref=karpenter.NodePoolSpecTemplateSpecNodeClassRef(
                            group=NODECLASS_GROUP, kind="EC2NodeClass", name=node_class
                        ),
                        requirements=requirements,
                        expire_after=EXPIRE_AFTER,
                        taints=taints,
                    )
                ),
                limits={resource: karpenter.NodePoolSpecLimits.from_string(value) for resource, value in limits.items()},
                disruption=karpenter.NodePoolSpecDisruption(
                    consolidation_policy=wire_enum(karpenter.NodePoolSpecDisruptionConsolidationPolicy, consolidation_policy),
                    consolidate_after=consolidate_after,
                ),
            ),
        )
