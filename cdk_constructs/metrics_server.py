"""metrics-server (resource metrics for ``kubectl top`` and CPU/memory HPA triggers), on the system nodes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from app_config import versions
from app_config.constants import KUBE_SYSTEM_NAMESPACE
from cdk_constructs.eks_cluster import system_node_selector, system_tolerations


def metrics_server_values(image_repository: str = versions.METRICS_SERVER_IMAGE_REPOSITORY) -> dict[str, Any]:
    """Values of the ``metrics-server`` chart: two replicas on the system nodes, image from ``image_repository``."""
    return {
        "replicas": 2,
        "tolerations": system_tolerations(),
        "nodeSelector": system_node_selector(),
        "image": {"repository": image_repository},
    }


@dataclass(frozen=True)
class MetricsServerProps:
    """Props of :class:`MetricsServer`.

    Attributes:
        cluster: the EKS cluster.
        image_repository: ``image.repository`` (the chart's tag stays).
    """

    cluster: eks.Cluster
    image_repository: str = versions.METRICS_SERVER_IMAGE_REPOSITORY


class MetricsServer(Construct):
    """The ``metrics-server`` Helm release in ``kube-system``; exposes ``chart``."""

    def __init__(self, scope: Construct, construct_id: str, props: MetricsServerProps) -> None:
        super().__init__(scope, construct_id)
        self.chart = props.cluster.add_helm_chart(
            "MetricsServer",
            **versions.METRICS_SERVER.chart_options(),
            release=versions.METRICS_SERVER.chart,
            namespace=KUBE_SYSTEM_NAMESPACE,
            wait=True,
            timeout=cdk.Duration.minutes(10),
            values=metrics_server_values(props.image_repository),
        )
