"""NetworkPolicies of our namespace (default deny, then one allow policy per workload) and of the
OTel scaler add-on's pods in the KEDA namespace.

The VPC CNI enforces them once its add-on runs with ``enableNetworkPolicy`` (EksCluster sets it).
What is allowed, and nothing else:

* vLLM pods: in from the gateway pods and the collector (scrape) on the API port (vLLM serves
  ``/metrics`` there); out to S3 over HTTPS (the Run:ai streamer; S3's addresses are AWS's public
  ranges, so any address on 443) and to the EKS Pod Identity agent on the node (credentials).
* gateway pods: in on the gateway port from the VPC range (the internal ALB's addresses; the
  ALB's security group is not a NetworkPolicy peer) and from the collector (``/metrics``); out to
  vLLM pods and to the Kubernetes API (its EndpointSlice watch). The vLLM Service's ClusterIP (the
  gateway's fallback while discovery fails) is admitted by the same podSelector rule: the VPC
  CNI's controller adds the ClusterIP of every Service whose selector the rule's podSelector
  matches (aws/amazon-network-policy-controller-k8s pkg/resolvers/endpoints.go,
  getMatchingServiceClusterIPs).
* collector: nothing in (the dashboard reads it through ``kubectl port-forward``, which enters the
  pod's own network namespace); out to vLLM and gateway pods (scrapes), the add-on's OTLP port in
  the KEDA namespace, and the Kubernetes API (pod discovery).
* every pod of ours: DNS to CoreDNS.
* the add-on's pods (KEDA namespace): in on OTLP only from our collector (the add-on stores series
  from any sender, so another pod could otherwise feed the ScaledObject), and on the external-scaler
  port only from the KEDA namespace (KEDA's operator).

Address facts the rules rely on: with the VPC CNI every pod has a VPC address, so an ``ipBlock`` of
the VPC range also matches pods; kubelet probes come from the node's address, which the VPC CNI's
policy agent always admits (https://github.com/aws/aws-network-policy-agent/issues/56); an egress
rule is matched against the Service's ClusterIP as the pod sent it, so the Kubernetes API is
allowed by its ClusterIP (the first address of the service range) and by the VPC range (its
control-plane network interfaces in our subnets, after translation).
tests/charts/test_network_policies.py checks the allowed and denied flows with a small evaluator
of the NetworkPolicy rules (tests/support/netpol.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cdk8s_plus_35 import k8s
from constructs import Construct

from app_config.constants import (
    GATEWAY_APP_LABEL,
    GATEWAY_PORT,
    INFERENCE_NAMESPACE,
    KEDA_NAMESPACE,
    KUBE_SYSTEM_NAMESPACE,
    OTEL_ADDON_NAME,
    OTEL_ADDON_OTLP_GRPC_PORT,
    OTEL_ADDON_SCALER_PORT,
    OTEL_COLLECTOR_NAME,
    VLLM_APP_LABEL,
    VLLM_PORT,
)
from k8s_charts.common import APP_LABEL_KEY, PART_OF_LABEL_KEY, PART_OF_VALUE, QvllmChart, object_meta

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
COREDNS_LABELS = {"k8s-app": "kube-dns"}  # EKS's CoreDNS add-on pods
DNS_PORT = 53
HTTPS_PORT = 443
ANYWHERE = "0.0.0.0/0"
# The EKS Pod Identity agent on every node (EKS User Guide, "EKS Pod Identity agent": it listens
# on 169.254.170.23, port 80): the pod's AWS SDK gets its credentials there.
POD_IDENTITY_AGENT = "169.254.170.23/32"
POD_IDENTITY_AGENT_PORT = 80
# The OTel scaler add-on's pod labels: its chart's selectorLabels (kedify/otel-add-on v0.1.4,
# helmchart/otel-add-on/templates/_helpers.tpl: name "otel-add-on" unless nameOverride, instance
# = the release, OTEL_ADDON_NAME).
OTEL_ADDON_POD_LABELS = {"app.kubernetes.io/name": "otel-add-on", "app.kubernetes.io/instance": OTEL_ADDON_NAME}


def service_ip(service_cidr: str, offset: int) -> str:
    """The ``offset``-th address of the service range, as ``a.b.c.d/32`` (1: the ``kubernetes``
    Service, which the API server always takes first; 10: EKS's kube-dns).

    Raises:
        ValueError: ``service_cidr`` is not an IPv4 network.
    """
    network = ipaddress.IPv4Network(service_cidr)
    return f"{network.network_address + offset}/32"


@dataclass(frozen=True)
class NetworkPoliciesProps:
    """Props of :class:`NetworkPoliciesChart`.

    Attributes:
        vpc_cidr: the VPC's IPv4 range (``network.vpc_cidr``): the ALB's and control plane's addresses.
        service_cidr: the cluster's Service range (``cluster.service_ipv4_cidr``).
        namespace: our namespace (vLLM, gateway, collector).
        addon_namespace: the namespace of the OTel scaler add-on (and KEDA).
    """

    vpc_cidr: str
    service_cidr: str
    namespace: str = INFERENCE_NAMESPACE
    addon_namespace: str = KEDA_NAMESPACE


def _tcp(port: int) -> k8s.NetworkPolicyPort:
    return k8s.NetworkPolicyPort(port=k8s.IntOrString.from_number(port), protocol="TCP")


def _pods(labels: Mapping[str, str], namespace: str | None = None) -> k8s.NetworkPolicyPeer:
    """Pods with ``labels``: in the policy's namespace, or in ``namespace``."""
    return k8s.NetworkPolicyPeer(
        pod_selector=k8s.LabelSelector(match_labels=dict(labels)),
        namespace_selector=(
            k8s.LabelSelector(match_labels={NAMESPACE_NAME_LABEL: namespace}) if namespace is not None else None
        ),
    )


def _namespace(namespace: str) -> k8s.NetworkPolicyPeer:
    return k8s.NetworkPolicyPeer(namespace_selector=k8s.LabelSelector(match_labels={NAMESPACE_NAME_LABEL: namespace}))


def _cidr(cidr: str) -> k8s.NetworkPolicyPeer:
    return k8s.NetworkPolicyPeer(ip_block=k8s.IpBlock(cidr=cidr))


def _app(app: str) -> dict[str, str]:
    return {APP_LABEL_KEY: app}


class NetworkPoliciesChart(QvllmChart):
    """``default-deny`` and ``allow-dns`` for every pod of our namespace, one policy per workload
    (``vllm``, ``gateway``, ``otel-collector``), and ``otel-add-on`` in the add-on's namespace."""

    def __init__(self, scope: Construct, id: str, props: NetworkPoliciesProps) -> None:
        super().__init__(scope, id)
        ns = props.namespace
        api_server = [_cidr(service_ip(props.service_cidr, 1)), _cidr(props.vpc_cidr)]
        collector = _pods(_app(OTEL_COLLECTOR_NAME))

        self._policy("default-deny", ns, {}, ingress=[], egress=[])
        self._policy(
            "allow-dns", ns, {}, egress=[
                k8s.NetworkPolicyEgressRule(
                    to=[_pods(COREDNS_LABELS, KUBE_SYSTEM_NAMESPACE), _cidr(service_ip(props.service_cidr, 10))],
                    ports=[
                        k8s.NetworkPolicyPort(port=k8s.IntOrString.from_number(DNS_PORT), protocol=protocol)
                        for protocol in ("UDP", "TCP")
                    ],
                )
            ],
        )
        self._policy(
            VLLM_APP_LABEL, ns, _app(VLLM_APP_LABEL),
            ingress=[k8s.NetworkPolicyIngressRule(from_=[_pods(_app(GATEWAY_APP_LABEL)), collector], ports=[_tcp(VLLM_PORT)])],
            egress=[
                k8s.NetworkPolicyEgressRule(to=[_cidr(ANYWHERE)], ports=[_tcp(HTTPS_PORT)]),
                k8s.NetworkPolicyEgressRule(to=[_cidr(POD_IDENTITY_AGENT)], ports=[_tcp(POD_IDENTITY_AGENT_PORT)]),
            ],
        )
        self._policy(
            GATEWAY_APP_LABEL, ns, _app(GATEWAY_APP_LABEL),
            ingress=[k8s.NetworkPolicyIngressRule(from_=[_cidr(props.vpc_cidr), collector], ports=[_tcp(GATEWAY_PORT)])],
            egress=[
                k8s.NetworkPolicyEgressRule(to=[_pods(_app(VLLM_APP_LABEL))], ports=[_tcp(VLLM_PORT)]),
                k8s.NetworkPolicyEgressRule(to=api_server, ports=[_tcp(HTTPS_PORT)]),
            ],
        )
        self._policy(
            OTEL_COLLECTOR_NAME, ns, _app(OTEL_COLLECTOR_NAME),
            ingress=[],
            egress=[
                k8s.NetworkPolicyEgressRule(to=[_pods(_app(VLLM_APP_LABEL))], ports=[_tcp(VLLM_PORT)]),
                k8s.NetworkPolicyEgressRule(to=[_pods(_app(GATEWAY_APP_LABEL))], ports=[_tcp(GATEWAY_PORT)]),
                k8s.NetworkPolicyEgressRule(
                    to=[_pods(OTEL_ADDON_POD_LABELS, props.addon_namespace)], ports=[_tcp(OTEL_ADDON_OTLP_GRPC_PORT)]
                ),
                k8s.NetworkPolicyEgressRule(to=api_server, ports=[_tcp(HTTPS_PORT)]),
            ],
        )
        self._policy(
            "otel-add-on", props.addon_namespace, OTEL_ADDON_POD_LABELS,
            ingress=[
                k8s.NetworkPolicyIngressRule(
                    from_=[_pods(_app(OTEL_COLLECTOR_NAME), ns)], ports=[_tcp(OTEL_ADDON_OTLP_GRPC_PORT)]
                ),
                k8s.NetworkPolicyIngressRule(
                    from_=[_namespace(props.addon_namespace)], ports=[_tcp(OTEL_ADDON_SCALER_PORT)]
                ),
            ],
        )
        self._check()

    def _policy(
        self,
        name: str,
        namespace: str,
        pod_labels: Mapping[str, str],
        *,
        ingress: Sequence[k8s.NetworkPolicyIngressRule] | None = None,
        egress: Sequence[k8s.NetworkPolicyEgressRule] | None = None,
    ) -> k8s.KubeNetworkPolicy:
        """A NetworkPolicy for the pods with ``pod_labels`` (all pods: ``{}``); ``ingress``/``egress``
        None leaves that direction alone, an empty list denies all of it."""
        types = [t for t, rules in (("Ingress", ingress), ("Egress", egress)) if rules is not None]
        return k8s.KubeNetworkPolicy(
            self,
            f"{namespace}-{name}",
            metadata=object_meta(name, {PART_OF_LABEL_KEY: PART_OF_VALUE}, namespace),
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(match_labels=dict(pod_labels) if pod_labels else None),
                policy_types=types,
                ingress=list(ingress) if ingress else None,
                egress=list(egress) if egress else None,
            ),
        )
