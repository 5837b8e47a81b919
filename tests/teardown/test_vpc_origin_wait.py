"""The VPC-origin wait handler (services/vpc_origin_wait) against a real moto_server: on Delete it
waits while CloudFront's VPC-origin security group or ENIs are in the VPC, completes when they
are gone, ignores other VPCs, deletes nothing, and fails past its timeout naming what is left."""

from __future__ import annotations

import pytest

from app_config.constants import CLOUDFRONT_VPC_ORIGIN_TAG, CLOUDFRONT_VPC_ORIGINS_SG_NAME
from services.vpc_origin_wait.handler import Settings, VpcOriginWaitHandler, VpcOriginWaitTimeout

TAG_KEY, TAG_VALUE = CLOUDFRONT_VPC_ORIGIN_TAG


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _vpc_with_cloudfront_resources(ec2, *, with_eni: bool = True) -> dict[str, str]:
    """A VPC as CloudFront leaves it while a VPC origin exists: its tagged group and one tagged ENI."""
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    tags = [{"ResourceType": "security-group", "Tags": [{"Key": TAG_KEY, "Value": TAG_VALUE}]}]
    group = ec2.create_security_group(
        GroupName=CLOUDFRONT_VPC_ORIGINS_SG_NAME, Description="CloudFront configured SecurityGroup",
        VpcId=vpc, TagSpecifications=tags,
    )["GroupId"]
    ids = {"vpc": vpc, "subnet": subnet, "group": group}
    if with_eni:
        ids["eni"] = ec2.create_network_interface(
            SubnetId=subnet, Groups=[group],
            TagSpecifications=[{"ResourceType": "network-interface", "Tags": [{"Key": TAG_KEY, "Value": TAG_VALUE}]}],
        )["NetworkInterface"]["NetworkInterfaceId"]
    return ids


def _event(request: str, vpc: str, timeout: int = 900, data: dict | None = None) -> dict:
    event = {
        "RequestType": request,
        "PhysicalResourceId": f"{vpc}-vpc-origin-wait",
        "ResourceProperties": {
            "VpcId": vpc, "GroupName": CLOUDFRONT_VPC_ORIGINS_SG_NAME,
            "TagKey": TAG_KEY, "TagValue": TAG_VALUE, "TimeoutSeconds": str(timeout),
        },
    }
    if data is not None:
        event["Data"] = data
    return event


@pytest.fixture
def handler(aws):
    clock = Clock()
    return VpcOriginWaitHandler(lambda: aws("ec2"), clock=clock), clock


def test_create_and_update_complete_at_once_without_aws_calls(aws, handler):
    wait, _ = handler
    created = wait.on_event(_event("Create", "vpc-1234"))
    assert created == {"PhysicalResourceId": "vpc-1234-vpc-origin-wait"}
    assert wait.is_complete(_event("Create", "vpc-1234")) == {"IsComplete": True}
    assert wait.is_complete(_event("Update", "vpc-1234")) == {"IsComplete": True}
    assert aws.calls == []


def test_delete_waits_while_cloudfronts_group_and_eni_exist_then_completes(aws, handler):
    wait, clock = handler
    ec2 = aws("ec2")
    ids = _vpc_with_cloudfront_resources(ec2)
    started = wait.on_event(_event("Delete", ids["vpc"]))
    assert started["Data"] == {"DeleteStartedAt": str(clock.now)}
    poll = _event("Delete", ids["vpc"], data=started["Data"])

    assert wait.is_complete(poll) == {"IsComplete": False}
    ec2.delete_network_interface(NetworkInterfaceId=ids["eni"])  # CloudFront removes its ENI...
    clock.now += 60
    assert wait.is_complete(poll) == {"IsComplete": False}  # ...the group is still there
    ec2.delete_security_group(GroupId=ids["group"])
    clock.now += 60
    assert wait.is_complete(poll) == {"IsComplete": True}
    assert aws.mutations() == ["DeleteNetworkInterface", "DeleteSecurityGroup"]  # ours (the test's), none by the handler


def test_other_vpcs_and_other_groups_do_not_count(aws, handler):
    wait, _ = handler
    ec2 = aws("ec2")
    other = _vpc_with_cloudfront_resources(ec2)  # another VPC's VPC origin
    ours = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    ec2.create_security_group(GroupName="alb", Description="ours", VpcId=ours)
    started = wait.on_event(_event("Delete", ours))
    assert wait.is_complete(_event("Delete", ours, data=started["Data"])) == {"IsComplete": True}
    assert other["group"]  # untouched


def test_timeout_names_what_is_left(aws, handler):
    wait, clock = handler
    ids = _vpc_with_cloudfront_resources(aws("ec2"))
    started = wait.on_event(_event("Delete", ids["vpc"], timeout=300))
    clock.now += 301
    with pytest.raises(VpcOriginWaitTimeout) as error:
        wait.is_complete(_event("Delete", ids["vpc"], timeout=300, data=started["Data"]))
    message = str(error.value)
    assert ids["group"] in message and ids["eni"] in message and ids["vpc"] in message
    assert "after 300 s" in message


@pytest.mark.parametrize(
    "props, message",
    [
        ({"VpcId": ""}, "missing VpcId"),
        ({"TimeoutSeconds": "soon"}, "'soon' is not a number"),
        ({"TimeoutSeconds": "-5"}, "must be > 0"),
    ],
)
def test_bad_properties_fail_with_the_property_named(props, message):
    event = _event("Delete", "vpc-1")
    event["ResourceProperties"].update(props)
    with pytest.raises(ValueError, match=message):
        Settings.from_event(event)


def test_a_tagged_eni_counts_even_after_the_group_is_gone(aws, handler):
    """CloudFront tags its ENIs; one left with another group still blocks the subnet."""
    wait, _ = handler
    ec2 = aws("ec2")
    ids = _vpc_with_cloudfront_resources(ec2, with_eni=False)
    ec2.delete_security_group(GroupId=ids["group"])
    eni = ec2.create_network_interface(
        SubnetId=ids["subnet"],
        TagSpecifications=[{"ResourceType": "network-interface", "Tags": [{"Key": TAG_KEY, "Value": TAG_VALUE}]}],
    )["NetworkInterface"]["NetworkInterfaceId"]
    started = wait.on_event(_event("Delete", ids["vpc"]))
    assert wait.is_complete(_event("Delete", ids["vpc"], data=started["Data"])) == {"IsComplete": False}
    ec2.delete_network_interface(NetworkInterfaceId=eni)
    assert wait.is_complete(_event("Delete", ids["vpc"], data=started["Data"])) == {"IsComplete": True}
