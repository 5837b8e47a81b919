"""The OpenTelemetry collector that feeds the scaling metrics to the KEDA OTel scaler add-on.

It scrapes, every 5 s with the Prometheus receiver (Kubernetes pod discovery, limited to the
inference namespace), the ``app=vllm`` pods on the vLLM API port (vLLM serves ``/metrics``
there) and the ``app=gateway`` pods on the gateway's port and metrics path (its contract,
:mod:`services.gateway.contract`: the held-requests gauge that takes vLLM from 0 to 1). It sends
the scaling metrics by OTLP gRPC to the add-on (:4317, plaintext inside the cluster) and exposes
everything it scraped on a Prometheus endpoint (:8889) for the dashboard.

Every series gets the target labels ``namespace``, ``pod`` and ``deployment`` (the pod's
ReplicaSet name without its pod-template hash), which the ScaledObject's queries filter on
(:func:`app_config.scaled_object.scoped_query`). The Prometheus receiver passes target labels
on as OTLP data-point attributes (all but ``job``, ``instance`` and the ``__`` labels,
``getSortedNotUsefulLabels`` in receiver/prometheusreceiver/internal/util.go), and those are the
labels the add-on stores and matches (kedify/otel-add-on v0.1.4 ``receiver/receiver.go``).

Metric names (a collector that normalizes names rewrites their colons): the names are the constants in :mod:`app_config.constants`, exactly as
vLLM exposes them (``vllm:num_requests_running``). What the pinned collector
(``otel/opentelemetry-collector-contrib:0.159.0``) does with them, from its sources:

* the Prometheus receiver keeps a scraped metric's name (colons included) as the OTLP metric
  name; no receiver feature gate renames metrics any more (0.15x gates:
  ``receiver.prometheusreceiver.EnableCreatedTimestampZeroIngestion`` and
  ``...IgnoreScopeInfoMetric`` only). The old ``pkg.translator.prometheus.NormalizeName`` gate,
  the one that rewrote colons in open-telemetry/opentelemetry-collector-contrib#13638, is no
  longer registered (only ``pkg.translator.prometheus.PermissiveLabelSanitization`` is), so it
  must not be passed: an unknown ``--feature-gates`` id stops the collector at start;
* the OTLP exporter forwards names unchanged, so the add-on sees ``vllm:num_requests_running``;
* the Prometheus exporter translates OTLP names with ``translation_strategy``. We set
  ``NoUTF8EscapingWithSuffixes``: no character escaping (colons stay; they are also legal in the
  legacy Prometheus charset), while ``_total`` of counters is kept/re-added. The deprecated
  ``add_metric_suffixes`` is not used (ignored once ``translation_strategy`` is set).

Only one replica runs: two collectors would each forward the same samples.

Pod security: ``restricted`` (UID 10001, the image's own user), read-only root filesystem; the
collector keeps nothing on disk.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml
from cdk8s_plus_35 import k8s
from constructs import Construct

from app_config.constants import (
    GATEWAY_APP_LABEL,
    GATEWAY_HELD_REQUESTS_METRIC,
    GATEWAY_METRICS_PATH,
    GATEWAY_NAME,
    GATEWAY_PORT,
    INFERENCE_NAMESPACE,
    KEDA_NAMESPACE,
    METRIC_KV_CACHE_USAGE,
    METRIC_RUNNING,
    METRIC_WAITING,
    OTEL_ADDON_NAME,
    OTEL_COLLECTOR_CONFIG_KEY,
    OTEL_COLLECTOR_HEALTH_PORT,
    OTEL_COLLECTOR_NAME,
    OTEL_COLLECTOR_PROMETHEUS_PORT,
    OTEL_SCRAPE_INTERVAL_SECONDS,
    SERIES_DEPLOYMENT_LABEL,
    SERIES_NAMESPACE_LABEL,
    SERIES_POD_LABEL,
    SYSTEM_TAINT_KEY,
    SYSTEM_TAINT_VALUE,
    VLLM_APP_LABEL,
    VLLM_METRICS_PATH,
    VLLM_NAME,
    VLLM_PORT,
)
from app_config.versions import OTEL_COLLECTOR_IMAGE
from k8s_charts.common import (
    APP_LABEL_KEY,
    QvllmChart,
    addon_otlp_address,
    cluster_ip_service,
    common_labels,
    deployment,
    http_get_probe,
    object_meta,
    quantities,
    restricted_container_security_context,
    restricted_pod_security_context,
    selector_labels,
    skip_annotations,
    unresolved_digest_skip,
    tcp_container_port,
)

CONFIG_DIR = "/conf"
CONFIG_VOLUME = "config"
PROMETHEUS_PORT_NAME = "prometheus"
HEALTH_PORT_NAME = "health"
SCALER_PIPELINE = "metrics/scaler"
DASHBOARD_PIPELINE = "metrics/dashboard"
SCALER_FILTER = "filter/scaler"
OTLP_EXPORTER = "otlp_grpc"  # the OTLP gRPC exporter's name since collector 0.144 (`otlp` warns)
PROMETHEUS_TRANSLATION_STRATEGY = "NoUTF8EscapingWithSuffixes"
DEFAULT_SCALER_METRICS: tuple[str, ...] = (
    METRIC_RUNNING, METRIC_WAITING, METRIC_KV_CACHE_USAGE, GATEWAY_HELD_REQUESTS_METRIC,
)
# A Deployment's pods are owned by a ReplicaSet named <deployment>-<pod-template-hash>; the hash
# is lower-case letters and digits (Kubernetes rand.SafeEncodeString).
DEPLOYMENT_FROM_REPLICASET = r"ReplicaSet;(.+)-[a-z0-9]+"


@dataclass(frozen=True)
class ScrapeTarget:
    """One scrape job: the pods labelled ``app=<app_label>``, on ``port`` at ``path``."""

    job: str
    app_label: str
    port: int
    path: str


# What the collector scrapes: vLLM (queue metrics) and the gateway (held requests).
SCRAPE_TARGETS: tuple[ScrapeTarget, ...] = (
    ScrapeTarget(VLLM_NAME, VLLM_APP_LABEL, VLLM_PORT, VLLM_METRICS_PATH),
    ScrapeTarget(GATEWAY_NAME, GATEWAY_APP_LABEL, GATEWAY_PORT, GATEWAY_METRICS_PATH),
)


def scrape_config(target: ScrapeTarget, namespace: str) -> dict[str, Any]:
    """The Prometheus ``scrape_configs`` entry of one target.

    Relabeling (Prometheus kubernetes_sd_config, role pod, meta labels
    ``__meta_kubernetes_pod_label_<name>``, ``__meta_kubernetes_pod_container_port_number``,
    ``__meta_kubernetes_namespace``, ``__meta_kubernetes_pod_name``,
    ``__meta_kubernetes_pod_controller_kind``/``_name``): keep the target's pods and port, then
    label every series with its namespace, pod and Deployment.
    """
    return {
        "job_name": target.job,
        "scrape_interval": f"{OTEL_SCRAPE_INTERVAL_SECONDS}s",
        "scrape_timeout": f"{max(1, OTEL_SCRAPE_INTERVAL_SECONDS - 1)}s",
        "metrics_path": target.path,
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
        "relabel_configs": [
            {"source_labels": [f"__meta_kubernetes_pod_label_{APP_LABEL_KEY}"], "regex": target.app_label,
             "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_container_port_number"], "regex": str(target.port),
             "action": "keep"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": SERIES_NAMESPACE_LABEL},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": SERIES_POD_LABEL},
            {
                "source_labels": ["__meta_kubernetes_pod_controller_kind", "__meta_kubernetes_pod_controller_name"],
                "regex": DEPLOYMENT_FROM_REPLICASET,
                "replacement": "$1",
                "target_label": SERIES_DEPLOYMENT_LABEL,
            },
        ],
    }

def scanner_skips(image: str) -> dict[str, str]:
    """Reasons for the checkov findings the collector Deployment keeps (object annotations)."""
    skips = {
        "CKV_K8S_15": "IfNotPresent on purpose: the image is pinned to a release (and its digest once resolved), so Always would only add a registry round "
        "trip to every start without changing what runs",
        "CKV_K8S_38": "The collector needs its ServiceAccount token: its Prometheus receiver discovers the vLLM "
        "and gateway pods through the Kubernetes API (Role: get, list and watch pods in one namespace)",
    }
    skips |= unresolved_digest_skip(image)
    return skips


def escape_dollars(text: str) -> str:
    """Write ``$`` as ``$$``: the collector expands ``$VAR``/``${...}`` in its config file."""
    return text.replace("$", "$$")


def keep_metrics_condition(names: Iterable[str]) -> str:
    """OTTL condition of the filter processor: drop every metric whose name is not in ``names``."""
    quoted = " or ".join(f'name == "{n}"' for n in names)
    return f"not ({quoted})"


@dataclass(frozen=True)
class OtelCollectorProps:
    """Props of :class:`OtelCollectorChart`.

    Attributes:
        namespace: where the collector runs (its ServiceAccount, Deployment, Service, ConfigMap).
        scrape_namespace: namespace of the vLLM and gateway pods (pod discovery and the Role are limited to it).
        scaler_metrics: metric names forwarded to the add-on (all others stay on :8889 only);
            must hold every name the ScaledObject queries.
        addon_service: Service name of the OTel scaler add-on.
        addon_namespace: namespace of the add-on.
        image: collector image (contrib distribution, for the filter processor).
    """

    namespace: str = INFERENCE_NAMESPACE
    scrape_namespace: str = INFERENCE_NAMESPACE
    scaler_metrics: tuple[str, ...] = DEFAULT_SCALER_METRICS
    addon_service: str = OTEL_ADDON_NAME
    addon_namespace: str = KEDA_NAMESPACE
    image: str = OTEL_COLLECTOR_IMAGE


def collector_config(props: OtelCollectorProps) -> dict[str, Any]:
    """The collector configuration (before ``$`` escaping), as a dict."""
    return {
        "extensions": {"health_check": {"endpoint": f"0.0.0.0:{OTEL_COLLECTOR_HEALTH_PORT}"}},
        "receivers": {
            "prometheus": {
                "config": {
                    "scrape_configs": [scrape_config(target, props.scrape_namespace) for target in SCRAPE_TARGETS]
                }
            }
        },
        "processors": {
            SCALER_FILTER: {
                "error_mode": "ignore",
                "metrics": {"metric": [keep_metrics_condition(props.scaler_metrics)]},
            }
        },
        "exporters": {
            OTLP_EXPORTER: {
                "endpoint": addon_otlp_address(props.addon_service, props.addon_namespace),
                "tls": {"insecure": True},
            },
            "prometheus": {
                "endpoint": f"0.0.0.0:{OTEL_COLLECTOR_PROMETHEUS_PORT}",
                "translation_strategy": PROMETHEUS_TRANSLATION_STRATEGY,
            },
        },
        "service": {
            "extensions": ["health_check"],
            "pipelines": {
                SCALER_PIPELINE: {
                    "receivers": ["prometheus"],
                    "processors": [SCALER_FILTER],
                    "exporters": [OTLP_EXPORTER],
                },
                DASHBOARD_PIPELINE: {"receivers": ["prometheus"], "exporters": ["prometheus"]},
            },
        },
    }


def collector_config_text(props: OtelCollectorProps) -> str:
    """The ConfigMap's ``config.yaml``: YAML with every ``$`` written as ``$$``."""
    return escape_dollars(yaml.safe_dump(collector_config(props), sort_keys=False, width=10_000))


class OtelCollectorChart(QvllmChart):
    """ServiceAccount, Role + RoleBinding (pods get/list/watch), ConfigMap, Deployment (1 replica), Service :8889."""

    def __init__(self, scope: Construct, id: str, props: OtelCollectorProps) -> None:
        super().__init__(scope, id)
        ns = props.namespace
        name = OTEL_COLLECTOR_NAME
        labels = common_labels(name)
        selector = selector_labels(name)

        k8s.KubeServiceAccount(self, "service-account", metadata=object_meta(name, labels, ns))
        k8s.KubeRole(
            self,
            "role",
            metadata=object_meta(name, labels, props.scrape_namespace),
            rules=[k8s.PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list", "watch"])],
        )
        k8s.KubeRoleBinding(
            self,
            "role-binding",
            metadata=object_meta(name, labels, props.scrape_namespace),
            role_ref=k8s.RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=name),
            subjects=[k8s.Subject(kind="ServiceAccount", name=name, namespace=ns)],
        )
        k8s.KubeConfigMap(
            self,
            "config",
            metadata=object_meta(name, labels, ns),
            data={OTEL_COLLECTOR_CONFIG_KEY: collector_config_text(props)},
        )
        container = k8s.Container(
            name="otel-collector",
            image=props.image,
            args=[f"--config={CONFIG_DIR}/{OTEL_COLLECTOR_CONFIG_KEY}"],
            ports=[
                tcp_container_port(PROMETHEUS_PORT_NAME, OTEL_COLLECTOR_PROMETHEUS_PORT),
                tcp_container_port(HEALTH_PORT_NAME, OTEL_COLLECTOR_HEALTH_PORT),
            ],
            resources=k8s.ResourceRequirements(
                requests=quantities({"cpu": "100m", "memory": "256Mi"}),
                # It shares the system nodes with the controllers: a CPU limit keeps a scrape storm from starving them.
                limits=quantities({"cpu": "1", "memory": "512Mi"}),
            ),
            readiness_probe=http_get_probe("/", HEALTH_PORT_NAME, period_seconds=5),
            liveness_probe=http_get_probe("/", HEALTH_PORT_NAME, period_seconds=15),
            volume_mounts=[k8s.VolumeMount(name=CONFIG_VOLUME, mount_path=CONFIG_DIR, read_only=True)],
            security_context=restricted_container_security_context(),
        )
        pod_spec = k8s.PodSpec(
            service_account_name=name,
            security_context=restricted_pod_security_context(),
            tolerations=[
                k8s.Toleration(key=SYSTEM_TAINT_KEY, operator="Equal", value=SYSTEM_TAINT_VALUE, effect="NoSchedule")
            ],
            containers=[container],
            volumes=[k8s.Volume(name=CONFIG_VOLUME, config_map=k8s.ConfigMapVolumeSource(name=name))],
        )
        deployment(self, name=name, namespace=ns, labels=labels, selector=selector, pod_spec=pod_spec,
                   replicas=1, strategy=k8s.DeploymentStrategy(type="Recreate"),
                   annotations=skip_annotations(scanner_skips(props.image)))
        cluster_ip_service(
            self, name=name, namespace=ns, labels=labels, selector=selector,
            port=OTEL_COLLECTOR_PROMETHEUS_PORT, port_name=PROMETHEUS_PORT_NAME,
        )
        self._check()
