"""A small evaluator of Kubernetes NetworkPolicy (networking.k8s.io/v1) rules, for tests.

It answers "may this endpoint open a connection to that one on this port?" from the rendered
NetworkPolicy objects, following the API reference
(https://kubernetes.io/docs/reference/kubernetes-api/networking/network-policy-v1/) and the
concepts page (https://kubernetes.io/docs/concepts/services-networking/network-policies/):

* a pod is isolated for ingress (egress) when a policy in its namespace selects it and lists
  ``Ingress`` (``Egress``) in ``policyTypes`` (``policyTypes`` omitted: ``Ingress``, plus ``Egress``
  when the policy has egress rules); a non-isolated direction allows everything;
* an isolated direction allows a connection when any selecting policy has a rule whose peers
  (``from``/``to``; empty: every peer) and ports (empty: every port) both match; policies add up;
* a peer with ``podSelector`` alone selects pods of the policy's namespace; with
  ``namespaceSelector`` alone, every pod of the matching namespaces; with both, pods matching both
  (one peer); ``ipBlock`` selects addresses in ``cidr`` and not in ``except``;
* a port is a number or a named container port of the destination pod, with ``protocol`` (default
  TCP) and an optional ``endPort``;
* a connection needs both the source's egress and the destination's ingress to allow it.

The cluster facts of the VPC CNI are modelled explicitly: every pod has a VPC address, and an
``ipBlock`` matches pods by that address too (the API leaves this to the implementation); kubelet
probes from the node are not modelled (the VPC CNI's agent always admits the node's address).
A connection to a Service's ClusterIP is checked before translation (the agent's eBPF probes sit
on the pod's veth): an egress peer with a ``podSelector`` also admits the ClusterIP of every
non-headless Service in the peer's namespaces whose ``spec.selector`` that podSelector matches
(aws/amazon-network-policy-controller-k8s pkg/resolvers/endpoints.go, getMatchingServiceClusterIPs:
https://github.com/aws/amazon-network-policy-controller-k8s/blob/main/pkg/resolvers/endpoints.go).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pod:
    """A pod: where it runs, its labels, its address and its named container ports."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    ip: str
    ports: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Address:
    """Anything that is not a pod of the cluster (a load balancer, a Service IP, the internet)."""

    name: str
    ip: str


@dataclass(frozen=True)
class Service:
    """A ClusterIP Service: its namespace, its pod selector (``spec.selector``) and ClusterIP."""

    name: str
    namespace: str
    selector: Mapping[str, str]
    ip: str


Endpoint = Pod | Address | Service


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A ``LabelSelector`` (``matchLabels`` and ``matchExpressions``, ANDed) on ``labels``; an
    empty selector matches everything.

    Raises:
        ValueError: an unknown ``matchExpressions`` operator.
    """
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In":
            ok = key in labels and labels[key] in values
        elif operator == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif operator == "Exists":
            ok = key in labels
        elif operator == "DoesNotExist":
            ok = key not in labels
        else:
            raise ValueError(f"unknown selector operator {operator!r}")
        if not ok:
            return False
    return True


class Cluster:
    """Namespaces (with labels) and NetworkPolicy objects; :meth:`allows` evaluates one flow."""

    def __init__(self, namespaces: Mapping[str, Mapping[str, str]], policies: Iterable[Mapping[str, Any]]) -> None:
        # The API server labels every namespace with its own name.
        self.namespaces = {n: {**labels, "kubernetes.io/metadata.name": n} for n, labels in namespaces.items()}
        self.policies = [p for p in policies if p["kind"] == "NetworkPolicy"]
        unknown = {p["metadata"]["namespace"] for p in self.policies} - set(self.namespaces)
        if unknown:
            raise ValueError(f"policies in namespaces the cluster does not have: {sorted(unknown)}")

    def _selecting(self, pod: Pod, direction: str) -> list[Mapping[str, Any]]:
        found = []
        for policy in self.policies:
            spec = policy["spec"]
            types = spec.get("policyTypes") or (["Ingress"] + (["Egress"] if spec.get("egress") else []))
            if (
                policy["metadata"]["namespace"] == pod.namespace
                and direction in types
                and selector_matches(spec.get("podSelector"), pod.labels)
            ):
                found.append(policy)
        return found

    def _peer_matches(self, peer: Mapping[str, Any], endpoint: Endpoint, policy_namespace: str) -> bool:
        if "ipBlock" in peer:
            block = peer["ipBlock"]
            address = ipaddress.ip_address(endpoint.ip)
            inside = address in ipaddress.ip_network(block["cidr"])
            return inside and not any(address in ipaddress.ip_network(e) for e in block.get("except") or [])
        if isinstance(endpoint, Service):
            # Egress only (a Service never opens a connection): the peer's podSelector against the
            # Service's selector, in the peer's namespaces (the controller's service lookup).
            if "namespaceSelector" in peer:
                namespace_ok = selector_matches(peer["namespaceSelector"], self.namespaces[endpoint.namespace])
            else:
                namespace_ok = endpoint.namespace == policy_namespace
            return namespace_ok and selector_matches(peer.get("podSelector"), endpoint.selector)
        if not isinstance(endpoint, Pod):
            return False
        if "namespaceSelector" in peer:
            namespace_ok = selector_matches(peer["namespaceSelector"], self.namespaces[endpoint.namespace])
        else:
            namespace_ok = endpoint.namespace == policy_namespace
        pod_ok = selector_matches(peer.get("podSelector"), endpoint.labels) if "podSelector" in peer else True
        return namespace_ok and pod_ok

    @staticmethod
    def _port_matches(rule_ports: Sequence[Mapping[str, Any]] | None, port: int, protocol: str, dst: Endpoint) -> bool:
        if not rule_ports:
            return True
        for entry in rule_ports:
            if entry.get("protocol", "TCP") != protocol:
                continue
            wanted = entry.get("port")
            if wanted is None:
                return True
            if isinstance(wanted, str):
                if not isinstance(dst, Pod) or wanted not in dst.ports:
                    continue
                wanted = dst.ports[wanted]
            if wanted <= port <= entry.get("endPort", wanted):
                return True
        return False

    def _direction_allows(self, pod: Pod, direction: str, peer: Endpoint, port: int, protocol: str, dst: Endpoint) -> bool:
        policies = self._selecting(pod, direction)
        if not policies:
            return True  # not isolated in this direction
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in policies:
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(peers_key) or []
                peer_ok = not peers or any(self._peer_matches(p, peer, policy["metadata"]["namespace"]) for p in peers)
                if peer_ok and self._port_matches(rule.get("ports"), port, protocol, dst):
                    return True
        return False

    def allows(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
        """May ``src`` open a connection to ``dst`` on ``port``/``protocol``?"""
        egress = not isinstance(src, Pod) or self._direction_allows(src, "Egress", dst, port, protocol, dst)
        ingress = not isinstance(dst, Pod) or self._direction_allows(dst, "Ingress", src, port, protocol, dst)
        return egress and ingress
