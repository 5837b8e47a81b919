"""VpcOriginWait synthesizes with read-only IAM, the CloudFront names from app_config, bounded
timeouts under CloudFormation's hour, and functions outside the VPC."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2

from app_config.constants import CLOUDFRONT_VPC_ORIGIN_TAG, CLOUDFRONT_VPC_ORIGINS_SG_NAME
from cdk_constructs.vpc_origin_wait import RESOURCE_TYPE, VpcOriginWait, VpcOriginWaitProps
from tests.support.cdk_app import new_app


def _template(timeout: int = 900) -> dict:
    app = new_app()
    stack = cdk.Stack(app, "T", env=cdk.Environment(region="us-west-2"))
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
    VpcOriginWait(stack, "Wait", VpcOriginWaitProps(vpc=vpc, timeout_seconds=timeout))
    return app.synth().get_stack_by_name("T").template


def _of_type(template: dict, kind: str) -> dict:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


@pytest.fixture(scope="module")
def template() -> dict:
    return _template(600)


def test_properties_and_timeouts(template):
    (resource,) = _of_type(template, RESOURCE_TYPE).values()
    props = resource["Properties"]
    assert props["GroupName"] == CLOUDFRONT_VPC_ORIGINS_SG_NAME
    assert (props["TagKey"], props["TagValue"]) == CLOUDFRONT_VPC_ORIGIN_TAG
    assert props["TimeoutSeconds"] == "600"
    assert int(props["ServiceTimeout"]) == 600 + 120 + 60 < 3600


def test_role_may_only_describe_groups_and_interfaces(template):
    statements = [
        statement
        for policy in _of_type(template, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement.get("Sid") == "ReadCloudFrontVpcOriginResources"
    ]
    assert statements == [{
        "Sid": "ReadCloudFrontVpcOriginResources", "Effect": "Allow", "Resource": "*",
        "Action": ["ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroups"],
    }]
    handler_roles = [r for k, r in _of_type(template, "AWS::IAM::Role").items() if k.startswith("WaitRole")]
    assert all("ManagedPolicyArns" not in r["Properties"] for r in handler_roles)


def test_functions_run_outside_the_vpc(template):
    functions = _of_type(template, "AWS::Lambda::Function")
    ours = {k: f for k, f in functions.items() if f["Properties"].get("Handler", "").startswith("vpc_origin_wait.")}
    assert len(ours) == 2
    assert all("VpcConfig" not in f["Properties"] for f in ours.values())


@pytest.mark.parametrize("timeout", [0, 3600 - 120 - 60])
def test_timeouts_outside_the_hour_are_refused(timeout):
    with pytest.raises(ValueError, match="timeout_seconds"):
        _template(timeout)
