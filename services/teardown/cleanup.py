"""Find and remove the AWS resources the cluster's controllers created outside CloudFormation.

Which tags mark what (sources: aws/karpenter-provider-aws, its getting-started
``cloudformation.yaml`` controller policy and ``pkg/providers/launchtemplate/launchtemplate.go``;
kubernetes-sigs/aws-load-balancer-controller docs "AWS resource tags"; aws/amazon-vpc-cni-k8s
``pkg/awsutils``):

* Karpenter instances (and the volumes/ENIs launched with them): ``kubernetes.io/cluster/<name>=owned``
  and ``karpenter.sh/nodepool=<pool>``. Karpenter's own IAM policy scopes ``ec2:TerminateInstances``
  by exactly these two tags, so this handler does too (v1 also adds ``eks:eks-cluster-name``,
  ``karpenter.sh/nodeclaim`` and ``karpenter.k8s.aws/ec2nodeclass``).
* Karpenter launch templates: ``karpenter.k8s.aws/cluster=<name>`` (the tag Karpenter itself
  filters on to find its launch templates), plus the instance tags above.
* Karpenter instance profiles: ``kubernetes.io/cluster/<name>=owned`` and
  ``topology.kubernetes.io/region``; only profiles holding *our* node role are touched.
* AWS Load Balancer Controller load balancers, target groups and security groups:
  ``elbv2.k8s.aws/cluster=<name>``.
* VPC CNI ENIs: ``cluster.k8s.amazonaws.com/name=<name>``.

Nothing without one of those tags for *this* cluster name (and, for VPC-scoped resources, in this
VPC) is ever modified, so a second cluster in the same account or VPC is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

LOG = logging.getLogger(__name__)

# --- tag keys (see module docstring for sources) ----------------------------------
NODEPOOL_TAG = "karpenter.sh/nodepool"
KARPENTER_LT_CLUSTER_TAG = "karpenter.k8s.aws/cluster"
EKS_CLUSTER_NAME_TAG = "eks:eks-cluster-name"
ELBV2_CLUSTER_TAG = "elbv2.k8s.aws/cluster"
VPC_CNI_CLUSTER_TAG = "cluster.k8s.amazonaws.com/name"
OWNED = "owned"


def cluster_owned_tag(cluster_name: str) -> str:
    """``kubernetes.io/cluster/<cluster_name>`` (value ``owned`` on Karpenter-launched resources)."""
    return f"kubernetes.io/cluster/{cluster_name}"


# Leftover kinds, in the order a timeout message lists them.
KINDS = (
    "nodeclaim",
    "instance",
    "launch-template",
    "instance-profile",
    "load-balancer",
    "target-group",
    "security-group",
    "network-interface",
)
_LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


@dataclass(frozen=True)
class Target:
    """Which cluster to clean up.

    Attributes:
        cluster_name: the EKS cluster name (the value of every tag above).
        vpc_id: the cluster's VPC; VPC-scoped resources outside it are never touched.
        node_role_name: the Karpenter node role; only instance profiles holding it are removed.
        nodepools: names of our NodePools (deleted through the Kubernetes API first).
    """

    cluster_name: str
    vpc_id: str
    node_role_name: str | None = None
    nodepools: tuple[str, ...] = ()


@dataclass
class Leftovers:
    """What still exists after a sweep, by kind (see :data:`KINDS`), ids sorted."""

    items: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, kind: str, ids: Iterable[str]) -> None:
        ids = sorted(set(ids))
        if ids:
            self.items.setdefault(kind, [])
            self.items[kind] = sorted(set(self.items[kind]) | set(ids))

    def __bool__(self) -> bool:
        return bool(self.items)

    def describe(self) -> str:
        """``instance: i-1, i-2; security-group: sg-1`` in :data:`KINDS` order ('none' if empty)."""
        parts = [f"{kind}: {', '.join(self.items[kind])}" for kind in KINDS if kind in self.items]
        parts += [f"{kind}: {', '.join(ids)}" for kind, ids in self.items.items() if kind not in KINDS]
        return "; ".join(parts) or "none"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _tags(items: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or []}


def _attempt(
    leftovers: Leftovers,
    operation: str,
    subject: str,
    call: Callable[[], object],
    *,
    gone: str | None,
    remaining: list[str] | None = None,
    expected: tuple[str, ...] = (),
) -> None:
    """Make one change call (delete, terminate, revoke...) and record what it left.

    Args:
        leftovers: where an unexpected error is recorded as ``"<operation> <subject>: <error>"``.
        operation: the API operation name, for that message (``DeleteLaunchTemplate``).
        subject: the resource id.
        call: the boto3 call, bound to its arguments.
        gone: an error code fragment meaning "already deleted" (``NotFound``, ``NoSuchEntity``):
            success, since the sweeps are idempotent; ``None`` where no error means that.
        remaining: on any other error, ``subject`` is appended here (it still exists).
        expected: error codes that are normal while dependencies drain
            (``DependencyViolation``): still remaining, but not recorded as errors.
    """
    try:
        call()
    except ClientError as exc:
        code = _error_code(exc)
        if gone is not None and gone in code:
            return
        if remaining is not None:
            remaining.append(subject)
        if code not in expected:
            leftovers.errors.append(f"{operation} {subject}: {exc}")


@dataclass(frozen=True)
class ControllerGroups:
    """The load balancer controller's security groups in the VPC, and the ENIs using them.

    Attributes:
        groups: ``DescribeSecurityGroups`` items tagged ``elbv2.k8s.aws/cluster=<name>``.
        enis: ``{eni id: DescribeNetworkInterfaces item}`` of ENIs using any of them.
    """

    groups: list[dict[str, Any]]
    enis: dict[str, dict[str, Any]]


class AwsCleanup:
    """One idempotent sweep over EC2, ELBv2 and IAM for one :class:`Target`.

    Each ``sweep_*`` method acts (terminate/delete) on what it finds and reports what still
    exists; calling it again when everything is gone makes only read calls.

    Args:
        target: the cluster.
        ec2, elbv2, iam: boto3 clients.
        log: where progress lines go (default: this module's logger).
    """

    def __init__(self, target: Target, ec2: Any, elbv2: Any, iam: Any, log: Callable[[str], None] | None = None) -> None:
        self.target = target
        self.ec2 = ec2
        self.elbv2 = elbv2
        self.iam = iam
        self.log = log or LOG.info

    # --- Karpenter ---------------------------------------------------------------
    def karpenter_instances(self) -> dict[str, str]:
        """``{instance id: state}`` of live instances Karpenter launched for this cluster in the VPC."""
        found: dict[str, str] = {}
        paginator = self.ec2.get_paginator("describe_instances")
        filters = [
            {"Name": f"tag:{cluster_owned_tag(self.target.cluster_name)}", "Values": [OWNED]},
            {"Name": "tag-key", "Values": [NODEPOOL_TAG]},
            {"Name": "vpc-id", "Values": [self.target.vpc_id]},
            {"Name": "instance-state-name", "Values": _LIVE_INSTANCE_STATES},
        ]
        for page in paginator.paginate(Filters=filters):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    found[instance["InstanceId"]] = instance["State"]["Name"]
        return found

    def sweep_instances(self, leftovers: Leftovers) -> None:
        """Terminate live Karpenter instances; the ones not yet terminated are leftovers."""
        instances = self.karpenter_instances()
        to_terminate = sorted(i for i, state in instances.items() if state != "shutting-down")
        if to_terminate:
            self.log(f"terminating Karpenter instances: {', '.join(to_terminate)}")
            # Terminating a terminated instance succeeds: every error here is a real one.
            _attempt(leftovers, "TerminateInstances", ",".join(to_terminate),
                     lambda: self.ec2.terminate_instances(InstanceIds=to_terminate), gone=None)
        leftovers.add("instance", instances)

    def sweep_launch_templates(self, leftovers: Leftovers) -> None:
        """Delete launch templates tagged ``karpenter.k8s.aws/cluster=<name>``."""
        paginator = self.ec2.get_paginator("describe_launch_templates")
        filters = [{"Name": f"tag:{KARPENTER_LT_CLUSTER_TAG}", "Values": [self.target.cluster_name]}]
        remaining = []
        for page in paginator.paginate(Filters=filters):
            for template in page["LaunchTemplates"]:
                template_id = template["LaunchTemplateId"]
                self.log(f"deleting launch template {template_id} ({template.get('LaunchTemplateName')})")
                _attempt(leftovers, "DeleteLaunchTemplate", template_id,
                         lambda: self.ec2.delete_launch_template(LaunchTemplateId=template_id),
                         gone="NotFound", remaining=remaining)
        leftovers.add("launch-template", remaining)

    def sweep_instance_profiles(self, leftovers: Leftovers) -> None:
        """Remove the node role from, and delete, Karpenter's instance profiles for this cluster.

        Only profiles that hold the node role *and* carry ``kubernetes.io/cluster/<name>=owned``
        (Karpenter creates its profiles with that tag; the node role's own CloudFormation
        profile, if any, has no such tag and stays).
        """
        role = self.target.node_role_name
        if not role:
            return
        try:
            pages = self.iam.get_paginator("list_instance_profiles_for_role").paginate(RoleName=role)
            profiles = [p for page in pages for p in page["InstanceProfiles"]]
        except ClientError as exc:
            if _error_code(exc) == "NoSuchEntity":
                return  # the role is already gone
            raise
        remaining = []
        for profile in profiles:
            name = profile["InstanceProfileName"]
            # List* calls omit tags; GetInstanceProfile returns them.
            tags = _tags(self.iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"].get("Tags"))
            if tags.get(cluster_owned_tag(self.target.cluster_name)) != OWNED:
                continue
            self.log(f"removing role {role} from instance profile {name} and deleting it")
            _attempt(leftovers, "RemoveRoleFromInstanceProfile", name,
                     lambda: self.iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=role),
                     gone="NoSuchEntity")
            _attempt(leftovers, "DeleteInstanceProfile", name,
                     lambda: self.iam.delete_instance_profile(InstanceProfileName=name),
                     gone="NoSuchEntity", remaining=remaining)
        leftovers.add("instance-profile", remaining)

    # --- AWS Load Balancer Controller -----------------------------------------------
    def _elbv2_tagged(self, arns: list[str]) -> list[str]:
        mine = []
        for start in range(0, len(arns), 20):  # DescribeTags takes at most 20 ARNs
            described = self.elbv2.describe_tags(ResourceArns=arns[start : start + 20])
            for desc in described["TagDescriptions"]:
                if _tags(desc.get("Tags")).get(ELBV2_CLUSTER_TAG) == self.target.cluster_name:
                    mine.append(desc["ResourceArn"])
        return mine

    def controller_load_balancers(self) -> dict[str, dict[str, Any]]:
        """``{arn: description}`` of load balancers in the VPC tagged ``elbv2.k8s.aws/cluster=<name>``."""
        lbs = {
            lb["LoadBalancerArn"]: lb
            for page in self.elbv2.get_paginator("describe_load_balancers").paginate()
            for lb in page["LoadBalancers"]
            if lb.get("VpcId") == self.target.vpc_id
        }
        return {arn: lbs[arn] for arn in self._elbv2_tagged(list(lbs))}

    def sweep_load_balancers(self, leftovers: Leftovers) -> dict[str, dict[str, Any]]:
        """Delete leftover controller load balancers; returns the ones still described."""
        lbs = self.controller_load_balancers()
        for arn in sorted(lbs):
            self.log(f"deleting load balancer {arn}")
            _attempt(leftovers, "DeleteLoadBalancer", arn,
                     lambda: self.elbv2.delete_load_balancer(LoadBalancerArn=arn), gone="LoadBalancerNotFound")
        still = self.controller_load_balancers() if lbs else {}
        leftovers.add("load-balancer", still)
        return still

    def sweep_target_groups(self, leftovers: Leftovers) -> None:
        """Delete target groups in the VPC tagged ``elbv2.k8s.aws/cluster=<name>``."""
        tgs = [
            tg["TargetGroupArn"]
            for page in self.elbv2.get_paginator("describe_target_groups").paginate()
            for tg in page["TargetGroups"]
            if tg.get("VpcId") == self.target.vpc_id
        ]
        remaining = []
        for arn in sorted(self._elbv2_tagged(tgs)):
            self.log(f"deleting target group {arn}")
            _attempt(leftovers, "DeleteTargetGroup", arn,
                     lambda: self.elbv2.delete_target_group(TargetGroupArn=arn),
                     gone="TargetGroupNotFound", remaining=remaining)
        leftovers.add("target-group", remaining)

    # --- VPC: security groups and network interfaces ----------------------------------
    def _describe_sgs(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        paginator = self.ec2.get_paginator("describe_security_groups")
        return [sg for page in paginator.paginate(Filters=filters) for sg in page["SecurityGroups"]]

    def controller_security_groups(self) -> list[dict[str, Any]]:
        """Security groups in the VPC tagged ``elbv2.k8s.aws/cluster=<name>``."""
        return self._describe_sgs([
            {"Name": "vpc-id", "Values": [self.target.vpc_id]},
            {"Name": f"tag:{ELBV2_CLUSTER_TAG}", "Values": [self.target.cluster_name]},
        ])

    def _enis_using(self, group_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not group_ids:
            return {}
        paginator = self.ec2.get_paginator("describe_network_interfaces")
        pages = paginator.paginate(Filters=[
            {"Name": "vpc-id", "Values": [self.target.vpc_id]},
            {"Name": "group-id", "Values": group_ids},
        ])
        return {eni["NetworkInterfaceId"]: eni for page in pages for eni in page["NetworkInterfaces"]}

    def controller_groups_in_use(self) -> ControllerGroups:
        """The controller security groups and the ENIs using them, listed once per pass."""
        groups = self.controller_security_groups()
        return ControllerGroups(groups, self._enis_using([sg["GroupId"] for sg in groups]))

    def sweep_security_groups(self, leftovers: Leftovers, listed: ControllerGroups | None = None) -> None:
        """Delete controller security groups (``elbv2.k8s.aws/cluster=<name>``) in the VPC.

        A group still used by an ENI (a load balancer's, while ELB releases it) is kept for the
        next poll. Before deleting, revokes the rules of other security groups in the same VPC
        that reference it (the controller adds such rules to the node/cluster security group),
        because a referenced group cannot be deleted. ``listed`` is this pass's listing (made
        here if not given): an ENI deleted since was ``available``, which never counts as use.
        """
        vpc = {"Name": "vpc-id", "Values": [self.target.vpc_id]}
        listed = listed or self.controller_groups_in_use()
        mine = listed.groups
        in_use = {
            group["GroupId"]
            for eni in listed.enis.values()
            if eni.get("Status") != "available"
            for group in eni.get("Groups", [])
        }
        remaining = []
        for sg in mine:
            group_id = sg["GroupId"]
            if group_id in in_use:
                remaining.append(group_id)
                continue
            for other in self._describe_sgs([vpc, {"Name": "ip-permission.group-id", "Values": [group_id]}]):
                perms = []
                for perm in other.get("IpPermissions", []):
                    pairs = [pair for pair in perm.get("UserIdGroupPairs", []) if pair.get("GroupId") == group_id]
                    if pairs:
                        rule = {k: v for k, v in perm.items() if k in ("IpProtocol", "FromPort", "ToPort")}
                        perms.append({**rule, "UserIdGroupPairs": [{"GroupId": group_id}]})
                if perms:
                    self.log(f"revoking rules of {other['GroupId']} that reference {group_id}")
                    _attempt(leftovers, "RevokeSecurityGroupIngress", other["GroupId"],
                             lambda: self.ec2.revoke_security_group_ingress(GroupId=other["GroupId"], IpPermissions=perms),
                             gone="InvalidGroup.NotFound")
            self.log(f"deleting security group {group_id} ({sg.get('GroupName')})")
            # DependencyViolation is expected while ENIs still use the group: retried next poll.
            _attempt(leftovers, "DeleteSecurityGroup", group_id,
                     lambda: self.ec2.delete_security_group(GroupId=group_id),
                     gone="InvalidGroup.NotFound", remaining=remaining, expected=("DependencyViolation",))
        leftovers.add("security-group", remaining)

    def _cluster_enis(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        name = self.target.cluster_name
        vpc = {"Name": "vpc-id", "Values": [self.target.vpc_id]}
        for tag_filter in (
            {"Name": f"tag:{VPC_CNI_CLUSTER_TAG}", "Values": [name]},
            {"Name": f"tag:{ELBV2_CLUSTER_TAG}", "Values": [name]},
            {"Name": f"tag:{cluster_owned_tag(name)}", "Values": [OWNED]},
        ):
            paginator = self.ec2.get_paginator("describe_network_interfaces")
            for page in paginator.paginate(Filters=[vpc, tag_filter]):
                for eni in page["NetworkInterfaces"]:
                    found[eni["NetworkInterfaceId"]] = eni
        return found

    def sweep_network_interfaces(
        self, leftovers: Leftovers, instances: Iterable[str] = (), listed: ControllerGroups | None = None
    ) -> None:
        """Delete detached (``available``) ENIs of this cluster in the VPC; report the busy ones.

        This cluster's ENIs: tagged for it (VPC CNI, load balancer controller, Karpenter tags),
        or using one of its controller security groups (a load balancer's ENIs carry its
        security groups; ELB releases them some time after the load balancer is deleted).
        An in-use ENI is a leftover when it uses a controller security group or is attached to
        one of ``instances`` (Karpenter nodes being terminated). ENIs of the system node group
        are in use until CloudFormation deletes that node group, after this handler, and are
        left alone. ``listed``: this pass's controller groups and their ENIs (listed here if not given).
        """
        instances = set(instances)
        by_sg = (listed or self.controller_groups_in_use()).enis
        candidates = {**self._cluster_enis(), **by_sg}
        remaining = []
        for eni_id, eni in sorted(candidates.items()):
            attached_to = (eni.get("Attachment") or {}).get("InstanceId")
            if eni.get("Status") == "available":
                self.log(f"deleting detached network interface {eni_id}")
                _attempt(leftovers, "DeleteNetworkInterface", eni_id,
                         lambda: self.ec2.delete_network_interface(NetworkInterfaceId=eni_id),
                         gone="InvalidNetworkInterfaceID.NotFound", remaining=remaining)
            elif eni_id in by_sg or attached_to in instances:
                remaining.append(eni_id)
        leftovers.add("network-interface", remaining)

    # --- one pass -------------------------------------------------------------------
    def sweep(self) -> Leftovers:
        """One pass over everything, in dependency order; returns what is still there.

        Order: instances (terminate) -> load balancers -> target groups (once no load balancer
        of ours is left) -> launch templates -> instance profiles (once no instance is left)
        -> network interfaces (detached ones deleted) -> security groups (once no ENI uses them).
        """
        leftovers = Leftovers()
        self.sweep_instances(leftovers)
        instances = list(leftovers.items.get("instance", []))
        lbs = self.sweep_load_balancers(leftovers)
        if not lbs:
            self.sweep_target_groups(leftovers)
        self.sweep_launch_templates(leftovers)
        if not instances:
            self.sweep_instance_profiles(leftovers)
        listed = self.controller_groups_in_use()
        self.sweep_network_interfaces(leftovers, instances=instances, listed=listed)
        self.sweep_security_groups(leftovers, listed=listed)
        return leftovers
