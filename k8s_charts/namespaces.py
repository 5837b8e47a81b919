"""The namespace our workloads live in (one chart, applied before every other chart), labelled to
enforce the ``restricted`` Pod Security Standard on every pod in it."""

from __future__ import annotations

from dataclasses import dataclass

from cdk8s_plus_35 import k8s
from constructs import Construct

from app_config.constants import INFERENCE_NAMESPACE
from app_config.versions import KUBERNETES_VERSION
from k8s_charts.common import (
    MANAGED_BY_LABEL_KEY,
    MANAGED_BY_VALUE,
    PART_OF_LABEL_KEY,
    PART_OF_VALUE,
    QvllmChart,
    object_meta,
)

# AWS Load Balancer Controller: pods in a namespace with this label get a readiness gate that
# turns true only once the pod is healthy in its target group (safe rolling updates).
POD_READINESS_GATE_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"
# Pod Security Admission (built into the API server): reject pods that break the level, and warn
# and audit at it too; the rules are the cluster version's
# (https://kubernetes.io/docs/concepts/security/pod-security-admission/).
POD_SECURITY_LABEL_PREFIX = "pod-security.kubernetes.io"
POD_SECURITY_MODES = ("enforce", "audit", "warn")
RESTRICTED = "restricted"


def pod_security_labels(level: str = RESTRICTED, version: str = f"v{KUBERNETES_VERSION}") -> dict[str, str]:
    """``pod-security.kubernetes.io/<mode>`` and ``<mode>-version`` labels for every mode."""
    labels = {}
    for mode in POD_SECURITY_MODES:
        labels[f"{POD_SECURITY_LABEL_PREFIX}/{mode}"] = level
        labels[f"{POD_SECURITY_LABEL_PREFIX}/{mode}-version"] = version
    return labels


@dataclass(frozen=True)
class NamespacesProps:
    """Props of :class:`NamespacesChart`.

    Attributes:
        namespaces: names of the namespaces to create (default: the inference namespace).
        readiness_gate_injection: label them for the load balancer controller's pod readiness gate.
        pod_security_level: the Pod Security Standard every pod in them must meet (enforced).
    """

    namespaces: tuple[str, ...] = (INFERENCE_NAMESPACE,)
    readiness_gate_injection: bool = True
    pod_security_level: str = RESTRICTED


class NamespacesChart(QvllmChart):
    """``v1/Namespace`` objects for our workloads (apply first: every other chart lives in them)."""

    def __init__(self, scope: Construct, id: str, props: NamespacesProps) -> None:
        super().__init__(scope, id)
        for name in props.namespaces:
            labels = {PART_OF_LABEL_KEY: PART_OF_VALUE, MANAGED_BY_LABEL_KEY: MANAGED_BY_VALUE}
            labels |= pod_security_labels(props.pod_security_level)
            if props.readiness_gate_injection:
                labels[POD_READINESS_GATE_LABEL] = "enabled"
            k8s.KubeNamespace(self, f"namespace-{name}", metadata=object_meta(name, labels))
        self._check()
