"""The CloudFormation dependency-graph model (tests/support/cfn_graph.py) on small hand-written
templates: every reference form CloudFormation orders by, cross-stack imports, the app's stack
order, and a reproduction of the cluster template's security-group delete order before the fix."""

from __future__ import annotations

import pytest

from tests.support.cfn_graph import AppGraph, ResourceId, TemplateError


def _res(type_: str = "AWS::SNS::Topic", depends_on=None, **properties) -> dict:
    resource: dict = {"Type": type_, "Properties": properties}
    if depends_on is not None:
        resource["DependsOn"] = depends_on
    return resource


def _graph(resources: dict, **template) -> AppGraph:
    return AppGraph({"S": {"Resources": resources, **template}})


def R(name: str, stack: str = "S") -> ResourceId:  # noqa: N802 - reads like a resource name
    return ResourceId(stack, name)


def test_depends_on_string_and_list():
    graph = _graph({
        "A": _res(), "B": _res(), "C": _res(depends_on="A"), "D": _res(depends_on=["B", "C"]),
    })
    assert graph.direct_dependencies(R("C")) == {R("A")}
    assert graph.dependencies(R("D")) == {R("A"), R("B"), R("C")}
    assert graph.dependents(R("A")) == {R("C"), R("D")}


def test_ref_to_resource_is_an_edge_but_parameters_and_pseudo_parameters_are_not():
    graph = _graph(
        {"A": _res(), "B": _res(X={"Ref": "A"}, Y={"Ref": "Param"}, Z={"Ref": "AWS::Region"})},
        Parameters={"Param": {"Type": "String"}},
    )
    assert graph.direct_dependencies(R("B")) == {R("A")}


def test_get_att_list_and_dotted_string_forms():
    graph = _graph({
        "A": _res(), "B": _res(),
        "C": _res(X={"Fn::GetAtt": ["A", "Arn"]}, Y={"Fn::GetAtt": "B.Outputs.Name"}),
    })
    assert graph.direct_dependencies(R("C")) == {R("A"), R("B")}


def test_sub_variables_literals_pseudo_parameters_and_its_own_variable_map():
    graph = _graph({
        "A": _res(), "B": _res(), "Other": _res(),
        "C": _res(
            Plain={"Fn::Sub": "arn:${AWS::Partition}:sns:${A}:${B.TopicName}:${!NotAVariable}"},
            WithMap={"Fn::Sub": ["${Local}-x", {"Local": {"Ref": "Other"}}]},
        ),
    })
    assert graph.direct_dependencies(R("C")) == {R("A"), R("B"), R("Other")}


def test_references_nested_in_join_if_lists_and_maps():
    graph = _graph({
        "A": _res(), "B": _res(),
        "C": _res(Deep={"Fn::Join": ["", ["x", {"Fn::If": ["Cond", {"Ref": "A"}, [{"k": {"Fn::GetAtt": ["B", "Id"]}}]]}]]}),
    })
    assert graph.direct_dependencies(R("C")) == {R("A"), R("B")}


def test_metadata_is_not_an_edge():
    graph = _graph({"A": _res(), "B": {"Type": "AWS::SNS::Topic", "Metadata": {"x": {"Ref": "A"}}}})
    assert graph.dependencies(R("B")) == frozenset()


@pytest.mark.parametrize(
    "resource, message",
    [
        (_res(X={"Ref": "Missing"}), "'Missing'"),
        (_res(X={"Fn::GetAtt": ["Missing", "Arn"]}), "'Missing'"),
        (_res(X={"Fn::Sub": "${Missing}"}), "'Missing'"),
        (_res(depends_on="Missing"), "DependsOn names unknown resource 'Missing'"),
        (_res(X={"Fn::ImportValue": "nobody-exports-this"}), "no template exports"),
    ],
)
def test_a_reference_to_nothing_is_an_error(resource, message):
    with pytest.raises(TemplateError, match=message):
        _graph({"A": resource})


def test_import_value_is_an_edge_to_what_the_export_references():
    graph = AppGraph({
        "Net": {
            "Resources": {"Vpc": _res(), "Subnet": _res(VpcId={"Ref": "Vpc"}), "Unrelated": _res()},
            "Outputs": {"SubnetOut": {"Value": {"Ref": "Subnet"}, "Export": {"Name": "net:subnet"}}},
        },
        "App": {"Resources": {"Fn": _res(SubnetId={"Fn::ImportValue": "net:subnet"})}},
    })
    fn = ResourceId("App", "Fn")
    assert graph.direct_dependencies(fn) == {ResourceId("Net", "Subnet")}
    # Without a declared stack order only the import chain outlives Fn.
    assert graph.dependencies(fn) == {ResourceId("Net", "Subnet"), ResourceId("Net", "Vpc")}


def test_stack_order_makes_every_resource_of_an_upstream_stack_a_dependency():
    graph = AppGraph(
        {
            "Net": {"Resources": {"Vpc": _res(), "Nat": _res()}},
            "Edge": {"Resources": {"Alb": _res()}},
            "App": {"Resources": {"Fn": _res()}},
        },
        {"App": ["Edge"], "Edge": ["Net"]},
    )
    assert graph.dependencies(ResourceId("App", "Fn")) == {
        ResourceId("Edge", "Alb"), ResourceId("Net", "Vpc"), ResourceId("Net", "Nat"),
    }
    assert graph.may_delete_before(ResourceId("Net", "Nat")) == {
        ResourceId("App", "Fn"), ResourceId("Edge", "Alb"), ResourceId("Net", "Vpc"),
    }


def test_path_explains_an_edge_chain():
    graph = _graph({"A": _res(), "B": _res(X={"Ref": "A"}), "C": _res(depends_on="B")})
    assert graph.path(R("C"), R("A")) == [R("C"), R("B"), R("A")]
    assert graph.path(R("A"), R("C")) is None


def test_a_cycle_is_an_error():
    graph = _graph({"A": _res(depends_on="B"), "B": _res(depends_on="A")})
    with pytest.raises(TemplateError, match="circular"):
        graph.dependencies(R("A"))


# -- the cluster template's security-group order, reproduced small ---------------------------
def _cluster_like(cleanup_depends_on: list[str]) -> AppGraph:
    """Today's shape: the node security group and its rules are referenced by nothing but each
    other, the cleanup depends on the cluster, the controllers on the cleanup, the NodePools on
    the controllers."""
    node_sg_id = {"Fn::GetAtt": ["NodeSg", "GroupId"]}
    cluster_sg_id = {"Fn::GetAtt": ["Cluster", "ClusterSecurityGroupId"]}
    return _graph({
        "Cluster": _res("AWS::EKS::Cluster"),
        "NodeSg": _res("AWS::EC2::SecurityGroup", SecurityGroupIngress=[{"SourceSecurityGroupId": cluster_sg_id}]),
        "NodeSgSelf": _res("AWS::EC2::SecurityGroupIngress", GroupId=node_sg_id, SourceSecurityGroupId=node_sg_id),
        "ClusterFromNodes": _res(
            "AWS::EC2::SecurityGroupIngress", GroupId=cluster_sg_id, SourceSecurityGroupId=node_sg_id
        ),
        "Cleanup": _res("Custom::ControllerCleanup", depends_on=["Cluster", *cleanup_depends_on]),
        "KarpenterChart": _res("Custom::AWSCDK-EKS-HelmChart", depends_on=["Cleanup"]),
        "NodePools": _res("Custom::AWSCDK-EKS-KubernetesResource", depends_on=["KarpenterChart"]),
    })


def test_todays_security_group_order_lets_cloudformation_delete_the_group_first():
    graph = _cluster_like([])
    node_sg = R("NodeSg")
    # Only its own rules wait for the group...
    assert graph.dependents(node_sg) == {R("NodeSgSelf"), R("ClusterFromNodes")}
    # ...and nothing the first deletions (the NodePools) depend on holds it: CloudFormation may
    # delete the rules and the group at the very start, while Karpenter's nodes still use them.
    first = [rid for rid in graph.resources if not graph.dependents(rid)]
    assert set(first) == {R("NodePools"), R("NodeSgSelf"), R("ClusterFromNodes")}
    assert {node_sg, R("NodeSgSelf"), R("ClusterFromNodes")} <= graph.may_delete_before(R("Cleanup"))


def test_the_fixed_order_keeps_the_group_and_its_rules_until_the_cleanup_is_done():
    graph = _cluster_like(["NodeSg", "NodeSgSelf", "ClusterFromNodes"])
    assert not {R("NodeSg"), R("NodeSgSelf"), R("ClusterFromNodes")} & graph.may_delete_before(R("Cleanup"))
    assert [rid for rid in graph.resources if not graph.dependents(rid)] == [R("NodePools")]
