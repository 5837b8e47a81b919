"""The rendered NetworkPolicies, evaluated flow by flow (tests/support/netpol.py): what may reach
vLLM, the gateway, the collector and the OTel add-on, and what may not.

Pods carry the labels and container ports of the rendered Deployments; addresses follow the VPC
CNI (pods get VPC addresses from the default network.vpc_cidr).
"""

from __future__ import annotations

import ipaddress

import pytest

from app_config.constants import (
    GATEWAY_PORT,
    INFERENCE_NAMESPACE,
    KEDA_NAMESPACE,
    KUBE_SYSTEM_NAMESPACE,
    OTEL_ADDON_OTLP_GRPC_PORT,
    OTEL_ADDON_SCALER_PORT,
    OTEL_COLLECTOR_PROMETHEUS_PORT,
    VLLM_PORT,
)
from k8s_charts.network_policies import COREDNS_LABELS, OTEL_ADDON_POD_LABELS, POD_IDENTITY_AGENT, service_ip
from tests.charts.conftest import find
from tests.support.netpol import Address, Cluster, Pod, Service, selector_matches

REST_API_PORT = 9090  # the add-on's REST API (kedify/otel-add-on values.yaml settings.restApiPort)


def _pod(all_objects, name: str, ip: str) -> Pod:
    template = find(all_objects, "Deployment", name)["spec"]["template"]
    ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    return Pod(name, INFERENCE_NAMESPACE, template["metadata"]["labels"], ip, ports)


@pytest.fixture(scope="module")
def world(all_objects, default_config):
    namespace = find(all_objects, "Namespace", INFERENCE_NAMESPACE)
    cluster = Cluster(
        {INFERENCE_NAMESPACE: namespace["metadata"]["labels"], KEDA_NAMESPACE: {}, KUBE_SYSTEM_NAMESPACE: {},
         "default": {}},
        all_objects,
    )
    vpc = ipaddress.ip_network(default_config.network.vpc_cidr)
    services = default_config.cluster.service_ipv4_cidr
    w = {
        "vllm": _pod(all_objects, "vllm", str(vpc.network_address + 16400)),
        "gateway": _pod(all_objects, "gateway", str(vpc.network_address + 16401)),
        "collector": _pod(all_objects, "otel-collector", str(vpc.network_address + 16402)),
        "stray": Pod("debug", INFERENCE_NAMESPACE, {"app": "debug"}, str(vpc.network_address + 16403)),
        "attacker": Pod("attacker", "default", {"app": "attacker"}, str(vpc.network_address + 16404)),
        "addon": Pod("otel-add-on", KEDA_NAMESPACE, OTEL_ADDON_POD_LABELS, str(vpc.network_address + 16405)),
        "keda": Pod("keda-operator", KEDA_NAMESPACE, {"app": "keda-operator"}, str(vpc.network_address + 16406)),
        "coredns": Pod("coredns", KUBE_SYSTEM_NAMESPACE, COREDNS_LABELS, str(vpc.network_address + 16407)),
        "vllm-service": Service("vllm", INFERENCE_NAMESPACE, find(all_objects, "Service", "vllm")["spec"]["selector"],
                                str(ipaddress.ip_network(services).network_address + 200)),
        "alb": Address("internal ALB", str(vpc.network_address + 300)),
        "apiserver-eni": Address("control-plane ENI", str(vpc.network_address + 301)),
        "apiserver": Address("kubernetes Service", service_ip(services, 1).split("/")[0]),
        "kube-dns": Address("kube-dns Service", service_ip(services, 10).split("/")[0]),
        "s3": Address("S3 (public range)", "52.216.10.20"),
        "internet": Address("somewhere", "93.184.216.34"),
        "pod-identity": Address("Pod Identity agent", POD_IDENTITY_AGENT.split("/")[0]),
    }
    return cluster, w


ALLOWED = [
    ("gateway", "vllm", VLLM_PORT, "TCP"),  # the only way in to vLLM for requests
    ("gateway", "vllm-service", VLLM_PORT, "TCP"),  # the gateway's fallback: the Service URL (ClusterIP)
    ("collector", "vllm", VLLM_PORT, "TCP"),  # metrics scrape
    ("collector", "gateway", GATEWAY_PORT, "TCP"),  # the gateway's /metrics
    ("alb", "gateway", GATEWAY_PORT, "TCP"),  # the edge's path
    ("gateway", "apiserver", 443, "TCP"),  # EndpointSlice watch, by ClusterIP...
    ("gateway", "apiserver-eni", 443, "TCP"),  # ...and after translation
    ("collector", "apiserver", 443, "TCP"),  # pod discovery
    ("collector", "addon", OTEL_ADDON_OTLP_GRPC_PORT, "TCP"),  # metrics to the scaler
    ("keda", "addon", OTEL_ADDON_SCALER_PORT, "TCP"),  # KEDA asks the scaler
    ("vllm", "s3", 443, "TCP"),  # weights stream from S3
    ("vllm", "pod-identity", 80, "TCP"),  # credentials
    *((src, dst, 53, proto) for src in ("vllm", "gateway", "collector") for dst in ("coredns", "kube-dns")
      for proto in ("UDP", "TCP")),
]

DENIED = [
    ("attacker", "vllm", VLLM_PORT, "TCP"),  # no path around the gateway's keys, admission and limits
    ("stray", "vllm", VLLM_PORT, "TCP"),  # not even from our own namespace
    ("stray", "vllm-service", VLLM_PORT, "TCP"),
    ("vllm", "vllm-service", VLLM_PORT, "TCP"),
    ("alb", "vllm", VLLM_PORT, "TCP"),
    ("gateway", "vllm", VLLM_PORT + 1, "TCP"),  # only the API port
    ("attacker", "collector", OTEL_COLLECTOR_PROMETHEUS_PORT, "TCP"),
    ("gateway", "collector", OTEL_COLLECTOR_PROMETHEUS_PORT, "TCP"),
    ("attacker", "addon", OTEL_ADDON_OTLP_GRPC_PORT, "TCP"),  # nobody else feeds the scaler series
    ("gateway", "addon", OTEL_ADDON_OTLP_GRPC_PORT, "TCP"),
    ("collector", "addon", REST_API_PORT, "TCP"),
    ("attacker", "addon", OTEL_ADDON_SCALER_PORT, "TCP"),
    ("vllm", "gateway", GATEWAY_PORT, "TCP"),
    ("vllm", "collector", OTEL_COLLECTOR_PROMETHEUS_PORT, "TCP"),
    ("vllm", "internet", 80, "TCP"),
    ("gateway", "internet", 443, "TCP"),  # the gateway talks to vLLM and the API server only
    ("gateway", "s3", 443, "TCP"),
    ("collector", "internet", 443, "TCP"),
    ("vllm", "coredns", 5353, "UDP"),
    ("stray", "internet", 443, "TCP"),  # default deny, both ways
    ("stray", "gateway", GATEWAY_PORT, "TCP"),  # the gateway admits its address, but its own egress is denied
    ("attacker", "gateway", GATEWAY_PORT + 1, "TCP"),
]


@pytest.mark.parametrize(("src", "dst", "port", "protocol"), ALLOWED, ids=[f"{s}->{d}:{p}/{q}" for s, d, p, q in ALLOWED])
def test_allowed_flow(world, src, dst, port, protocol):
    cluster, w = world
    assert cluster.allows(w[src], w[dst], port, protocol)


@pytest.mark.parametrize(("src", "dst", "port", "protocol"), DENIED, ids=[f"{s}->{d}:{p}/{q}" for s, d, p, q in DENIED])
def test_denied_flow(world, src, dst, port, protocol):
    cluster, w = world
    assert not cluster.allows(w[src], w[dst], port, protocol)


def test_known_consequences_of_ip_rules(world, all_objects):
    """What the address rules also admit, on purpose: any VPC address (so any pod, as pods have VPC
    addresses) reaches the gateway's port, like the ALB; the gateway is the authenticated, admission-
    controlled entry. vLLM's HTTPS egress (S3 has no fixed range) reaches the API server's address
    too, but vLLM has no Kubernetes credentials (its token is not mounted)."""
    cluster, w = world
    assert cluster.allows(w["attacker"], w["gateway"], GATEWAY_PORT)
    assert cluster.allows(w["vllm"], w["apiserver"], 443)
    assert find(all_objects, "Deployment", "vllm")["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_every_pod_of_ours_is_selected_by_a_policy_in_each_direction(world):
    cluster, w = world
    for name in ("vllm", "gateway", "collector", "stray"):
        for direction in ("Ingress", "Egress"):
            assert cluster._selecting(w[name], direction), f"{name} not isolated for {direction}"


# --- the evaluator itself, on the documented semantics -------------------------------------
def _policy(namespace: str, spec: dict) -> dict:
    return {"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": namespace}, "spec": spec}


def test_evaluator_and_versus_or_peers():
    """The concepts page's example: namespaceSelector and podSelector in ONE peer are ANDed; in
    two peers they are ORed."""
    a = Pod("a", "ns", {"role": "db"}, "10.1.0.1")
    client_same_ns = Pod("c1", "ns", {"role": "client"}, "10.1.0.2")
    client_other = Pod("c2", "other", {"role": "client"}, "10.1.0.3")
    other_any = Pod("c3", "other", {"role": "x"}, "10.1.0.4")
    namespaces = {"ns": {}, "other": {"team": "blue"}}
    anded = Cluster(namespaces, [_policy("ns", {"podSelector": {"matchLabels": {"role": "db"}}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}, "podSelector": {"matchLabels": {"role": "client"}}}]}]})])
    ored = Cluster(namespaces, [_policy("ns", {"podSelector": {"matchLabels": {"role": "db"}}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}}, {"podSelector": {"matchLabels": {"role": "client"}}}]}]})])
    assert anded.allows(client_other, a, 1) and not anded.allows(other_any, a, 1) and not anded.allows(client_same_ns, a, 1)
    assert ored.allows(client_other, a, 1) and ored.allows(other_any, a, 1) and ored.allows(client_same_ns, a, 1)


def test_evaluator_service_cluster_ips():
    """Egress to a ClusterIP: admitted by a podSelector peer that matches the Service's selector."""
    client = Pod("c", "ns", {"app": "c"}, "10.1.0.1")
    db = Service("db", "ns", {"app": "db"}, "172.20.0.50")
    other = Service("x", "ns", {"app": "x"}, "172.20.0.51")
    cluster = Cluster({"ns": {}}, [_policy("ns", {"podSelector": {"matchLabels": {"app": "c"}}, "policyTypes": ["Egress"],
                                                  "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}]})])
    assert cluster.allows(client, db, 5432) and not cluster.allows(client, other, 5432)


def test_evaluator_isolation_ports_and_ip_blocks():
    pod = Pod("p", "ns", {"app": "p"}, "10.1.0.1", {"http": 8080})
    peer = Address("x", "192.168.1.5")
    open_cluster = Cluster({"ns": {}}, [])
    assert open_cluster.allows(peer, pod, 1)  # nothing selects the pod: not isolated
    egress_only = Cluster({"ns": {}}, [_policy("ns", {"podSelector": {}, "policyTypes": ["Egress"]})])
    assert egress_only.allows(peer, pod, 1) and not egress_only.allows(pod, peer, 1)
    rules = Cluster({"ns": {}}, [_policy("ns", {"podSelector": {"matchLabels": {"app": "p"}}, "ingress": [{
        "from": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}, {"ipBlock": {"cidr": "172.16.0.0/12"}}],
        "ports": [{"port": "http"}, {"port": 9000, "endPort": 9010, "protocol": "UDP"}]}]})])
    assert not rules.allows(peer, pod, 8080)  # in except
    assert rules.allows(Address("y", "192.168.2.5"), pod, 8080)  # named port resolved on the pod
    assert not rules.allows(Address("y", "192.168.2.5"), pod, 8081)
    assert rules.allows(Address("z", "172.16.0.9"), pod, 9005, "UDP") and not rules.allows(Address("z", "172.16.0.9"), pod, 9005)
    assert selector_matches({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["q"]}]}, {"app": "p"})
