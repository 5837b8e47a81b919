"""vLLM's shared compile cache on Amazon EFS: the file system, its access point, the GPU nodes' right to
mount it, and the EFS CSI driver as an EKS managed add-on with its Pod Identity role.

A vLLM pod spends tens of seconds in torch.compile at every start; with the cache on a file system
every pod mounts, a pod whose model, configuration and vLLM version match an earlier pod's loads the
compiled artifacts instead (vLLM writes them atomically, a temporary file then ``os.replace``, so
pods starting together do not corrupt each other's entries: vllm/compilation/decorators.py, 0.32).

* File system: encrypted at rest, mount targets in the private subnets (where Karpenter puts the
  GPU nodes), elastic throughput (a start reads the cache in a burst; bursting mode's baseline on a
  file system of a few hundred MB is a trickle), no transition to Infrequent Access (every start
  reads it), deleted with the stack (a cache: the next pod rebuilds it).
* Security group: NFS (TCP 2049) from the Karpenter nodes' security group only.
* Access point ``/vllm-compile-cache``: every file operation runs as its POSIX user, whatever user
  the container runs as.
* Mounts use IAM authorization: the node role may mount and write only through that access point
  (the file system policy that aws-cdk-lib adds denies clients without IAM).
* EFS CSI driver add-on (``aws-efs-csi-driver``): its controller gets a Pod Identity role that may
  only describe this file system. Volumes are provisioned statically (k8s_charts/compile_cache.py),
  so the driver never creates an access point, and without ``CreateAccessPoint`` it could not:
  nothing outside the template can stop ``cdk destroy`` from deleting the file system (EFS refuses
  to delete one that still has access points: https://docs.aws.amazon.com/efs/latest/ug/delete-efs-fs.html).
  ``preserveOnDelete`` is off, so turning the cache off removes the driver too.

Teardown: the charts that mount the cache depend on this whole construct, so CloudFormation deletes
the vLLM pods and the claim (``kubectl delete`` waits until the claim's protection finalizer is gone,
i.e. until no pod uses it) before the add-on that unmounts, the mount targets, the security group rule
and the node policy; a mount target deleted under a live mount would break it
(https://docs.aws.amazon.com/efs/latest/ug/mount-target-delete.html).
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct, IConstruct

from app_config.constants import COMPILE_CACHE_NAME
from cdk_constructs.pod_identity_role import POD_IDENTITY_PRINCIPAL

EFS_CSI_ADDON = "aws-efs-csi-driver"
# ServiceAccount of the driver's controller (the add-on's chart, controller.serviceAccount.name).
EFS_CSI_CONTROLLER_SERVICE_ACCOUNT = "efs-csi-controller-sa"
NFS_PORT = 2049
ACCESS_POINT_PATH = f"/{COMPILE_CACHE_NAME}"
# Any fixed id works: the access point performs every file operation as this user and group.
CACHE_POSIX_ID = "1000"
CACHE_DIRECTORY_PERMISSIONS = "750"


@dataclass(frozen=True)
class CompileCacheProps:
    """Props of :class:`CompileCache`.

    Attributes:
        cluster: the EKS cluster (its Pod Identity agent add-on must be installed).
        cluster_name: EKS cluster name (for names and descriptions).
        vpc: the VPC; mount targets go into its private subnets.
        node_security_group: security group of the nodes that mount the cache (Karpenter's).
        node_role: their IAM role (mounts authorize with it).
        system_nodegroup: the node group the driver's controller runs on (the add-on becomes
            active only once its pods run).
    """

    cluster: eks.Cluster
    cluster_name: str
    vpc: ec2.IVpc
    node_security_group: ec2.ISecurityGroup
    node_role: iam.IRole
    system_nodegroup: IConstruct


class CompileCache(Construct):
    """EFS file system + access point + mount policy + EFS CSI driver add-on.

    Exposes ``security_group``, ``file_system``, ``access_point``, ``mount_policy`` (on the node
    role), ``controller_role`` and ``addon``. Charts whose pods mount the cache depend on the whole
    construct (created after it, deleted before it).
    """

    def __init__(self, scope: Construct, construct_id: str, props: CompileCacheProps) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=props.vpc,
            description=f"vLLM compile cache (EFS) of EKS cluster {props.cluster_name}: NFS from its GPU nodes",
            allow_all_outbound=False,
        )
        self.security_group.add_ingress_rule(
            props.node_security_group, ec2.Port.tcp(NFS_PORT), "NFS from Karpenter's nodes"
        )
        self.file_system = efs.FileSystem(
            self,
            "FileSystem",
            vpc=props.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_group=self.security_group,
            encrypted=True,
            performance_mode=efs.PerformanceMode.GENERAL_PURPOSE,
            throughput_mode=efs.ThroughputMode.ELASTIC,
            removal_policy=cdk.RemovalPolicy.DESTROY,
            file_system_name=f"{props.cluster_name}-{COMPILE_CACHE_NAME}",
        )
        self.access_point = self.file_system.add_access_point(
            "AccessPoint",
            path=ACCESS_POINT_PATH,
            posix_user=efs.PosixUser(uid=CACHE_POSIX_ID, gid=CACHE_POSIX_ID),
            create_acl=efs.Acl(
                owner_uid=CACHE_POSIX_ID, owner_gid=CACHE_POSIX_ID, permissions=CACHE_DIRECTORY_PERMISSIONS
            ),
        )
        # The EFS CSI node plugin mounts with the node's role (it runs on the host network, where
        # the instance metadata service answers it).
        self.mount_policy = iam.Policy(
            self,
            "MountPolicy",
            roles=[props.node_role],
            statements=[
                iam.PolicyStatement(
                    actions=["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                    resources=[self.file_system.file_system_arn],
                    conditions={
                        "Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"},
                        "StringEquals": {"elasticfilesystem:AccessPointArn": self.access_point.access_point_arn},
                    },
                )
            ],
        )
        self.controller_role = iam.Role(
            self,
            "ControllerRole",
            assumed_by=iam.SessionTagsPrincipal(iam.ServicePrincipal(POD_IDENTITY_PRINCIPAL)),
            description=f"EFS CSI driver controller of EKS cluster {props.cluster_name} (Pod Identity): "
            "describe the compile cache file system only",
            inline_policies={
                "DescribeCompileCache": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            actions=[
                                "elasticfilesystem:DescribeFileSystems",
                                "elasticfilesystem:DescribeAccessPoints",
                                "elasticfilesystem:DescribeMountTargets",
                            ],
                            resources=[self.file_system.file_system_arn, self.access_point.access_point_arn],
                        )
                    ]
                )
            },
        )
        self.addon = eks.Addon(
            self, "EfsCsiDriver", cluster=props.cluster, addon_name=EFS_CSI_ADDON, preserve_on_delete=False
        )
        cfn_addon = self.addon.node.default_child
        assert isinstance(cfn_addon, eks.CfnAddon)
        cfn_addon.pod_identity_associations = [
            eks.CfnAddon.PodIdentityAssociationProperty(
                role_arn=self.controller_role.role_arn, service_account=EFS_CSI_CONTROLLER_SERVICE_ACCOUNT
            )
        ]
        self.addon.node.add_dependency(props.system_nodegroup)
        agent = props.cluster.eks_pod_identity_agent
        if agent is not None:
            self.addon.node.add_dependency(agent)
