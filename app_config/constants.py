"""Names, ports and labels shared by stacks, constructs, charts, services and tools.

Each value is defined here once and imported everywhere else, so a port or a label
cannot drift between the Service, the probe, the collector's scrape config and the
ScaledObject query.
"""

from __future__ import annotations

# --- Kubernetes namespaces -------------------------------------------------------
INFERENCE_NAMESPACE = "inference"  # vLLM, gateway, OTel collector, ScaledObject
KARPENTER_NAMESPACE = "karpenter"
KEDA_NAMESPACE = "keda"
KUBE_SYSTEM_NAMESPACE = "kube-system"

# --- vLLM -------------------------------------------------------------------------
VLLM_APP_LABEL = "vllm"  # pods carry app=vllm; the collector scrapes that label
VLLM_NAME = "vllm"  # Deployment, Service and ServiceAccount name
VLLM_PORT = 8000  # OpenAI API; vLLM also serves /metrics here (no separate metrics port)
VLLM_HEALTH_PATH = "/health"
VLLM_METRICS_PATH = "/metrics"
# Probe periods of the vLLM container: the chart renders them, the cold-start model's readiness
# phase (app_config/cold_start.py) is made of them.
VLLM_STARTUP_PROBE_PERIOD_SECONDS = 10
VLLM_READINESS_PROBE_PERIOD_SECONDS = 5
# vLLM's --shutdown-timeout flag: seconds the API server lets in-flight requests finish after SIGTERM
# ("drain"). vLLM 0.32's default, 0, is "abort" (vllm/entrypoints/launchers/launcher.py,
# handle_shutdown; https://github.com/vllm-project/vllm/pull/36666): measured here, a stream in
# flight at SIGTERM stopped mid-answer and hung, neither ended nor closed, until the client gave up
# 60 s later; with 20 it ran to [DONE].
VLLM_SHUTDOWN_TIMEOUT_FLAG = "--shutdown-timeout"
# After its drain vLLM still stops its engine core and frees the GPU before it exits: measured 7 s
# here (CPU engine, SmolLM2: SIGTERM, a 5.7-s drain, gone 13 s after the signal). The pod's grace
# keeps this much beyond the preStop sleep and the drain, so SIGKILL does not cut that teardown.
VLLM_EXIT_MARGIN_SECONDS = 15

# vLLM Prometheus metric names, as vLLM exposes them (colons included).
# `vllm:gpu_cache_usage_perc` is no longer emitted by vLLM: never reference it.
METRIC_RUNNING = "vllm:num_requests_running"
METRIC_WAITING = "vllm:num_requests_waiting"
METRIC_KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
METRIC_KV_CACHE_USAGE_LEGACY = "vllm:gpu_cache_usage_perc"

# --- Gateway ----------------------------------------------------------------------
# Port, paths and metric names are the gateway's contract (services/gateway/contract.py),
# re-exported here for the stacks, charts and tools.
from services.gateway.contract import HEALTH_PATH as GATEWAY_HEALTH_PATH  # noqa: E402
from services.gateway.contract import HELD_REQUESTS_METRIC as GATEWAY_HELD_REQUESTS_METRIC  # noqa: E402,F401
from services.gateway.contract import METRICS_PATH as GATEWAY_METRICS_PATH  # noqa: E402,F401
from services.gateway.contract import PORT as GATEWAY_PORT  # noqa: E402,F401
from services.gateway.contract import READY_PATH as GATEWAY_READY_PATH  # noqa: E402,F401
from services.gateway.contract import UPSTREAM_HEADER as GATEWAY_UPSTREAM_HEADER  # noqa: E402,F401

GATEWAY_APP_LABEL = "gateway"
GATEWAY_NAME = "gateway"

# --- OpenTelemetry collector and the Kedify OTel scaler add-on ----------------------
OTEL_COLLECTOR_NAME = "otel-collector"
OTEL_COLLECTOR_PROMETHEUS_PORT = 8889  # Prometheus exporter, read by the dashboard
OTEL_ADDON_NAME = "keda-otel-scaler"  # Helm release name = Service name of the add-on
OTEL_ADDON_OTLP_GRPC_PORT = 4317  # OTLP gRPC in (from our collector)
OTEL_ADDON_SCALER_PORT = 4318  # KEDA external scaler gRPC (from KEDA)

# ScaledObject trigger types (the chart renders them; `qvllm scale-math` and the dashboard read them).
EXTERNAL_TRIGGER_TYPE = "external"  # upstream KEDA external scaler (gRPC)
KEDIFY_OTEL_TRIGGER_TYPE = "kedify-otel"  # Kedify's build of KEDA
RESOURCE_TRIGGER_TYPES = frozenset({"cpu", "memory"})  # KEDA refuses them as formula variables
OTEL_SCRAPE_INTERVAL_SECONDS = 5

# Labels the collector's relabel rules put on every scraped series (they reach the add-on as
# data-point attributes); the ScaledObject's trigger queries filter on them, so a series of the
# same name from another namespace or Deployment is not summed in.
SERIES_NAMESPACE_LABEL = "namespace"
SERIES_DEPLOYMENT_LABEL = "deployment"
SERIES_POD_LABEL = "pod"

# --- Karpenter --------------------------------------------------------------------
GPU_NODEPOOL_NAME = "gpu"
CPU_NODEPOOL_NAME = "cpu"
GPU_NODECLASS_NAME = "gpu"
CPU_NODECLASS_NAME = "cpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_RESOURCE = "nvidia.com/gpu"
SYSTEM_TAINT_KEY = "CriticalAddonsOnly"
SYSTEM_TAINT_VALUE = "true"
KARPENTER_DISCOVERY_TAG = "karpenter.sh/discovery"  # subnets and security groups; value = cluster name
KARPENTER_SERVICE_ACCOUNT = "karpenter"  # created by the karpenter chart; bound by Pod Identity

# --- Warm GPU headroom (scaling.warm_gpu_nodes) --------------------------------------
WARM_HEADROOM_NAME = "gpu-headroom"  # PriorityClass, Deployment and app label of the placeholder pods
# Below 0, the priority of every pod without a priority class (vLLM's and the gateway's), so any of
# them preempts a placeholder; kube-scheduler preempts only pods of strictly lower priority.
WARM_HEADROOM_PRIORITY = -100

# --- vLLM compile cache (vllm.compile_cache) -----------------------------------------
# VLLM_CACHE_ROOT, set on the pod: vLLM 0.32 keeps its torch.compile artifacts (the AOT-compiled
# functions and their Inductor/Triton caches) under <VLLM_CACHE_ROOT>/torch_compile_cache
# (vllm/compilation/backends.py and decorators.py); other entries of the root are host-specific
# (e.g. gpu_p2p_access_cache_for_*.json) and stay on the pod's own disk.
VLLM_CACHE_ROOT = "/var/cache/vllm"
VLLM_COMPILE_CACHE_DIR = "torch_compile_cache"
COMPILE_CACHE_NAME = "vllm-compile-cache"  # StorageClass, PersistentVolume and PersistentVolumeClaim
EFS_CSI_DRIVER = "efs.csi.aws.com"  # CSI driver name of the Amazon EFS CSI driver

# --- System node group (controllers run here) ---------------------------------------
# Label on the managed system node group; controllers select it and tolerate SYSTEM_TAINT_KEY.
SYSTEM_NODE_LABEL_KEY = "qvllm.io/node-role"
SYSTEM_NODE_LABEL_VALUE = "system"

# --- AWS Load Balancer Controller ---------------------------------------------------
AWS_LOAD_BALANCER_CONTROLLER_NAME = "aws-load-balancer-controller"  # release + ServiceAccount (kube-system)

# --- S3 layout --------------------------------------------------------------------
# The model upload's contract (services/model_upload/contract.py), re-exported here for the
# stacks, charts and tools: s3://<bucket>/models/<name>/, and the manifest written last.
from services.model_upload.contract import COMPLETION_MANIFEST, MODELS_PREFIX  # noqa: E402,F401

# --- Tags -------------------------------------------------------------------------
PROJECT_TAG_KEY = "qvllm:project"

# --- Edge (CloudFront -> internal ALB) --------------------------------------------
ALB_LISTENER_PORT = 80  # HTTP listener of the internal ALB; CloudFront's VPC origin dials it privately
ALB_HTTPS_LISTENER_PORT = 443  # its HTTPS listener instead, with edge.origin_tls
# Security group CloudFront creates in the VPC for its VPC-origin ENIs (AWS CloudFront Developer
# Guide, "Restrict access with VPC origins"; its id is not a CloudFormation attribute).
CLOUDFRONT_VPC_ORIGINS_SG_NAME = "CloudFront-VPCOrigins-Service-SG"
# Tag on that group and on the VPC-origin ENIs: CloudFront's service-linked role may create them
# only with it and delete only what carries it (CloudFront Developer Guide, "Use service-linked
# roles for CloudFront", VPC Origins).
CLOUDFRONT_VPC_ORIGIN_TAG = ("aws.cloudfront.vpcorigin", "enabled")
# Rules of the AWS managed core rule set (CRS), in the documented order (AWS WAF Developer Guide,
# "Baseline rule groups", Core rule set:
# https://docs.aws.amazon.com/waf/latest/developerguide/aws-managed-rule-groups-baseline.html).
WAF_COMMON_RULE_SET = "AWSManagedRulesCommonRuleSet"
WAF_COMMON_RULES = (
    "NoUserAgent_HEADER", "UserAgent_BadBots_HEADER", "SizeRestrictions_QUERYSTRING",
    "SizeRestrictions_Cookie_HEADER", "SizeRestrictions_BODY", "SizeRestrictions_URIPATH",
    "EC2MetaDataSSRF_BODY", "EC2MetaDataSSRF_COOKIE", "EC2MetaDataSSRF_URIPATH", "EC2MetaDataSSRF_QUERYARGUMENTS",
    "GenericLFI_QUERYARGUMENTS", "GenericLFI_URIPATH", "GenericLFI_BODY",
    "RestrictedExtensions_URIPATH", "RestrictedExtensions_QUERYARGUMENTS",
    "GenericRFI_QUERYARGUMENTS", "GenericRFI_BODY", "GenericRFI_URIPATH",
    "CrossSiteScripting_COOKIE", "CrossSiteScripting_QUERYARGUMENTS", "CrossSiteScripting_BODY",
    "CrossSiteScripting_URIPATH",
)
# The CRS rules that inspect the request body. On this API the body is the prompt (JSON), so
# they match ordinary prompts: one over 8 KB (SizeRestrictions_BODY), code with HTML/JS
# (CrossSiteScripting_BODY), file paths with ../ (GenericLFI_BODY), URLs with an IPv4 host
# (GenericRFI_BODY), a question about 169.254.169.254 (EC2MetaDataSSRF_BODY). Nothing here renders,
# opens or fetches what a prompt contains, so they count by default (edge.waf_common_rule_actions).
WAF_PROMPT_BODY_RULES = (
    "SizeRestrictions_BODY", "CrossSiteScripting_BODY", "GenericLFI_BODY", "GenericRFI_BODY", "EC2MetaDataSSRF_BODY",
)
EDGE_LOG_PREFIX_CLOUDFRONT = "cloudfront/"  # standard (legacy) access logs of the distribution
EDGE_LOG_PREFIX_ALB = "alb"  # ALB access logs (ELB appends /AWSLogs/<account>/...)

# --- OpenTelemetry collector -------------------------------------------------------
OTEL_COLLECTOR_HEALTH_PORT = 13133  # health_check extension (collector's documented default)
OTEL_COLLECTOR_CONFIG_KEY = "config.yaml"  # key in the collector ConfigMap, mounted as a file


# --- In-cluster addresses -------------------------------------------------------------
def service_host(name: str, namespace: str) -> str:
    """Cluster DNS name of a Service: ``<name>.<namespace>.svc.cluster.local``."""
    return f"{name}.{namespace}.svc.cluster.local"


def addon_scaler_address(addon_service: str = OTEL_ADDON_NAME, addon_namespace: str = KEDA_NAMESPACE) -> str:
    """``host:port`` of the OTel scaler add-on's KEDA external-scaler gRPC endpoint (:4318)."""
    return f"{service_host(addon_service, addon_namespace)}:{OTEL_ADDON_SCALER_PORT}"


def addon_otlp_address(addon_service: str = OTEL_ADDON_NAME, addon_namespace: str = KEDA_NAMESPACE) -> str:
    """``host:port`` of the OTel scaler add-on's OTLP gRPC receiver (:4317)."""
    return f"{service_host(addon_service, addon_namespace)}:{OTEL_ADDON_OTLP_GRPC_PORT}"
