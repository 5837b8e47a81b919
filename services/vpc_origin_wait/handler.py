"""VPC-origin wait custom resource: on Delete, wait until CloudFront has removed the network
interfaces and the security group it created in the VPC for a VPC origin.

Why: CloudFront creates ENIs and a security group (``CloudFront-VPCOrigins-Service-SG``, tagged
``aws.cloudfront.vpcorigin=enabled``) in the VPC of a VPC origin, and its service-linked role
deletes them on its own, some time after the VPC origin is deleted: "It might take some time for
CloudFront to finish deleting the resources from your account"
(https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/using-service-linked-roles.html,
"Service-linked role permissions for CloudFront VPC Origins": ``ec2:DeleteNetworkInterface`` and
``ec2:DeleteSecurityGroup`` on resources with that tag). While they exist the subnets and the VPC
cannot be deleted (https://github.com/ekristen/aws-nuke/issues/615). The resource is ordered to
be deleted right after the VPC origin, so the network stack is deleted only once they are gone.

Create and Update do nothing but return a physical id. Delete: ``on_event`` stamps the start
(``Data.DeleteStartedAt``, passed on to every ``is_complete``); each ``is_complete`` lists the
groups with that name in the VPC and the ENIs in the VPC carrying the tag or one of those groups,
and completes when none is left. Past ``TimeoutSeconds`` it raises :class:`VpcOriginWaitTimeout`,
whose message names what is left; CloudFormation shows it as the resource's status reason.
Nothing is deleted here: the group and ENIs belong to CloudFront.

Resource properties (set by ``cdk_constructs/vpc_origin_wait.py``): ``VpcId``, ``GroupName``,
``TagKey``, ``TagValue``, ``TimeoutSeconds``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)


class VpcOriginWaitTimeout(RuntimeError):
    """CloudFront's VPC-origin resources were still there at the timeout. The message lists them."""


@dataclass(frozen=True)
class Settings:
    """Parsed resource properties.

    Attributes:
        vpc_id: the VPC of the VPC origin.
        group_name / tag_key / tag_value: how CloudFront names and tags what it creates there.
        timeout_seconds: how long a Delete may wait, from its ``on_event``.
    """

    vpc_id: str
    group_name: str
    tag_key: str
    tag_value: str
    timeout_seconds: float

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> "Settings":
        """Read ``ResourceProperties``.

        Raises:
            ValueError: a property is missing, or ``TimeoutSeconds`` is not a positive number.
        """
        props = event.get("ResourceProperties") or {}
        missing = [key for key in ("VpcId", "GroupName", "TagKey", "TagValue", "TimeoutSeconds") if not props.get(key)]
        if missing:
            raise ValueError(f"ResourceProperties missing {', '.join(missing)}")
        try:
            timeout = float(props["TimeoutSeconds"])
        except (TypeError, ValueError):
            raise ValueError(f"ResourceProperties.TimeoutSeconds {props['TimeoutSeconds']!r} is not a number") from None
        if timeout <= 0:
            raise ValueError(f"ResourceProperties.TimeoutSeconds must be > 0, got {timeout}")
        return cls(props["VpcId"], props["GroupName"], props["TagKey"], props["TagValue"], timeout)


def leftovers(ec2: Any, settings: Settings) -> dict[str, list[str]]:
    """CloudFront's security groups and ENIs still in the VPC: ``{"security-group": [...],
    "network-interface": [...]}`` (empty lists when gone)."""
    in_vpc = {"Name": "vpc-id", "Values": [settings.vpc_id]}
    groups = [
        group["GroupId"]
        for page in ec2.get_paginator("describe_security_groups").paginate(
            Filters=[in_vpc, {"Name": "group-name", "Values": [settings.group_name]}]
        )
        for group in page["SecurityGroups"]
    ]
    enis: set[str] = set()
    queries = [[in_vpc, {"Name": f"tag:{settings.tag_key}", "Values": [settings.tag_value]}]]
    if groups:
        queries.append([in_vpc, {"Name": "group-id", "Values": groups}])
    for filters in queries:
        for page in ec2.get_paginator("describe_network_interfaces").paginate(Filters=filters):
            enis.update(eni["NetworkInterfaceId"] for eni in page["NetworkInterfaces"])
    return {"security-group": sorted(groups), "network-interface": sorted(enis)}


class VpcOriginWaitHandler:
    """The two Provider-framework entry points.

    Args:
        ec2: ``() -> boto3 EC2 client`` (called per poll).
        clock: seconds since the epoch (default ``time.time``).
    """

    def __init__(self, ec2: Callable[[], Any], clock: Callable[[], float] = time.time) -> None:
        self.ec2 = ec2
        self.clock = clock

    def on_event(self, event: dict[str, Any], _context: Any = None) -> dict[str, Any]:
        """Create/Update: return the physical id. Delete: stamp the start of the wait."""
        request = event["RequestType"]
        settings = Settings.from_event(event)
        if request == "Create":
            return {"PhysicalResourceId": f"{settings.vpc_id}-vpc-origin-wait"}
        if request == "Update":
            return {"PhysicalResourceId": event["PhysicalResourceId"]}
        if request != "Delete":
            raise ValueError(f"unknown RequestType {request!r}")
        return {"PhysicalResourceId": event["PhysicalResourceId"], "Data": {"DeleteStartedAt": str(self.clock())}}

    def is_complete(self, event: dict[str, Any], _context: Any = None) -> dict[str, Any]:
        """Poll: ``{"IsComplete": bool}``.

        Raises:
            VpcOriginWaitTimeout: ``TimeoutSeconds`` passed since the Delete began; names what is left.
        """
        if event["RequestType"] != "Delete":
            return {"IsComplete": True}
        settings = Settings.from_event(event)
        now = self.clock()
        elapsed = now - float((event.get("Data") or {}).get("DeleteStartedAt", now))
        left = leftovers(self.ec2(), settings)
        if not any(left.values()):
            LOG.info("CloudFront's VPC-origin resources are gone from %s after %.0f s", settings.vpc_id, elapsed)
            return {"IsComplete": True}
        described = "; ".join(f"{kind}: {', '.join(ids)}" for kind, ids in left.items() if ids)
        if elapsed >= settings.timeout_seconds:
            raise VpcOriginWaitTimeout(
                f"CloudFront had not removed its VPC-origin resources from {settings.vpc_id} after "
                f"{settings.timeout_seconds:.0f} s ({described}); they belong to CloudFront's service-linked "
                "role: check that no other VPC origin uses this VPC and no security-group rule references "
                f"{settings.group_name}, then retry the delete"
            )
        LOG.info("waiting for CloudFront (%.0f s of %.0f s): %s", elapsed, settings.timeout_seconds, described)
        return {"IsComplete": False}


def _ec2() -> Any:
    import boto3

    return boto3.client("ec2")


_HANDLER = VpcOriginWaitHandler(_ec2)


def on_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point for the Provider framework's ``onEvent``."""
    return _HANDLER.on_event(event, context)


def is_complete(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point for the Provider framework's ``isComplete``."""
    return _HANDLER.is_complete(event, context)
