"""The compile cache's AWS side (cdk_constructs/compile_cache.py) in the default app's Cluster template:
where the file system is, who may reach and mount it, and what the EFS CSI driver may do."""

from __future__ import annotations

import json

import pytest

from app_config import config_from_dict
from app_config.constants import COMPILE_CACHE_NAME
from cdk_constructs.compile_cache import EFS_CSI_ADDON, EFS_CSI_CONTROLLER_SERVICE_ACCOUNT


@pytest.fixture(scope="module")
def resources(default_app) -> dict:
    return default_app.templates[default_app.stacks.cluster.stack_name]["Resources"]


def _one(resources: dict, cfn_type: str) -> tuple[str, dict]:
    (item,) = [(k, r) for k, r in resources.items() if r["Type"] == cfn_type]
    return item


def _efs_csi_addon(resources: dict) -> dict:
    (addon,) = [r for r in resources.values()
                if r["Type"] == "AWS::EKS::Addon" and r["Properties"]["AddonName"] == EFS_CSI_ADDON]
    return addon


def _logical_id(default_app, construct) -> str:
    stack = default_app.stacks.cluster
    return stack.resolve(construct.node.default_child.logical_id)


def test_file_system_is_encrypted_elastic_and_never_moved_to_infrequent_access(resources):
    _, fs = _one(resources, "AWS::EFS::FileSystem")
    props = fs["Properties"]
    assert props["Encrypted"] is True
    assert props["ThroughputMode"] == "elastic" and props["PerformanceMode"] == "generalPurpose"
    assert "LifecyclePolicies" not in props  # every pod start reads the cache


def test_only_the_gpu_nodes_reach_it_over_nfs(default_app, resources):
    cache = default_app.stacks.cluster.compile_cache
    group = _logical_id(default_app, cache.security_group)
    node_group = _logical_id(default_app, default_app.stacks.cluster.eks.node_security_group)
    rules = [r["Properties"] for r in resources.values()
             if r["Type"] == "AWS::EC2::SecurityGroupIngress" and r["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}]
    assert rules == [{
        "Description": "NFS from Karpenter's nodes", "FromPort": 2049, "ToPort": 2049, "IpProtocol": "tcp",
        "GroupId": {"Fn::GetAtt": [group, "GroupId"]}, "SourceSecurityGroupId": {"Fn::GetAtt": [node_group, "GroupId"]},
    }]
    inline = resources[group]["Properties"]
    assert "SecurityGroupIngress" not in inline
    # aws-cdk-lib's placeholder for "no egress" (an ICMP rule to 255.255.255.255/32 that matches nothing)
    assert [e["CidrIp"] for e in inline["SecurityGroupEgress"]] == ["255.255.255.255/32"]
    for _, target in ((k, r) for k, r in resources.items() if r["Type"] == "AWS::EFS::MountTarget"):
        assert target["Properties"]["SecurityGroups"] == [{"Fn::GetAtt": [group, "GroupId"]}]


def test_nodes_may_mount_and_write_only_through_the_access_point(default_app, resources):
    cache = default_app.stacks.cluster.compile_cache
    ap_id, ap = _one(resources, "AWS::EFS::AccessPoint")
    assert ap["Properties"]["RootDirectory"]["Path"] == f"/{COMPILE_CACHE_NAME}"
    assert ap["Properties"]["PosixUser"] == {"Uid": "1000", "Gid": "1000"}
    policy = resources[_logical_id(default_app, cache.mount_policy)]["Properties"]
    node_role = _logical_id(default_app, default_app.stacks.cluster.karpenter.node_role)
    assert policy["Roles"] == [{"Ref": node_role}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    assert statement["Condition"]["Bool"] == {"elasticfilesystem:AccessedViaMountTarget": "true"}
    assert {"Ref": ap_id} in statement["Condition"]["StringEquals"]["elasticfilesystem:AccessPointArn"]["Fn::Join"][1]
    # aws-cdk-lib's file system policy (feature flag @aws-cdk/aws-efs:denyAnonymousAccess): a
    # client without IAM gets nothing, so the PersistentVolume mounts with `iam`.
    _, fs = _one(resources, "AWS::EFS::FileSystem")
    (fs_statement,) = fs["Properties"]["FileSystemPolicy"]["Statement"]
    assert "elasticfilesystem:ClientMount" not in fs_statement["Action"]


def test_the_csi_driver_can_create_no_access_point(default_app, resources):
    """Static provisioning only: the controller's Pod Identity role may describe this file system and
    nothing else, so no access point can appear outside the template and block `cdk destroy`."""
    cache = default_app.stacks.cluster.compile_cache
    addon = _efs_csi_addon(resources)
    role_id = _logical_id(default_app, cache.controller_role)
    assert addon["Properties"]["PodIdentityAssociations"] == [
        {"RoleArn": {"Fn::GetAtt": [role_id, "Arn"]}, "ServiceAccount": EFS_CSI_CONTROLLER_SERVICE_ACCOUNT}
    ]
    assert addon["Properties"]["PreserveOnDelete"] is False  # turning the cache off removes the driver
    role = resources[role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert "ManagedPolicyArns" not in role
    actions = [a for p in role["Policies"] for s in p["PolicyDocument"]["Statement"] for a in s["Action"]]
    assert actions and all(a.startswith("elasticfilesystem:Describe") for a in actions), actions
    attached = [r for r in resources.values() if r["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in r["Properties"].get("Roles", [])]
    assert attached == []
    resources_named = json.dumps([s["Resource"] for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]])
    assert "*" not in resources_named


def test_driver_add_on_waits_for_the_nodes_its_controller_runs_on(default_app, resources):
    addon = _efs_csi_addon(resources)
    nodegroup = default_app.stacks.cluster.eks.system_nodegroup
    assert _logical_id(default_app, nodegroup) in addon["DependsOn"]


def test_compile_cache_off_creates_no_efs(tmp_path):
    from stacks.app_builder import build_app
    from tests.support.cdk_app import new_app

    app = new_app(tmp_path)
    stacks = build_app(app, config_from_dict({"vllm": {"compile_cache": {"enabled": False}}}), nag=False)
    template = app.synth().get_stack_by_name(stacks.cluster.stack_name).template
    types = {r["Type"] for r in template["Resources"].values()}
    assert not {t for t in types if t.startswith("AWS::EFS::")}
    assert EFS_CSI_ADDON not in json.dumps(template)
    assert stacks.cluster.compile_cache is None and stacks.cluster.workloads.compile_cache is None
