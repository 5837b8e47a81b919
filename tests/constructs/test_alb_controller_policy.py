"""The load balancer controller's IAM policy: upstream's, with its two unconstrained EC2 write
statements narrowed to this cluster (cdk_constructs/eks_cluster.py, narrow_alb_controller_policy)."""

from __future__ import annotations

import json

import pytest

from cdk_constructs.eks_cluster import load_alb_controller_policy, narrow_alb_controller_policy

VPC_ARN = "arn:aws:ec2:us-west-2:123456789012:vpc/vpc-0123456789abcdef0"


def _narrowed() -> dict:
    return narrow_alb_controller_policy(load_alb_controller_policy(), cluster_name="qvllm", vpc_arn=VPC_ARN)


def _unconstrained_ec2_writes(policy: dict) -> list[str]:
    return sorted(
        action
        for s in policy["Statement"]
        if s.get("Resource") == "*" and "Condition" not in s
        for action in s["Action"]
        if action.startswith("ec2:") and not action.startswith("ec2:Describe") and not action.startswith("ec2:Get")
    )


def test_upstream_has_unconstrained_security_group_writes():
    assert _unconstrained_ec2_writes(load_alb_controller_policy()) == [
        "ec2:AuthorizeSecurityGroupIngress", "ec2:CreateSecurityGroup", "ec2:RevokeSecurityGroupIngress",
    ]


def test_narrowed_policy_has_none_and_keeps_every_other_statement():
    narrowed = _narrowed()
    assert _unconstrained_ec2_writes(narrowed) == []
    ingress = [s for s in narrowed["Statement"] if s["Action"] == ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"]
               and s["Resource"] == "*" and "kubernetes.io/cluster/qvllm" in json.dumps(s["Condition"])]
    assert ingress == [{**ingress[0], "Condition": {"Null": {"aws:ResourceTag/kubernetes.io/cluster/qvllm": "false"}}}]
    create = [s for s in narrowed["Statement"] if s["Action"] == ["ec2:CreateSecurityGroup"]]
    assert sorted(json.dumps(s, sort_keys=True) for s in create) == sorted(json.dumps(s, sort_keys=True) for s in [
        {"Effect": "Allow", "Action": ["ec2:CreateSecurityGroup"], "Resource": VPC_ARN},
        {"Effect": "Allow", "Action": ["ec2:CreateSecurityGroup"], "Resource": "arn:aws:ec2:*:*:security-group/*",
         "Condition": {"Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "false"}}},
    ])
    upstream = {json.dumps(s, sort_keys=True) for s in load_alb_controller_policy()["Statement"]}
    kept = {json.dumps(s, sort_keys=True) for s in narrowed["Statement"]} - {json.dumps(s, sort_keys=True) for s in (*ingress, *create)}
    assert kept == upstream - {json.dumps(s, sort_keys=True) for s in load_alb_controller_policy()["Statement"]
                               if s.get("Resource") == "*" and "Condition" not in s and s["Action"][0] in
                               ("ec2:AuthorizeSecurityGroupIngress", "ec2:CreateSecurityGroup")}


def test_a_changed_upstream_policy_is_refused():
    policy = load_alb_controller_policy()
    policy["Statement"] = [s for s in policy["Statement"] if s["Action"] != ["ec2:CreateSecurityGroup"]]
    with pytest.raises(ValueError, match="changed upstream"):
        narrow_alb_controller_policy(policy, cluster_name="qvllm", vpc_arn=VPC_ARN)
