"""The namespace our workloads live in (one chart, applied before every other chart)."""

from __future__ import annotations

from dataclasses import dataclass

from cdk8s_plus_35 import k8s
from constructs import Construct

from app_config.constants import INFERENCE_NAMESPACE
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


@dataclass(frozen=True)
class NamespacesProps:
    """Props of :class:`NamespacesChart`.

    Attributes:
        namespaces: names of the namespaces to create (default: the inference namespace).
        readiness_gate_injection: label them for the load balancer controller's pod readiness gate.
    """

    namespaces: tuple[str, ...] = (INFERENCE_NAMESPACE,)
    readiness_gate_injection: bool = True


class NamespacesChart(QvllmChart):
    """``v1/Namespace`` objects for our workloads (apply first: every other chart lives in them)."""

    def __init__(self, scope: Construct, id: str, props: NamespacesProps) -> None:
        super().__init__(scope, id)
        for name in props.namespaces:
            labels = {PART_OF_LABEL_KEY: PART_OF_VALUE, MANAGED_BY_LABEL_KEY: MANAGED_BY_VALUE}
            if props.readiness_gate_injection:
                labels[POD_READINESS_GATE_LABEL] = "enabled"
            k8s.KubeNamespace(self, f"namespace-{name}", metadata=object_meta(name, labels))
        self._check()
