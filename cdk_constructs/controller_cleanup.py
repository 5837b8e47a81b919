"""The controller-cleanup custom resource: on Delete, removes what in-cluster controllers made.

Runtime code: ``services/teardown/`` (handler ``teardown.handler``), see its docstrings (what it removes and
why: controller-made instances, load balancers and ENIs outlive the cluster otherwise). This
construct wires it:

* two Lambda functions (``on_event``, ``is_complete``; Python, arm64) in the VPC's private
  subnets, so they reach a private cluster endpoint; their security group may call the
  cluster's API server on 443;
* a Provider framework (``is_complete`` polled every 15 s; total timeout =
  ``teardown.wait_timeout_seconds`` + 120 s, under one hour) and a ``Custom::ControllerCleanup``
  resource whose ``ServiceTimeout`` is set just above that;
* least-privilege IAM: every delete/terminate is conditioned on the tags the controllers put on
  what they create for *this* cluster (``aws:ResourceTag/...``), or on the VPC (``ec2:Vpc``);
* Kubernetes access without a cluster-wide EKS access policy: ``AmazonEKSEditPolicy`` /
  ``AmazonEKSAdminPolicy`` are namespaced Kubernetes roles that do not cover the cluster-scoped
  ``karpenter.sh`` NodePools and NodeClaims, and ``AmazonEKSClusterAdminPolicy`` would grant
  everything. Instead the handler's role gets an access entry that maps it to one Kubernetes
  group, bound by RBAC to a ClusterRole allowing ``get/list/delete`` on ``nodepools`` and
  ``get/list`` on ``nodeclaims`` only.

Ordering (wired by ``stacks/cluster_stack.py``): this construct depends on the cluster and the
system node group; every controller chart depends on it; so on ``cdk destroy`` it runs after the
workloads and controllers are gone and before the node group, cluster and VPC; it also depends
on everything Karpenter's nodes use (``EksCluster.node_dependencies``,
``Karpenter.node_dependencies``), so none of that goes while nodes still run. The custom
resource itself depends on its access entry, RBAC and security-group rule, so those outlive it.
Instantiate it only when ``teardown.cleanup_controller_resources`` is true.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from app_config.constants import CPU_NODEPOOL_NAME, GPU_NODEPOOL_NAME
from app_config.model import TeardownConfig
from cdk_constructs.handler_provider import (
    HandlerProviderProps,
    HandlerSize,
    handler_provider,
)
from cdk_constructs.nag import (
    acknowledge,
    acknowledge_wildcard_resources,
    managed_policy_finding,
)

# Our NodePools, deleted through the Kubernetes API before anything else.
NODEPOOLS = (GPU_NODEPOOL_NAME, CPU_NODEPOOL_NAME)
HANDLER_PACKAGE = "teardown"  # services/teardown, shipped as a package (relative imports)
RESOURCE_TYPE = "Custom::ControllerCleanup"
K8S_GROUP = "qvllm:controller-cleanup"  # Kubernetes group of the handler's access entry
K8S_ROLE_NAME = "qvllm-controller-cleanup"
QUERY_INTERVAL = cdk.Duration.seconds(15)
FRAMEWORK_MARGIN_SECONDS = 120  # Provider total timeout = handler timeout + this, so our message wins
SERVICE_TIMEOUT_MARGIN_SECONDS = 60

# Tag keys the controllers put on what they create (sources: services/teardown/cleanup.py).
NODEPOOL_TAG = "karpenter.sh/nodepool"
KARPENTER_LT_CLUSTER_TAG = "karpenter.k8s.aws/cluster"
ELBV2_CLUSTER_TAG = "elbv2.k8s.aws/cluster"
VPC_CNI_CLUSTER_TAG = "cluster.k8s.amazonaws.com/name"


@dataclass(frozen=True)
class ControllerCleanupProps:
    """Props of :class:`ControllerCleanup`.

    Attributes:
        cluster_name: the EKS cluster name as a plain string (IAM conditions embed it in tag
            keys, so it cannot be a token).
        cluster: the cluster (API-server security group, ARN, kubectl provider for the RBAC).
        vpc: the cluster's VPC (the functions run in its private subnets; VPC-scoped deletes are
            limited to it).
        node_role: the Karpenter node role; instance profiles holding it are removed.
        config: the ``teardown`` config section (timeout).
    """

    cluster_name: str
    cluster: eks.ICluster
    vpc: ec2.IVpc
    node_role: iam.IRole
    config: TeardownConfig


class ControllerCleanup(Construct):
    """Deletes controller-made AWS resources before CloudFormation deletes the cluster and VPC.

    Exposes ``resource`` (the ``cdk.CustomResource``), ``role`` (the handlers' role),
    ``security_group`` and ``provider``. Dependants order themselves on the construct itself.

    Raises:
        ValueError: ``cluster_name`` is a token, or ``nodepools`` is empty.
    """

    def __init__(self, scope: Construct, construct_id: str, props: ControllerCleanupProps) -> None:
        super().__init__(scope, construct_id)
        if cdk.Token.is_unresolved(props.cluster_name):
            raise ValueError("ControllerCleanupProps.cluster_name must be a plain string, not a token")
        stack = cdk.Stack.of(self)
        timeout = props.config.wait_timeout_seconds
        total = timeout + FRAMEWORK_MARGIN_SECONDS

        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=props.vpc, allow_all_outbound=True,
            description="Controller cleanup handler: AWS APIs and the cluster API server",
        )
        api_rule = ec2.CfnSecurityGroupIngress(
            self, "ApiServerIngress",
            group_id=props.cluster.cluster_security_group_id,
            source_security_group_id=self.security_group.security_group_id,
            ip_protocol="tcp", from_port=443, to_port=443,
            description="Controller cleanup handler to the Kubernetes API server",
        )

        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Controller cleanup handler (teardown custom resource)",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSLambdaVPCAccessExecutionRole")
            ],
        )
        policy = iam.Policy(self, "Policy", statements=self._statements(props, stack))
        policy.attach_to_role(self.role)
        acknowledge(
            self.role,
            "AWSLambdaVPCAccessExecutionRole is AWS's policy for Lambda functions in a VPC (logs + their ENIs).",
            managed_policy_finding("service-role/AWSLambdaVPCAccessExecutionRole"),
        )
        acknowledge_wildcard_resources(
            policy,
            "Controller-made instances, launch templates, load balancers, security groups, ENIs and instance "
            "profiles have names unknown at synth; every mutating statement is conditioned on this cluster's "
            "tags (aws:ResourceTag) or this VPC (ec2:Vpc), and Describe* calls do not support resource scoping.",
        )

        size = HandlerSize(timeout=cdk.Duration.minutes(2), memory_mb=256)
        self.provider = handler_provider(self, HandlerProviderProps(
            package=HANDLER_PACKAGE,
            role=self.role,
            sizes={"on_event": size, "is_complete": size},
            query_interval=QUERY_INTERVAL,
            total_timeout=cdk.Duration.seconds(total),
            describe=lambda handler: f"Controller cleanup {handler} for cluster {props.cluster_name}",
            vpc=props.vpc,  # private subnets: a private cluster endpoint is reachable
            security_groups=(self.security_group,),
        ))

        access_entry = eks.CfnAccessEntry(
            self, "AccessEntry",
            cluster_name=props.cluster.cluster_name,
            principal_arn=self.role.role_arn,
            kubernetes_groups=[K8S_GROUP],
            type="STANDARD",
        )
        rbac = eks.KubernetesManifest(self, "Rbac", cluster=props.cluster, manifest=rbac_manifests())
        rbac.node.add_dependency(access_entry)

        self.resource = cdk.CustomResource(
            self, "Resource",
            service_token=self.provider.service_token,
            resource_type=RESOURCE_TYPE,
            service_timeout=cdk.Duration.seconds(total + SERVICE_TIMEOUT_MARGIN_SECONDS),
            properties={
                "ClusterName": props.cluster_name,
                "VpcId": props.vpc.vpc_id,
                "NodeRoleName": props.node_role.role_name,
                "NodePools": list(NODEPOOLS),
                "TimeoutSeconds": str(timeout),
            },
        )
        for dependency in (access_entry, rbac, api_rule, policy):
            self.resource.node.add_dependency(dependency)

    @staticmethod
    def _statements(props: ControllerCleanupProps, stack: cdk.Stack) -> list[iam.PolicyStatement]:
        name = props.cluster_name
        owned = {f"aws:ResourceTag/kubernetes.io/cluster/{name}": "owned"}
        vpc_arn = stack.format_arn(service="ec2", resource="vpc", resource_name=props.vpc.vpc_id)

        def arn(service: str, resource: str, region: bool = True) -> str:
            return stack.format_arn(
                service=service, resource=resource, resource_name="*",
                region=None if region else "", arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
            )

        return [
            iam.PolicyStatement(
                sid="DescribeCluster", actions=["eks:DescribeCluster"], resources=[props.cluster.cluster_arn],
            ),
            iam.PolicyStatement(
                sid="Read",
                actions=[
                    "ec2:DescribeInstances", "ec2:DescribeLaunchTemplates", "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSecurityGroups", "elasticloadbalancing:DescribeLoadBalancers",
                    "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTags",
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="TerminateKarpenterInstances", actions=["ec2:TerminateInstances"],
                resources=[arn("ec2", "instance")],
                conditions={"StringEquals": owned, "StringLike": {f"aws:ResourceTag/{NODEPOOL_TAG}": "*"}},
            ),
            iam.PolicyStatement(
                sid="DeleteKarpenterLaunchTemplates", actions=["ec2:DeleteLaunchTemplate"],
                resources=[arn("ec2", "launch-template")],
                conditions={"StringEquals": {f"aws:ResourceTag/{KARPENTER_LT_CLUSTER_TAG}": name}},
            ),
            iam.PolicyStatement(
                sid="DeleteControllerSecurityGroups", actions=["ec2:DeleteSecurityGroup"],
                resources=[arn("ec2", "security-group")],
                conditions={"StringEquals": {f"aws:ResourceTag/{ELBV2_CLUSTER_TAG}": name, "ec2:Vpc": vpc_arn}},
            ),
            iam.PolicyStatement(
                sid="RevokeRulesReferencingThemInThisVpc", actions=["ec2:RevokeSecurityGroupIngress"],
                resources=[arn("ec2", "security-group")],
                conditions={"StringEquals": {"ec2:Vpc": vpc_arn}},
            ),
            *[
                iam.PolicyStatement(
                    sid=f"DeleteDetachedEnis{suffix}", actions=["ec2:DeleteNetworkInterface"],
                    resources=[arn("ec2", "network-interface")],
                    conditions={"StringEquals": {condition_key: value, "ec2:Vpc": vpc_arn}},
                )
                for suffix, condition_key, value in (
                    ("VpcCni", f"aws:ResourceTag/{VPC_CNI_CLUSTER_TAG}", name),
                    ("Elbv2", f"aws:ResourceTag/{ELBV2_CLUSTER_TAG}", name),
                    ("Karpenter", f"aws:ResourceTag/kubernetes.io/cluster/{name}", "owned"),
                )
            ],
            iam.PolicyStatement(
                sid="DeleteControllerLoadBalancers",
                actions=["elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteTargetGroup"],
                resources=[
                    arn("elasticloadbalancing", "loadbalancer"),
                    arn("elasticloadbalancing", "targetgroup"),
                ],
                conditions={"StringEquals": {f"aws:ResourceTag/{ELBV2_CLUSTER_TAG}": name}},
            ),
            iam.PolicyStatement(
                sid="FindInstanceProfilesOfTheNodeRole", actions=["iam:ListInstanceProfilesForRole"],
                resources=[props.node_role.role_arn],
            ),
            iam.PolicyStatement(
                sid="ReadInstanceProfiles", actions=["iam:GetInstanceProfile"],
                resources=[arn("iam", "instance-profile", region=False)],
            ),
            iam.PolicyStatement(
                sid="RemoveKarpenterInstanceProfiles",
                actions=["iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile"],
                resources=[arn("iam", "instance-profile", region=False)],
                conditions={"StringEquals": owned},
            ),
        ]


def rbac_manifests() -> list[dict]:
    """ClusterRole + ClusterRoleBinding for the handler's Kubernetes group (least privilege).

    ``get/list/delete`` on ``karpenter.sh`` ``nodepools``; ``get/list`` on ``nodeclaims``.
    """
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": K8S_ROLE_NAME},
            "rules": [
                {"apiGroups": ["karpenter.sh"], "resources": ["nodepools"], "verbs": ["get", "list", "delete"]},
                {"apiGroups": ["karpenter.sh"], "resources": ["nodeclaims"], "verbs": ["get", "list"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": K8S_ROLE_NAME},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": K8S_ROLE_NAME},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": K8S_GROUP}],
        },
    ]
