"""The deploy rehearsal: every Helm chart and manifest custom resource of a synthesized template,
through the real kubectl handler, against loopback stand-ins of the upstream chart registries.

:func:`rehearse` publishes the given upstream charts (minimal content, upstream's repository paths,
names and version strings, plus an echo of Helm's merged values), then invokes the handler for each
``Custom::AWSCDK-EKS-HelmChart`` / ``Custom::AWSCDK-EKS-KubernetesResource`` in CloudFormation's
dependency order: Create for all, then Update for all, then Delete in reverse order (as
``cdk destroy`` does). See :mod:`tests.support.kubectl_handler` for what is real and what is a
recording stand-in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from tests.support.kubectl_handler import (
    HANDLED_TYPES,
    IntrinsicResolver,
    Invocation,
    KubectlHandlerRunner,
    as_custom_resource_properties,
    creation_order,
    extract_tools,
)
from tests.support.cfn_graph import AppGraph
from tests.support.upstream_registries import LoopbackRegistries, helm_homes

VALUES_ECHO_SUFFIX = "-rehearsal-values"
# A template in every rehearsal chart: a ConfigMap holding the values Helm merged (chart defaults
# + the values file the handler wrote), so tests read what the chart would really see.
VALUES_ECHO_TEMPLATE = (
    "apiVersion: v1\n"
    "kind: ConfigMap\n"
    "metadata:\n"
    "  name: {{ .Release.Name }}" + VALUES_ECHO_SUFFIX + "\n"
    "  namespace: {{ .Release.Namespace }}\n"
    "data:\n"
    "  values.json: {{ .Values | toJson | quote }}\n"
)


class ChartFact(Protocol):
    location: str
    chart: str
    version: str
    default_values: dict[str, Any]

    @property
    def is_oci(self) -> bool: ...

    @property
    def host(self) -> str: ...


@dataclass(frozen=True)
class RehearsalResult:
    """Every invocation of one rehearsal, by phase, plus what the registries saw."""

    creates: list[Invocation]
    updates: list[Invocation]
    deletes: list[Invocation]
    resources: dict[str, Any]
    proxy_log: list[str]

    def all(self) -> list[Invocation]:
        return [*self.creates, *self.updates, *self.deletes]

    def failures(self, phase: Iterable[Invocation] | None = None) -> list[Invocation]:
        return [inv for inv in (self.all() if phase is None else phase) if not inv.ok]

    def create_of(self, logical_id: str) -> Invocation:
        return next(inv for inv in self.creates if inv.logical_id == logical_id)

    def helm_charts(self) -> dict[str, dict[str, Any]]:
        """Logical id -> resolved properties of every HelmChart resource."""
        return {inv.logical_id: inv.properties for inv in self.creates if "Release" in inv.properties}


def helm_upgrade(invocation: Invocation) -> dict[str, Any]:
    """The recorded ``helm upgrade`` of one invocation (raises if there is none)."""
    return next(c for c in invocation.commands if c["tool"] == "helm" and c["argv"][0] == "upgrade")


def merged_values(invocation: Invocation) -> dict[str, Any]:
    """The values Helm merged for the chart of a HelmChart invocation (from the echo ConfigMap)."""
    rendered = helm_upgrade(invocation)["rendered"]
    for doc in yaml.safe_load_all(rendered):
        if doc and doc.get("kind") == "ConfigMap" and doc["metadata"]["name"].endswith(VALUES_ECHO_SUFFIX):
            return json.loads(doc["data"]["values.json"])
    raise AssertionError(f"no values echo in the rendered chart of {invocation.logical_id}")


def rehearse(
    template: Mapping[str, Any],
    *,
    region: str,
    workdir: Path,
    charts: Sequence[ChartFact],
    phases: Sequence[str] = ("Create", "Update", "Delete"),
    resource_types: Sequence[str] = HANDLED_TYPES,
    graph: AppGraph | None = None,
    stack: str = "Rehearsal",
) -> RehearsalResult:
    """Run the real handler over ``template`` (see module docstring).

    Args:
        template: a synthesized CloudFormation template (the Cluster stack's).
        region: the stack's region (the Lambda's ``AWS_REGION``).
        workdir: scratch folder.
        charts: upstream chart facts to publish on the loopback registries.
        phases: which request types to run.
        resource_types: which custom resource types to run (default: Helm charts and manifests).
        graph / stack: the app's dependency graph and the template's stack name in it (default: a
            graph of ``template`` alone, which then may not import from other stacks).
    """
    tools = extract_tools(workdir / "tools")
    oci_hosts = sorted({c.host for c in charts if c.is_oci})
    repo_hosts = sorted({c.host for c in charts if not c.is_oci})
    resources: dict[str, Any] = dict(template["Resources"])
    with LoopbackRegistries(workdir / "registries", oci_hosts=oci_hosts, repo_hosts=repo_hosts, helm=tools.helm) as reg:
        for fact in charts:
            reg.publish(
                fact.location,
                fact.version,
                chart=fact.chart,
                files={
                    "values.yaml": yaml.safe_dump(fact.default_values),
                    "templates/rehearsal-values.yaml": VALUES_ECHO_TEMPLATE,
                },
            )
        env = reg.env(os.environ) | helm_homes(workdir / "lambda-helm")
        runner = KubectlHandlerRunner(tools, workdir / "runs", env=env, region=region)
        resolver = IntrinsicResolver(resources, region)
        graph = graph or AppGraph({stack: template})
        order = creation_order(graph, stack, resource_types)
        props = {
            lid: as_custom_resource_properties(resolver.resolve(resources[lid].get("Properties", {})))
            for lid in order
        }
        result = RehearsalResult(creates=[], updates=[], deletes=[], resources=resources, proxy_log=reg.proxy_log)
        for phase, bucket, sequence in (
            ("Create", result.creates, order),
            ("Update", result.updates, order),
            ("Delete", result.deletes, list(reversed(order))),
        ):
            if phase not in phases:
                continue
            for lid in sequence:
                bucket.append(
                    runner.invoke(
                        lid,
                        resources[lid]["Type"],
                        phase,
                        props[lid],
                        old_properties=props[lid] if phase == "Update" else None,
                    )
                )
    return result

