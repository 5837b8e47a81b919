"""The app's one typed configuration (pydantic v2).

Defaults are the tuned values of the reference demo (a public Terraform + bash demo of this job; docs/ARCHITECTURE.md). Every model
forbids unknown keys, so a typo fails synth naming the field instead of being ignored.
Validation errors surface as :class:`app_config.loader.ConfigError`, whose message names
each failing field by its dotted path (for example ``scaling.max_replicas``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from app_config import versions
from app_config.cold_start import ColdStartParameters
from app_config.constants import VLLM_EXIT_MARGIN_SECONDS, VLLM_SHUTDOWN_TIMEOUT_FLAG
from app_config.scaled_object import validate_scaling
from services.gateway.settings import default as gateway_default
from app_config.gpu_instances import known_families, weights_bound_gib, smallest_instance
from app_config.startup_budget import startup_budget_seconds
from app_config.images import CACHE_UPSTREAMS, cache_prefix
from app_config.quantity import parse_quantity


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
ECR_REPOSITORY_PREFIX_MAX = 30  # CreatePullThroughCacheRule ecrRepositoryPrefix length limit
DURATION_RE = re.compile(r"^(([0-9]+(s|m|h))+|Never)$")  # Karpenter's duration pattern
# An IAM role or user ARN (a role ARN may carry a path; EKS access entries accept it).
IAM_PRINCIPAL_ARN_RE = re.compile(r"arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::\d{12}:(role|user)/[\w+=,.@/-]{1,512}")


def _check_quantity(value: str) -> str:
    parse_quantity(value)  # raises ValueError: "'lots' is not a Kubernetes quantity"
    return value


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

    account: str | None = Field(
        default=None, pattern=r"^\d{12}$",
        description="AWS account id of every stack; unset: CDK_DEFAULT_ACCOUNT, else left unresolved",
    )
    region: str | None = Field(
        default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$",
        description="AWS region of every stack but the us-east-1 WAF; unset: CDK_DEFAULT_REGION, then us-west-2",
    )


DEFAULT_REGION = "us-west-2"


class NetworkConfig(_Model):
    """VPC layout."""

    vpc_cidr: str = "10.0.0.0/16"  # VPC IPv4 CIDR; each AZ gets a public /24 and a private /19 subnet
    max_azs: Annotated[int, Field(ge=2, le=6)] = 2  # availability zones the VPC spans
    nat_gateways: Annotated[int, Field(ge=1)] = 1  # NAT gateways for private-subnet egress (at most max_azs)
    flow_log_retention_days: PositiveInt = 30  # days VPC flow logs (rejected traffic) stay in CloudWatch Logs

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

    instance_types: list[str] = Field(
        default_factory=lambda: ["m7i.large"], min_length=1,
        description="EC2 instance types of the system managed node group (AL2023)",
    )
    desired_size: Annotated[int, Field(ge=2)] = 2  # initial node count (Karpenter's 2 replicas need 2 nodes)
    min_size: Annotated[int, Field(ge=2)] = 2  # node group minimum size
    max_size: PositiveInt = 3  # node group maximum size
    disk_size_gib: Annotated[int, Field(ge=20)] = 50  # EBS disk size per node, GiB

    @model_validator(mode="after")
    def _sizes(self) -> "SystemNodeGroupConfig":
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                "cluster.system_nodes: need min_size <= desired_size <= max_size, got "
                f"{self.min_size} <= {self.desired_size} <= {self.max_size}"
            )
        return self


# kube-controller-manager's HPA sync period on EKS: "10s" to "15s", default "15s", and settable
# only on a Provisioned Control Plane (EKS User Guide, "Advanced Kubernetes control plane
# configuration": https://docs.aws.amazon.com/eks/latest/userguide/control-plane-configuration.html;
# DescribeClusterVersions reports the values per Kubernetes version). Single-unit durations
# such as "15s" (EKS API reference, HorizontalPodAutoscalerControllerConfigRequest).
EKS_HPA_SYNC_PERIOD_DEFAULT_SECONDS = 15
EKS_HPA_SYNC_PERIOD_MIN_SECONDS = 10


class ClusterConfig(_Model):
    """EKS control plane settings.

    The HPA sync period paces every scale step after the first replica (KEDA's polling interval
    only paces activation from zero). EKS syncs every 15 s on the standard control plane; 10-14 s
    needs a Provisioned Control Plane tier (`control_plane_tier`, billed per hour).
    """

    name: str | None = Field(
        default=None, pattern=r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$",
        description="EKS cluster name; unset: project_name",
    )
    kubernetes_version: str = Field(
        default=versions.KUBERNETES_VERSION,
        description="EKS Kubernetes minor version; at most one minor from the kubectl layer's (v35)",
    )
    endpoint_access: Literal["public_and_private", "private", "public"] = Field(
        default="public_and_private",
        description="EKS API server endpoint access; the public side admits only public_access_cidrs",
    )
    public_access_cidrs: list[str] = Field(
        default_factory=lambda: ["0.0.0.0/0"], min_length=1,
        description="CIDRs that may reach the public API endpoint; narrow it to your office/VPN ranges",
    )
    system_nodes: SystemNodeGroupConfig = SystemNodeGroupConfig()
    control_plane_tier: Literal["standard", "tier-xl", "tier-2xl", "tier-4xl", "tier-8xl"] = Field(
        default="standard",
        description="EKS control plane scaling tier: standard (no extra cost), or a Provisioned Control Plane "
        "tier (billed per hour), which a shorter hpa_sync_period_seconds needs",
    )
    hpa_sync_period_seconds: Annotated[
        int, Field(ge=EKS_HPA_SYNC_PERIOD_MIN_SECONDS, le=EKS_HPA_SYNC_PERIOD_DEFAULT_SECONDS)
    ] = Field(
        default=EKS_HPA_SYNC_PERIOD_DEFAULT_SECONDS,
        description="kube-controller-manager HPA sync period, seconds: how often the HPA re-evaluates, so the "
        f"pace of every scale-up step after the first replica. EKS accepts {EKS_HPA_SYNC_PERIOD_MIN_SECONDS}-"
        f"{EKS_HPA_SYNC_PERIOD_DEFAULT_SECONDS}; below {EKS_HPA_SYNC_PERIOD_DEFAULT_SECONDS} needs control_plane_tier "
        "other than standard",
    )
    admin_principal_arns: list[str] = Field(
        default_factory=list,
        description="IAM role/user ARNs given cluster-admin access (an EKS access entry with "
        "AmazonEKSClusterAdminPolicy, cluster scope) for kubectl, port-forward and qvllm dashboard; "
        "empty: only the CloudFormation deploy role and the CDK's kubectl handler can reach the cluster",
    )
    service_ipv4_cidr: str = Field(
        default="172.20.0.0/16",
        description="the cluster's Service IP range (EKS: a /12-/24 inside 10.0.0.0/8, 172.16.0.0/12 or "
        "192.168.0.0/16, not overlapping network.vpc_cidr); explicit so that the NetworkPolicies can name "
        "the API server's and DNS's Service addresses. Changing it replaces the cluster",
    )
    log_types: list[Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]] = (
        Field(
            default_factory=lambda: ["api", "audit", "authenticator", "controllerManager", "scheduler"],
            description="EKS control plane log types sent to CloudWatch Logs",
        )
    )

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            _check_cidr(cidr)
        return value

    @field_validator("service_ipv4_cidr")
    @classmethod
    def _service_cidr(cls, value: str) -> str:
        # EKS User Guide, CreateCluster kubernetesNetworkConfig.serviceIpv4Cidr: within the three
        # private ranges, a block between /24 and /12.
        network = ipaddress.ip_network(_check_cidr(value))
        private = [ipaddress.ip_network(c) for c in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
        if network.version != 4 or not any(network.subnet_of(p) for p in private) or not 12 <= network.prefixlen <= 24:
            raise ValueError(f"{value} must be a /12 to /24 inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
        return value

    @field_validator("hpa_sync_period_seconds")
    @classmethod
    def _sync_period_needs_provisioned_tier(cls, value: int, info: ValidationInfo) -> int:
        # EKS refuses the HPA controller setting on the standard control plane (deploy-time failure).
        if value != EKS_HPA_SYNC_PERIOD_DEFAULT_SECONDS and info.data.get("control_plane_tier", "standard") == "standard":
            raise ValueError(
                f"{value} s needs an EKS Provisioned Control Plane: set cluster.control_plane_tier (e.g. tier-xl, "
                f"billed per hour); on the standard control plane EKS syncs every "
                f"{EKS_HPA_SYNC_PERIOD_DEFAULT_SECONDS} s and refuses the setting"
            )
        return value

    @field_validator("admin_principal_arns")
    @classmethod
    def _admin_arns(cls, value: list[str]) -> list[str]:
        for arn in value:
            if not IAM_PRINCIPAL_ARN_RE.fullmatch(arn):
                hint = (
                    " (an assumed-role session: give the role's ARN, arn:aws:iam::<account>:role/<name>)"
                    if ":assumed-role/" in arn
                    else ""
                )
                raise ValueError(f"{arn!r} is not an IAM role or user ARN{hint}")
        duplicates = sorted({arn for arn in value if value.count(arn) > 1})
        if duplicates:
            # EKS allows one access entry per principal.
            raise ValueError(f"duplicate principals {duplicates}: EKS allows one access entry per principal")
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
# Every file vLLM (0.32) and transformers (5.19) may read from a model folder, by who reads it:
DEFAULT_ALLOW_PATTERNS = [
    # weights and the sharded checkpoint's index (every shard it names is required by the copy)
    "*.safetensors",
    "*.safetensors.index.json",
    # model and generation config (transformers CONFIG_NAME, GENERATION_CONFIG_NAME)
    "config.json",
    "generation_config.json",
    # tokenizers: fast (tokenizer.json), sentencepiece and BPE vocabularies (VOCAB_FILES_NAMES of
    # transformers' tokenizers), tiktoken vocabularies, Mistral's tekken/v* tokenizers (vLLM
    # tokenizers/registry.py) and Kimi's tiktoken.model (vLLM tokenizers/kimi_audio.py)
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "tokenizer.model.v*",
    "tekken.json",
    "*.tiktoken",
    "tiktoken.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    # chat templates: the default one and named ones (transformers CHAT_TEMPLATE_DIR)
    "chat_template.jinja",
    "chat_template.json",
    "additional_chat_templates/*",
    # processors of multimodal models (transformers PROCESSOR_NAME, IMAGE/VIDEO_PROCESSOR_NAME)
    "processor_config.json",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    # quantization configs vLLM looks for (get_config_filenames of its quantization methods)
    "quant_config.json",
    "quantize_config.json",
    "quantization_config.json",
    "hf_quant_config.json",
]
# The model's own Python code (configuration_*.py, modeling_*.py, tokenization_*.py): copied
# only when vLLM is told to run it (``--trust-remote-code`` in ``vllm.extra_args``).
REMOTE_CODE_PATTERNS = ["*.py"]
TRUST_REMOTE_CODE_FLAGS = ("--trust-remote-code", "--trust_remote_code")


class ModelConfig(_Model):
    """Which model is served and where its weights live in S3.

    ``name`` is the S3 folder: weights go to ``s3://<bucket>/models/<name>/``.
    """

    hf_repo_id: str = Field(
        default="TheBloke/Mistral-7B-Instruct-v0.2-AWQ", min_length=1,
        description="Hugging Face repo id (org/name) copied into the model bucket",
    )
    revision: str = Field(default="main", min_length=1)  # branch, tag or commit sha (resolved to a sha at deploy)
    name: str = Field(
        default="mistral-7b-awq", pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$",
        description="S3 folder of the weights: s3://<bucket>/models/<name>/ (vLLM --model)",
    )
    served_model_name: str = Field(default="mistral-7b-awq", min_length=1)  # vLLM --served-model-name
    allow_patterns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALLOW_PATTERNS), min_length=1,
        description="glob patterns of the repo files copied (weights, configs, tokenizers, chat templates, "
        "processors); *.py is added when vllm.extra_args has --trust-remote-code",
    )
    hf_token_secret_name: str | None = None  # Secrets Manager secret holding a Hugging Face token (gated repos)
    upload_on_deploy: bool = True  # copy the repo into the bucket at deploy (model-upload custom resource)
    purge_on_delete: bool = False  # delete the model's S3 objects with the upload resource (false: keep)
    hf_endpoint: str = Field(
        default="https://huggingface.co", pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="Hugging Face hub base URL the upload reads from (a mirror, or the hub itself)",
    )

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

    encryption: Literal["S3_MANAGED", "KMS"] = Field(
        default="S3_MANAGED", description="model bucket encryption: SSE-S3, or SSE-KMS with a new rotated key",
    )
    removal_policy: Literal["retain", "destroy"] = Field(
        default="retain", description="on stack delete, keep or delete the model and access-log buckets",
    )
    auto_delete_objects: bool = False  # empty the bucket on delete (needs removal_policy destroy); access logs too
    noncurrent_version_expiration_days: PositiveInt = 30  # days until noncurrent object versions expire
    abort_incomplete_multipart_upload_days: PositiveInt = 7  # days until incomplete multipart uploads abort

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
# vLLM 0.32's own grid of CUDA-graph capture sizes (vllm/config/vllm.py, VllmConfig._set_cudagraph_sizes:
# "[1, 2, 4] + list(range(8, 256, 8)) + list(range(256, max_graph_size + 1, 16))"), whose default
# ceiling is 2 * max_num_seqs (up to 512); CUDA graphs of batches vLLM never forms at our
# max_num_seqs only cost start-up time.
def default_cudagraph_capture_sizes(max_num_seqs: int) -> list[int]:
    """vLLM's capture-size grid cut at ``max_num_seqs``, with ``max_num_seqs`` itself last (the
    largest decode batch a pod runs gets its own graph even when it is off the grid)."""
    grid = [1, 2, 4, *range(8, 256, 8), *range(256, max_num_seqs + 1, 16)]
    sizes = [size for size in grid if size < max_num_seqs]
    return [*sizes, max_num_seqs]


# extra_args spellings that set the capture sizes themselves (flags, -cc./--compilation-config.
# dotted keys and JSON keys all contain one of these).
CUDAGRAPH_SIZE_ARG_FRAGMENTS = ("cudagraph-capture-size", "cudagraph_capture_size")


class CompileCacheConfig(_Model):
    """vLLM's torch.compile cache on a shared EFS file system, so a new pod reuses what an earlier one
    compiled (cdk_constructs/compile_cache.py, k8s_charts/compile_cache.py)."""

    enabled: bool = Field(
        default=True,
        description="mount one EFS file system (in the VPC, encrypted, NFS only from the GPU nodes, through "
        "the EFS CSI driver add-on) at vLLM's torch.compile cache path in every vLLM pod; off: each pod "
        "compiles on its own disk",
    )


class VllmConfig(_Model):
    """The vLLM Deployment (args from the reference demo)."""

    image: str = versions.VLLM_IMAGE  # vLLM container image (entrypoint vllm serve)
    quantization: str | None = "awq_marlin"  # vLLM --quantization; null omits the flag
    max_model_len: PositiveInt = 4096  # vLLM --max-model-len: context length, tokens
    max_num_seqs: PositiveInt = 32  # vLLM --max-num-seqs: sequences running at once per pod; more wait
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.90, description="vLLM --gpu-memory-utilization: fraction of GPU memory vLLM may use",
    )
    load_format: str = "runai_streamer"  # vLLM --load-format (runai_streamer reads S3)
    streamer_concurrency: PositiveInt = 16  # RUNAI_STREAMER_CONCURRENCY: parallel S3 reads of the streamer
    streamer_memory_limit: str = Field(
        default="4Gi",
        description="RUNAI_STREAMER_MEMORY_LIMIT (a quantity, sent in bytes): the Run:ai streamer's CPU "
        "buffer while weights load; must stay below memory_request (its own default is 40 GB)",
    )
    extra_args: list[str] = Field(default_factory=list)  # more vllm serve arguments, appended last
    cudagraph_capture_sizes: list[PositiveInt] | None = Field(
        default=None,
        description="vLLM --cudagraph-capture-sizes: batch sizes (tokens) CUDA graphs are captured for, "
        "ascending, at most max_num_seqs; null: vLLM's grid 1, 2, 4, 8, 16, 24, ... cut at max_num_seqs, "
        "plus max_num_seqs (vLLM's own default reaches 2 * max_num_seqs and captures graphs no batch uses)",
    )
    compile_cache: CompileCacheConfig = CompileCacheConfig()
    gpus_per_pod: PositiveInt = 1  # nvidia.com/gpu per pod; above 1 adds --tensor-parallel-size
    cpu_request: str = "3"  # vLLM container CPU request
    memory_request: str = Field(
        default="12Gi",
        description="vLLM container memory request and limit; fits g5/g6.xlarge allocatable "
        "(app_config/data/gpu_instances.yaml)",
    )
    shm_size: str = "2Gi"  # sizeLimit of the /dev/shm emptyDir (medium Memory)
    startup_timeout_seconds: Annotated[int, Field(ge=60)] | None = Field(
        default=None,
        description="startupProbe budget on /health, seconds; null: the modeled worst-case engine start "
        "times 1.5 (app_config/startup_budget.py; 326 for the defaults)",
    )
    # No bound of its own: the check below gives the real minimum, which depends on the preStop sleep.
    termination_grace_period_seconds: Annotated[int, Field(ge=1)] = Field(
        default=120, description="pod terminationGracePeriodSeconds, seconds: the preStop sleep, then vLLM's "
        "drain of in-flight requests (--shutdown-timeout: what is left after the sleep and a 15-s exit margin)",
    )
    pre_stop_delay_seconds: NonNegativeInt = Field(
        default=15, description="preStop sleep before SIGTERM, seconds (the gateway stops sending to the pod "
        "meanwhile); it comes out of termination_grace_period_seconds, so a longer sleep shortens vLLM's drain",
    )

    @property
    def shutdown_timeout_seconds(self) -> int:
        """vLLM ``--shutdown-timeout``, seconds: how long in-flight requests may run after SIGTERM.

        The pod's grace minus the preStop sleep (it runs first) minus
        :data:`~app_config.constants.VLLM_EXIT_MARGIN_SECONDS` (vLLM's own teardown after the drain).
        """
        return self.termination_grace_period_seconds - self.pre_stop_delay_seconds - VLLM_EXIT_MARGIN_SECONDS

    @model_validator(mode="after")
    def _grace_leaves_a_drain(self) -> "VllmConfig":
        if self.shutdown_timeout_seconds < 1:
            raise ValueError(
                f"vllm.termination_grace_period_seconds ({self.termination_grace_period_seconds}) must exceed "
                f"vllm.pre_stop_delay_seconds ({self.pre_stop_delay_seconds}) by more than "
                f"{VLLM_EXIT_MARGIN_SECONDS} s, vLLM's teardown, to leave in-flight requests time to finish"
            )
        return self

    @model_validator(mode="after")
    def _streamer_fits_the_pod(self) -> "VllmConfig":
        # The streamer buffers weights in CPU memory inside the pod's memory limit (= its request):
        # runai-model-streamer 0.17 defaults to 40 GB (file_streamer/requests_iterator.py,
        # DEFAULT_MEMORY_LIMIT_STRING), far above a 12Gi pod, so a large model gets the pod OOM-killed.
        sizes = {}
        for name in ("memory_request", "shm_size", "streamer_memory_limit"):
            try:
                sizes[name] = parse_quantity(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"vllm.{name}: {exc}") from None
        if not 0 < sizes["streamer_memory_limit"] < sizes["memory_request"]:
            raise ValueError(
                f"vllm.streamer_memory_limit ({self.streamer_memory_limit}) must be above 0 and below "
                f"vllm.memory_request ({self.memory_request}), the pod's memory limit"
            )
        return self

    @field_validator("extra_args")
    @classmethod
    def _capture_sizes_not_in_extra_args(cls, value: list[str]) -> list[str]:
        # Two settings of the capture sizes: vLLM refuses a flag and a compilation-config key together
        # ("mutually exclusive"), and of two flags the last one silently wins.
        for arg in value:
            if any(fragment in arg for fragment in CUDAGRAPH_SIZE_ARG_FRAGMENTS):
                raise ValueError(
                    f"{arg!r} sets the CUDA-graph capture sizes, which the chart passes already: set "
                    "vllm.cudagraph_capture_sizes instead"
                )
            flag = (arg.split("=")[0].split() or [""])[0]  # "--flag=5", "--flag 5" (one item) or "--flag"
            if flag.replace("_", "-") == VLLM_SHUTDOWN_TIMEOUT_FLAG:  # vLLM reads both spellings
                raise ValueError(
                    f"{arg!r} sets vLLM's drain at shutdown, which the chart derives from the pod's grace: set "
                    "vllm.termination_grace_period_seconds instead"
                )
        return value

    @model_validator(mode="after")
    def _capture_sizes_within_max_num_seqs(self) -> "VllmConfig":
        sizes = self.cudagraph_capture_sizes
        if sizes is not None:
            if not sizes or sizes != sorted(set(sizes)):
                raise ValueError(f"vllm.cudagraph_capture_sizes {sizes} must be a non-empty, strictly ascending list")
            if sizes[-1] > self.max_num_seqs:
                raise ValueError(
                    f"vllm.cudagraph_capture_sizes: {sizes[-1]} is above vllm.max_num_seqs ({self.max_num_seqs}); "
                    "a pod never runs a larger decode batch, so its graph only adds start-up time"
                )
        return self

    @property
    def capture_sizes(self) -> list[int]:
        """The CUDA-graph capture sizes the pod gets: ``cudagraph_capture_sizes`` or the default grid."""
        if self.cudagraph_capture_sizes is not None:
            return list(self.cudagraph_capture_sizes)
        return default_cudagraph_capture_sizes(self.max_num_seqs)


# ---------------------------------------------------------------------------------
# Scaling (KEDA ScaledObject)
# ---------------------------------------------------------------------------------
class ScalingTrigger(_Model):
    """One named trigger of the ScaledObject, fed by the collector through the OTel add-on.

    ``metric_query`` uses the add-on's query language, ``agg(metric_name{key=value,...})``
    (:mod:`app_config.metric_query`), e.g. ``sum(vllm:num_requests_waiting)``. The chart adds
    the namespace and Deployment filters itself, from ``source``.
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # trigger name: the formula variable
    metric_query: str = Field(min_length=1)  # add-on query, trigger metadata.metricQuery (scoped by the chart)
    target_value: Annotated[float, Field(gt=0)]  # metadata.targetValue (cpu/memory: utilization %)
    kind: Literal["external", "cpu", "memory"] = "external"  # OTel add-on metric, or a resource trigger
    source: Literal["vllm", "gateway"] = Field(
        default="vllm",
        description="which Deployment's pods export the metric; the query is limited to their series "
        "(labels namespace and deployment, set by the collector)",
    )


class HpaPolicy(_Model):
    """An autoscaling/v2 HPA scaling policy."""

    type: Literal["Percent", "Pods"]  # value is a percent of current replicas, or a pod count
    value: PositiveInt  # most replicas added or removed per period
    period_seconds: Annotated[int, Field(gt=0, le=1800)]  # periodSeconds the value applies to


class HpaRules(_Model):
    """HPA behavior rules (autoscaling/v2 HPAScalingRules) of the ScaledObject's HPA."""

    stabilization_window_seconds: Annotated[int, Field(ge=0, le=3600)]  # stabilizationWindowSeconds: look-back, seconds
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"  # selectPolicy (Disabled: no scaling this way)
    policies: list[HpaPolicy] = Field(min_length=1)  # policies: list of {type, value, period_seconds}


def _default_triggers() -> list[ScalingTrigger]:
    from app_config.constants import GATEWAY_HELD_REQUESTS_METRIC, METRIC_RUNNING, METRIC_WAITING

    return [
        ScalingTrigger(name="running", metric_query=f"sum({METRIC_RUNNING})", target_value=25),
        ScalingTrigger(name="waiting", metric_query=f"sum({METRIC_WAITING})", target_value=5),
        # Requests the gateway holds while no vLLM endpoint is ready: the only signal left with
        # zero vLLM pods, so it is what takes vLLM from 0 to 1 (scaling.min_replicas: 0).
        ScalingTrigger(name="held", metric_query=f"sum({GATEWAY_HELD_REQUESTS_METRIC})", target_value=1,
                       source="gateway"),
    ]


class ScalingConfig(_Model):
    """The ScaledObject: triggers, composite formula, replica bounds, HPA behavior."""

    keda_flavor: Literal["upstream", "kedify"] = Field(
        default="upstream",
        description="upstream KEDA with external triggers, or Kedify's KEDA build with kedify-otel triggers",
    )
    min_replicas: NonNegativeInt = 1  # ScaledObject minReplicaCount (vLLM pods)
    max_replicas: Annotated[int, Field(ge=1)] = 10  # ScaledObject maxReplicaCount
    idle_replica_count: NonNegativeInt | None = Field(
        default=None,
        description="ScaledObject idleReplicaCount (below min_replicas) while no trigger is active; null omits it",
    )
    warm_gpu_nodes: NonNegativeInt = Field(
        default=0,
        description="spare GPU nodes kept up by placeholder pods of the lowest priority, each asking for "
        "what one vLLM pod asks (GPUs, CPU, memory) and pre-pulling the vLLM image: a new vLLM pod preempts "
        "one at once and starts on a warm node while Karpenter replaces the headroom in the background. "
        "Each is a GPU node on the bill; the GPU NodePool limits must hold max_replicas + warm_gpu_nodes nodes",
    )
    polling_interval_seconds: PositiveInt = 2  # ScaledObject pollingInterval, seconds
    cooldown_period_seconds: NonNegativeInt = Field(
        default=300,
        description="ScaledObject cooldownPeriod: seconds after the last active trigger before going to idle/0",
    )
    triggers: list[ScalingTrigger] = Field(
        default_factory=_default_triggers, min_length=1,
        description="ScaledObject triggers: {name, metric_query, target_value, kind}; names are formula variables",
    )
    formula: str = Field(
        default="running + (waiting * 10) + (held * 10)",
        description="scalingModifiers.formula over trigger names (KEDA's expr-lang: + - * / ** and "
        "comparisons, c ? a : b, min/max/abs/ceil/floor/round/float/int); a held request counts as a waiting one",
    )
    target: Annotated[float, Field(gt=0)] = 25  # scalingModifiers.target: composite value per replica
    activation_target: Annotated[float, Field(ge=0)] = Field(
        default=0,
        description="scalingModifiers.activationTarget: KEDA counts the ScaledObject active while the composite "
        "is above it (takes vLLM from 0 to 1, keeps it from going to idle/0). No effect with min_replicas >= 1 "
        "and no idle_replica_count; when scaling to zero it must stay below one request's composite",
    )
    metric_type: Literal["AverageValue", "Value"] = Field(
        default="AverageValue",
        description="metricType of scalingModifiers and of every external trigger",
    )
    scale_up: HpaRules = HpaRules(  # HPA behavior.scaleUp
        stabilization_window_seconds=0,
        select_policy="Max",
        policies=[
            HpaPolicy(type="Percent", value=900, period_seconds=15),
            HpaPolicy(type="Pods", value=9, period_seconds=15),
        ],
    )
    scale_down: HpaRules = HpaRules(  # HPA behavior.scaleDown
        stabilization_window_seconds=300,
        select_policy="Max",
        policies=[HpaPolicy(type="Percent", value=50, period_seconds=60)],
    )

    @model_validator(mode="after")
    def _scaled_object(self) -> "ScalingConfig":
        # Every KEDA rule (bounds, trigger names, formula, scale to zero) is checked once, on the
        # ScaledObject the chart renders; the error names the config field.
        validate_scaling(self)
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

    key: str = Field(min_length=1)  # node label key, e.g. karpenter.k8s.aws/instance-family
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]  # selector operator
    values: list[str] = Field(default_factory=list)  # none for Exists/DoesNotExist, one integer for Gt/Lt

    @model_validator(mode="before")
    @classmethod
    def _known_operator(cls, data: object) -> object:
        # Name the key and the operator, not only the field path.
        if isinstance(data, dict) and data.get("operator") not in (None, *REQUIREMENT_OPERATORS):
            raise ValueError(
                f"requirement {data.get('key')!r}: operator {data.get('operator')!r} is not one of "
                f"{list(REQUIREMENT_OPERATORS)}"
            )
        return data

    @model_validator(mode="after")
    def _values(self) -> "NodeRequirement":
        # Catch values no instance can ever have, and operators the CRD refuses: Karpenter accepts
        # them and then loops failing to launch.
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

    capacity_types: list[str] = Field(
        default_factory=lambda: ["spot", "on-demand"], min_length=1,
        description="NodePool requirement karpenter.sh/capacity-type (spot, on-demand, reserved)",
    )
    instance_families: list[str] = Field(
        default_factory=lambda: ["g6", "g6e", "g5"], min_length=1,
        description="NodePool requirement karpenter.k8s.aws/instance-family: current NVIDIA families "
        "(L4, L40S, A10G); with karpenter.k8s.aws/instance-gpu-count = vllm.gpus_per_pod, so a "
        "1-GPU pod never lands on an 8-GPU p4d/p5",
    )
    gpu_manufacturer: str = "nvidia"  # NodePool requirement karpenter.k8s.aws/instance-gpu-manufacturer
    architectures: list[str] = Field(
        default_factory=lambda: ["amd64"], min_length=1,
        description="NodePool requirement kubernetes.io/arch",
    )
    extra_requirements: list[NodeRequirement] = Field(
        default_factory=list,
        description="more NodePool requirements {key, operator, values}, appended after the built-in ones",
    )
    limit_cpu: str = "400"  # NodePool limits.cpu: total vCPUs of the pool's nodes (a quantity)
    limit_memory: str = "1600Gi"  # NodePool limits.memory: total memory of the pool's nodes (a quantity)
    limit_gpus: PositiveInt = 40  # NodePool limits nvidia.com/gpu: total GPUs of the pool's nodes
    consolidation_policy: Literal["WhenEmpty", "WhenEmptyOrUnderutilized"] = Field(
        default="WhenEmpty", description="NodePool disruption.consolidationPolicy",
    )
    consolidate_after: str = "30s"  # NodePool disruption.consolidateAfter (Karpenter duration)
    ami_alias: str = "bottlerocket@latest"  # EC2NodeClass amiSelectorTerms alias (NVIDIA variant on GPUs)
    root_volume_gib: PositiveInt = 4  # EC2NodeClass root gp3 volume (/dev/xvda), GiB
    data_volume_gib: PositiveInt = 50  # EC2NodeClass data gp3 volume (/dev/xvdb: images, containers), GiB
    data_volume_iops: Annotated[int, Field(ge=3000, le=16000)] = 4000  # data volume gp3 IOPS
    data_volume_throughput_mibps: Annotated[int, Field(ge=125, le=1000)] = 1000  # data volume throughput, MiB/s
    soci_parallel_pull: bool = True  # Bottlerocket SOCI snapshotter, parallel-pull-unpack (EC2NodeClass userData)

    _quantities = field_validator("limit_cpu", "limit_memory")(lambda value: _check_quantity(value))

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

    capacity_types: list[str] = Field(
        default_factory=lambda: ["on-demand"], min_length=1,
        description="NodePool requirement karpenter.sh/capacity-type (spot, on-demand, reserved)",
    )
    instance_categories: list[str] = Field(
        default_factory=lambda: ["c", "m", "r"], min_length=1,
        description="NodePool requirement karpenter.k8s.aws/instance-category (EC2 families c, m, r...)",
    )
    architectures: list[str] = Field(
        default_factory=lambda: ["amd64", "arm64"], min_length=1,
        description="NodePool requirement kubernetes.io/arch",
    )
    limit_cpu: str = "64"  # NodePool limits.cpu: total vCPUs of the pool's nodes (a quantity)
    limit_memory: str = "256Gi"  # NodePool limits.memory: total memory of the pool's nodes (a quantity)
    consolidate_after: str = "60s"  # NodePool disruption.consolidateAfter (policy WhenEmptyOrUnderutilized)

    _quantities = field_validator("limit_cpu", "limit_memory")(lambda value: _check_quantity(value))

    @model_validator(mode="after")
    def _requirements(self) -> "CpuNodePoolConfig":
        NodeRequirement(key="karpenter.sh/capacity-type", operator="In", values=self.capacity_types)
        NodeRequirement(key="kubernetes.io/arch", operator="In", values=self.architectures)
        if not DURATION_RE.match(self.consolidate_after):
            raise ValueError(f"consolidate_after {self.consolidate_after!r} is not a duration like '60s'")
        return self


class KarpenterConfig(_Model):
    """Karpenter NodePools."""

    gpu: GpuNodePoolConfig = GpuNodePoolConfig()  # the vLLM pool
    cpu: CpuNodePoolConfig = CpuNodePoolConfig()  # the gateway pool


# ---------------------------------------------------------------------------------
# Gateway and edge
# ---------------------------------------------------------------------------------
class GatewayConfig(_Model):
    """The FastAPI gateway Deployment: admission control, routing, holding while vLLM is at zero.

    Defaults of the settings the gateway reads are the gateway's own
    (``services.gateway.settings.default``), not copies.
    """

    replicas: PositiveInt = 2  # gateway Deployment replicas
    max_in_flight: PositiveInt = Field(
        default=gateway_default("max_in_flight"), description="requests proxied to vLLM at once, per pod",
    )
    max_queue: NonNegativeInt = Field(
        default=gateway_default("max_queue"), description="requests waiting for an in-flight slot, per pod; beyond: 429",
    )
    queue_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=gateway_default("queue_timeout_seconds"), description="longest wait for a slot before 429, seconds",
    )
    heartbeat_interval_seconds: Annotated[float, Field(gt=0)] = Field(
        default=gateway_default("heartbeat_interval_seconds"),
        description="SSE comment heartbeat interval while a stream waits, seconds; "
        "below edge.origin_read_timeout_seconds and edge.alb_idle_timeout_seconds",
    )
    upstream_connect_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=gateway_default("connect_timeout_seconds"), description="vLLM connect timeout, seconds",
    )
    upstream_read_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=gateway_default("read_timeout_seconds"), description="read timeout between two chunks from vLLM, seconds",
    )
    max_body_bytes: PositiveInt = Field(
        default=gateway_default("max_body_bytes"), description="request body limit, bytes (413 above)",
    )
    max_held_requests: NonNegativeInt = Field(
        default=gateway_default("max_held_requests"),
        description="requests each gateway pod holds while no vLLM pod is ready (scale from zero); beyond: 503 "
        "with Retry-After",
    )
    hold_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=gateway_default("hold_timeout_seconds"),
        description="longest hold for a ready vLLM pod, seconds (streams get heartbeats meanwhile; non-streaming "
        "requests are cut at edge.origin_read_timeout_seconds anyway)",
    )
    prefix_affinity: bool = Field(
        default=gateway_default("prefix_affinity"),
        description="send requests sharing a prompt prefix to the same vLLM pod while its load stays within "
        "prefix_affinity_load_factor of the average, so vLLM's prefix cache hits; off: least outstanding requests",
    )
    prefix_affinity_chars: PositiveInt = Field(
        default=gateway_default("prefix_affinity_chars"), description="prompt characters that form the affinity key",
    )
    prefix_affinity_load_factor: Annotated[float, Field(ge=1.0)] = Field(
        default=gateway_default("prefix_affinity_load_factor"),
        description="bound of an affine pod's in-flight requests, as a multiple of the average",
    )
    api_keys_secret: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Kubernetes Secret (inference namespace, key `api-keys`, one key per line) mounted into "
        "the gateway; callers then need `Authorization: Bearer <key>`. Unset: no auth",
    )
    cpu_request: str = "500m"  # gateway container CPU request
    memory_request: str = "512Mi"  # gateway container memory request and limit


def _default_waf_rule_actions() -> dict[str, str]:
    from app_config.constants import WAF_PROMPT_BODY_RULES

    return {rule: "count" for rule in WAF_PROMPT_BODY_RULES}


# CloudFront origin timeouts, seconds. Each account may set the response (read) and keep-alive
# timeouts up to 60 s until AWS raises its quota (CloudFront Developer Guide, "Quotas" and "Response
# timeout"); a VPC origin takes at most 120 s even then (CloudFront API reference, VpcOriginConfig:
# OriginReadTimeout / OriginKeepaliveTimeout, "the maximum is 120 seconds"). The response
# completion timeout takes 1-3600 s and "must be equal to or greater than" the read timeout (API
# reference, Origin: ResponseCompletionTimeout).
CLOUDFRONT_ORIGIN_TIMEOUT_QUOTA_SECONDS = 60
CLOUDFRONT_VPC_ORIGIN_TIMEOUT_MAX_SECONDS = 120
CLOUDFRONT_RESPONSE_COMPLETION_MAX_SECONDS = 3600


DOMAIN_NAME_RE = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"  # lower-case DNS name
ACM_CERTIFICATE_ARN_RE = r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$"
CLOUDFRONT_CERTIFICATE_REGION = "us-east-1"  # CloudFront takes ACM certificates only from us-east-1


class CustomDomainConfig(_Model):
    """The distribution's own domain name instead of ``*.cloudfront.net``, served with the
    ``TLSv1.2_2021`` viewer security policy. Give a Route 53 public hosted zone (id and name: no
    lookup at synth) to get a DNS-validated certificate in us-east-1 and alias records, or an
    existing us-east-1 certificate (then point the name at the distribution yourself), or both.
    """

    name: str = Field(pattern=DOMAIN_NAME_RE, max_length=253)  # e.g. api.example.com
    hosted_zone_id: str | None = Field(default=None, pattern=r"^Z[A-Z0-9]{1,31}$")  # Route 53 public hosted zone id
    hosted_zone_name: str | None = Field(default=None, pattern=DOMAIN_NAME_RE, max_length=253)  # its name, e.g. example.com
    certificate_arn: str | None = Field(
        default=None, pattern=ACM_CERTIFICATE_ARN_RE,
        description="existing ACM certificate in us-east-1 covering name; unset: one is created (needs the hosted zone)",
    )

    @model_validator(mode="after")
    def _zone_or_certificate(self) -> "CustomDomainConfig":
        if (self.hosted_zone_id is None) != (self.hosted_zone_name is None):
            raise ValueError("hosted_zone_id and hosted_zone_name go together (the zone is not looked up at synth)")
        if self.hosted_zone_id is None and self.certificate_arn is None:
            raise ValueError(
                "give hosted_zone_id + hosted_zone_name (a DNS-validated certificate is created) or certificate_arn "
                f"(an ACM certificate in {CLOUDFRONT_CERTIFICATE_REGION})"
            )
        zone = self.hosted_zone_name
        if zone is not None and self.name != zone and not self.name.endswith(f".{zone}"):
            raise ValueError(f"name {self.name!r} is not inside hosted zone {zone!r}")
        if self.certificate_arn is not None and f":acm:{CLOUDFRONT_CERTIFICATE_REGION}:" not in self.certificate_arn:
            raise ValueError(f"certificate_arn must be in {CLOUDFRONT_CERTIFICATE_REGION}: CloudFront reads certificates only there")
        return self


class OriginTlsConfig(_Model):
    """HTTPS from CloudFront to the internal ALB: an HTTPS listener with this certificate, and
    CloudFront's VPC origin set to HTTPS only, validating the certificate against ``domain_name``."""

    certificate_arn: str = Field(pattern=ACM_CERTIFICATE_ARN_RE)  # ACM certificate in the deploy region
    domain_name: str = Field(pattern=DOMAIN_NAME_RE, max_length=253)  # a name on that certificate; must resolve to the ALB


class EdgeConfig(_Model):
    """CloudFront, WAF and the internal ALB.

    Timeouts that would fail (or mislead) only at deploy fail synth instead, naming the field:
    origin read and keep-alive timeouts within the account quota (60 s unless
    `origin_timeout_quota_raised`), a response completion timeout and an ALB idle timeout not
    below the read timeout, and the gateway's heartbeat interval below both the read and the ALB
    idle timeout (or a waiting stream is cut before its first token).
    """

    origin_timeout_quota_raised: bool = Field(
        default=False,
        description="AWS raised this account's CloudFront quotas for origin response and keep-alive "
        f"timeouts above {CLOUDFRONT_ORIGIN_TIMEOUT_QUOTA_SECONDS} s (Service Quotas, us-east-1); then both "
        f"may go up to {CLOUDFRONT_VPC_ORIGIN_TIMEOUT_MAX_SECONDS} s, a VPC origin's maximum",
    )
    origin_read_timeout_seconds: Annotated[int, Field(ge=1, le=CLOUDFRONT_VPC_ORIGIN_TIMEOUT_MAX_SECONDS)] = Field(
        default=60,
        description="CloudFront VPC-origin read (response) timeout, seconds: the longest wait between two "
        f"bytes from the origin; a non-streaming request must answer within it. 1-{CLOUDFRONT_ORIGIN_TIMEOUT_QUOTA_SECONDS}, "
        "more with origin_timeout_quota_raised",
    )
    origin_keepalive_timeout_seconds: Annotated[int, Field(ge=1, le=CLOUDFRONT_VPC_ORIGIN_TIMEOUT_MAX_SECONDS)] = Field(
        default=60,
        description=f"CloudFront VPC-origin keep-alive timeout, seconds; 1-{CLOUDFRONT_ORIGIN_TIMEOUT_QUOTA_SECONDS}, "
        "more with origin_timeout_quota_raised",
    )
    response_completion_timeout_seconds: (
        Annotated[int, Field(ge=1, le=CLOUDFRONT_RESPONSE_COMPLETION_MAX_SECONDS)] | None
    ) = Field(
        default=None,
        description="CloudFront origin response completion timeout, seconds: the longest a whole response "
        "(a stream too) may take; at least origin_read_timeout_seconds; null: not enforced",
    )
    alb_idle_timeout_seconds: Annotated[int, Field(ge=1, le=4000)] = Field(
        default=120, description="internal ALB idle timeout, seconds; at least origin_read_timeout_seconds",
    )
    waf_enabled: bool = True  # create the us-east-1 WAF web ACL and attach it to CloudFront
    waf_common_rule_actions: dict[str, Literal["count", "block"]] = Field(
        default_factory=_default_waf_rule_actions,
        description="AWSManagedRulesCommonRuleSet rule -> count (logged, not blocked) or block; unlisted rules "
        "block. Default: the five rules that inspect the request body, i.e. the prompt, count "
        "(docs/OPERATIONS.md, WAF)",
    )
    waf_rate_limit_per_5min: Annotated[int, Field(ge=10, le=2_000_000_000)] = Field(
        default=2000, description="WAF rate-based rule: requests per client IP per 5 min",
    )
    price_class: Literal["PriceClass_100", "PriceClass_200", "PriceClass_All"] = Field(
        default="PriceClass_100", description="CloudFront price class (which edge locations serve)",
    )
    custom_domain: CustomDomainConfig | None = Field(
        default=None,
        description="serve the API on your own domain (TLSv1.2_2021); unset: the distribution's *.cloudfront.net "
        "name, whose certificate CloudFront serves with its fixed TLSv1 policy (TLS 1.0-1.3)",
    )
    origin_tls: OriginTlsConfig | None = Field(
        default=None,
        description="HTTPS between CloudFront and the internal ALB; unset: HTTP inside the VPC (the hop stays on "
        "CloudFront's VPC-origin ENIs and the ALB admits nothing else)",
    )
    log_retention_days: PositiveInt = 90  # days objects stay in the edge log bucket (CloudFront + ALB logs)
    logs_removal_policy: Literal["retain", "destroy"] = Field(
        default="retain", description="edge log bucket on `cdk destroy`: leave it, or empty and delete it",
    )

    @field_validator("waf_common_rule_actions")
    @classmethod
    def _known_waf_rules(cls, value: dict[str, str]) -> dict[str, str]:
        from app_config.constants import WAF_COMMON_RULE_SET, WAF_COMMON_RULES

        unknown = sorted(set(value) - set(WAF_COMMON_RULES))
        if unknown:
            raise ValueError(f"{unknown} not a rule of {WAF_COMMON_RULE_SET}; its rules: {list(WAF_COMMON_RULES)}")
        return value

    @field_validator("origin_read_timeout_seconds", "origin_keepalive_timeout_seconds")
    @classmethod
    def _within_quota(cls, value: int, info: ValidationInfo) -> int:
        # CloudFront refuses the distribution at deploy time when a timeout exceeds the quota.
        if value > CLOUDFRONT_ORIGIN_TIMEOUT_QUOTA_SECONDS and not info.data.get("origin_timeout_quota_raised"):
            raise ValueError(
                f"{value} s is above CloudFront's default quota of {CLOUDFRONT_ORIGIN_TIMEOUT_QUOTA_SECONDS} s; "
                "have AWS raise the quota (Service Quotas, CloudFront, us-east-1), then set "
                f"edge.origin_timeout_quota_raised: true (a VPC origin allows up to "
                f"{CLOUDFRONT_VPC_ORIGIN_TIMEOUT_MAX_SECONDS} s)"
            )
        return value

    @field_validator("response_completion_timeout_seconds")
    @classmethod
    def _completion_not_below_read(cls, value: int | None, info: ValidationInfo) -> int | None:
        read = info.data.get("origin_read_timeout_seconds")
        if value is not None and read is not None and value < read:
            raise ValueError(
                f"{value} s must be >= edge.origin_read_timeout_seconds ({read} s): CloudFront refuses a "
                "response completion timeout below the read timeout"
            )
        return value

    @field_validator("alb_idle_timeout_seconds")
    @classmethod
    def _idle_not_below_read(cls, value: int, info: ValidationInfo) -> int:
        # CloudFront waits up to the read timeout for the next byte; an ALB that drops the idle
        # connection first turns that wait into a 502.
        read = info.data.get("origin_read_timeout_seconds")
        if read is not None and value < read:
            raise ValueError(
                f"{value} s must be >= edge.origin_read_timeout_seconds ({read} s): the ALB would close a "
                "connection CloudFront still waits on, and the caller would get a 502"
            )
        return value


class TeardownConfig(_Model):
    """What `cdk destroy` removes beyond CloudFormation's own resources."""

    cleanup_controller_resources: bool = Field(
        default=True,
        description="on `cdk destroy`, delete NodePools and leftover Karpenter instances, controller ALBs, ENIs",
    )
    wait_timeout_seconds: Annotated[int, Field(ge=60, le=3000)] = Field(
        default=900,
        description="how long each teardown wait may take before the delete fails listing leftovers, seconds: "
        "the controller cleanup, and the wait for CloudFront to remove its VPC-origin ENIs and security group",
    )


# ---------------------------------------------------------------------------------
# Container images
# ---------------------------------------------------------------------------------
class ImagesConfig(_Model):
    """Where the cluster pulls container images (app_config/images.py)."""

    pull_through_cache: bool = Field(
        default=True,
        description="pull Docker Hub, ECR Public and registry.k8s.io images through ECR pull-through cache "
        "rules in the deploy region (false: from the upstream registries, through the NAT gateway)",
    )
    docker_hub_secret: str = Field(
        default="ecr-pullthroughcache/docker-hub",
        pattern=r"^(arn:aws:secretsmanager:[a-z0-9-]+:\d{12}:secret:)?ecr-pullthroughcache/[A-Za-z0-9/_+=.@-]+$",
        description="Secrets Manager secret (name or ARN; the name must start with ecr-pullthroughcache/) "
        "holding {\"username\", \"accessToken\"} of a Docker Hub account: ECR's Docker Hub cache rule "
        "needs it. Create it before the first deploy (README, Deploy)",
    )


# ---------------------------------------------------------------------------------
# Simulation and cost (`qvllm simulate`; nothing here is deployed)
# ---------------------------------------------------------------------------------
_COLD = ColdStartParameters()
KARPENTER_PRICES_SOURCE = (
    "AWS Price List, as generated into Karpenter v1.14.1 pkg/providers/pricing/zz_generated.pricing_aws.go "
    "(https://github.com/aws/karpenter-provider-aws/blob/v1.14.1/pkg/providers/pricing/zz_generated.pricing_aws.go)"
)


class InstancePrice(_Model):
    """Hourly price of one EC2 instance type (Linux), with where and when it was read."""

    on_demand_usd_per_hour: Annotated[float, Field(ge=0)]  # On-Demand price, USD per instance-hour
    spot_usd_per_hour: Annotated[float, Field(ge=0)] | None = Field(
        default=None,
        description="Spot price, USD per instance-hour; unset: spot hours are priced at On-Demand (an upper "
        "bound, said in the output). Spot prices move: read yours with "
        "`aws ec2 describe-spot-price-history --instance-types TYPE --product-descriptions Linux/UNIX`",
    )
    region: str = Field(min_length=1)  # AWS region the prices are for
    as_of: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")  # date the prices were read (YYYY-MM-DD)
    source: str = Field(min_length=1)  # where the prices come from (URL or document)


def _default_prices() -> dict[str, InstancePrice]:
    on_demand = {"g5.xlarge": 1.006, "g5.2xlarge": 1.212, "g6.xlarge": 0.8048, "g6.2xlarge": 0.9776,
                 "g6e.xlarge": 1.861, "g6e.2xlarge": 2.24208}
    return {name: InstancePrice(on_demand_usd_per_hour=price, region="us-east-1", as_of="2026-07-06",
                                source=KARPENTER_PRICES_SOURCE) for name, price in on_demand.items()}


class ColdStartConfig(_Model):
    """Figures of the cold-start model (app_config/cold_start.py says where each default comes from)."""

    node_launch_seconds: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: dict(_COLD.node_launch_seconds),
        description="instance family -> seconds from a pending pod to a Ready GPU node (g5: the reference demo's 47 s)",
    )
    node_launch_default_seconds: Annotated[float, Field(ge=0)] = Field(
        default=_COLD.node_launch_default_seconds, description="node launch of families not listed, seconds",
    )
    image_bytes: Annotated[float, Field(gt=0)] = Field(
        default=_COLD.image_bytes,
        description="vLLM image size, bytes (default: the vLLM image AWS measured pulls on, 10.78 GB)",
    )
    model_gib: Annotated[float, Field(gt=0)] = Field(
        default=_COLD.model_gib, description="weights size, GiB (Mistral-7B AWQ: 3.9)",
    )
    stream_gib_per_second: Annotated[float, Field(gt=0)] = Field(
        default=_COLD.stream_gib_per_second, description="Run:ai streamer throughput from S3, GiB/s",
    )
    load_seconds_per_gib: Annotated[float, Field(ge=0)] = Field(
        default=_COLD.load_seconds_per_gib, description="weights to GPU memory, seconds per GiB",
    )
    compile_hit_seconds: Annotated[float, Field(ge=0)] = Field(
        default=_COLD.compile_hit_seconds, description="torch.compile with a compile-cache hit, seconds",
    )
    compile_miss_seconds: Annotated[float, Field(ge=0)] = Field(
        default=_COLD.compile_miss_seconds, description="torch.compile without a cache hit, seconds",
    )
    cuda_graphs_seconds: Annotated[float, Field(ge=0)] = Field(
        default=_COLD.cuda_graphs_seconds, description="CUDA-graph capture, seconds",
    )
    engine_init_seconds: Annotated[float, Field(ge=0)] = Field(
        default=_COLD.engine_init_seconds, description="KV cache, warm-up and API server start, seconds",
    )

    def parameters(self) -> ColdStartParameters:
        """These figures as the model's :class:`~app_config.cold_start.ColdStartParameters`."""
        return ColdStartParameters(
            node_launch_seconds=dict(self.node_launch_seconds),
            node_launch_default_seconds=self.node_launch_default_seconds,
            image_bytes=self.image_bytes,
            model_gib=self.model_gib,
            stream_gib_per_second=self.stream_gib_per_second,
            load_seconds_per_gib=self.load_seconds_per_gib,
            compile_hit_seconds=self.compile_hit_seconds,
            compile_miss_seconds=self.compile_miss_seconds,
            cuda_graphs_seconds=self.cuda_graphs_seconds,
            engine_init_seconds=self.engine_init_seconds,
        )


class EngineServiceConfig(_Model):
    """One vLLM replica's service curve (qvllm/simulate/engine.py): with n sequences running,
    TTFT = ttft_base + ttft_per_running * n + prefill_per_token * prompt tokens, and each running
    sequence gets a token every itl_base + itl_per_running * n seconds; at most vllm.max_num_seqs
    run, the rest wait. `qvllm simulate --calibrate` measures these on an engine.

    Defaults: a public vLLM sweep of Mistral-7B on one RTX 4090 (256 -> 128 tokens: 53 ms TTFT and
    52 tokens/s per stream at 4 concurrent, 277 ms and 30 tokens/s at 32), not a measurement of the
    cloud GPU: calibrate yours."""

    ttft_base_seconds: Annotated[float, Field(ge=0)] = 0.021  # TTFT of a lone request, seconds
    ttft_per_running_seconds: Annotated[float, Field(ge=0)] = 0.008  # TTFT added per running sequence, seconds
    prefill_seconds_per_token: Annotated[float, Field(ge=0)] = 0.0  # TTFT added per prompt token, seconds
    itl_base_seconds: Annotated[float, Field(gt=0)] = 0.017  # inter-token latency of a lone sequence, seconds
    itl_per_running_seconds: Annotated[float, Field(ge=0)] = 0.0005  # inter-token latency added per running sequence
    ttft_cv: Annotated[float, Field(ge=0, le=3)] = Field(
        default=0.0,
        description="coefficient of variation of a request's TTFT at a given concurrency (a calibration measures "
        "it); 0: every request's first token takes the curve's time exactly. Decoding does not vary: each running "
        "sequence gets one token per engine step",
    )
    source: str = Field(
        default="https://mushfiqrahman.dev/benchmarking-mistral-7b-on-rtx-4090-vllm-concurrency-latency-and-capacity-planning/",
        description="where the curve comes from (a calibration writes its engine and date here)",
    )


class SimulationConfig(_Model):
    """What `qvllm simulate` needs beyond the deployed settings: the GPU instance type, spot share,
    TTFT objective, price table, cold-start figures and engine service curve."""

    instance_type: str = Field(
        default="g5.xlarge",
        description="GPU instance type Karpenter launches per vLLM pod (one pod per node); the reference demo ran g5",
    )
    spot_share: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None,
        description="share of GPU nodes launched as spot; unset: 1 when karpenter.gpu.capacity_types allows spot "
        "(Karpenter prefers spot), else 0. Spot interruptions are not modeled",
    )
    slo_ttft_seconds: Annotated[float, Field(gt=0)] = Field(
        default=2.0, description="TTFT objective: a request over it (or rejected) counts as an SLO miss, seconds",
    )
    prices: dict[str, InstancePrice] = Field(
        default_factory=_default_prices,
        description="instance type -> {on_demand_usd_per_hour, spot_usd_per_hour, region, as_of, source}",
    )
    cold_start: ColdStartConfig = ColdStartConfig()
    engine: EngineServiceConfig = EngineServiceConfig()

    @model_validator(mode="after")
    def _priced(self) -> "SimulationConfig":
        if self.instance_type not in self.prices:
            raise ValueError(
                f"simulation.prices has no entry for simulation.instance_type {self.instance_type!r} "
                f"(priced: {sorted(self.prices)})"
            )
        return self


# ---------------------------------------------------------------------------------
# Root
# ---------------------------------------------------------------------------------
def field_error(loc: tuple[str, ...], value: Any, message: str) -> ValidationError:
    """A validation error located at ``loc`` (the field's path from the root), for a rule of the
    root model that spans sections: a plain ``ValueError`` there would be reported at ``<root>``."""
    return ValidationError.from_exception_data(
        "AppConfig",
        [InitErrorDetails(type=PydanticCustomError("cross_field", "{message}", {"message": message}), loc=loc, input=value)],
    )


class AppConfig(_Model):
    """The whole app's configuration. Every field has a default; override in YAML or context."""

    project_name: str = Field(
        default="qvllm", pattern=r"^[a-z][a-z0-9-]{1,20}$",
        description="prefix of stack and WAF names, qvllm:project tag value, default cluster name",
    )
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
    images: ImagesConfig = ImagesConfig()
    simulation: SimulationConfig = SimulationConfig()  # `qvllm simulate` only: prices, cold start, engine curve

    @model_validator(mode="after")
    def _service_range_outside_vpc(self) -> "AppConfig":
        service, vpc = ipaddress.ip_network(self.cluster.service_ipv4_cidr), ipaddress.ip_network(self.network.vpc_cidr)
        if service.overlaps(vpc):
            raise field_error(
                ("cluster", "service_ipv4_cidr"),
                self.cluster.service_ipv4_cidr,
                f"{service} overlaps network.vpc_cidr {vpc}: Service addresses must not be VPC addresses",
            )
        return self

    @model_validator(mode="after")
    def _cache_prefixes_fit(self) -> "AppConfig":
        if self.images.pull_through_cache:
            longest = max((cache_prefix(self.project_name, u) for u in CACHE_UPSTREAMS), key=len)
            if len(longest) > ECR_REPOSITORY_PREFIX_MAX:
                raise field_error(
                    ("project_name",),
                    self.project_name,
                    f"{self.project_name!r} makes the ECR pull-through cache prefix {longest!r} longer than "
                    f"{ECR_REPOSITORY_PREFIX_MAX} characters (the ECR API limit); shorten project_name or set "
                    "images.pull_through_cache: false",
                )
        return self

    @property
    def vllm_startup_budget_seconds(self) -> int:
        """vLLM's startup probe budget, seconds: ``vllm.startup_timeout_seconds``, or the modeled worst
        case with margin (:func:`app_config.startup_budget.startup_budget_seconds`) for weights as large
        as the smallest GPU the GPU NodePool may launch holds, and the pod's CUDA-graph capture sizes."""
        if self.vllm.startup_timeout_seconds is not None:
            return self.vllm.startup_timeout_seconds
        return startup_budget_seconds(
            weights_bound_gib(self.karpenter.gpu.instance_families),
            self.vllm.gpu_memory_utilization,
            len(self.vllm.capture_sizes),
        )

    @model_validator(mode="after")
    def _gpu_pool_holds_max_replicas(self) -> "AppConfig":
        # The GPU NodePool's limits must leave room for scaling.max_replicas vLLM nodes of the
        # smallest type it may launch (one pod per node: the node has exactly the pod's GPUs),
        # or Karpenter stops launching below max_replicas and pods stay Pending; plus the
        # warm headroom's nodes, which count against the same limits (a replacement placeholder
        # that the limits refuse leaves no headroom near max_replicas).
        gpu, gpus = self.karpenter.gpu, self.vllm.gpus_per_pod
        families = [f for f in gpu.instance_families if f in known_families()]
        if not families:
            return self  # no data on these families: nothing to check against
        smallest = smallest_instance(families, gpus)
        if smallest is None:
            raise field_error(
                ("karpenter", "gpu", "instance_families"),
                gpu.instance_families,
                f"no instance type of {gpu.instance_families} has exactly {gpus} GPUs (vllm.gpus_per_pod)",
            )
        replicas = self.scaling.max_replicas + self.scaling.warm_gpu_nodes
        nodes = f"scaling.max_replicas ({self.scaling.max_replicas})"
        if self.scaling.warm_gpu_nodes:
            nodes += f" + scaling.warm_gpu_nodes ({self.scaling.warm_gpu_nodes}) = {replicas}"
        needed = {
            "limit_cpu": (replicas * smallest.vcpu, parse_quantity(gpu.limit_cpu), f"{smallest.vcpu} vCPU"),
            "limit_memory": (
                replicas * smallest.memory_gib * 2**30, parse_quantity(gpu.limit_memory), f"{smallest.memory_gib}Gi"
            ),
            "limit_gpus": (replicas * smallest.gpus, gpu.limit_gpus, f"{smallest.gpus} GPU"),
        }
        for field_name, (need, have, each) in needed.items():
            if have < need:
                raise field_error(
                    ("karpenter", "gpu", field_name),
                    getattr(gpu, field_name),
                    f"{getattr(gpu, field_name)} cannot hold {nodes} nodes of the "
                    f"smallest allowed GPU instance {smallest.name} ({each} each)",
                )
        return self

    @model_validator(mode="after")
    def _heartbeat_below_timeouts(self) -> "AppConfig":
        limit = min(self.edge.origin_read_timeout_seconds, self.edge.alb_idle_timeout_seconds)
        if self.gateway.heartbeat_interval_seconds >= limit:
            raise field_error(
                ("gateway", "heartbeat_interval_seconds"),
                self.gateway.heartbeat_interval_seconds,
                f"{self.gateway.heartbeat_interval_seconds} s must be below the edge's idle timeouts (min of "
                f"edge.origin_read_timeout_seconds and edge.alb_idle_timeout_seconds = {limit} s), or a waiting "
                "stream is cut before its first token",
            )
        return self

    @property
    def cluster_name(self) -> str:
        """EKS cluster name: ``cluster.name`` or ``<project_name>``."""
        return self.cluster.name or self.project_name

    @property
    def upload_allow_patterns(self) -> list[str]:
        """``model.allow_patterns``, plus the model's Python code when ``vllm.extra_args`` trusts it."""
        patterns = list(self.model.allow_patterns)
        if any(arg in TRUST_REMOTE_CODE_FLAGS for arg in self.vllm.extra_args):
            patterns += [p for p in REMOTE_CODE_PATTERNS if p not in patterns]
        return patterns
