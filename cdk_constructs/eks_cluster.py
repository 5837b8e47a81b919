"""The EKS control plane, its managed system node group, core add-ons and the load balancer controller.

Decisions: ``aws_eks_v2`` (native ``AWS::EKS::Cluster``, access entries only),
*not* EKS Auto Mode: a small managed node group (AL2023, tainted ``CriticalAddonsOnly=true:NoSchedule``)
runs the controllers and Karpenter provisions everything else. Helm charts, manifests and cdk8s
charts go through the kubectl provider, which runs with the kubectl v35 layer (Helm 4).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_kms as kms
from aws_cdk.lambda_layer_kubectl_v35 import KubectlV35Layer
from constructs import Construct, IConstruct

from app_config import versions
from app_config.constants import (
    AWS_LOAD_BALANCER_CONTROLLER_NAME,
    KARPENTER_DISCOVERY_TAG,
    SYSTEM_NODE_LABEL_KEY,
    SYSTEM_NODE_LABEL_VALUE,
    SYSTEM_TAINT_KEY,
    SYSTEM_TAINT_VALUE,
)
from app_config.model import ClusterConfig
from cdk_constructs.checkov import acknowledge_handler_functions, skip_checks
from cdk_constructs.nag import (
    acknowledge,
    acknowledge_managed_policies,
    acknowledge_wildcard_resources,
    managed_policy_finding,
)

# IAM policy of the AWS Load Balancer Controller. aws-cdk-lib 2.275 ships policies up to v3.2.2;
# we run v3.5.0 with that policy (on a bump, compare it with the controller's
# docs/install/iam_policy.json at the new tag), so this file is aws-cdk-lib's
# `aws-eks-v2/lib/addons/alb-iam_policy-v3.2.2.json`, copied unchanged.
ALB_CONTROLLER_POLICY_FILE = Path(__file__).parent / "data" / "aws_load_balancer_controller_iam_policy.json"

# EKS access policy given to config.cluster.admin_principal_arns (cluster scope).
# Two controller replicas, one per system node: the ALB's targets keep being reconciled while
# one system node drains.
ALB_CONTROLLER_REPLICAS = 2

CLUSTER_ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"

# EKS managed add-ons installed on every cluster (their versions: EKS's default for the cluster version).
CORE_ADDONS = ("vpc-cni", "kube-proxy", "coredns")  # + eks-pod-identity-agent via cluster.eks_pod_identity_agent

# Configuration values of the core add-ons. The VPC CNI enforces Kubernetes NetworkPolicies only
# with enableNetworkPolicy (EKS User Guide, "Restrict Pod network traffic with Kubernetes network
# policies", step "Enable the network policy parameter for the add-on"): it then runs its
# network-policy agent on every node, and our charts' NetworkPolicies take effect.
ADDON_CONFIGURATION: dict[str, dict[str, Any]] = {"vpc-cni": {"enableNetworkPolicy": "true"}}

# Provisioned Control Plane tiers; "standard" sets no ControlPlaneScalingConfig (EKS's default).
_PROVISIONED_CONTROL_PLANE_TIERS = {
    "tier-xl": eks.ControlPlaneScalingTier.TIER_XL,
    "tier-2xl": eks.ControlPlaneScalingTier.TIER_2_XL,
    "tier-4xl": eks.ControlPlaneScalingTier.TIER_4_XL,
    "tier-8xl": eks.ControlPlaneScalingTier.TIER_8_XL,
}

_LOG_TYPES = {
    "api": eks.ClusterLoggingTypes.API,
    "audit": eks.ClusterLoggingTypes.AUDIT,
    "authenticator": eks.ClusterLoggingTypes.AUTHENTICATOR,
    "controllerManager": eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
    "scheduler": eks.ClusterLoggingTypes.SCHEDULER,
}


def system_tolerations() -> list[dict[str, str]]:
    """Pod tolerations for the system node group's taint (Kubernetes ``Toleration`` objects)."""
    return [{"key": SYSTEM_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]


def system_node_selector() -> dict[str, str]:
    """Pod ``nodeSelector`` that pins a controller to the system node group."""
    return {SYSTEM_NODE_LABEL_KEY: SYSTEM_NODE_LABEL_VALUE}


def endpoint_access_for(config: ClusterConfig) -> eks.EndpointAccess:
    """The API endpoint access of ``config.endpoint_access``; public access limited to ``public_access_cidrs``."""
    if config.endpoint_access == "private":
        return eks.EndpointAccess.PRIVATE
    base = eks.EndpointAccess.PUBLIC if config.endpoint_access == "public" else eks.EndpointAccess.PUBLIC_AND_PRIVATE
    return base.only_from(*config.public_access_cidrs)


def load_alb_controller_policy() -> dict[str, Any]:
    """The controller's IAM policy document (``{"Version", "Statement": [...]}``), as upstream ships it."""
    return json.loads(ALB_CONTROLLER_POLICY_FILE.read_text())


# Upstream's two EC2 write statements that name no resource and carry no condition.
_SG_INGRESS_ACTIONS = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"]
_CREATE_SG_ACTIONS = ["ec2:CreateSecurityGroup"]
# Tag the controller puts on every security group it creates (upstream's CreateTags statement
# requires it on CreateSecurityGroup).
ALB_CONTROLLER_RESOURCE_TAG = "elbv2.k8s.aws/cluster"


def narrow_alb_controller_policy(policy: dict[str, Any], *, cluster_name: str, vpc_arn: str) -> dict[str, Any]:
    """Upstream's policy with its two unconstrained EC2 write statements narrowed.

    * Security-group ingress rules (``Authorize``/``RevokeSecurityGroupIngress`` on any group):
      only on groups tagged ``kubernetes.io/cluster/<cluster_name>``. For a TargetGroupBinding the
      controller edits the security group of the pod's ENI, which it requires to be the one group
      with that tag when an ENI has several (``resolveEndpointSGForENI`` in
      https://github.com/kubernetes-sigs/aws-load-balancer-controller/blob/main/pkg/targetgroupbinding/networking_manager.go);
      Karpenter's node group and the EKS cluster group carry it. Its own groups carry
      ``elbv2.k8s.aws/cluster`` and stay covered by upstream's tag-conditioned statement.
    * ``CreateSecurityGroup``: only in ``vpc_arn``, and only with the controller's own tag
      (upstream's CreateTags statement already demands that tag at creation).

    Every other statement is upstream's, unchanged.

    Raises:
        ValueError: upstream's policy no longer has the two statements (re-check this narrowing).
    """
    statements = [dict(s) for s in policy["Statement"]]
    narrowed = {"ingress": False, "create": False}
    out: list[dict[str, Any]] = []
    for statement in statements:
        unconstrained = statement.get("Resource") == "*" and "Condition" not in statement
        if unconstrained and statement.get("Action") == _SG_INGRESS_ACTIONS:
            statement["Condition"] = {"Null": {f"aws:ResourceTag/kubernetes.io/cluster/{cluster_name}": "false"}}
            narrowed["ingress"] = True
        elif unconstrained and statement.get("Action") == _CREATE_SG_ACTIONS:
            statement["Resource"] = "arn:aws:ec2:*:*:security-group/*"
            statement["Condition"] = {"Null": {f"aws:RequestTag/{ALB_CONTROLLER_RESOURCE_TAG}": "false"}}
            out.append({"Effect": "Allow", "Action": _CREATE_SG_ACTIONS, "Resource": vpc_arn})
            narrowed["create"] = True
        out.append(statement)
    missing = [name for name, done in narrowed.items() if not done]
    if missing:
        raise ValueError(f"the load balancer controller policy changed upstream: no unconstrained {missing} statement")
    return {**policy, "Statement": out}


@dataclass(frozen=True)
class EksClusterProps:
    """Props of :class:`EksCluster`.

    Attributes:
        config: the cluster section of the app config.
        cluster_name: EKS cluster name (also the Karpenter discovery tag value).
        vpc: the VPC; control-plane ENIs, nodes and the kubectl handler use its private subnets.
        alb_controller_repository: the controller's image repository. aws-cdk-lib's default is the
            us-west-2 EKS registry, a cross-region pull outside us-west-2; the stack passes the
            chart's ECR Public repository through the deploy region's pull-through cache.
    """

    config: ClusterConfig
    cluster_name: str
    vpc: ec2.IVpc
    alb_controller_repository: str = versions.AWS_LOAD_BALANCER_CONTROLLER_IMAGE_REPOSITORY


class EksCluster(Construct):
    """An ``aws_eks_v2`` cluster ready for Karpenter, KEDA and our charts.

    Exposes ``cluster`` (:class:`aws_eks_v2.Cluster`), ``system_nodegroup``, ``secrets_key``
    (KMS key for envelope encryption of Secrets), ``addons`` (name -> add-on) and
    ``alb_controller`` (the AWS Load Balancer Controller, for the TargetGroupBinding) and
    ``node_security_group``.

    ``node_security_group`` is the security group of Karpenter-launched nodes (and so of their
    pods). EKS creates the cluster security group itself, so CloudFormation cannot tag it for
    Karpenter's discovery; instead this group carries ``karpenter.sh/discovery=<cluster>`` (the
    EC2NodeClasses select it) and ``kubernetes.io/cluster/<cluster>=owned`` (the load balancer
    controller adds the TargetGroupBinding's ALB rules to it), and it exchanges all traffic with
    the cluster security group (control plane, system nodes, CoreDNS).
    """

    def __init__(self, scope: Construct, construct_id: str, props: EksClusterProps) -> None:
        super().__init__(scope, construct_id)
        cfg = props.config
        private = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)

        self.secrets_key = kms.Key(
            self,
            "SecretsKey",
            enable_key_rotation=True,
            description=f"Envelope encryption of Kubernetes Secrets in EKS cluster {props.cluster_name}",
            removal_policy=cdk.RemovalPolicy.DESTROY,  # the cluster's secrets die with the cluster
        )
        self.cluster = eks.Cluster(
            self,
            "Cluster",
            cluster_name=props.cluster_name,
            version=eks.KubernetesVersion.of(cfg.kubernetes_version),
            vpc=props.vpc,
            vpc_subnets=[private],
            service_ipv4_cidr=cfg.service_ipv4_cidr,
            default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
            default_capacity=0,
            endpoint_access=endpoint_access_for(cfg),
            cluster_logging=[_LOG_TYPES[name] for name in cfg.log_types],
            secrets_encryption_key=self.secrets_key,
            control_plane_scaling_tier=_PROVISIONED_CONTROL_PLANE_TIERS.get(cfg.control_plane_tier),
            kubectl_provider_options=eks.KubectlProviderOptions(
                kubectl_layer=KubectlV35Layer(self, "KubectlLayer"),
            ),
            alb_controller=eks.AlbControllerOptions(
                version=eks.AlbControllerVersion.of(
                    versions.AWS_LOAD_BALANCER_CONTROLLER_IMAGE_TAG,
                    versions.AWS_LOAD_BALANCER_CONTROLLER.version,
                ),
                policy=narrow_alb_controller_policy(
                    load_alb_controller_policy(),
                    cluster_name=props.cluster_name,
                    vpc_arn=cdk.Stack.of(self).format_arn(service="ec2", resource="vpc", resource_name=props.vpc.vpc_id),
                ),
                repository=props.alb_controller_repository,
                additional_helm_chart_values={
                    "replicaCount": ALB_CONTROLLER_REPLICAS,
                    "tolerations": system_tolerations(),
                    "nodeSelector": system_node_selector(),
                    # Chart 3.5.0 registers a mutating webhook for every Service CREATE with
                    # failurePolicy Fail (helm/aws-load-balancer-controller/templates/webhook.yaml):
                    # while the controller is not ready, any chart creating a Service fails. It only
                    # makes this controller the default for type LoadBalancer Services; we create none.
                    "enableServiceMutatorWebhook": False,
                },
            ),
        )

        self._set_hpa_sync_period(cfg)

        # Operators (kubectl, port-forward, qvllm dashboard): with access entries only, nobody else
        # but the CloudFormation deploy role and the kubectl handler could reach the API server.
        # The construct id derives from the ARN, so reordering the list replaces nothing.
        if not cfg.admin_principal_arns:
            cdk.Annotations.of(self).add_warning_v2(
                "qvllm:no-admin-principals",
                "cluster.admin_principal_arns is empty: only the CloudFormation deploy role and the CDK's "
                "kubectl handler can reach this cluster's API, so kubectl, port-forward and qvllm dashboard "
                "get Unauthorized. Add your IAM role ARN (README, Deploy).",
            )
        for arn in cfg.admin_principal_arns:
            self.cluster.grant_access(
                f"AdminAccess{hashlib.sha256(arn.encode()).hexdigest()[:10]}",
                arn,
                [
                    eks.AccessPolicy.from_access_policy_name(
                        CLUSTER_ADMIN_POLICY, access_scope_type=eks.AccessScopeType.CLUSTER
                    )
                ],
            )

        instance_types = [ec2.InstanceType(name) for name in cfg.system_nodes.instance_types]
        arm = instance_types[0].architecture == ec2.InstanceArchitecture.ARM_64
        self.system_nodegroup = self.cluster.add_nodegroup_capacity(
            "SystemNodes",
            instance_types=instance_types,
            ami_type=eks.NodegroupAmiType.AL2023_ARM_64_STANDARD if arm else eks.NodegroupAmiType.AL2023_X86_64_STANDARD,
            capacity_type=eks.CapacityType.ON_DEMAND,
            min_size=cfg.system_nodes.min_size,
            desired_size=cfg.system_nodes.desired_size,
            max_size=cfg.system_nodes.max_size,
            disk_size=cfg.system_nodes.disk_size_gib,
            subnets=private,
            labels=system_node_selector(),
            taints=[
                eks.TaintSpec(
                    effect=eks.TaintEffect.NO_SCHEDULE, key=SYSTEM_TAINT_KEY, value=SYSTEM_TAINT_VALUE
                )
            ],
        )

        # Core add-ons as EKS managed add-ons. The cluster bootstraps self-managed copies of
        # vpc-cni, kube-proxy and coredns; OVERWRITE lets the managed add-on adopt them.
        self.addons: dict[str, eks.IAddon] = {}
        for name in CORE_ADDONS:
            addon = eks.Addon(
                self, f"Addon-{name}", cluster=self.cluster, addon_name=name,
                configuration_values=ADDON_CONFIGURATION.get(name),
            )
            cfn = addon.node.default_child
            assert isinstance(cfn, eks.CfnAddon)
            cfn.resolve_conflicts = "OVERWRITE"
            if name == "coredns":
                # coredns is a Deployment (tolerates CriticalAddonsOnly by default): it only
                # becomes ACTIVE once nodes exist.
                addon.node.add_dependency(self.system_nodegroup)
            self.addons[name] = addon
        agent = self.cluster.eks_pod_identity_agent
        assert agent is not None
        self.addons["eks-pod-identity-agent"] = agent

        self.node_security_group = ec2.SecurityGroup(
            self,
            "NodeSecurityGroup",
            vpc=props.vpc,
            description=f"Karpenter-launched nodes of EKS cluster {props.cluster_name}",
            allow_all_outbound=True,
        )
        cdk.Tags.of(self.node_security_group).add(KARPENTER_DISCOVERY_TAG, props.cluster_name)
        cdk.Tags.of(self.node_security_group).add(f"kubernetes.io/cluster/{props.cluster_name}", "owned")
        cluster_sg_id = self.cluster.cluster_security_group_id
        self.node_security_group.add_ingress_rule(
            self.node_security_group, ec2.Port.all_traffic(), "node to node (pods, kubelet, DNS)"
        )
        self.node_security_group.add_ingress_rule(
            ec2.Peer.security_group_id(cluster_sg_id), ec2.Port.all_traffic(), "control plane and system nodes"
        )
        cluster_from_nodes = ec2.CfnSecurityGroupIngress(
            self,
            "ClusterFromKarpenterNodes",
            group_id=cluster_sg_id,
            ip_protocol="-1",
            source_security_group_id=self.node_security_group.security_group_id,
            description="Karpenter-launched nodes to the control plane and system nodes",
        )
        # What Karpenter's nodes and their pods' ENIs use until the last node is gone: the node
        # group with its rules (the group's subtree), the cluster-group rule that lets them reach
        # the API server, and the add-ons they run. Karpenter finds the group by tag, so nothing
        # in the template references it: teardown must order it explicitly.
        self.node_dependencies: tuple[IConstruct, ...] = (
            self.node_security_group,
            cluster_from_nodes,
            *self.addons.values(),
        )

        alb = self.cluster.alb_controller
        assert alb is not None
        # The chart waits for ready pods: they need nodes (and DNS) first.
        alb.node.add_dependency(self.system_nodegroup)
        alb.node.add_dependency(self.addons["coredns"])
        self.alb_controller: eks.AlbController = alb
        self.alb_controller_name = AWS_LOAD_BALANCER_CONTROLLER_NAME
        self._acknowledge_nag_findings()

    def _set_hpa_sync_period(self, cfg: ClusterConfig) -> None:
        """kube-controller-manager's HPA sync period (``AWS::EKS::Cluster``
        ``KubeControllerManagerConfig``), as EKS's single-unit duration (``"10s"``). Only on a
        Provisioned Control Plane: EKS refuses the setting on the standard tier, where it is 15 s
        (``app_config.model.ClusterConfig`` validates both)."""
        if cfg.control_plane_tier == "standard":
            return
        cfn_cluster = self.cluster.node.default_child
        assert isinstance(cfn_cluster, eks.CfnCluster)
        cfn_cluster.kube_controller_manager_config = eks.CfnCluster.KubeControllerManagerConfigProperty(
            horizontal_pod_autoscaler_controller_config=eks.CfnCluster.HorizontalPodAutoscalerControllerConfigProperty(
                horizontal_pod_autoscaler_sync_period=f"{cfg.hpa_sync_period_seconds}s",
            ),
        )

    def _acknowledge_nag_findings(self) -> None:
        """cdk-nag findings on CDK-owned parts of the cluster, each narrowed to its construct."""
        acknowledge(
            self.cluster.role,
            "The EKS service role needs AmazonEKSClusterPolicy: it is the policy EKS documents for the "
            "cluster role and AWS keeps it in step with the control plane's needs.",
            managed_policy_finding("AmazonEKSClusterPolicy"),
        )
        node_role = self.system_nodegroup.role
        acknowledge(
            node_role,
            "Managed node group role: EKS documents exactly these AWS managed policies for worker nodes "
            "(join the cluster, VPC CNI, pull images from ECR). It has no access to the model bucket.",
            *(
                managed_policy_finding(name)
                for name in ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly")
            ),
        )
        provider = self.cluster.node.find_child("KubectlProvider")
        handler_role = provider.node.find_child("Handler").node.find_child("ServiceRole")
        framework = provider.node.find_child("Provider").node.find_child("framework-onEvent")
        framework_role = framework.node.find_child("ServiceRole")
        for role in (handler_role, framework_role):
            acknowledge_managed_policies(
                role,
                "CDK's kubectl provider (aws-cdk-lib code): AWS managed Lambda execution policies (logs, "
                "VPC ENIs) and ECR read-only for pulling the kubectl/Helm layers and OCI charts.",
            )
        acknowledge_wildcard_resources(
            framework_role.node.find_child("DefaultPolicy"),
            "CDK's provider framework may invoke any version of its own onEvent handler (<handler ARN>:*), "
            "nothing else.",
        )
        acknowledge(
            provider,
            "The kubectl handler's Python runtime is chosen by aws-cdk-lib (determineLatestPythonRuntime) "
            "to match its bundled handler code; bumping it is aws-cdk-lib's job.",
            "AwsSolutions-L1",
        )
        alb_role = self.alb_controller.node.find_child("alb-sa").role  # type: ignore[attr-defined]
        alb_policy = alb_role.node.find_child("DefaultPolicy")
        acknowledge_wildcard_resources(
            alb_policy,
            "AWS Load Balancer Controller IAM policy from upstream (aws-cdk-lib's alb-iam_policy-v3.2.2.json, "
            "same as v3.5.0), its security-group writes narrowed to this cluster's tagged groups and VPC: "
            "Describe* calls take no resource, and the mutating statements are limited by tag conditions.",
        )
        skip_checks(
            alb_policy,
            "Left as upstream: listener, rule, certificate, WAF and Shield writes act on load balancers the "
            "controller creates for Ingress or Service objects, whose ARNs no policy can name in advance "
            "(this app creates neither; it only binds pods to a CDK-made target group); the security-group "
            "writes are narrowed to this cluster's tagged groups.",
            "CKV_AWS_111",
        )
        acknowledge_handler_functions(provider)
