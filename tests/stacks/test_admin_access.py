"""Operators reach the cluster: each ``cluster.admin_principal_arns`` entry gets an EKS access entry
with AmazonEKSClusterAdminPolicy at cluster scope (access entries are the only authentication mode)."""

from __future__ import annotations

import pytest

from app_config import ConfigError, config_from_dict

ROLE = "arn:aws:iam::111122223333:role/platform/ml-admins"
USER = "arn:aws:iam::111122223333:user/alice"
ADMIN_POLICY_SUFFIX = ":eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def _admin_entries(resources: dict) -> dict[str, dict]:
    """Principal ARN -> admin policy association of every access entry for a literal (operator) ARN.

    (The stack's own roles, e.g. the teardown cleanup's, appear as tokens and are not counted.)
    """
    out = {}
    for resource in resources.values():
        if resource["Type"] != "AWS::EKS::AccessEntry" or not isinstance(resource["Properties"]["PrincipalArn"], str):
            continue
        for policy in resource["Properties"].get("AccessPolicies", []):
            arn = policy["PolicyArn"]
            text = arn if isinstance(arn, str) else "".join(p for p in arn["Fn::Join"][1] if isinstance(p, str))
            if text.endswith(ADMIN_POLICY_SUFFIX):
                out[resource["Properties"]["PrincipalArn"]] = policy
    return out


def test_b10_each_admin_principal_gets_cluster_admin_access(tmp_path) -> None:
    from stacks.app_builder import build_app
    from tests.support.cdk_app import new_app

    app = new_app(tmp_path)
    stacks = build_app(app, config_from_dict({"cluster": {"admin_principal_arns": [ROLE, USER]}}), nag=False)
    resources = app.synth().get_stack_by_name(stacks.cluster.stack_name).template["Resources"]
    entries = _admin_entries(resources)
    assert set(entries) == {ROLE, USER}
    assert all(policy["AccessScope"] == {"Type": "cluster"} for policy in entries.values())


def test_b10_no_admin_principal_by_default(cluster_template) -> None:
    assert _admin_entries(cluster_template["Resources"]) == {}


@pytest.mark.parametrize(
    "arn, expected",
    [
        ("arn:aws:sts::111122223333:assumed-role/Admin/alice", "give the role's ARN"),
        ("Admin", "is not an IAM role or user ARN"),
    ],
)
def test_b10_bad_admin_principal_fails_naming_the_field(arn: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"cluster": {"admin_principal_arns": [arn]}})
    assert "cluster.admin_principal_arns" in str(info.value) and expected in str(info.value)


def test_b10_duplicate_admin_principal_fails() -> None:
    with pytest.raises(ConfigError, match=r"cluster\.admin_principal_arns.*one access entry per principal"):
        config_from_dict({"cluster": {"admin_principal_arns": [ROLE, ROLE]}})


def test_b10_synth_warns_when_nobody_can_administer_the_cluster(default_app) -> None:
    from aws_cdk.assertions import Annotations, Match

    Annotations.from_stack(default_app.stacks.cluster).has_warning(
        "*", Match.string_like_regexp("cluster.admin_principal_arns is empty")
    )
