"""The VPC-origin wait custom resource: on Delete, waits until CloudFront has removed the network
interfaces and the security group it created in the VPC for its VPC origin.

CloudFront's service-linked role deletes them on its own, some time after the VPC origin is
deleted; until then the subnets and the VPC cannot be deleted. Runtime code and sources:
``services/vpc_origin_wait/handler.py``. This construct wires it:

* two Lambda functions (``on_event``, ``is_complete``; Python, arm64, outside the VPC: they only
  call the EC2 API, and a function in the VPC would leave ENIs of its own there);
* a role that may only describe security groups and network interfaces;
* a Provider framework (``is_complete`` polled every 15 s; total timeout = ``timeout_seconds`` +
  120 s, under one hour) and a ``Custom::VpcOriginWait`` resource whose ``ServiceTimeout`` is set
  just above that.

Ordering (wired by :class:`cdk_constructs.edge.Edge`): the VPC origin depends on this resource,
so on ``cdk destroy`` it is deleted right after the VPC origin, and the network stack (deleted
after the edge stack) finds the VPC free of CloudFront's resources.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from app_config.constants import CLOUDFRONT_VPC_ORIGIN_TAG, CLOUDFRONT_VPC_ORIGINS_SG_NAME
from cdk_constructs.handler_provider import HandlerProviderProps, HandlerSize, handler_provider
from cdk_constructs.nag import acknowledge_wildcard_resources

HANDLER_PACKAGE = "vpc_origin_wait"  # services/vpc_origin_wait
RESOURCE_TYPE = "Custom::VpcOriginWait"
QUERY_INTERVAL = cdk.Duration.seconds(15)
FRAMEWORK_MARGIN_SECONDS = 120  # Provider total timeout = wait timeout + this, so our message wins
SERVICE_TIMEOUT_MARGIN_SECONDS = 60


@dataclass(frozen=True)
class VpcOriginWaitProps:
    """Props of :class:`VpcOriginWait`.

    Attributes:
        vpc: the VPC of the VPC origin.
        timeout_seconds: how long a Delete may wait before it fails naming what is left, seconds
            (plus the framework margins, under CloudFormation's one-hour limit).
    """

    vpc: ec2.IVpc
    timeout_seconds: int


class VpcOriginWait(Construct):
    """Exposes ``resource`` (the ``cdk.CustomResource``: make the VPC origin depend on it),
    ``role`` and ``provider``.

    Raises:
        ValueError: ``timeout_seconds`` is not positive or the total reaches one hour.
    """

    def __init__(self, scope: Construct, construct_id: str, props: VpcOriginWaitProps) -> None:
        super().__init__(scope, construct_id)
        total = props.timeout_seconds + FRAMEWORK_MARGIN_SECONDS
        if props.timeout_seconds <= 0 or total + SERVICE_TIMEOUT_MARGIN_SECONDS >= 3600:
            raise ValueError(
                f"VpcOriginWaitProps.timeout_seconds must be in 1..{3599 - FRAMEWORK_MARGIN_SECONDS - SERVICE_TIMEOUT_MARGIN_SECONDS}, "
                f"got {props.timeout_seconds}"
            )
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="VPC-origin wait handler: reads security groups and network interfaces",
        )
        self.role.add_to_policy(iam.PolicyStatement(
            sid="ReadCloudFrontVpcOriginResources",
            actions=["ec2:DescribeSecurityGroups", "ec2:DescribeNetworkInterfaces"],
            resources=["*"],
        ))
        size = HandlerSize(timeout=cdk.Duration.minutes(1), memory_mb=256)
        self.provider = handler_provider(self, HandlerProviderProps(
            package=HANDLER_PACKAGE,
            role=self.role,
            sizes={"on_event": size, "is_complete": size},
            query_interval=QUERY_INTERVAL,
            total_timeout=cdk.Duration.seconds(total),
            describe=lambda handler: f"VPC-origin wait {handler}: CloudFront's ENIs and security group gone",
            grant_log_write=True,  # no managed policy: the role writes its own two log groups only
        ))
        tag_key, tag_value = CLOUDFRONT_VPC_ORIGIN_TAG
        self.resource = cdk.CustomResource(
            self, "Resource",
            service_token=self.provider.service_token,
            resource_type=RESOURCE_TYPE,
            service_timeout=cdk.Duration.seconds(total + SERVICE_TIMEOUT_MARGIN_SECONDS),
            properties={
                "VpcId": props.vpc.vpc_id,
                "GroupName": CLOUDFRONT_VPC_ORIGINS_SG_NAME,
                "TagKey": tag_key,
                "TagValue": tag_value,
                "TimeoutSeconds": str(props.timeout_seconds),
            },
        )
        default_policy = self.role.node.find_child("DefaultPolicy")
        self.resource.node.add_dependency(default_policy)
        acknowledge_wildcard_resources(
            default_policy,
            "ec2:DescribeSecurityGroups and ec2:DescribeNetworkInterfaces support no resource-level "
            "permissions; the role has these two read-only actions and nothing else.",
        )
