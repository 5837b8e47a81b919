"""Karpenter 1.14.x: controller IAM (from Karpenter's official CloudFormation), node role, interruption
queue with its EventBridge rules, Pod Identity for the controller, and the two Helm charts.

Source of the IAM statements, event names and queue settings: Karpenter's getting-started template
for the pinned minor, ``aws/karpenter-provider-aws:
website/content/en/v1.14/getting-started/getting-started-with-karpenter/cloudformation.yaml``
(statement ``Sid``s kept; grouped into the six managed policies upstream splits them into:
NodeLifecycle, IAMIntegration, EKSIntegration, Interruption, ZonalShift, ResourceDiscovery; the two
instance-profile read statements sit in IAMIntegration here). Differences, on purpose: the queue
name is generated (we pass the name to the chart), EventBridge may send only from our five rules
(``aws:SourceArn``), the queue is encrypted with a customer-managed KMS key (upstream uses SSE-SQS,
which EventBridge cannot be scoped on and scanners do not read as encryption), the node role trusts EC2 only (upstream's template also lets
``pods.eks.amazonaws.com`` assume it, which nodes do not need), and it gets an ``EC2_LINUX``
access entry instead of an ``aws-auth`` mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from app_config import versions
from app_config.constants import KARPENTER_NAMESPACE, KARPENTER_SERVICE_ACCOUNT
from cdk_constructs.eks_cluster import system_tolerations
from cdk_constructs.nag import acknowledge, acknowledge_wildcard_resources, managed_policy_finding
from cdk_constructs.pod_identity_role import PodIdentityRole, PodIdentityRoleProps

# EventBridge rules of the interruption queue: (construct id, source, detail-type), exactly upstream's.
INTERRUPTION_EVENTS: tuple[tuple[str, str, str], ...] = (
    ("ScheduledChangeRule", "aws.health", "AWS Health Event"),
    ("SpotInterruptionRule", "aws.ec2", "EC2 Spot Instance Interruption Warning"),
    ("RebalanceRule", "aws.ec2", "EC2 Instance Rebalance Recommendation"),
    ("InstanceStateChangeRule", "aws.ec2", "EC2 Instance State-change Notification"),
    ("CapacityReservationInterruptionRule", "aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
)

# Upstream's node role managed policies. SSM core lets operators open sessions on GPU nodes.
NODE_ROLE_MANAGED_POLICIES = (
    "AmazonEKS_CNI_Policy",
    "AmazonEKSWorkerNodePolicy",
    "AmazonEC2ContainerRegistryPullOnly",  # pull, no list/describe (upstream since 1.x; was ReadOnly)
    "AmazonSSMManagedInstanceCore",
)

# Two controller replicas (leader + standby); they need two non-Karpenter nodes in two zones.
CONTROLLER_REPLICAS = 2
# ``controller.resources``. Upstream's getting-started uses 1 CPU / 1 GiB for requests and limits;
# two such replicas would take half of the two m7i.large system nodes. The request here is 500m (a
# cluster of tens of nodes keeps the leader well below it; the standby replica idles) and the limit
# stays 1 CPU, so the leader can burst while provisioning and the system nodes keep a quarter of
# their CPU free (tests/stacks/test_system_node_headroom.py).
CONTROLLER_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "500m", "memory": "1Gi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
# Interruption queue retention: upstream's 300 s (a notice older than that is stale anyway).
INTERRUPTION_MESSAGE_RETENTION = cdk.Duration.seconds(300)


@dataclass(frozen=True)
class KarpenterProps:
    """Props of :class:`Karpenter` (charts from ``app_config.versions``; namespace and ServiceAccount
    from ``app_config.constants``).

    Attributes:
        cluster: the EKS cluster (its kubectl provider installs the charts).
        cluster_name: the cluster's literal name (IAM condition *keys* embed it, so no token).
        controller_image_repository: ``controller.image.repository`` (the chart's tag and digest
            stay); the stack passes the pull-through cache's repository when the cache is on.
    """

    cluster: eks.Cluster
    cluster_name: str
    controller_image_repository: str = versions.KARPENTER_CONTROLLER_IMAGE_REPOSITORY


def chart_values(
    *, cluster_name: str, queue_name: str, props: KarpenterProps
) -> dict[str, Any]:
    """Values of the ``karpenter`` chart (pure function of its inputs)."""
    return {
        "settings": {"clusterName": cluster_name, "interruptionQueue": queue_name},
        "serviceAccount": {"create": True, "name": KARPENTER_SERVICE_ACCOUNT},
        "replicas": CONTROLLER_REPLICAS,
        "tolerations": system_tolerations(),
        "controller": {
            "resources": CONTROLLER_RESOURCES,
            "image": {"repository": props.controller_image_repository},
        },
    }


class Karpenter(Construct):
    """Karpenter's AWS side and its two Helm releases.

    Exposes ``node_role`` (EC2NodeClass ``spec.role``), ``queue`` (interruption queue),
    ``rules``, ``controller_role`` with its ``pod_identity`` association (a :class:`PodIdentityRole`),
    ``crd_chart`` and ``chart`` (the ``HelmChart`` constructs;
    NodePools must depend on ``chart``), ``policies`` (the six controller policies) and
    ``node_dependencies`` (what the nodes use while they exist, for the teardown order).
    """

    def __init__(self, scope: Construct, construct_id: str, props: KarpenterProps) -> None:
        super().__init__(scope, construct_id)
        cluster = props.cluster
        name = props.cluster_name

        # --- Nodes -----------------------------------------------------------------------
        self.node_role = iam.Role(
            self,
            "NodeRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(p) for p in NODE_ROLE_MANAGED_POLICIES],
            description=f"Nodes Karpenter launches for EKS cluster {name}",
        )
        self.node_access_entry = eks.AccessEntry(
            self,
            "NodeAccessEntry",
            cluster=cluster,
            principal=self.node_role.role_arn,
            access_entry_type=eks.AccessEntryType.EC2_LINUX,
            access_policies=[],
        )

        # --- Interruption queue ----------------------------------------------------------
        # A customer-managed key: EventBridge can write to a KMS-encrypted queue only with a key
        # whose policy admits events.amazonaws.com (the AWS managed alias/aws/sqs key cannot be
        # changed), and the controller needs kms:Decrypt to receive (Amazon SQS Developer Guide,
        # "Key management": https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html).
        self.queue_key = kms.Key(
            self,
            "InterruptionQueueKey",
            enable_key_rotation=True,
            description=f"Karpenter interruption queue of EKS cluster {name}",
            removal_policy=cdk.RemovalPolicy.DESTROY,
            pending_window=cdk.Duration.days(7),  # the shortest KMS allows: little left after destroy
        )
        self.queue = sqs.Queue(
            self,
            "InterruptionQueue",
            retention_period=INTERRUPTION_MESSAGE_RETENTION,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.queue_key,
            enforce_ssl=True,
        )
        # EventBridge uses the key only for this account's rules (a key policy naming the rule ARNs
        # would be a cycle: rule -> queue -> key -> rule).
        self.queue_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="EventBridgeEncryptsInterruptionNotices",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}},
            )
        )
        self.rules: dict[str, events.Rule] = {}
        for rule_id, source, detail_type in INTERRUPTION_EVENTS:
            rule = events.Rule(
                self,
                rule_id,
                event_pattern=events.EventPattern(source=[source], detail_type=[detail_type]),
                targets=[_QueueTarget(self.queue)],
            )
            # Only our rules may send (aws-events-targets' SqsQueue drops this condition on an
            # encrypted queue, to avoid a cycle it would create with its own key grant).
            self.queue.add_to_resource_policy(
                iam.PolicyStatement(
                    principals=[iam.ServicePrincipal("events.amazonaws.com")],
                    actions=["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                    resources=[self.queue.queue_arn],
                    conditions={"ArnEquals": {"aws:SourceArn": rule.rule_arn}},
                )
            )
            self.rules[detail_type] = rule

        # --- Controller ------------------------------------------------------------------
        self.policies = self._controller_policies(name)
        controller = PodIdentityRole(
            self,
            "Controller",
            PodIdentityRoleProps(
                cluster=cluster,
                namespace=KARPENTER_NAMESPACE,
                service_account=KARPENTER_SERVICE_ACCOUNT,
                description=f"Karpenter controller of EKS cluster {name} (Pod Identity)",
            ),
        )
        for policy in self.policies.values():
            controller.role.add_managed_policy(policy)
        self.controller_role, self.pod_identity = controller.role, controller.association
        self.queue_key.grant_decrypt(self.controller_role)  # ReceiveMessage on the encrypted queue

        self.crd_chart = cluster.add_helm_chart(
            "KarpenterCrd",
            **versions.KARPENTER_CRD.chart_options(),
            release=versions.KARPENTER_CRD.chart,
            namespace=KARPENTER_NAMESPACE,
            create_namespace=True,
            wait=True,
        )
        self.chart = cluster.add_helm_chart(
            "Karpenter",
            **versions.KARPENTER.chart_options(),
            release=versions.KARPENTER.chart,
            namespace=KARPENTER_NAMESPACE,
            create_namespace=True,
            # No skip_crds: the kubectl handler reads SkipCrds but never passes --skip-crds to Helm.
            # The karpenter-crd release above owns (and upgrades) the CRDs; Helm installs a chart's
            # crds/ folder only when those CRDs do not exist yet, so this release leaves them alone.
            wait=True,
            timeout=cdk.Duration.minutes(15),
            values=chart_values(cluster_name=name, queue_name=self.queue.queue_name, props=props),
        )
        self.chart.node.add_dependency(self.crd_chart)
        self.chart.node.add_dependency(self.pod_identity)
        self.chart.node.add_dependency(self.controller_role)  # its managed policies, not only the role
        # What Karpenter's nodes use while they exist; the template references none of it from
        # the nodes (Karpenter creates them), so teardown orders it explicitly.
        self.node_dependencies: tuple[IConstruct, ...] = (
            self.node_role,  # its instance profiles, which Karpenter creates, hold it
            self.node_access_entry,  # nodes authenticate to the API server while they drain
            self.queue,  # with its policy: interruption notices until the last node is gone
            self.queue_key,
            *self.rules.values(),
        )
        self._acknowledge_nag_findings()

    def _acknowledge_nag_findings(self) -> None:
        acknowledge(
            self.node_role,
            "Karpenter's node role as in its official CloudFormation: the AWS managed worker-node "
            "policies EKS documents (join, VPC CNI, ECR pull) plus SSM core for node sessions. "
            "It has no access to the model bucket (vLLM reads it through its own Pod Identity role).",
            *(managed_policy_finding(name) for name in NODE_ROLE_MANAGED_POLICIES),
        )
        acknowledge(
            self.queue,
            "Karpenter's interruption queue: events are only useful within minutes (retention 300 s, as "
            "upstream); a dead-letter queue would only hold stale interruption notices.",
            "AwsSolutions-SQS3",
        )
        for policy in self.policies.values():
            acknowledge_wildcard_resources(
                policy,
                "Karpenter's documented controller policy (official CloudFormation, statement Sids kept): "
                "resource wildcards are for EC2/IAM objects Karpenter creates at run time, bounded by "
                "region and by the kubernetes.io/cluster/<name>=owned and karpenter.sh/nodepool tag "
                "conditions; Describe*/pricing/ListInstanceProfiles accept no resource-level scoping, and "
                "arc-zonal-shift:GetManagedResource is scoped to this cluster by its ResourceIdentifier condition.",
            )

    def _controller_policies(self, name: str) -> dict[str, iam.ManagedPolicy]:
        """The controller policy of Karpenter's CloudFormation, statement for statement."""
        partition, region, account = cdk.Aws.PARTITION, cdk.Aws.REGION, cdk.Aws.ACCOUNT_ID

        def ec2_arn(resource: str, with_account: bool = True) -> str:
            return f"arn:{partition}:ec2:{region}:{'*' if with_account else ''}:{resource}"

        owned_resource = {f"aws:ResourceTag/kubernetes.io/cluster/{name}": "owned"}
        owned_request = {
            f"aws:RequestTag/kubernetes.io/cluster/{name}": "owned",
            "aws:RequestTag/eks:eks-cluster-name": name,
        }
        tagged_on_create = [
            ec2_arn("fleet/*"),
            ec2_arn("instance/*"),
            ec2_arn("volume/*"),
            ec2_arn("network-interface/*"),
            ec2_arn("launch-template/*"),
            ec2_arn("spot-instances-request/*"),
        ]
        instance_profiles = f"arn:{partition}:iam::{account}:instance-profile/*"
        cluster_arn = f"arn:{partition}:eks:{region}:{account}:cluster/{name}"

        groups: dict[str, list[iam.PolicyStatement]] = {
            "NodeLifecycle": [
                iam.PolicyStatement(
                    sid="AllowScopedEC2InstanceAccessActions",
                    actions=["ec2:RunInstances", "ec2:CreateFleet"],
                    resources=[
                        ec2_arn("image/*", with_account=False),
                        ec2_arn("snapshot/*", with_account=False),
                        ec2_arn("security-group/*"),
                        ec2_arn("subnet/*"),
                        ec2_arn("capacity-reservation/*"),
                        ec2_arn("placement-group/*"),
                    ],
                ),
                iam.PolicyStatement(
                    sid="AllowScopedEC2LaunchTemplateAccessActions",
                    actions=["ec2:RunInstances", "ec2:CreateFleet"],
                    resources=[ec2_arn("launch-template/*")],
                    conditions={
                        "StringEquals": owned_resource,
                        "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                    },
                ),
                iam.PolicyStatement(
                    sid="AllowScopedEC2InstanceActionsWithTags",
                    actions=["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
                    resources=tagged_on_create,
                    conditions={
                        "StringEquals": owned_request,
                        "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
                    },
                ),
                iam.PolicyStatement(
                    sid="AllowScopedResourceCreationTagging",
                    actions=["ec2:CreateTags"],
                    resources=tagged_on_create,
                    conditions={
                        "StringEquals": {
                            **owned_request,
                            "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"],
                        },
                        "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
                    },
                ),
                iam.PolicyStatement(
                    sid="AllowScopedResourceTagging",
                    actions=["ec2:CreateTags"],
                    resources=[ec2_arn("instance/*")],
                    conditions={
                        "StringEquals": owned_resource,
                        "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                        "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": name},
                        "ForAllValues:StringEquals": {
                            "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
                        },
                    },
                ),
                iam.PolicyStatement(
                    sid="AllowScopedDeletion",
                    actions=["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
                    resources=[ec2_arn("instance/*"), ec2_arn("launch-template/*")],
                    conditions={
                        "StringEquals": owned_resource,
                        "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                    },
                ),
            ],
            "IAMIntegration": [
                iam.PolicyStatement(
                    sid="AllowPassingInstanceRole",
                    actions=["iam:PassRole"],
                    resources=[self.node_role.role_arn],
                    conditions={
                        "StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}
                    },
                ),
                iam.PolicyStatement(
                    sid="AllowScopedInstanceProfileCreationActions",
                    actions=["iam:CreateInstanceProfile"],
                    resources=[instance_profiles],
                    conditions={
                        "StringEquals": {**owned_request, "aws:RequestTag/topology.kubernetes.io/region": region},
                        "StringLike": {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"},
                    },
                ),
                iam.PolicyStatement(
                    sid="AllowScopedInstanceProfileTagActions",
                    actions=["iam:TagInstanceProfile"],
                    resources=[instance_profiles],
                    conditions={
                        "StringEquals": {
                            **owned_resource,
                            "aws:ResourceTag/topology.kubernetes.io/region": region,
                            **owned_request,
                            "aws:RequestTag/topology.kubernetes.io/region": region,
                        },
                        "StringLike": {
                            "aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*",
                            "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*",
                        },
                    },
                ),
                iam.PolicyStatement(
                    sid="AllowScopedInstanceProfileActions",
                    actions=[
                        "iam:AddRoleToInstanceProfile",
                        "iam:RemoveRoleFromInstanceProfile",
                        "iam:DeleteInstanceProfile",
                    ],
                    resources=[instance_profiles],
                    conditions={
                        "StringEquals": {**owned_resource, "aws:ResourceTag/topology.kubernetes.io/region": region},
                        "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"},
                    },
                ),
                iam.PolicyStatement(
                    sid="AllowInstanceProfileReadActions",
                    actions=["iam:GetInstanceProfile"],
                    resources=[instance_profiles],
                ),
                iam.PolicyStatement(
                    sid="AllowUnscopedInstanceProfileListAction",
                    actions=["iam:ListInstanceProfiles"],
                    resources=["*"],
                ),
            ],
            "EKSIntegration": [
                iam.PolicyStatement(
                    sid="AllowAPIServerEndpointDiscovery",
                    actions=["eks:DescribeCluster"],
                    resources=[cluster_arn],
                ),
            ],
            "Interruption": [
                iam.PolicyStatement(
                    sid="AllowInterruptionQueueActions",
                    actions=["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
                    resources=[self.queue.queue_arn],
                ),
            ],
            "ZonalShift": [
                # Read-only status of an ARC zonal shift of this cluster (used when the chart
                # enables zonal-shift awareness). The ARN goes in a condition: the action takes no
                # resource-level permission (upstream fixed its 1.12 template this way).
                iam.PolicyStatement(
                    sid="AllowZonalShiftStatusReadOnly",
                    actions=["arc-zonal-shift:GetManagedResource"],
                    resources=["*"],
                    conditions={"StringEquals": {"arc-zonal-shift:ResourceIdentifier": cluster_arn}},
                ),
            ],
            "ResourceDiscovery": [
                iam.PolicyStatement(
                    sid="AllowRegionalReadActions",
                    actions=[
                        "ec2:DescribeCapacityReservations",
                        "ec2:DescribeImages",
                        "ec2:DescribeInstances",
                        "ec2:DescribeInstanceStatus",  # instance status health checks (required since 1.12)
                        "ec2:DescribeInstanceTypeOfferings",
                        "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplates",
                        "ec2:DescribePlacementGroups",
                        "ec2:DescribeSecurityGroups",
                        "ec2:DescribeSpotPriceHistory",
                        "ec2:DescribeSubnets",
                    ],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:RequestedRegion": region}},
                ),
                iam.PolicyStatement(
                    sid="AllowSSMReadActions",
                    actions=["ssm:GetParameter"],
                    resources=[f"arn:{partition}:ssm:{region}::parameter/aws/service/*"],
                ),
                iam.PolicyStatement(
                    sid="AllowPricingReadActions",
                    actions=["pricing:GetProducts"],
                    resources=["*"],
                ),
            ],
        }
        return {
            group: iam.ManagedPolicy(
                self,
                f"Controller{group}Policy",
                statements=statements,
                description=f"Karpenter controller ({group}) for EKS cluster {name}",
            )
            for group, statements in groups.items()
        }


@jsii.implements(events.IRuleTarget)
class _QueueTarget:
    """An EventBridge target that only names the queue; the queue and key policies are ours."""

    def __init__(self, queue: sqs.IQueue) -> None:
        self._queue = queue

    def bind(self, _rule: events.IRule, _id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(arn=self._queue.queue_arn)
