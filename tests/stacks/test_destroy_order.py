"""`cdk destroy --all` in one pass: on the app's real dependency graph (tests/support/cfn_graph.py),
nothing that controller-created resources use or need is deleted before the controller-cleanup
custom resource has finished.

Karpenter's instances (and their launch templates), the load balancer controller's target
registrations and the VPC CNI's pod ENIs are not in any template, so CloudFormation does not
know they use the node security group, the private subnets or the node role. The cleanup
custom resource removes them on Delete; everything they use must outlive it. A resource
outlives the cleanup only if the cleanup (transitively) depends on it: anything else
CloudFormation may delete first, in parallel, at the very start of the delete.
"""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from cdk_constructs.vpc_origin_wait import RESOURCE_TYPE as VPC_ORIGIN_WAIT
from tests.support.cdk_app import resource_id
from tests.support.cfn_graph import AppGraph, ResourceId


@pytest.fixture(scope="module")
def graph(default_app) -> AppGraph:
    return AppGraph.from_assembly(default_app.assembly)


@pytest.fixture(scope="module")
def cleanup(default_app) -> ResourceId:
    assert default_app.stacks.cluster.cleanup is not None, "the default config enables the teardown cleanup"
    return resource_id(default_app.stacks.cluster.cleanup.resource)


def _rules_on(graph: AppGraph, group: ResourceId) -> list[ResourceId]:
    """Every separate ingress/egress rule resource that names ``group`` (as target or source)."""
    rule_types = {"AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress"}
    return sorted(
        rid for rid, resource in graph.resources.items()
        if resource["Type"] in rule_types and group in graph.direct_dependencies(rid)
    )


# Each entry: (what, resources) -- ``resources(stacks, graph)`` returns the ids to check.
def _node_security_group(stacks, graph):
    return [resource_id(stacks.cluster.eks.node_security_group)]


def _node_security_group_rules(stacks, graph):
    """Separate rule resources of the node group itself (its inline rules go with it)."""
    node_sg = resource_id(stacks.cluster.eks.node_security_group)
    rules = [rid for rid in _rules_on(graph, node_sg) if _group_of(graph, rid) == node_sg]
    assert rules, "expected at least the node-to-node rule"
    return rules


def _cluster_security_group_rules_from_nodes(stacks, graph):
    """Rules on the EKS cluster security group (control plane, system nodes) that admit the nodes
    (the group is the cluster's ``ClusterSecurityGroupId`` attribute)."""
    node_sg = resource_id(stacks.cluster.eks.node_security_group)
    cluster = resource_id(stacks.cluster.cluster)
    rules = [rid for rid in _rules_on(graph, node_sg) if _group_of(graph, rid) == cluster]
    assert rules, "expected the node-to-cluster rule"
    return rules


def _group_of(graph: AppGraph, rule: ResourceId) -> ResourceId | None:
    group = graph.resources[rule]["Properties"]["GroupId"]
    return ResourceId(rule.stack, group["Fn::GetAtt"][0]) if "Fn::GetAtt" in group else None


def _private_subnets(stacks, graph):
    return [resource_id(subnet) for subnet in stacks.network.vpc.private_subnets]


def _private_routes(stacks, graph):
    found = []
    for subnet in stacks.network.vpc.private_subnets:
        for child in ("RouteTable", "RouteTableAssociation", "DefaultRoute"):
            found.append(resource_id(subnet.node.find_child(child)))
    return found


def _nat_path(stacks, graph):
    """NAT gateways and their Elastic IPs, the public subnets they sit in (with their routes),
    the internet gateway and its attachment: the private subnets' way out."""
    vpc = stacks.network.vpc
    found = []
    for subnet in vpc.public_subnets:
        found.append(resource_id(subnet))
        for child in ("RouteTable", "RouteTableAssociation", "DefaultRoute", "NATGateway", "EIP"):
            part = subnet.node.try_find_child(child)
            if part is not None:
                found.append(resource_id(part))
    found += [resource_id(vpc.node.find_child("IGW")), resource_id(vpc.node.find_child("VPCGW"))]
    assert any(graph.resources[rid]["Type"] == "AWS::EC2::NatGateway" for rid in found)
    return found


def _node_role(stacks, graph):
    return [resource_id(stacks.cluster.karpenter.node_role)]


def _node_access_entry(stacks, graph):
    return [resource_id(stacks.cluster.karpenter.node_access_entry)]


def _interruption_queue(stacks, graph):
    karpenter = stacks.cluster.karpenter
    return [
        resource_id(karpenter.queue),
        resource_id(karpenter.queue.node.find_child("Policy")),
        *(resource_id(rule) for rule in karpenter.rules.values()),
    ]


def _node_add_ons(stacks, graph):
    return [resource_id(addon) for addon in stacks.cluster.eks.addons.values()]


NEEDED_UNTIL_CLEANUP_IS_DONE = {
    "node security group": _node_security_group,
    "rules on the node security group": _node_security_group_rules,
    "cluster security group rules that admit the nodes": _cluster_security_group_rules_from_nodes,
    "private subnets": _private_subnets,
    "private route tables, associations and default routes": _private_routes,
    "NAT path (NAT gateway, EIP, public subnets and routes, internet gateway)": _nat_path,
    "node role (Karpenter's instance profiles hold it)": _node_role,
    "node access entry (nodes authenticate to the API server while they drain)": _node_access_entry,
    "interruption queue, its policy and EventBridge rules": _interruption_queue,
    "EKS add-ons the nodes run (VPC CNI for pod ENIs, kube-proxy, CoreDNS, Pod Identity agent)": _node_add_ons,
}


@pytest.mark.parametrize("what", list(NEEDED_UNTIL_CLEANUP_IS_DONE))
def test_outlives_the_controller_cleanup(what, default_app, graph, cleanup):
    ids = NEEDED_UNTIL_CLEANUP_IS_DONE[what](default_app.stacks, graph)
    assert ids
    early = {
        str(rid): f"{graph.resources[rid]['Type']}; dependents: {sorted(map(str, graph.dependents(rid)))}"
        for rid in ids
        if not graph.depends_on(cleanup, rid)
    }
    assert early == {}, (
        f"{what}: CloudFormation may delete these before the cleanup ({cleanup}) has finished"
    )


def test_cleanup_is_given_the_node_role_it_removes_instance_profiles_for(default_app, graph, cleanup):
    """Karpenter creates the node instance profiles itself (no template resource); the cleanup
    finds them through the node role it is given, so it must reference that role."""
    node_role = resource_id(default_app.stacks.cluster.karpenter.node_role)
    props = graph.resources[cleanup]["Properties"]
    assert props["NodeRoleName"] == {"Ref": node_role.logical_id}
    assert not graph.of_type("AWS::IAM::InstanceProfile", default_app.stacks.cluster.stack_name)


def test_node_security_group_outlives_karpenter_even_without_the_cleanup(tmp_path):
    """With ``teardown.cleanup_controller_resources: false`` Karpenter's own termination is all
    there is: the node security group, its rules and the subnets must outlive the Karpenter chart."""
    from app_config import config_from_dict
    from stacks.app_builder import build_app
    from tests.support.cdk_app import new_app

    app = new_app(tmp_path)
    stacks = build_app(app, config_from_dict({"teardown": {"cleanup_controller_resources": False}}), nag=False)
    graph = AppGraph.from_assembly(app.synth())
    assert stacks.cluster.cleanup is None
    chart = resource_id(stacks.cluster.karpenter.chart)
    node_sg = resource_id(stacks.cluster.eks.node_security_group)
    cluster = resource_id(stacks.cluster.cluster)
    # The node group's own rules and the cluster group's rule that admits the nodes (the compile
    # cache's NFS rule serves the vLLM pods, which are gone before the NodePools: see below).
    rules = [rid for rid in _rules_on(graph, node_sg) if _group_of(graph, rid) in (node_sg, cluster)]
    assert len(rules) >= 2
    needed = [node_sg, *rules, resource_id(stacks.cluster.karpenter.node_access_entry)]
    early = [str(rid) for rid in needed if not graph.depends_on(chart, rid)]
    assert early == []


def test_nothing_in_the_app_names_a_resource_that_does_not_exist(graph):
    """The model raises on dangling references; a full closure over every resource proves the
    templates are complete and acyclic (what CloudFormation checks at deploy)."""
    closures = {rid: graph.dependencies(rid) for rid in graph.resources}
    assert len(closures) == len(graph.resources) > 100


# -- CloudFront's VPC origin ------------------------------------------------------------------
def test_cloudfronts_vpc_origin_resources_are_waited_for_before_the_vpc_goes(default_app, graph):
    """CloudFront removes the ENIs and the security group of a VPC origin on its own, some time
    after the origin is deleted (sources: services/vpc_origin_wait/handler.py); while they exist
    the subnets and the VPC cannot be deleted. Something deleted after the VPC origin and before
    the subnets and the VPC must wait for them."""
    (vpc_origin,) = graph.of_type("AWS::CloudFront::VpcOrigin")
    waits = [rid for rid in graph.dependencies(vpc_origin) if graph.resources[rid]["Type"] == VPC_ORIGIN_WAIT]
    assert waits, f"nothing waits, after {vpc_origin} is deleted, for CloudFront to remove its ENIs and security group"
    (wait,) = waits
    vpc = default_app.stacks.network.vpc
    late = [str(resource_id(part)) for part in (vpc, *vpc.private_subnets, *vpc.public_subnets)
            if not graph.depends_on(wait, resource_id(part))]
    assert late == []
    assert graph.resources[wait]["Properties"]["VpcId"] == {"Fn::ImportValue": _export_of(graph, resource_id(vpc))}


def test_our_rule_naming_cloudfronts_group_goes_before_the_vpc_origin(default_app, graph):
    """CloudFront cannot delete its security group while a rule of ours still references it."""
    (vpc_origin,) = graph.of_type("AWS::CloudFront::VpcOrigin")
    rule = resource_id(default_app.stacks.edge.edge.node.find_child("AlbIngressFromVpcOrigin"))
    assert graph.depends_on(rule, vpc_origin), graph.path(rule, vpc_origin)


def _export_of(graph: AppGraph, rid: ResourceId) -> str:
    """The export name under which ``rid``'s Ref is exported by its stack."""
    for output in graph.templates[rid.stack].get("Outputs", {}).values():
        if output.get("Value") == {"Ref": rid.logical_id} and "Export" in output:
            return output["Export"]["Name"]
    raise AssertionError(f"{rid} is not exported")


# -- vLLM's compile cache on EFS ----------------------------------------------------------------
def _cfn_resources_under(construct) -> list[ResourceId]:
    """Every CloudFormation resource in ``construct``'s subtree."""
    return sorted(resource_id(child) for child in construct.node.find_all() if isinstance(child, cdk.CfnResource))


def test_compile_cache_outlives_every_manifest_that_mounts_it(default_app, graph):
    """The file system, its mount targets and access point, its security group and NFS rule, the
    nodes' mount policy and the EFS CSI driver add-on (which unmounts) are deleted only after the
    vLLM pods and the claim are gone: a mount target deleted under a live NFS mount breaks it, and a
    pod whose volume the driver can no longer unmount never finishes terminating."""
    cluster = default_app.stacks.cluster
    assert cluster.compile_cache is not None, "the default config turns the compile cache on"
    needed = _cfn_resources_under(cluster.compile_cache)
    kinds = {graph.resources[rid]["Type"] for rid in needed}
    assert {"AWS::EFS::FileSystem", "AWS::EFS::MountTarget", "AWS::EFS::AccessPoint", "AWS::EC2::SecurityGroup",
            "AWS::EC2::SecurityGroupIngress", "AWS::IAM::Policy", "AWS::EKS::Addon"} <= kinds
    vllm, claim = resource_id(cluster.workloads.vllm), resource_id(cluster.workloads.compile_cache)
    # vLLM goes first; `kubectl delete` of the claim then waits for its pods (the claim's finalizer).
    assert graph.depends_on(vllm, claim), graph.path(vllm, claim)
    early = {str(rid): graph.resources[rid]["Type"] for rid in needed if not graph.depends_on(claim, rid)}
    assert early == {}, f"CloudFormation may delete these before the compile cache claim ({claim})"


def test_mount_targets_go_before_their_subnets_and_security_group(default_app, graph):
    """A mount target's network interface sits in a private subnet with the cache's security group:
    both outlive it, and every private subnet (Karpenter launches GPU nodes into any of them) has one."""
    cluster = default_app.stacks.cluster
    efs_group = resource_id(cluster.compile_cache.security_group)
    subnets = {resource_id(subnet) for subnet in default_app.stacks.network.vpc.private_subnets}
    targets = graph.of_type("AWS::EFS::MountTarget", cluster.stack_name)
    covered = set()
    for target in targets:
        assert graph.depends_on(target, efs_group)
        (subnet,) = [s for s in subnets if s in graph.direct_dependencies(target)]
        covered.add(subnet)
    assert covered == subnets and len(targets) == len(subnets)
    # The NFS rule names the node security group, so it goes before that group.
    node_sg = resource_id(cluster.eks.node_security_group)
    (nfs_rule,) = [rid for rid in _rules_on(graph, node_sg) if _group_of(graph, rid) == efs_group]
    assert graph.resources[nfs_rule]["Properties"]["FromPort"] == 2049
    assert graph.depends_on(nfs_rule, node_sg)


def test_compile_cache_file_system_is_deleted_with_the_stack(default_app, graph):
    """aws-cdk-lib retains an EFS file system by default; the cache is rebuilt by the next pod, so
    `cdk destroy` deletes it (after its access point and mount targets, which reference it)."""
    stack = default_app.stacks.cluster.stack_name
    (file_system,) = graph.of_type("AWS::EFS::FileSystem", stack)
    assert graph.resources[file_system].get("DeletionPolicy") == "Delete"
    for dependent in (*graph.of_type("AWS::EFS::MountTarget", stack), *graph.of_type("AWS::EFS::AccessPoint", stack)):
        assert graph.depends_on(dependent, file_system)
        assert graph.resources[dependent].get("DeletionPolicy", "Delete") == "Delete"
