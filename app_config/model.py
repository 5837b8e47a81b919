"""The app's one typed configuration (pydantic v2).

Defaults are the tuned values of the reference demo (DESIGN.md section 2). Every model
forbids unknown keys, so a typo fails synth naming the field instead of being ignored.
Validation errors surface as :class:`app_config.loader.ConfigError`, whose message names
each failing field by its dotted path (for example ``scaling.max_replicas``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app_config import versions


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
DURATION_RE = re.compile(r"^(([0-9]+(s|m|h))+|Never)$")  # Karpenter's duration pattern


def _check_cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid CIDR block ({exc})") from None
    return value


# ---------------------------------------------------------------------------------
# Deployment target
# ---------------------------------------------------------------------------------
class DeploymentEnv(_Model):
    """Where the stacks deploy. Both optional: synth stays offline and account-agnostic.

    The edge needs a concrete region for its cross-region reference to the us-east-1 WAF
    stack; when ``region`` is unset the app takes ``CDK_DEFAULT_REGION`` and then
    :data:`DEFAULT_REGION`.
    """

    account: str | None = Field(default=None, pattern=r"^\d{12}$")
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")


DEFAULT_REGION = "us-west-2"


class NetworkConfig(_Model):
    """VPC layout."""

    vpc_cidr: str = "10.0.0.0/16"
    max_azs: Annotated[int, Field(ge=2, le=6)] = 2
    nat_gateways: Annotated[int, Field(ge=1)] = 1
    flow_log_retention_days: PositiveInt = 30

    _cidr = field_validator("vpc_cidr")(_check_cidr)

    @model_validator(mode="after")
    def _nat_within_azs(self) -> "NetworkConfig":
        if self.nat_gateways > self.max_azs:
            raise ValueError(
                f"network.nat_gateways ({self.nat_gateways}) exceeds network.max_azs ({self.max_azs})"
            )
        return self


# ---------------------------------------------------------------------------------
# Cluster
# ---------------------------------------------------------------------------------
class SystemNodeGroupConfig(_Model):
    """Managed node group for controllers (tainted CriticalAddonsOnly)."""

    instance_types: list[str] = Field(default_factory=lambda: ["m7i.large"], min_length=1)
    desired_size: Annotated[int, Field(ge=2)] = 2
    min_size: Annotated[int, Field(ge=2)] = 2
    max_size: PositiveInt = 3
    disk_size_gib: Annotated[int, Field(ge=20)] = 50

    @model_validator(mode="after")
    def _sizes(self) -> "SystemNodeGroupConfig":
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                "cluster.system_nodes: need min_size <= desired_size <= max_size, got "
                f"{self.min_size} <= {self.desired_size} <= {self.max_size}"
            )
        return self


class ClusterConfig(_Model):
    """EKS control plane settings."""

    name: str | None = Field(default=None, pattern=r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")
    kubernetes_version: str = versions.KUBERNETES_VERSION
    endpoint_access: Literal["public_and_private", "private", "public"] = "public_and_private"
    # Who may reach the public endpoint. Narrow it to your office/VPN ranges.
    public_access_cidrs: list[str] = Field(default_factory=lambda: ["0.0.0.0/0"], min_length=1)
    system_nodes: SystemNodeGroupConfig = SystemNodeGroupConfig()
    log_types: list[Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]] = (
        Field(default_factory=lambda: ["api", "audit", "authenticator", "controllerManager", "scheduler"])
    )

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            _check_cidr(cidr)
        return value

    @field_validator("kubernetes_version")
    @classmethod
    def _version_drivable(cls, value: str) -> str:
        match = re.fullmatch(r"1\.(\d+)", value)
        if not match:
            raise ValueError(f"{value!r} is not a Kubernetes minor version like '1.35'")
        layer_minor = int(versions.KUBECTL_LAYER_VERSION.split(".")[1])
        if abs(int(match.group(1)) - layer_minor) > 1:
            raise ValueError(
                f"Kubernetes {value} cannot be driven by the kubectl {versions.KUBECTL_LAYER_VERSION} "
                f"layer (aws-cdk.lambda-layer-kubectl-v{layer_minor}); kubectl supports one minor "
                f"version of skew, so use 1.{layer_minor - 1}..1.{layer_minor + 1}"
            )
        return value


# ---------------------------------------------------------------------------------
# Model and model store
# ---------------------------------------------------------------------------------
DEFAULT_ALLOW_PATTERNS = [
    "*.safetensors",
    "*.safetensors.index.json",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "preprocessor_config.json",
    "quant_config.json",
    "quantize_config.json",
]


class ModelConfig(_Model):
    """Which model is served and where its weights live in S3.

    ``name`` is the S3 folder: weights go to ``s3://<bucket>/models/<name>/``.
    """

    hf_repo_id: str = Field(default="TheBloke/Mistral-7B-Instruct-v0.2-AWQ", min_length=1)
    revision: str = Field(default="main", min_length=1)
    name: str = Field(default="mistral-7b-awq", pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")
    served_model_name: str = Field(default="mistral-7b-awq", min_length=1)
    allow_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOW_PATTERNS), min_length=1)
    hf_token_secret_name: str | None = None  # Secrets Manager secret holding a Hugging Face token
    upload_on_deploy: bool = True
    purge_on_delete: bool = False  # keep the model objects when the stack is deleted
    # Hugging Face hub base URL the upload reads from (a mirror, or the hub itself).
    hf_endpoint: str = Field(default="https://huggingface.co", pattern=r"^https?://[^\s/]+(/[^\s]*)?$")

    @field_validator("hf_repo_id")
    @classmethod
    def _repo_id(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if not re.fullmatch(r"[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?", value):
            raise ValueError(f"{value!r} is not a Hugging Face repo id like 'org/name'")
        return value


class ModelStoreConfig(_Model):
    """The S3 model bucket."""

    encryption: Literal["S3_MANAGED", "KMS"] = "S3_MANAGED"
    removal_policy: Literal["retain", "destroy"] = "retain"
    auto_delete_objects: bool = False  # empty the bucket on delete (needs removal_policy destroy)
    noncurrent_version_expiration_days: PositiveInt = 30
    abort_incomplete_multipart_upload_days: PositiveInt = 7

    @model_validator(mode="after")
    def _auto_delete_needs_destroy(self) -> "ModelStoreConfig":
        if self.auto_delete_objects and self.removal_policy != "destroy":
            raise ValueError(
                "model_store.auto_delete_objects requires model_store.removal_policy: destroy"
            )
        return self


# ---------------------------------------------------------------------------------
# vLLM
# ---------------------------------------------------------------------------------
class VllmConfig(_Model):
    """The vLLM Deployment (args from DESIGN section 2)."""

    image: str = versions.VLLM_IMAGE
    quantization: str | None = "awq_marlin"
    max_model_len: PositiveInt = 4096
    max_num_seqs: PositiveInt = 32
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.90
    load_format: str = "runai_streamer"
    streamer_concurrency: PositiveInt = 16  # RUNAI_STREAMER_CONCURRENCY
    extra_args: list[str] = Field(default_factory=list)
    gpus_per_pod: PositiveInt = 1
    cpu_request: str = "3"
    memory_request: str = "12Gi"  # fits g5/g6.xlarge allocatable (tests/charts/data/gpu_instances.yaml)
    shm_size: str = "2Gi"
    startup_timeout_seconds: Annotated[int, Field(ge=60)] = 330
    termination_grace_period_seconds: Annotated[int, Field(ge=30)] = 120
    pre_stop_delay_seconds: NonNegativeInt = 15


# ---------------------------------------------------------------------------------
# Scaling (KEDA ScaledObject)
# ---------------------------------------------------------------------------------
class ScalingTrigger(_Model):
    """One named trigger of the ScaledObject, fed by the collector through the OTel add-on.

    ``metric_query`` uses the add-on's query language, e.g. ``sum(vllm:num_requests_waiting)``.
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    metric_query: str = Field(min_length=1)
    target_value: Annotated[float, Field(gt=0)]
    kind: Literal["external", "cpu", "memory"] = "external"


class HpaPolicy(_Model):
    """An autoscaling/v2 HPA scaling policy."""

    type: Literal["Percent", "Pods"]
    value: PositiveInt
    period_seconds: Annotated[int, Field(gt=0, le=1800)]


class HpaRules(_Model):
    """autoscaling/v2 HPAScalingRules."""

    stabilization_window_seconds: Annotated[int, Field(ge=0, le=3600)]
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"
    policies: list[HpaPolicy] = Field(min_length=1)


def _default_triggers() -> list[ScalingTrigger]:
    from app_config.constants import METRIC_RUNNING, METRIC_WAITING

    return [
        ScalingTrigger(name="running", metric_query=f"sum({METRIC_RUNNING})", target_value=25),
        ScalingTrigger(name="waiting", metric_query=f"sum({METRIC_WAITING})", target_value=5),
    ]


FORMULA_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
FORMULA_FUNCTIONS = {"min", "max"}


class ScalingConfig(_Model):
    """The ScaledObject: triggers, composite formula, replica bounds, HPA behavior."""

    keda_flavor: Literal["upstream", "kedify"] = "upstream"
    min_replicas: NonNegativeInt = 1
    max_replicas: Annotated[int, Field(ge=1)] = 10
    idle_replica_count: NonNegativeInt | None = None
    polling_interval_seconds: PositiveInt = 2
    cooldown_period_seconds: NonNegativeInt = 300
    triggers: list[ScalingTrigger] = Field(default_factory=_default_triggers, min_length=1)
    formula: str = "running + (waiting * 10)"
    target: Annotated[float, Field(gt=0)] = 25
    activation_target: Annotated[float, Field(ge=0)] = 5
    metric_type: Literal["AverageValue", "Value"] = "AverageValue"
    scale_up: HpaRules = HpaRules(
        stabilization_window_seconds=0,
        select_policy="Max",
        policies=[
            HpaPolicy(type="Percent", value=900, period_seconds=15),
            HpaPolicy(type="Pods", value=9, period_seconds=15),
        ],
    )
    scale_down: HpaRules = HpaRules(
        stabilization_window_seconds=300,
        select_policy="Max",
        policies=[HpaPolicy(type="Percent", value=50, period_seconds=60)],
    )

    @model_validator(mode="after")
    def _bounds_and_formula(self) -> "ScalingConfig":
        # Case B06: do not rely on the cluster's webhook for replica bounds.
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"scaling.max_replicas ({self.max_replicas}) must be >= scaling.min_replicas "
                f"({self.min_replicas})"
            )
        if self.idle_replica_count is not None and self.idle_replica_count >= self.min_replicas:
            raise ValueError(
                f"scaling.idle_replica_count ({self.idle_replica_count}) must be < "
                f"scaling.min_replicas ({self.min_replicas})"
            )
        names = [t.name for t in self.triggers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"scaling.triggers: duplicate trigger names {duplicates}")
        # Case B01: resource triggers (cpu/memory) are not formula variables.
        usable = {t.name for t in self.triggers if t.kind == "external"}
        for ident in FORMULA_IDENTIFIER.findall(self.formula):
            if ident in FORMULA_FUNCTIONS:
                continue
            if ident not in usable:
                kinds = {t.name: t.kind for t in self.triggers}
                why = (
                    f"it is a {kinds[ident]} trigger, and resource triggers are not formula variables"
                    if ident in kinds
                    else f"no trigger is named {ident!r} (triggers: {sorted(names)})"
                )
                raise ValueError(f"scaling.formula (scalingModifiers.formula) names {ident!r}: {why}")
        return self


# ---------------------------------------------------------------------------------
# Karpenter
# ---------------------------------------------------------------------------------
KNOWN_REQUIREMENT_VALUES: dict[str, set[str]] = {
    "karpenter.sh/capacity-type": {"spot", "on-demand", "reserved"},
    "kubernetes.io/arch": {"amd64", "arm64"},
    "karpenter.k8s.aws/instance-gpu-manufacturer": {"nvidia", "amd", "habana", "aws"},
    "kubernetes.io/os": {"linux", "windows"},
}


REQUIREMENT_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")  # karpenter.sh_nodepools CRD enum


class NodeRequirement(_Model):
    """A Karpenter NodePool requirement (a node selector requirement).

    Operators are the ones the Karpenter v1 NodePool CRD accepts; ``Gte``/``Lte`` do not exist.
    """

    key: str = Field(min_length=1)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _known_operator(cls, data: object) -> object:
        # Name the key and the operator (case B11), not only the field path.
        if isinstance(data, dict) and data.get("operator") not in (None, *REQUIREMENT_OPERATORS):
            raise ValueError(
                f"requirement {data.get('key')!r}: operator {data.get('operator')!r} is not one of "
                f"{list(REQUIREMENT_OPERATORS)}"
            )
        return data

    @model_validator(mode="after")
    def _values(self) -> "NodeRequirement":
        # Case B11: catch values no instance can ever have, and operators the CRD refuses.
        where = f"requirement {self.key!r}"
        if self.operator in ("Gt", "Lt"):
            if len(self.values) != 1 or not re.fullmatch(r"-?\d+", self.values[0]):
                raise ValueError(f"{where}: {self.operator} takes exactly one integer string, got {self.values}")
        elif self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"{where}: {self.operator} needs at least one value")
        elif self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"{where}: {self.operator} takes no values")
        known = KNOWN_REQUIREMENT_VALUES.get(self.key)
        if known is not None and self.operator in ("In", "NotIn"):
            for value in self.values:
                if value not in known:
                    raise ValueError(f"{where}: unknown value {value!r} (allowed: {sorted(known)})")
        return self


class GpuNodePoolConfig(_Model):
    """The GPU NodePool and its EC2NodeClass (Bottlerocket + SOCI parallel pull)."""

    capacity_types: list[str] = Field(default_factory=lambda: ["spot", "on-demand"], min_length=1)
    instance_categories: list[str] = Field(default_factory=lambda: ["g", "p"], min_length=1)
    gpu_manufacturer: str = "nvidia"
    architectures: list[str] = Field(default_factory=lambda: ["amd64"], min_length=1)
    extra_requirements: list[NodeRequirement] = Field(default_factory=list)
    limit_cpu: str = "400"
    limit_memory: str = "1600Gi"
    limit_gpus: PositiveInt = 40
    consolidation_policy: Literal["WhenEmpty", "WhenEmptyOrUnderutilized"] = "WhenEmpty"
    consolidate_after: str = "30s"
    ami_alias: str = "bottlerocket@latest"
    root_volume_gib: PositiveInt = 4
    data_volume_gib: PositiveInt = 50
    data_volume_iops: Annotated[int, Field(ge=3000, le=16000)] = 4000
    data_volume_throughput_mibps: Annotated[int, Field(ge=125, le=1000)] = 1000
    soci_parallel_pull: bool = True

    @model_validator(mode="after")
    def _requirements(self) -> "GpuNodePoolConfig":
        NodeRequirement(key="karpenter.sh/capacity-type", operator="In", values=self.capacity_types)
        NodeRequirement(key="kubernetes.io/arch", operator="In", values=self.architectures)
        NodeRequirement(
            key="karpenter.k8s.aws/instance-gpu-manufacturer", operator="In", values=[self.gpu_manufacturer]
        )
        if not DURATION_RE.match(self.consolidate_after):
            raise ValueError(f"consolidate_after {self.consolidate_after!r} is not a duration like '30s'")
        return self


class CpuNodePoolConfig(_Model):
    """The CPU NodePool for the gateway (on-demand by default)."""

    capacity_types: list[str] = Field(default_factory=lambda: ["on-demand"], min_length=1)
    instance_categories: list[str] = Field(default_factory=lambda: ["c", "m", "r"], min_length=1)
    architectures: list[str] = Field(default_factory=lambda: ["amd64", "arm64"], min_length=1)
    limit_cpu: str = "64"
    limit_memory: str = "256Gi"
    consolidate_after: str = "60s"

    @model_validator(mode="after")
    def _requirements(self) -> "CpuNodePoolConfig":
        NodeRequirement(key="karpenter.sh/capacity-type", operator="In", values=self.capacity_types)
        NodeRequirement(key="kubernetes.io/arch", operator="In", values=self.architectures)
        if not DURATION_RE.match(self.consolidate_after):
            raise ValueError(f"consolidate_after {self.consolidate_after!r} is not a duration like '60s'")
        return self


class KarpenterConfig(_Model):
    """Karpenter NodePools."""

    gpu: GpuNodePoolConfig = GpuNodePoolConfig()
    cpu: CpuNodePoolConfig = CpuNodePoolConfig()


# ---------------------------------------------------------------------------------
# Gateway and edge
# ---------------------------------------------------------------------------------
class GatewayConfig(_Model):
    """The FastAPI gateway Deployment and its admission control."""

    replicas: PositiveInt = 2
    max_in_flight: PositiveInt = 64  # per pod
    max_queue: NonNegativeInt = 256  # per pod, waiting for an in-flight slot
    queue_timeout_seconds: Annotated[float, Field(gt=0)] = 30
    heartbeat_interval_seconds: Annotated[float, Field(gt=0)] = 15
    upstream_connect_timeout_seconds: Annotated[float, Field(gt=0)] = 3
    upstream_read_timeout_seconds: Annotated[float, Field(gt=0)] = 600
    max_body_bytes: PositiveInt = 1_048_576
    api_key_secret_name: str | None = None
    cpu_request: str = "500m"
    memory_request: str = "512Mi"


class EdgeConfig(_Model):
    """CloudFront, WAF and the internal ALB.

    The gateway's SSE heartbeat interval must stay below both the ALB idle timeout and the
    CloudFront origin read timeout, or queued users get cut off (case B15).
    """

    origin_read_timeout_seconds: Annotated[int, Field(ge=60, le=180)] = 60
    origin_keepalive_timeout_seconds: Annotated[int, Field(ge=1, le=60)] = 60
    alb_idle_timeout_seconds: Annotated[int, Field(ge=1, le=4000)] = 120
    waf_enabled: bool = True
    waf_rate_limit_per_5min: Annotated[int, Field(ge=10, le=2_000_000_000)] = 2000
    price_class: Literal["PriceClass_100", "PriceClass_200", "PriceClass_All"] = "PriceClass_100"
    # Edge log bucket (CloudFront standard logs + ALB access logs): days kept, and whether
    # `cdk destroy` empties and deletes it (``destroy``) or leaves it (``retain``).
    log_retention_days: PositiveInt = 90
    logs_removal_policy: Literal["retain", "destroy"] = "retain"


class TeardownConfig(_Model):
    """What `cdk destroy` removes beyond CloudFormation's own resources."""

    cleanup_controller_resources: bool = True
    wait_timeout_seconds: Annotated[int, Field(ge=60, le=3000)] = 900


# ---------------------------------------------------------------------------------
# Root
# ---------------------------------------------------------------------------------
class AppConfig(_Model):
    """The whole app's configuration. Every field has a default; override in YAML or context."""

    project_name: str = Field(default="qvllm", pattern=r"^[a-z][a-z0-9-]{1,20}$")
    env: DeploymentEnv = DeploymentEnv()
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig = ClusterConfig()
    model: ModelConfig = ModelConfig()
    model_store: ModelStoreConfig = ModelStoreConfig()
    vllm: VllmConfig = VllmConfig()
    scaling: ScalingConfig = ScalingConfig()
    karpenter: KarpenterConfig = KarpenterConfig()
    gateway: GatewayConfig = GatewayConfig()
    edge: EdgeConfig = EdgeConfig()
    teardown: TeardownConfig = TeardownConfig()

    @model_validator(mode="after")
    def _heartbeat_below_timeouts(self) -> "AppConfig":
        limit = min(self.edge.origin_read_timeout_seconds, self.edge.alb_idle_timeout_seconds)
        if self.gateway.heartbeat_interval_seconds >= limit:
            raise ValueError(
                f"gateway.heartbeat_interval_seconds ({self.gateway.heartbeat_interval_seconds}) must be "
                f"below the edge's idle timeouts (min of edge.origin_read_timeout_seconds and "
                f"edge.alb_idle_timeout_seconds = {limit})"
            )
        return self

    @property
    def cluster_name(self) -> str:
        """EKS cluster name: ``cluster.name`` or ``<project_name>``."""
        return self.cluster.name or self.project_name
