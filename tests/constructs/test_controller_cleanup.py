"""ControllerCleanup synthesizes with least-privilege IAM, bounded timeouts and no cdk-nag findings."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk.lambda_layer_kubectl_v35 import KubectlV35Layer
from cdk_nag import AwsSolutionsChecks

from app_config.model import TeardownConfig
from cdk_constructs.controller_cleanup import RESOURCE_TYPE, ControllerCleanup, ControllerCleanupProps
from tests.support.cdk_app import new_app


def _stack(app: cdk.App, timeout: int = 900) -> cdk.Stack:
    stack = cdk.Stack(app, "T", env=cdk.Environment(region="us-west-2"))
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
    cluster = eks.Cluster(
        stack, "Cluster", version=eks.KubernetesVersion.V1_35, vpc=vpc, cluster_name="alpha",
        default_capacity_type=eks.DefaultCapacityType.NODEGROUP, default_capacity=0,
        kubectl_provider_options=eks.KubectlProviderOptions(kubectl_layer=KubectlV35Layer(stack, "Kubectl")),
    )
    role = iam.Role(stack, "NodeRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    ControllerCleanup(stack, "Cleanup", ControllerCleanupProps(
        cluster_name="alpha", cluster=cluster, vpc=vpc, node_role=role,
        config=TeardownConfig(wait_timeout_seconds=timeout),
    ))
    return stack


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("cleanup.out")
    app = new_app(outdir)
    stack = _stack(app)
    assembly = app.synth()
    return assembly.get_stack_by_name(stack.stack_name).template, Path(outdir)


def _resources(template: dict, kind: str) -> dict:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_custom_resource_properties_and_timeouts(synthesized):
    template, _ = synthesized
    (resource,) = _resources(template, RESOURCE_TYPE).values()
    props = resource["Properties"]
    assert props["ClusterName"] == "alpha" and props["NodePools"] == ["gpu", "cpu"]
    assert props["TimeoutSeconds"] == "900"
    assert int(props["ServiceTimeout"]) == 900 + 120 + 60 < 3600
    assert len(resource["DependsOn"]) >= 4  # access entry, RBAC manifest, API-server rule, policy
    waiter = [r for r in _resources(template, "AWS::StepFunctions::StateMachine").values()]
    assert waiter and "\"MaxAttempts\":68" in json.dumps(waiter[0]["Properties"]["DefinitionString"]).replace("\\", "")


def test_handlers_are_python_arm64_in_the_vpc(synthesized):
    template, outdir = synthesized
    handlers = [f for f in _resources(template, "AWS::Lambda::Function").values()
                if str(f["Properties"].get("Handler", "")).startswith("teardown.handler.")]
    assert sorted(f["Properties"]["Handler"] for f in handlers) == ["teardown.handler.is_complete", "teardown.handler.on_event"]
    for function in handlers:
        assert function["Properties"]["Runtime"] == "python3.14"
        assert function["Properties"]["Architectures"] == ["arm64"]
        assert function["Properties"]["VpcConfig"]["SubnetIds"]
    asset = outdir / f"asset.{handlers[0]['Properties']['Code']['S3Key'].removesuffix('.zip')}"
    shipped = sorted(p.relative_to(asset).as_posix() for p in asset.rglob("*") if p.is_file())
    assert shipped == ["teardown/__init__.py", "teardown/cleanup.py", "teardown/handler.py", "teardown/kube.py"]


def test_mutating_permissions_are_tag_scoped(synthesized):
    template, _ = synthesized
    statements = {
        s["Sid"]: s
        for p in _resources(template, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"] if "Sid" in s
    }
    terminate = statements["TerminateKarpenterInstances"]
    assert terminate["Action"] == "ec2:TerminateInstances"
    assert terminate["Condition"] == {"StringEquals": {"aws:ResourceTag/kubernetes.io/cluster/alpha": "owned"},
                                      "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}}
    assert statements["DeleteKarpenterLaunchTemplates"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/karpenter.k8s.aws/cluster": "alpha"}}
    assert statements["DeleteControllerLoadBalancers"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/elbv2.k8s.aws/cluster": "alpha"}}
    assert statements["RemoveKarpenterInstanceProfiles"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/kubernetes.io/cluster/alpha": "owned"}}
    for sid, statement in statements.items():
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if any(":Delete" in a or ":Terminate" in a or ":Revoke" in a or ":Remove" in a for a in actions):
            assert "Condition" in statement, sid


def test_access_entry_maps_to_a_narrow_cluster_role(synthesized):
    template, _ = synthesized
    entries = [e for e in _resources(template, "AWS::EKS::AccessEntry").values()
               if e["Properties"].get("KubernetesGroups") == ["qvllm:controller-cleanup"]]
    assert len(entries) == 1 and "AccessPolicies" not in entries[0]["Properties"]
    from cdk_constructs.controller_cleanup import rbac_manifests

    role, binding = rbac_manifests()
    assert role["rules"] == [
        {"apiGroups": ["karpenter.sh"], "resources": ["nodepools"], "verbs": ["get", "list", "delete"]},
        {"apiGroups": ["karpenter.sh"], "resources": ["nodeclaims"], "verbs": ["get", "list"]},
    ]
    assert binding["subjects"][0]["name"] == "qvllm:controller-cleanup"
    assert "qvllm-controller-cleanup" in json.dumps(template)  # the RBAC manifest is applied


def test_no_unacknowledged_nag_findings_in_the_construct(tmp_path):
    app = new_app(tmp_path)
    _stack(app)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    try:
        app.synth()
        report = ""
    except Exception as exc:  # noqa: BLE001 - the test scaffolding (VPC, cluster) has findings of its own
        report = str(exc)
    assert "AwsSolutions" in report  # the scaffolding's findings prove the plugin ran
    assert "T/Cleanup/" not in report, [line for line in report.splitlines() if "T/Cleanup/" in line]


def test_cluster_name_must_be_a_plain_string():
    app = cdk.App()
    stack = cdk.Stack(app, "S")
    vpc = ec2.Vpc(stack, "Vpc")
    with pytest.raises(ValueError, match="cluster_name must be a plain string"):
        ControllerCleanup(stack, "C", ControllerCleanupProps(
            cluster_name=cdk.Fn.ref("X"), cluster=None, vpc=vpc, node_role=None, config=TeardownConfig()))  # type: ignore[arg-type]
