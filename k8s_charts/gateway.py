"""The FastAPI gateway: Deployment on the CPU NodePool, Service, PDB and TargetGroupBinding,
plus the ServiceAccount and Role with which it watches the vLLM Service's EndpointSlices.

The edge stack creates the internal ALB and an ``ip`` target group in CDK; the AWS Load
Balancer Controller registers the gateway pods in it through the TargetGroupBinding, and opens
the pods' port to the ALB's security group (``networking.ingress``). The container env is built
with :func:`services.gateway.settings.settings_env`, the gateway's own settings module, so the
variable names cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cdk8s
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
    cluster_ip_service,
    deployment,
    k8s_object,
    pod_disruption_budget,
    ARCH_LABEL_KEY,
    NODEPOOL_LABEL_KEY,
    ZONE_LABEL_KEY,
    QvllmChart,
    common_labels,
    selector_labels,
    service_host,
)
from services.gateway.settings import settings_env

TARGET_GROUP_BINDING_API_VERSION = "elbv2.k8s.aws/v1beta1"
CONTAINER_NAME = "gateway"
PORT_NAME = "http"
PRE_STOP_SECONDS = 10  # ALB deregistration is asynchronous: keep serving while it happens
TERMINATION_GRACE_SECONDS = 60


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


def gateway_env(props: GatewayProps) -> list[dict[str, str]]:
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
    return [{"name": k, "value": v} for k, v in env.items()]


class GatewayChart(QvllmChart):
    """Gateway Deployment (CPU pool), Service :8000, PDB, ``TargetGroupBinding`` (ip targets), and
    the ServiceAccount + Role (list/watch EndpointSlices in the vLLM namespace) + RoleBinding."""

    def __init__(self, scope: Construct, id: str, props: GatewayProps) -> None:
        super().__init__(scope, id)
        ns = props.namespace
        gw = props.gateway
        labels = common_labels(GATEWAY_APP_LABEL)
        selector = selector_labels(GATEWAY_APP_LABEL)

        container: dict[str, Any] = {
            "name": CONTAINER_NAME,
            "image": props.image_uri,
            "env": gateway_env(props),
            "ports": [{"name": PORT_NAME, "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
            "resources": {
                "requests": {"cpu": gw.cpu_request, "memory": gw.memory_request},
                "limits": {"memory": gw.memory_request},
            },
            "readinessProbe": {
                "httpGet": {"path": GATEWAY_READY_PATH, "port": PORT_NAME},
                "periodSeconds": 5,
                "failureThreshold": 2,
            },
            "livenessProbe": {
                "httpGet": {"path": GATEWAY_HEALTH_PATH, "port": PORT_NAME},
                "periodSeconds": 10,
                "failureThreshold": 3,
            },
            "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        }
        if gw.api_keys_secret:
            # Bearer keys from a Secret the operator creates (kubectl create secret generic ...);
            # mounted read-only, read by the gateway at start (GATEWAY_API_KEYS_FILE).
            container["volumeMounts"] = [{"name": API_KEYS_VOLUME, "mountPath": API_KEYS_MOUNT_DIR, "readOnly": True}]
        self._endpoint_slice_reader(ns, props.upstream_namespace, labels)
        pod_spec: dict[str, Any] = {
            "serviceAccountName": GATEWAY_NAME,
            "automountServiceAccountToken": True,  # the Kubernetes API token for the EndpointSlice watch
            "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
            "nodeSelector": {NODEPOOL_LABEL_KEY: CPU_NODEPOOL_NAME},
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": ARCH_LABEL_KEY, "operator": "In", "values": list(props.image_architectures)}
                                ]
                            }
                        ]
                    }
                }
            },
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": ZONE_LABEL_KEY,
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": selector},
                }
            ],
            "containers": [container],
        }
        if gw.api_keys_secret:
            pod_spec["volumes"] = [
                {
                    "name": API_KEYS_VOLUME,
                    "secret": {"secretName": gw.api_keys_secret, "items": [{"key": API_KEYS_SECRET_KEY, "path": API_KEYS_SECRET_KEY}]},
                }
            ]
        deployment(self, name=GATEWAY_NAME, namespace=ns, labels=labels, selector=selector, pod_spec=pod_spec,
                   replicas=gw.replicas)
        cluster_ip_service(
            self, name=GATEWAY_NAME, namespace=ns, labels=labels, selector=selector,
            port=GATEWAY_PORT, port_name=PORT_NAME,
        )
        pod_disruption_budget(self, name=GATEWAY_NAME, namespace=ns, labels=labels, selector=selector)
        tgb_spec: dict[str, Any] = {
            "serviceRef": {"name": GATEWAY_NAME, "port": GATEWAY_PORT},
            "targetGroupARN": props.target_group_arn,
            "targetType": "ip",
            "networking": {
                "ingress": [
                    {
                        "from": [{"securityGroup": {"groupID": props.alb_security_group_id}}],
                        "ports": [{"port": GATEWAY_PORT, "protocol": "TCP"}],
                    }
                ]
            },
        }
        if props.vpc_id is not None:
            tgb_spec["vpcID"] = props.vpc_id
        k8s_object(
            self,
            "target-group-binding",
            api_version=TARGET_GROUP_BINDING_API_VERSION,
            kind="TargetGroupBinding",
            metadata=cdk8s.ApiObjectMetadata(name=GATEWAY_NAME, namespace=ns, labels=labels),
            spec=tgb_spec,
        )
        self._check()

    def _endpoint_slice_reader(self, namespace: str, upstream_namespace: str, labels: dict[str, str]) -> None:
        """The gateway's ServiceAccount, allowed only to list and watch EndpointSlices in the
        vLLM namespace (the gateway routes to the pods they list)."""
        metadata = {"name": GATEWAY_NAME, "labels": labels}
        k8s_object(self, "service-account", api_version="v1", kind="ServiceAccount",
                   metadata=cdk8s.ApiObjectMetadata(namespace=namespace, **metadata))
        k8s_object(
            self, "endpointslice-reader", api_version="rbac.authorization.k8s.io/v1", kind="Role",
            metadata=cdk8s.ApiObjectMetadata(namespace=upstream_namespace, **metadata),
            rules=[{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}],
        )  # fmt: skip
        k8s_object(
            self, "endpointslice-reader-binding", api_version="rbac.authorization.k8s.io/v1", kind="RoleBinding",
            metadata=cdk8s.ApiObjectMetadata(namespace=upstream_namespace, **metadata),
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": GATEWAY_NAME},
            subjects=[{"kind": "ServiceAccount", "name": GATEWAY_NAME, "namespace": namespace}],
        )  # fmt: skip
