"""cdk8s charts: every Kubernetes object of ours, as pure functions of frozen props.

Charts (one module each; apply in this order, each after the add-on it needs):

=====================  ============================  ==============================  =========================
key                    chart class                   props type                      apply after
=====================  ============================  ==============================  =========================
``namespaces``         :class:`NamespacesChart`      :class:`NamespacesProps`        cluster
``karpenter_nodepools`` :class:`KarpenterNodePoolsChart` :class:`KarpenterNodePoolsProps` Karpenter chart (CRDs)
``otel_collector``     :class:`OtelCollectorChart`   :class:`OtelCollectorProps`     namespaces
``vllm``               :class:`VllmChart`            :class:`VllmProps`              namespaces, NodePools
``gateway``            :class:`GatewayChart`         :class:`GatewayProps`           load balancer controller
``scaled_object``      :class:`ScaledObjectChart`    :class:`ScaledObjectProps`      KEDA + OTel add-on, vLLM
=====================  ============================  ==============================  =========================

:func:`chart_props` maps an :class:`~app_config.model.AppConfig` plus the cluster stack's
:class:`DeployValues` to each chart's props; :func:`render_all` synthesizes every chart
standalone (for tests and ``make manifests``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cdk8s

from app_config.images import ImageSource
from app_config.model import AppConfig
from app_config.versions import OTEL_COLLECTOR_IMAGE
from k8s_charts.common import DeployValues, ManifestCheckError, QvllmChart, check_no_removed_metrics
from k8s_charts.gateway import GatewayChart, GatewayProps
from k8s_charts.karpenter_nodepools import KarpenterNodePoolsChart, KarpenterNodePoolsProps
from k8s_charts.namespaces import NamespacesChart, NamespacesProps
from app_config.scaled_object import scaler_metrics as _trigger_metrics
from k8s_charts.otel_collector import DEFAULT_SCALER_METRICS, OtelCollectorChart, OtelCollectorProps
from k8s_charts.scaled_object import ScaledObjectChart, ScaledObjectError, ScaledObjectProps, TriggerSpec
from k8s_charts.vllm import VllmChart, VllmProps


@dataclass(frozen=True)
class ChartSpec:
    """One chart to build: its class and props."""

    chart_class: type[QvllmChart]
    props: Any


def scaler_metrics(config: AppConfig) -> tuple[str, ...]:
    """Metric names the collector must forward: the defaults plus every name the triggers query."""
    return _trigger_metrics(config.scaling, always=DEFAULT_SCALER_METRICS)


def chart_props(config: AppConfig, values: DeployValues) -> dict[str, ChartSpec]:
    """Every chart's class and props from the config and the deploy-time values, in apply order.

    Image references go through :class:`app_config.images.ImageSource` (the pull-through cache).
    """
    images = ImageSource(values.image_registry if config.images.pull_through_cache else None, config.project_name)
    return {
        "namespaces": ChartSpec(NamespacesChart, NamespacesProps()),
        "karpenter_nodepools": ChartSpec(
            KarpenterNodePoolsChart,
            KarpenterNodePoolsProps(
                karpenter=config.karpenter,
                cluster_name=values.cluster_name,
                node_role_name=values.node_role_name,
                project_name=config.project_name,
                gpus_per_node=config.vllm.gpus_per_pod,
            ),
        ),
        "otel_collector": ChartSpec(
            OtelCollectorChart,
            OtelCollectorProps(scaler_metrics=scaler_metrics(config), image=images.image(OTEL_COLLECTOR_IMAGE)),
        ),
        "vllm": ChartSpec(
            VllmChart,
            VllmProps(
                vllm=config.vllm.model_copy(update={"image": images.image(config.vllm.image)}),
                model=config.model,
                model_uri=values.model_uri,
                region=values.region,
                service_account_name=values.vllm_service_account_name,
            ),
        ),
        "gateway": ChartSpec(
            GatewayChart,
            GatewayProps(
                gateway=config.gateway,
                served_model_name=config.model.served_model_name,
                image_uri=values.gateway_image_uri,
                target_group_arn=values.target_group_arn,
                alb_security_group_id=values.alb_security_group_id,
                vpc_id=values.vpc_id,
                edge_read_timeout_seconds=config.edge.origin_read_timeout_seconds,
            ),
        ),
        "scaled_object": ChartSpec(ScaledObjectChart, ScaledObjectProps(scaling=config.scaling)),
    }


def render_chart(spec: ChartSpec, id: str = "chart") -> list[dict[str, Any]]:
    """Synthesize one chart in its own cdk8s ``App`` and return its objects as dicts."""
    app = cdk8s.App()
    chart = spec.chart_class(app, id, spec.props)
    return chart.manifests()


def render_all(config: AppConfig, values: DeployValues | None = None) -> dict[str, list[dict[str, Any]]]:
    """Render every chart standalone: ``{chart key: [manifest dict, ...]}`` in apply order.

    Args:
        config: the app config.
        values: deploy-time values; default :meth:`DeployValues.placeholders` for the config's
            cluster and model names.

    Raises:
        ManifestCheckError: a synth-time check failed (e.g. case B09).
        ScaledObjectError: the ScaledObject breaks KEDA's composite rules (cases B01, B02).
    """
    if values is None:
        values = DeployValues.placeholders(cluster_name=config.cluster_name, model_name=config.model.name)
    rendered = {key: render_chart(spec, key) for key, spec in chart_props(config, values).items()}
    check_no_removed_metrics(obj for objs in rendered.values() for obj in objs)
    return rendered


__all__ = [
    "ChartSpec",
    "DeployValues",
    "GatewayChart",
    "GatewayProps",
    "KarpenterNodePoolsChart",
    "KarpenterNodePoolsProps",
    "ManifestCheckError",
    "NamespacesChart",
    "NamespacesProps",
    "OtelCollectorChart",
    "OtelCollectorProps",
    "ScaledObjectChart",
    "ScaledObjectError",
    "ScaledObjectProps",
    "TriggerSpec",
    "VllmChart",
    "VllmProps",
    "chart_props",
    "render_all",
    "render_chart",
    "scaler_metrics",
]
