"""vLLM on the GPU NodePool: ServiceAccount, Deployment, Service and PodDisruptionBudget.

The Deployment has no ``replicas`` field: KEDA's HPA owns the replica count, and a
``replicas`` in the manifest would reset it on every apply. Weights stream from S3 with the
Run:ai streamer using the pod's own Pod Identity role (the node role cannot read the bucket).
Values: the reference demo's (args, probes, /dev/shm).

Pod security: the pod meets the ``restricted`` Pod Security Standard and more: it runs as UID
10001 (the image declares no user, so the UID is set here), with a read-only root filesystem,
no capabilities, no privilege escalation and the runtime's default seccomp profile. What vLLM
writes goes to three volumes, :data:`WRITABLE_PATHS`: a home folder (``HOME``, and the caches
under it: vLLM's torch.compile and model-streamer files, Triton and FlashInfer kernels, Hugging
Face files), ``/tmp`` (``TMPDIR``: torch inductor, vLLM's IPC sockets) and ``/dev/shm`` (NCCL and
the engine's shared memory). ``USER`` is set because the UID has no entry in the image's
``/etc/passwd`` and Python's ``getpass.getuser()`` (torch's inductor cache names) reads it
first. tests/charts/test_vllm_nonroot.py runs the CPU engine as that UID with the same variables
and only these paths writable, streaming the model from S3 as the pod does. The one part of
``restricted`` hardening left to the node is the GPU: the NVIDIA device plugin hands the device
to the container without any capability or privilege.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cdk8s_plus_35 import k8s
from constructs import Construct

from app_config.constants import (
    COMPILE_CACHE_NAME,
    GPU_NODEPOOL_NAME,
    GPU_RESOURCE,
    GPU_TAINT_KEY,
    INFERENCE_NAMESPACE,
    VLLM_APP_LABEL,
    VLLM_CACHE_ROOT,
    VLLM_COMPILE_CACHE_DIR,
    VLLM_HEALTH_PATH,
    VLLM_NAME,
    VLLM_PORT,
    VLLM_READINESS_PROBE_PERIOD_SECONDS,
    VLLM_SHUTDOWN_TIMEOUT_FLAG,
    VLLM_STARTUP_PROBE_PERIOD_SECONDS,
)
from app_config.model import ModelConfig, VllmConfig
from app_config.quantity import parse_quantity
from k8s_charts.common import (
    NODEPOOL_LABEL_KEY,
    TMP_PATH,
    TMP_VOLUME,
    QvllmChart,
    cluster_ip_service,
    common_labels,
    deployment,
    empty_dir,
    http_get_probe,
    object_meta,
    pod_disruption_budget,
    quantities,
    restricted_container_security_context,
    restricted_pod_security_context,
    selector_labels,
    skip_annotations,
    unresolved_digest_skip,
    tcp_container_port,
)

CONTAINER_NAME = "vllm"
PORT_NAME = "http"
SHM_VOLUME = "dshm"
SHM_PATH = "/dev/shm"
COMPILE_CACHE_VOLUME = "compile-cache"
CACHE_ROOT_VOLUME = "vllm-cache"
COMPILE_CACHE_PATH = f"{VLLM_CACHE_ROOT}/{VLLM_COMPILE_CACHE_DIR}"  # where vLLM 0.32 keeps torch.compile artifacts
STARTUP_PERIOD_SECONDS = VLLM_STARTUP_PROBE_PERIOD_SECONDS
READINESS_PERIOD_SECONDS = VLLM_READINESS_PROBE_PERIOD_SECONDS
LIVENESS_PERIOD_SECONDS = 15
LIVENESS_FAILURE_THRESHOLD = 4  # 60 s of failed /health before a restart
HOME_VOLUME = "home"
HOME_PATH = "/home/vllm"
# Every path vLLM may write to in the pod (volume name -> mount path); all else is read-only.
WRITABLE_PATHS: dict[str, str] = {SHM_VOLUME: SHM_PATH, HOME_VOLUME: HOME_PATH, TMP_VOLUME: TMP_PATH}
HOME_SIZE_LIMIT = "10Gi"  # compile and kernel caches
TMP_SIZE_LIMIT = "2Gi"


def writable_env(home: str = HOME_PATH, tmp: str = TMP_PATH) -> dict[str, str]:
    """Environment that points every cache vLLM and its libraries write at ``home`` or ``tmp``.

    ``HF_HOME`` and the XDG variables are set explicitly (not only ``HOME``) so that an image
    default for them cannot point into the read-only root filesystem.
    """
    return {
        "HOME": home,
        "USER": "vllm",
        "TMPDIR": tmp,
        "XDG_CACHE_HOME": f"{home}/.cache",
        "XDG_CONFIG_HOME": f"{home}/.config",
        "HF_HOME": f"{home}/.cache/huggingface",
    }


def scanner_skips(image: str) -> dict[str, str]:
    """Reasons for the checkov findings the vLLM Deployment keeps (object annotations)."""
    skips = {
        "CKV_K8S_11": "No CPU limit on purpose: CFS quota throttling would stall the engine's scheduler and "
        "detokenizer between GPU steps and raise ITL; the request reserves the CPUs and the pod owns its GPU node",
        "CKV_K8S_15": "IfNotPresent on purpose: the image is pinned to a release (and its digest once resolved), so Always would only add a registry round "
        "trip to every GPU pod start (slower scale-out) without changing what runs",
    }
    skips |= unresolved_digest_skip(image)
    return skips


def vllm_args(vllm: VllmConfig, model: ModelConfig, model_uri: str) -> list[str]:
    """The ``vllm serve`` arguments (the image's entrypoint is ``vllm serve``).

    The model, first and positional, is the S3 URI the Run:ai streamer reads (vLLM 0.32 deprecates
    ``vllm serve --model``); ``--served-model-name`` is what clients send. Other flags come from
    ``config.vllm`` (the reference demo's values; ``--cudagraph-capture-sizes`` from
    :attr:`~app_config.model.VllmConfig.capture_sizes`), then ``extra_args``.
    """
    args = [
        model_uri,
        "--served-model-name", model.served_model_name,
        "--host", "0.0.0.0",
        "--port", str(VLLM_PORT),
        "--load-format", vllm.load_format,
    ]
    if vllm.quantization:
        args += ["--quantization", vllm.quantization]
    args += [
        "--max-model-len", str(vllm.max_model_len),
        "--max-num-seqs", str(vllm.max_num_seqs),
        "--gpu-memory-utilization", f"{vllm.gpu_memory_utilization:g}",
    ]
    if vllm.gpus_per_pod > 1:
        args += ["--tensor-parallel-size", str(vllm.gpus_per_pod)]
    # CUDA graphs only for the batch sizes a pod can run (max_num_seqs): fewer graphs to capture at start.
    args += ["--cudagraph-capture-sizes", *(str(size) for size in vllm.capture_sizes)]
    # Drain, not abort, at SIGTERM (scale-in, a node's drain): vLLM's default aborts (see the flag's owner).
    args += [VLLM_SHUTDOWN_TIMEOUT_FLAG, str(vllm.shutdown_timeout_seconds)]
    return args + list(vllm.extra_args)


def gpu_node_selector() -> dict[str, str]:
    """``nodeSelector`` of a pod that runs on the GPU NodePool's nodes (the label Karpenter puts on them)."""
    return {NODEPOOL_LABEL_KEY: GPU_NODEPOOL_NAME}


def gpu_tolerations() -> list[k8s.Toleration]:
    """``tolerations`` of a pod on the GPU NodePool: its ``nvidia.com/gpu`` NoSchedule taint."""
    return [k8s.Toleration(key=GPU_TAINT_KEY, operator="Exists", effect="NoSchedule")]


def vllm_requests(vllm: VllmConfig) -> dict[str, str]:
    """What one vLLM pod asks for: CPU, memory and its GPUs (the warm headroom asks for the same)."""
    return {"cpu": vllm.cpu_request, "memory": vllm.memory_request, GPU_RESOURCE: str(vllm.gpus_per_pod)}


@dataclass(frozen=True)
class VllmProps:
    """Props of :class:`VllmChart`.

    Attributes:
        vllm: the ``vllm`` config section (image, args, resources, probes, grace period).
        model: the ``model`` config section (served model name).
        model_uri: ``s3://<bucket>/models/<name>/`` (may be a CDK token).
        region: AWS region for the S3 client (``AWS_REGION``; may be a token).
        startup_budget_seconds: how long the startup probe lets vLLM start, seconds
            (``AppConfig.vllm_startup_budget_seconds``).
        service_account_name: ServiceAccount bound to the model-reader role by Pod Identity.
        namespace: namespace of every object in the chart.
    """

    vllm: VllmConfig
    model: ModelConfig
    model_uri: str
    region: str
    startup_budget_seconds: int
    service_account_name: str = VLLM_NAME
    namespace: str = INFERENCE_NAMESPACE


class VllmChart(QvllmChart):
    """ServiceAccount, Deployment (no replicas), Service :8000 and PDB (maxUnavailable 1) of vLLM."""

    def __init__(self, scope: Construct, id: str, props: VllmProps) -> None:
        super().__init__(scope, id)
        ns = props.namespace
        labels = common_labels(VLLM_APP_LABEL)
        selector = selector_labels(VLLM_APP_LABEL)
        vllm = props.vllm

        k8s.KubeServiceAccount(
            self, "service-account", metadata=object_meta(props.service_account_name, labels, ns)
        )

        volume_mounts = [k8s.VolumeMount(name=name, mount_path=path) for name, path in WRITABLE_PATHS.items()]
        volumes = [
            empty_dir(SHM_VOLUME, medium="Memory", size_limit=vllm.shm_size),
            empty_dir(HOME_VOLUME, size_limit=HOME_SIZE_LIMIT),
            empty_dir(TMP_VOLUME, size_limit=TMP_SIZE_LIMIT),
        ]
        cache_env = []
        if vllm.compile_cache.enabled:
            # The shared compile cache: only vLLM's torch.compile directory is on EFS; the rest of
            # VLLM_CACHE_ROOT holds host-specific entries and stays on the pod's disk. vLLM leaves
            # VLLM_CACHE_ROOT out of its compile cache key (envs.compile_factors), so every pod
            # computes the same key wherever the root is.
            cache_env = [k8s.EnvVar(name="VLLM_CACHE_ROOT", value=VLLM_CACHE_ROOT)]
            # The root filesystem is read-only: VLLM_CACHE_ROOT is pod scratch (an emptyDir), and
            # the shared compile directory is mounted inside it.
            volume_mounts.append(k8s.VolumeMount(name=CACHE_ROOT_VOLUME, mount_path=VLLM_CACHE_ROOT))
            volumes.append(empty_dir(CACHE_ROOT_VOLUME, size_limit=HOME_SIZE_LIMIT))
            volume_mounts.append(k8s.VolumeMount(name=COMPILE_CACHE_VOLUME, mount_path=COMPILE_CACHE_PATH))
            volumes.append(
                k8s.Volume(
                    name=COMPILE_CACHE_VOLUME,
                    persistent_volume_claim=k8s.PersistentVolumeClaimVolumeSource(claim_name=COMPILE_CACHE_NAME),
                )
            )
        container = k8s.Container(
            name=CONTAINER_NAME,
            image=vllm.image,
            args=vllm_args(vllm, props.model, props.model_uri),
            env=[
                *(k8s.EnvVar(name=k, value=v) for k, v in writable_env().items()),
                *cache_env,
                k8s.EnvVar(name="AWS_REGION", value=props.region),
                k8s.EnvVar(name="AWS_DEFAULT_REGION", value=props.region),
                k8s.EnvVar(name="RUNAI_STREAMER_CONCURRENCY", value=str(vllm.streamer_concurrency)),
                # Bytes; kept below the pod's memory limit by config validation (the streamer's own
                # default buffer, 40 GB, would get the pod OOM-killed while weights load).
                k8s.EnvVar(
                    name="RUNAI_STREAMER_MEMORY_LIMIT", value=str(int(parse_quantity(vllm.streamer_memory_limit)))
                ),
            ],
            ports=[tcp_container_port(PORT_NAME, VLLM_PORT)],
            resources=k8s.ResourceRequirements(
                requests=quantities(vllm_requests(vllm)),
                limits=quantities({"memory": vllm.memory_request, GPU_RESOURCE: str(vllm.gpus_per_pod)}),
            ),
            startup_probe=http_get_probe(
                VLLM_HEALTH_PATH,
                PORT_NAME,
                period_seconds=STARTUP_PERIOD_SECONDS,
                failure_threshold=math.ceil(props.startup_budget_seconds / STARTUP_PERIOD_SECONDS),
                timeout_seconds=5,
            ),
            readiness_probe=http_get_probe(
                VLLM_HEALTH_PATH, PORT_NAME, period_seconds=READINESS_PERIOD_SECONDS, failure_threshold=3, timeout_seconds=3
            ),
            liveness_probe=http_get_probe(
                VLLM_HEALTH_PATH,
                PORT_NAME,
                period_seconds=LIVENESS_PERIOD_SECONDS,
                failure_threshold=LIVENESS_FAILURE_THRESHOLD,
                timeout_seconds=5,
            ),
            # Endpoints drop the pod first; the sleep lets the gateway stop sending before
            # SIGTERM, then vLLM drains in-flight requests (--shutdown-timeout) within the grace period.
            lifecycle=k8s.Lifecycle(
                pre_stop=k8s.LifecycleHandler(sleep=k8s.SleepAction(seconds=vllm.pre_stop_delay_seconds))
            ),
            volume_mounts=volume_mounts,
            security_context=restricted_container_security_context(),
        )
        pod_spec = k8s.PodSpec(
            service_account_name=props.service_account_name,
            # Pod Identity injects its own projected token (audience pods.eks.amazonaws.com); vLLM
            # never calls the Kubernetes API, so the default ServiceAccount token stays out.
            automount_service_account_token=False,
            security_context=restricted_pod_security_context(fs_group=True),
            termination_grace_period_seconds=vllm.termination_grace_period_seconds,
            node_selector=gpu_node_selector(),
            tolerations=gpu_tolerations(),
            containers=[container],
            volumes=volumes,
        )
        # No "replicas": KEDA owns it.
        deployment(self, name=VLLM_NAME, namespace=ns, labels=labels, selector=selector, pod_spec=pod_spec,
                   replicas=None, annotations=skip_annotations(scanner_skips(vllm.image)))
        cluster_ip_service(
            self, name=VLLM_NAME, namespace=ns, labels=labels, selector=selector,
            port=VLLM_PORT, port_name=PORT_NAME,
        )
        # maxUnavailable 1 never blocks draining the only pod (minAvailable 1 would, forever).
        pod_disruption_budget(self, name=VLLM_NAME, namespace=ns, labels=labels, selector=selector)
        self._check()
