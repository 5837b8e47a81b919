"""Delete order of the cluster stack: workload manifests -> controllers -> cleanup custom
resource -> node group / cluster. CloudFormation deletes in reverse dependency order, so each
arrow is asserted as a (transitive) dependency in the synthesized template, on the dependency
graph model of tests/support/cfn_graph.py. Needs stacks/cluster_stack.py to wire ControllerCleanup.
What else must outlive the cleanup: tests/stacks/test_destroy_order.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cdk_constructs.controller_cleanup import RESOURCE_TYPE
from tests.support.cfn_graph import AppGraph

HELM_CHART = "Custom::AWSCDK-EKS-HelmChart"
MANIFEST = "Custom::AWSCDK-EKS-KubernetesResource"
WORKLOAD_KINDS = ("ScaledObject", "NodePool", "EC2NodeClass", "TargetGroupBinding")


@pytest.fixture(scope="module")
def cluster_template(default_app) -> dict[str, Any]:
    """The cluster stack's template from the suite's one synthesized default app."""
    return default_app.templates[default_app.stacks.cluster.stack_name]


@pytest.fixture(scope="module")
def deps(default_app) -> dict[str, set[str]]:
    """Cluster-stack logical id -> the cluster-stack logical ids it depends on, as CloudFormation
    orders them (tests/support/cfn_graph.py: DependsOn, Ref, Fn::GetAtt, Fn::Sub, at any depth)."""
    graph = AppGraph.from_assembly(default_app.assembly)
    stack = default_app.stacks.cluster.stack_name
    return {
        rid.logical_id: {dep.logical_id for dep in graph.dependencies(rid) if dep.stack == stack}
        for rid in graph.resources if rid.stack == stack
    }


def _of_type(resources: dict[str, Any], kind: str) -> list[str]:
    return sorted(name for name, r in resources.items() if r["Type"] == kind)


def test_cleanup_depends_on_the_cluster_and_the_node_group(cluster_template, deps):
    resources = cluster_template["Resources"]
    (cleanup,) = _of_type(resources, RESOURCE_TYPE)
    assert set(_of_type(resources, "AWS::EKS::Cluster")) <= deps[cleanup]
    assert set(_of_type(resources, "AWS::EKS::Nodegroup")) <= deps[cleanup]


def test_controllers_depend_on_the_cleanup(cluster_template, deps):
    resources = cluster_template["Resources"]
    (cleanup,) = _of_type(resources, RESOURCE_TYPE)
    charts = _of_type(resources, HELM_CHART)
    assert charts
    assert [c for c in charts if cleanup not in deps[c]] == []


def test_workload_manifests_depend_on_the_controllers(cluster_template, deps):
    resources = cluster_template["Resources"]
    charts = set(_of_type(resources, HELM_CHART))
    workloads = [
        name for name in _of_type(resources, MANIFEST)
        if any(f'"kind":"{kind}"' in json.dumps(resources[name]).replace("\\", "").replace(" ", "")
               for kind in WORKLOAD_KINDS)
    ]
    assert workloads, "no ScaledObject/NodePool/EC2NodeClass/TargetGroupBinding manifest found"
    missing = {w: sorted(charts - deps[w]) for w in workloads if charts - deps[w]}
    assert missing == {}
