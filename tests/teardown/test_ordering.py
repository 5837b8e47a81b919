"""Delete order of the cluster stack (issue 7): workload manifests -> controllers -> cleanup custom
resource -> node group / cluster. CloudFormation deletes in reverse dependency order, so each
arrow is asserted as a (transitive) dependency in the synthesized template: DependsOn, Ref and
Fn::GetAtt edges all count. Needs stacks/cluster_stack.py to wire ControllerCleanup."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdk_constructs.controller_cleanup import RESOURCE_TYPE

HELM_CHART = "Custom::AWSCDK-EKS-HelmChart"
MANIFEST = "Custom::AWSCDK-EKS-KubernetesResource"
WORKLOAD_KINDS = ("ScaledObject", "NodePool", "EC2NodeClass", "TargetGroupBinding")


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if "Ref" in node and isinstance(node["Ref"], str):
            found.add(node["Ref"])
        if "Fn::GetAtt" in node:
            target = node["Fn::GetAtt"]
            found.add(target[0] if isinstance(target, list) else str(target).split(".")[0])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _closure(resources: dict[str, Any]) -> dict[str, set[str]]:
    direct = {}
    for name, resource in resources.items():
        depends = resource.get("DependsOn", [])
        depends = [depends] if isinstance(depends, str) else depends
        direct[name] = (set(depends) | _refs(resource.get("Properties", {}))) & set(resources)
    closure: dict[str, set[str]] = {}

    def visit(name: str) -> set[str]:
        if name not in closure:
            closure[name] = set()
            for dep in direct[name]:
                closure[name] |= {dep} | visit(dep)
        return closure[name]

    for name in resources:
        visit(name)
    return closure


@pytest.fixture(scope="module")
def cluster_template(default_app) -> dict[str, Any]:
    """The cluster stack's template from the suite's one synthesized default app."""
    return default_app.templates[default_app.stacks.cluster.stack_name]


def _of_type(resources: dict[str, Any], kind: str) -> list[str]:
    return sorted(name for name, r in resources.items() if r["Type"] == kind)


def test_cleanup_depends_on_the_cluster_and_the_node_group(cluster_template):
    resources = cluster_template["Resources"]
    deps = _closure(resources)
    (cleanup,) = _of_type(resources, RESOURCE_TYPE)
    assert set(_of_type(resources, "AWS::EKS::Cluster")) <= deps[cleanup]
    assert set(_of_type(resources, "AWS::EKS::Nodegroup")) <= deps[cleanup]


def test_controllers_depend_on_the_cleanup(cluster_template):
    resources = cluster_template["Resources"]
    deps = _closure(resources)
    (cleanup,) = _of_type(resources, RESOURCE_TYPE)
    charts = _of_type(resources, HELM_CHART)
    assert charts
    assert [c for c in charts if cleanup not in deps[c]] == []


def test_workload_manifests_depend_on_the_controllers(cluster_template):
    resources = cluster_template["Resources"]
    deps = _closure(resources)
    charts = set(_of_type(resources, HELM_CHART))
    workloads = [
        name for name in _of_type(resources, MANIFEST)
        if any(f'"kind":"{kind}"' in json.dumps(resources[name]).replace("\\", "").replace(" ", "")
               for kind in WORKLOAD_KINDS)
    ]
    assert workloads, "no ScaledObject/NodePool/EC2NodeClass/TargetGroupBinding manifest found"
    missing = {w: sorted(charts - deps[w]) for w in workloads if charts - deps[w]}
    assert missing == {}
