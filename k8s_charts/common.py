"""Shared pieces of the cdk8s charts: deploy-time values, labels, and synth-time checks.

Every chart in this package is a pure function of its frozen props: no I/O, no environment,
no clock, no AWS calls. Deploy-time values (ARNs, ids, URIs) arrive as plain strings that may
be CDK tokens at synth time; charts copy them verbatim and never parse them.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import cdk8s
from cdk8s_plus_35 import k8s
from constructs import Construct

from app_config.constants import (  # noqa: F401 - the addresses are re-exported for the charts
    METRIC_KV_CACHE_USAGE_LEGACY,
    addon_otlp_address,
    addon_scaler_address,
    service_host,
)
from app_config.versions import is_digest_pinned

APP_LABEL_KEY = "app"  # the pod label the collector's relabel rule and all selectors use
PART_OF_LABEL_KEY = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL_KEY = "app.kubernetes.io/managed-by"
PART_OF_VALUE = "qvllm"
MANAGED_BY_VALUE = "cdk8s"
NODEPOOL_LABEL_KEY = "karpenter.sh/nodepool"  # label Karpenter puts on every node it launches
ARCH_LABEL_KEY = "kubernetes.io/arch"
OS_LABEL_KEY = "kubernetes.io/os"
ZONE_LABEL_KEY = "topology.kubernetes.io/zone"

# vLLM stopped emitting `vllm:gpu_cache_usage_perc`; no manifest may reference it.
REMOVED_METRIC_FRAGMENTS: tuple[str, ...] = (METRIC_KV_CACHE_USAGE_LEGACY.split(":", 1)[1],)


@dataclass(frozen=True)
class DeployValues:
    """Values only the cluster stack knows at deploy time (strings; may be CDK tokens).

    Attributes:
        model_uri: ``s3://<bucket>/models/<name>/`` the vLLM pods stream weights from.
        region: AWS region of the cluster and the model bucket.
        cluster_name: EKS cluster name; also the ``karpenter.sh/discovery`` tag value on the
            subnets and security groups Karpenter launches nodes into.
        node_role_name: IAM role *name* (not ARN) of Karpenter-launched nodes.
        vllm_service_account_name: ServiceAccount the Pod Identity association binds.
        gateway_image_uri: container image of the gateway (a ``DockerImageAsset`` URI).
        target_group_arn: ARN of the edge stack's gateway target group (target type ip).
        alb_security_group_id: security group of the internal ALB (allowed to reach the pods).
        vpc_id: VPC of the target group (``vpc-...``).
        image_registry: the deploy account's private ECR registry host
            (``<account>.dkr.ecr.<region>.amazonaws.com``) holding the pull-through caches.
        compile_cache_file_system_id: the compile cache's EFS file system (``fs-...``), or None
            when ``vllm.compile_cache`` is off.
        compile_cache_access_point_id: its access point (``fsap-...``), or None.
    """

    model_uri: str
    region: str
    cluster_name: str
    node_role_name: str
    vllm_service_account_name: str
    gateway_image_uri: str
    target_group_arn: str
    alb_security_group_id: str
    vpc_id: str
    image_registry: str
    compile_cache_file_system_id: str | None = None
    compile_cache_access_point_id: str | None = None

    @classmethod
    def placeholders(cls, cluster_name: str = "qvllm", model_name: str = "mistral-7b-awq") -> "DeployValues":
        """Fake but well-formed values for tests and ``make manifests`` (nothing is looked up)."""
        from app_config.constants import MODELS_PREFIX, VLLM_NAME

        return cls(
            model_uri=f"s3://example-model-bucket/{MODELS_PREFIX}/{model_name}/",
            region="us-west-2",
            cluster_name=cluster_name,
            node_role_name=f"{cluster_name}-karpenter-node",
            vllm_service_account_name=VLLM_NAME,
            gateway_image_uri="123456789012.dkr.ecr.us-west-2.amazonaws.com/cdk-hnb659fds-container-assets:gateway",
            target_group_arn=(
                "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/qvllm-gateway/0123456789abcdef"
            ),
            alb_security_group_id="sg-0123456789abcdef0",
            vpc_id="vpc-0123456789abcdef0",
            image_registry="123456789012.dkr.ecr.us-west-2.amazonaws.com",
            compile_cache_file_system_id="fs-0123456789abcdef0",
            compile_cache_access_point_id="fsap-0123456789abcdef0",
        )


def common_labels(app: str) -> dict[str, str]:
    """Labels on every object of ours: ``app``, ``app.kubernetes.io/part-of`` and ``managed-by``."""
    return {APP_LABEL_KEY: app, PART_OF_LABEL_KEY: PART_OF_VALUE, MANAGED_BY_LABEL_KEY: MANAGED_BY_VALUE}


def selector_labels(app: str) -> dict[str, str]:
    """The immutable selector labels of a workload (``{"app": app}``)."""
    return {APP_LABEL_KEY: app}


class ManifestCheckError(ValueError):
    """A rendered manifest breaks a synth-time rule; the message names the object and the rule."""


def check_no_removed_metrics(manifests: Iterable[Mapping[str, Any]]) -> None:
    """Fail if any manifest mentions a metric vLLM no longer emits.

    Raises:
        ManifestCheckError: naming ``kind/name`` of each offending object and the fragment found.
    """
    problems = []
    for obj in manifests:
        text = json.dumps(obj)
        for fragment in REMOVED_METRIC_FRAGMENTS:
            if fragment in text:
                meta = obj.get("metadata", {})
                problems.append(f"{obj.get('kind')}/{meta.get('name')} references removed metric {fragment!r}")
    if problems:
        raise ManifestCheckError(
            "rendered manifests reference a vLLM metric that no longer exists (use "
            "vllm:kv_cache_usage_perc): " + "; ".join(problems)
        )


class QvllmChart(cdk8s.Chart):
    """Base of our charts: stable resource names (no hashes) and synth-time checks.

    Subclasses declare their objects in ``__init__`` and finish with :meth:`_check`, so a bad
    chart fails where it is built (inside ``cdk synth``), not at apply time. (A cdk8s
    ``IValidation`` cannot do this: ``Chart.toJson`` runs validations, and a validation that
    renders the chart would re-enter it.)
    """

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id, disable_resource_name_hashes=True)

    def manifests(self) -> list[dict[str, Any]]:
        """The chart's objects as plain dicts, in declaration order."""
        return [dict(obj) for obj in self.to_json()]

    def _check(self) -> None:
        """Run the synth-time checks over this chart's objects (raises ManifestCheckError)."""
        check_no_removed_metrics(self.manifests())


def object_meta(
    name: str, labels: Mapping[str, str], namespace: str | None = None, annotations: Mapping[str, str] | None = None
) -> k8s.ObjectMeta:
    """``metadata`` of a built-in object: its name, labels, (for namespaced kinds) namespace and annotations."""
    return k8s.ObjectMeta(name=name, namespace=namespace, labels=dict(labels), annotations=dict(annotations) if annotations else None)


def custom_meta(name: str, labels: Mapping[str, str], namespace: str | None = None) -> cdk8s.ApiObjectMetadata:
    """``metadata`` of a custom resource (the classes ``cdk8s import`` generates take this type)."""
    return cdk8s.ApiObjectMetadata(name=name, namespace=namespace, labels=dict(labels))


def quantities(values: Mapping[str, str]) -> dict[str, k8s.Quantity]:
    """Resource quantities (``{"cpu": "500m"}``) as typed ``Quantity`` values, rendered unchanged."""
    return {resource: k8s.Quantity.from_string(value) for resource, value in values.items()}


def http_get_probe(
    path: str,
    port_name: str,
    *,
    period_seconds: int,
    failure_threshold: int | None = None,
    timeout_seconds: int | None = None,
) -> k8s.Probe:
    """An HTTP GET probe of ``path`` on the container port named ``port_name``."""
    return k8s.Probe(
        http_get=k8s.HttpGetAction(path=path, port=k8s.IntOrString.from_string(port_name)),
        period_seconds=period_seconds,
        failure_threshold=failure_threshold,
        timeout_seconds=timeout_seconds,
    )


def tcp_container_port(name: str, port: int) -> k8s.ContainerPort:
    """A named TCP container port."""
    return k8s.ContainerPort(name=name, container_port=port, protocol="TCP")


EnumT = TypeVar("EnumT", bound=enum.Enum)


def wire_enum(enum_type: type[EnumT], value: str) -> EnumT:
    """The member of a generated enum whose wire value is ``value`` (``"WhenEmpty"`` -> ``WHEN_EMPTY``).

    ``cdk8s import`` names enum members by upper-casing the CRD's values at word boundaries; the
    config holds the wire values.

    Raises:
        ValueError: ``value`` is not one of the enum's values (names the enum and the value).
    """
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", value).replace("-", "_").upper()
    try:
        return enum_type[name]
    except KeyError:
        raise ValueError(f"{value!r} is not a value of {enum_type.__name__}") from None


def cluster_ip_service(
    scope: Construct,
    *,
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    selector: Mapping[str, str],
    port: int,
    port_name: str,
) -> k8s.KubeService:
    """A ClusterIP Service exposing one TCP ``port`` (targetPort = the same container port)."""
    return k8s.KubeService(
        scope,
        "service",
        metadata=object_meta(name, labels, namespace),
        spec=k8s.ServiceSpec(
            type="ClusterIP",
            selector=dict(selector),
            ports=[
                k8s.ServicePort(name=port_name, port=port, target_port=k8s.IntOrString.from_number(port), protocol="TCP")
            ],
        ),
    )


def surge_one_strategy() -> k8s.DeploymentStrategy:
    """A rolling update that never drops below the current replicas: one extra pod comes up first."""
    return k8s.DeploymentStrategy(
        type="RollingUpdate",
        rolling_update=k8s.RollingUpdateDeployment(
            max_surge=k8s.IntOrString.from_number(1), max_unavailable=k8s.IntOrString.from_number(0)
        ),
    )


def deployment(
    scope: Construct,
    *,
    name: str,
    namespace: str,
    labels: Mapping[str, str],
    selector: Mapping[str, str],
    pod_spec: k8s.PodSpec,
    replicas: int | None,
    strategy: k8s.DeploymentStrategy | None = None,
    annotations: Mapping[str, str] | None = None,
) -> k8s.KubeDeployment:
    """An apps/v1 Deployment of ``pod_spec`` (pods labelled ``labels``, selected by ``selector``).

    ``replicas=None`` leaves the field out, for a Deployment whose replicas an autoscaler owns
    (KEDA's HPA): a value here would be reset on every apply. ``strategy`` defaults to
    :func:`surge_one_strategy`. ``annotations`` go on the Deployment (e.g. :func:`skip_annotations`).
    """
    return k8s.KubeDeployment(
        scope,
        "deployment",
        metadata=object_meta(name, labels, namespace, annotations),
        spec=k8s.DeploymentSpec(
            replicas=replicas,
            selector=k8s.LabelSelector(match_labels=dict(selector)),
            strategy=strategy or surge_one_strategy(),
            template=k8s.PodTemplateSpec(metadata=k8s.ObjectMeta(labels=dict(labels)), spec=pod_spec),
        ),
    )


def pod_disruption_budget(
    scope: Construct, *, name: str, namespace: str, labels: Mapping[str, str], selector: Mapping[str, str]
) -> k8s.KubePodDisruptionBudget:
    """A PodDisruptionBudget with ``maxUnavailable: 1``.

    ``maxUnavailable: 1`` never blocks draining a single-replica workload (``minAvailable: 1``
    would block it forever), yet stops a drain from taking several replicas at once.
    """
    return k8s.KubePodDisruptionBudget(
        scope,
        "pdb",
        metadata=object_meta(name, labels, namespace),
        spec=k8s.PodDisruptionBudgetSpec(
            max_unavailable=k8s.IntOrString.from_number(1),
            selector=k8s.LabelSelector(match_labels=dict(selector)),
        ),
    )



# --- Pod security -----------------------------------------------------------------------
# Our pods run as this user and group: a high UID (no clash with a node's own users; checkov
# CKV_K8S_40 asks for >= 10000), the UID the gateway and collector images already declare
# (docker/gateway/Dockerfile `USER 10001`; the collector-contrib image's `USER 10001`).
RUN_AS_USER = 10001
RUN_AS_GROUP = 10001
RUNTIME_DEFAULT_SECCOMP = "RuntimeDefault"
TMP_VOLUME = "tmp"
TMP_PATH = "/tmp"


def restricted_pod_security_context(*, fs_group: bool = False) -> k8s.PodSecurityContext:
    """The pod-level part of the ``restricted`` Pod Security Standard: non-root UID/GID
    :data:`RUN_AS_USER`, the container runtime's default seccomp profile; ``fs_group`` also makes
    mounted volumes group-writable for that GID."""
    return k8s.PodSecurityContext(
        run_as_non_root=True,
        run_as_user=RUN_AS_USER,
        run_as_group=RUN_AS_GROUP,
        fs_group=RUN_AS_GROUP if fs_group else None,
        seccomp_profile=k8s.SeccompProfile(type=RUNTIME_DEFAULT_SECCOMP),
    )


def restricted_container_security_context() -> k8s.SecurityContext:
    """The container-level part of ``restricted`` plus a read-only root filesystem: no privilege
    escalation, every Linux capability dropped; writable paths are mounted volumes."""
    return k8s.SecurityContext(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        capabilities=k8s.Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.SeccompProfile(type=RUNTIME_DEFAULT_SECCOMP),
    )


def empty_dir(name: str, *, size_limit: str | None = None, medium: str | None = None) -> k8s.Volume:
    """An ``emptyDir`` volume (the pod's writable scratch space; ``size_limit`` a quantity)."""
    return k8s.Volume(
        name=name,
        empty_dir=k8s.EmptyDirVolumeSource(
            medium=medium, size_limit=k8s.Quantity.from_string(size_limit) if size_limit else None
        ),
    )


def skip_annotations(reasons: Mapping[str, str]) -> dict[str, str]:
    """checkov inline suppressions as object annotations: ``checkov.io/skip<n>: <check>=<reason>``
    (checkov ``kubernetes/kubernetes_utils.py``, ``get_skipped_checks``, splits the value at ``=``,
    so a reason must not contain one).

    Raises:
        ValueError: a reason that is empty or contains ``=``.
    """
    annotations = {}
    for n, (check, reason) in enumerate(sorted(reasons.items()), start=1):
        if not reason.strip() or "=" in reason:
            raise ValueError(f"checkov skip {check}: the reason must be non-empty text without '=': {reason!r}")
        annotations[f"checkov.io/skip{n}"] = f"{check}={reason}"
    return annotations


def unresolved_digest_skip(image: str) -> dict[str, str]:
    """checkov's "image should use digest" (CKV_K8S_43) acknowledged, with its reason, only while
    ``image`` names no digest (app_config.versions.ImagePin not resolved yet); empty once it does."""
    if is_digest_pinned(image):
        return {}
    return {
        "CKV_K8S_43": "Digest not resolved yet (it is written only from a registry's answer): resolve it with the "
        "README's crane digest command and record it with its date in app_config/versions.py, then this skip goes"
    }
