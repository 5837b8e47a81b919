"""The FastAPI gateway: Deployment on the CPU NodePool, Service, PDB and TargetGroupBinding,
plus the ServiceAccount and Role with which it watches the vLLM Service's EndpointSlices.

The edge stack creates the internal ALB and an ``ip`` target group in CDK; the AWS Load
Balancer Controller registers the gateway pods in it through the TargetGroupBinding, and opens
the pods' port to the ALB's security group (``networking.ingress``). The container env is built
with :func:`services.gateway.settings.settings_env`, the gateway's own settings module, so the
variable names cannot drift.

Pod security: ``restricted`` (UID 10001, the image's own user) with a read-only root filesystem;
``/tmp`` is the one writable path (an emptyDir).
"""

from __future__ import annotations

from dataclasses import dataclass

from cdk8s_plus_35 import k8s
from constructs import Construct

from app_config.constants import (
    CPU_NODEPOOL_NAME,
    GATEWAY_APP_LABEL,
    GATEWAY_HEALTH_PATH,
    GATEWAY_NAME,
    GATEWAY_PORT,
    GATEWAY_READY_PATH,
    INFERENCE_NAMESPACE,
    VLLM_NAME,
    VLLM_PORT,
)
from app_config.model import GatewayConfig
from k8s_charts.vllm import PORT_NAME as VLLM_PORT_NAME
from k8s_charts.common import (
    ARCH_LABEL_KEY,
    NODEPOOL_LABEL_KEY,
    TMP_PATH,
    TMP_VOLUME,
    ZONE_LABEL_KEY,
    QvllmChart,
    cluster_ip_service,
    common_labels,
    custom_meta,
    deployment,
    empty_dir,
    http_get_probe,
    object_meta,
    pod_disruption_budget,
    quantities,
    restricted_container_security_context,
    restricted_pod_security_context,
    selector_labels,
    service_host,
    skip_annotations,
    tcp_container_port,
)
from k8s_charts.imports.aws.k8s import elbv2
from services.gateway.settings import GRACEFUL_SHUTDOWN_SECONDS, settings_env

CONTAINER_NAME = "gateway"
PORT_NAME = "http"
PRE_STOP_SECONDS = 10  # ALB deregistration is asynchronous: keep serving while it happens
# After uvicorn's graceful window the app's shutdown closes its upstream client and the process exits;
# this margin covers that, so SIGKILL never cuts a drain short.
EXIT_MARGIN_SECONDS = 20
TERMINATION_GRACE_SECONDS = PRE_STOP_SECONDS + GRACEFUL_SHUTDOWN_SECONDS + EXIT_MARGIN_SECONDS
TMP_SIZE_LIMIT = "256Mi"

# checkov findings the gateway Deployment keeps, with the reasons (object annotations).
SCANNER_SKIPS = {
    "CKV_K8S_11": "No CPU limit on purpose: CFS quota throttling would pause every open token stream for the "
    "rest of a 100 ms period; the request reserves the CPU and admission control bounds the work",
    "CKV_K8S_15": "IfNotPresent on purpose: the tag is the CDK asset hash of the build context in the bootstrap "
    "repository, which refuses to overwrite a tag, so Always would only add a registry round trip per start",
    "CKV_K8S_38": "The gateway needs its ServiceAccount token: it watches the vLLM EndpointSlices through the "
    "Kubernetes API (Role endpointslice-reader: list and watch only)",
    "CKV_K8S_43": "The image is a CDK DockerImageAsset whose tag is the hash of its build context, pushed to "
    "the bootstrap repository with ImageTagMutability IMMUTABLE, so the tag names one image",
}

@dataclass(frozen=True)
class GatewayProps:
    """Props of :class:`GatewayChart`.

    Attributes:
        gateway: the ``gateway`` config section (replicas, admission control, timeouts, requests).
        served_model_name: the model name clients send (``config.model.served_model_name``).
        image_uri: the gateway image (``DockerImageAsset.image_uri``; may be a token).
        target_group_arn: the edge stack's gateway target group (target type ip; may be a token).
        alb_security_group_id: the internal ALB's security group (may be a token).
        vpc_id: VPC id of the target group, or None to let the controller look it up.
        image_architectures: CPU architectures the image is built for; pods only go to those
            nodes (a ``DockerImageAsset`` builds one platform, while the CPU pool admits two).
        namespace: namespace of every object in the chart.
        upstream_namespace: namespace of the vLLM Service the gateway proxies to.
        edge_read_timeout_seconds: CloudFront's origin read timeout
            (``edge.origin_read_timeout_seconds``): the gateway answers a non-streaming request
            that would outlive it with an error naming the limit; None: no edge in front.
    """

    gateway: GatewayConfig
    served_model_name: str
    image_uri: str
    target_group_arn: str
    alb_security_group_id: str
    vpc_id: str | None = None
    image_architectures: tuple[str, ...] = ("amd64",)
    namespace: str = INFERENCE_NAMESPACE
    upstream_namespace: str = INFERENCE_NAMESPACE
    edge_read_timeout_seconds: int | None = None


def upstream_url(namespace: str = INFERENCE_NAMESPACE) -> str:
    """Base URL of the vLLM Service, e.g. ``http://vllm.inference.svc.cluster.local:8000``."""
    return f"http://{service_host(VLLM_NAME, namespace)}:{VLLM_PORT}"


API_KEYS_SECRET_KEY = "api-keys"  # key inside the Kubernetes Secret named by gateway.api_keys_secret
API_KEYS_VOLUME = "api-keys"
API_KEYS_MOUNT_DIR = "/etc/gateway/api-keys"  # read-only Secret volume; the file is <dir>/<key>


def gateway_env(props: GatewayProps) -> list[k8s.EnvVar]:
    """The container env (``GATEWAY_*``) from the config, via the gateway's settings module."""
    gw = props.gateway
    auth = {"api_keys_file": f"{API_KEYS_MOUNT_DIR}/{API_KEYS_SECRET_KEY}"} if gw.api_keys_secret else {}
    edge = {"edge_read_timeout_seconds": props.edge_read_timeout_seconds} if props.edge_read_timeout_seconds else {}
    env = settings_env(
        upstream_url=upstream_url(props.upstream_namespace),
        upstream_service=VLLM_NAME,
        upstream_namespace=props.upstream_namespace,
        upstream_port_name=VLLM_PORT_NAME,
        served_model_name=props.served_model_name,
        max_in_flight=gw.max_in_flight,
        max_queue=gw.max_queue,
        queue_timeout_seconds=gw.queue_timeout_seconds,
        heartbeat_interval_seconds=gw.heartbeat_interval_seconds,
        connect_timeout_seconds=gw.upstream_connect_timeout_seconds,
        read_timeout_seconds=gw.upstream_read_timeout_seconds,
        max_body_bytes=gw.max_body_bytes,
        max_held_requests=gw.max_held_requests,
        hold_timeout_seconds=gw.hold_timeout_seconds,
        prefix_affinity=gw.prefix_affinity,
        prefix_affinity_chars=gw.prefix_affinity_chars,
        prefix_affinity_load_factor=gw.prefix_affinity_load_factor,
        port=GATEWAY_PORT,
        **auth,
        **edge,
    )
    # HOME on the one writable path: the Kubernetes client resolves ~/.kube/config when imported,
    # and Python finds no home for a UID without a passwd entry (any runAsUser but the image's own).
    env["HOME"] = TMP_PATH
    return [k8s.EnvVar(name=k, value=v) for k, v in env.items()]


class GatewayChart(QvllmChart):
    """Gateway Deployment (CPU pool), Service :8000, PDB, ``TargetGroupBinding`` (ip targets), and
    the ServiceAccount + Role (list/watch EndpointSlices in the vLLM namespace) + RoleBinding."""

    def __init__(self, scope: Construct, id: str, props: GatewayProps) -> None:
        super().__init__(scope, id)
        ns = props.namespace
        gw = props.gateway
        labels = common_labels(GATEWAY_APP_LABEL)
        selector = selector_labels(GATEWAY_APP_LABEL)

        api_keys = gw.api_keys_secret
        container = k8s.Container(
            name=CONTAINER_NAME,
            image=props.image_uri,
            env=gateway_env(props),
            ports=[tcp_container_port(PORT_NAME, GATEWAY_PORT)],
            resources=k8s.ResourceRequirements(
                requests=quantities({"cpu": gw.cpu_request, "memory": gw.memory_request}),
                limits=quantities({"memory": gw.memory_request}),
            ),
            readiness_probe=http_get_probe(GATEWAY_READY_PATH, PORT_NAME, period_seconds=5, failure_threshold=2),
            liveness_probe=http_get_probe(GATEWAY_HEALTH_PATH, PORT_NAME, period_seconds=10, failure_threshold=3),
            lifecycle=k8s.Lifecycle(pre_stop=k8s.LifecycleHandler(sleep=k8s.SleepAction(seconds=PRE_STOP_SECONDS))),
            security_context=restricted_container_security_context(),
            # Bearer keys from a Secret the operator creates (kubectl create secret generic ...);
            # mounted read-only, read by the gateway at start (GATEWAY_API_KEYS_FILE).
            volume_mounts=[
                k8s.VolumeMount(name=TMP_VOLUME, mount_path=TMP_PATH),
                *([k8s.VolumeMount(name=API_KEYS_VOLUME, mount_path=API_KEYS_MOUNT_DIR, read_only=True)] if api_keys else []),
            ],
        )
        self._endpoint_slice_reader(ns, props.upstream_namespace, labels)
        pod_spec = k8s.PodSpec(
            service_account_name=GATEWAY_NAME,
            automount_service_account_token=True,  # the Kubernetes API token for the EndpointSlice watch
            security_context=restricted_pod_security_context(),
            termination_grace_period_seconds=TERMINATION_GRACE_SECONDS,
            node_selector={NODEPOOL_LABEL_KEY: CPU_NODEPOOL_NAME},
            affinity=k8s.Affinity(
                node_affinity=k8s.NodeAffinity(
                    required_during_scheduling_ignored_during_execution=k8s.NodeSelector(
                        node_selector_terms=[
                            k8s.NodeSelectorTerm(
                                match_expressions=[
                                    k8s.NodeSelectorRequirement(
                                        key=ARCH_LABEL_KEY, operator="In", values=list(props.image_architectures)
                                    )
                                ]
                            )
                        ]
                    )
                )
            ),
            topology_spread_constraints=[
                k8s.TopologySpreadConstraint(
                    max_skew=1,
                    topology_key=ZONE_LABEL_KEY,
                    when_unsatisfiable="ScheduleAnyway",
                    label_selector=k8s.LabelSelector(match_labels=selector),
                )
            ],
            containers=[container],
            volumes=[
                empty_dir(TMP_VOLUME, size_limit=TMP_SIZE_LIMIT),
                *(
                    [
                        k8s.Volume(
                            name=API_KEYS_VOLUME,
                            secret=k8s.SecretVolumeSource(
                                secret_name=api_keys,
                                items=[k8s.KeyToPath(key=API_KEYS_SECRET_KEY, path=API_KEYS_SECRET_KEY)],
                            ),
                        )
                    ]
                    if api_keys
                    else []
                ),
            ],
        )
        deployment(self, name=GATEWAY_NAME, namespace=ns, labels=labels, selector=selector, pod_spec=pod_spec,
                   replicas=gw.replicas, annotations=skip_annotations(SCANNER_SKIPS))
        cluster_ip_service(
            self, name=GATEWAY_NAME, namespace=ns, labels=labels, selector=selector,
            port=GATEWAY_PORT, port_name=PORT_NAME,
        )
        pod_disruption_budget(self, name=GATEWAY_NAME, namespace=ns, labels=labels, selector=selector)
        elbv2.TargetGroupBindingV1Beta1(
            self,
            "target-group-binding",
            metadata=custom_meta(GATEWAY_NAME, labels, ns),
            spec=elbv2.TargetGroupBindingV1Beta1Spec(
                service_ref=elbv2.TargetGroupBindingV1Beta1SpecServiceRef(
                    name=GATEWAY_NAME, port=elbv2.TargetGroupBindingV1Beta1SpecServiceRefPort.from_number(GATEWAY_PORT)
                ),
                target_group_arn=props.target_group_arn,
                target_type=elbv2.TargetGroupBindingV1Beta1SpecTargetType.IP,
                networking=elbv2.TargetGroupBindingV1Beta1SpecNetworking(
                    ingress=[
                        elbv2.TargetGroupBindingV1Beta1SpecNetworkingIngress(
                            from_=[
                                elbv2.TargetGroupBindingV1Beta1SpecNetworkingIngressFrom(
                                    security_group=elbv2.TargetGroupBindingV1Beta1SpecNetworkingIngressFromSecurityGroup(
                                        group_id=props.alb_security_group_id
                                    )
                                )
                            ],
                            ports=[
                                elbv2.TargetGroupBindingV1Beta1SpecNetworkingIngressPorts(
                                    port=elbv2.TargetGroupBindingV1Beta1SpecNetworkingIngressPortsPort.from_number(
                                        GATEWAY_PORT
                                    ),
                                    protocol=elbv2.TargetGroupBindingV1Beta1SpecNetworkingIngressPortsProtocol.TCP,
                                )
                            ],
                        )
                    ]
                ),
                vpc_id=props.vpc_id,
            ),
        )
        self._check()

    def _endpoint_slice_reader(self, namespace: str, upstream_namespace: str, labels: dict[str, str]) -> None:
        """The gateway's ServiceAccount, allowed only to list and watch EndpointSlices in the
        vLLM namespace (the gateway routes to the pods they list)."""
        k8s.KubeServiceAccount(self, "service-account", metadata=object_meta(GATEWAY_NAME, labels, namespace))
        k8s.KubeRole(
            self,
            "endpointslice-reader",
            metadata=object_meta(GATEWAY_NAME, labels, upstream_namespace),
            rules=[k8s.PolicyRule(api_groups=["discovery.k8s.io"], resources=["endpointslices"], verbs=["list", "watch"])],
        )
        k8s.KubeRoleBinding(
            self,
            "endpointslice-reader-binding",
            metadata=object_meta(GATEWAY_NAME, labels, upstream_namespace),
            role_ref=k8s.RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=GATEWAY_NAME),
            subjects=[k8s.Subject(kind="ServiceAccount", name=GATEWAY_NAME, namespace=namespace)],
        )
