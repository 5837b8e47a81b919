"""KEDA and the Kedify OTel scaler add-on, on the system nodes.

Default (``scaling.keda_flavor: upstream``): the upstream ``kedacore/keda`` chart, triggers of
``type: external`` with ``scalerAddress: <OTEL_ADDON_NAME>.<KEDA_NAMESPACE>.svc:4318``.
``kedify``: Kedify's KEDA build (chart ``keda`` of ``https://kedify.github.io/charts``), triggers ``type: kedify-otel``.
Either way the ``otel-add-on`` chart runs with its bundled OpenTelemetry operator and collector
off (we render our own collector), and its Helm release name is ``OTEL_ADDON_NAME`` so that its
Service name is what the triggers address (the chart names the Service after the release).

KEDA runs on the system nodes: a broken ``v1beta1.external.metrics.k8s.io`` APIService breaks
every later Helm/kubectl call, so it must not depend on Karpenter-provisioned capacity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import aws_cdk as cdk
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from app_config import versions
from app_config.constants import KEDA_NAMESPACE, OTEL_ADDON_NAME
from cdk_constructs.eks_cluster import system_node_selector, system_tolerations

KEDA_RELEASE = "keda"


def keda_pin(flavor: Literal["upstream", "kedify"]) -> versions.HelmChartPin:
    """The KEDA chart of ``flavor`` (``upstream`` -> kedacore, ``kedify`` -> Kedify's build)."""
    return versions.KEDIFY_KEDA if flavor == "kedify" else versions.KEDA


def keda_values() -> dict[str, Any]:
    """Values of the KEDA chart: operator, metrics server and webhooks on the system nodes."""
    return {"tolerations": system_tolerations(), "nodeSelector": system_node_selector()}


def otel_addon_values() -> dict[str, Any]:
    """Values of the ``otel-add-on`` chart: scaler only (bundled operator and collector off)."""
    return {
        "otelOperator": {"enabled": False},
        "otelCollector": {"enabled": False},
        "tolerations": system_tolerations(),
        "nodeSelector": system_node_selector(),
        "asciiArt": False,
    }


@dataclass(frozen=True)
class KedaProps:
    """Props of :class:`Keda`.

    Attributes:
        cluster: the EKS cluster.
        flavor: ``config.scaling.keda_flavor``.

    KEDA and the add-on run in ``KEDA_NAMESPACE``; the add-on's release (= Service) name is
    ``OTEL_ADDON_NAME``: the triggers' scalerAddress is built from both.
    """

    cluster: eks.Cluster
    flavor: Literal["upstream", "kedify"]


class Keda(Construct):
    """The KEDA chart and the OTel scaler add-on chart.

    Exposes ``keda_chart``, ``otel_addon_chart`` and ``pins`` (the charts installed). A
    ScaledObject must depend on both charts (its CRD comes from KEDA, its metrics from the add-on).
    """

    def __init__(self, scope: Construct, construct_id: str, props: KedaProps) -> None:
        super().__init__(scope, construct_id)
        keda = keda_pin(props.flavor)
        addon = versions.OTEL_ADDON
        self.pins = (keda, addon)
        self.keda_chart = props.cluster.add_helm_chart(
            "Keda",
            **keda.chart_options(),
            release=KEDA_RELEASE,
            namespace=KEDA_NAMESPACE,
            create_namespace=True,
            wait=True,
            timeout=cdk.Duration.minutes(15),
            values=keda_values(),
        )
        self.otel_addon_chart = props.cluster.add_helm_chart(
            "OtelScalerAddon",
            **addon.chart_options(),
            release=OTEL_ADDON_NAME,
            namespace=KEDA_NAMESPACE,
            create_namespace=True,
            wait=True,
            timeout=cdk.Duration.minutes(15),
            values=otel_addon_values(),
        )
        # One release at a time in the namespace; the add-on serves KEDA's external-scaler gRPC.
        self.otel_addon_chart.node.add_dependency(self.keda_chart)
