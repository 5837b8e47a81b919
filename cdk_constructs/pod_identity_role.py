"""An IAM role bound to one Kubernetes ServiceAccount through EKS Pod Identity.

Used for the vLLM pods: the role may only read the model prefix (``ModelStore.grant_read_model``),
so S3 access never leaks through the node role (a defect of the reference demo).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"


@dataclass(frozen=True)
class PodIdentityRoleProps:
    """Props of :class:`PodIdentityRole`.

    Attributes:
        cluster: the EKS cluster (its Pod Identity agent add-on must be installed).
        namespace: namespace of the ServiceAccount.
        service_account: name of the ServiceAccount (created by a chart, not here).
        description: IAM role description.
    """

    cluster: eks.Cluster
    namespace: str
    service_account: str
    description: str


class PodIdentityRole(Construct):
    """``role`` (trusts ``pods.eks.amazonaws.com`` with ``sts:AssumeRole`` + ``sts:TagSession``)
    and ``association`` (``AWS::EKS::PodIdentityAssociation`` for namespace/service account).

    Grant permissions on ``role``; the role starts with none.
    """

    def __init__(self, scope: Construct, construct_id: str, props: PodIdentityRoleProps) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.SessionTagsPrincipal(iam.ServicePrincipal(POD_IDENTITY_PRINCIPAL)),
            description=props.description,
        )
        self.association = eks.CfnPodIdentityAssociation(
            self,
            "Association",
            cluster_name=props.cluster.cluster_name,
            namespace=props.namespace,
            service_account=props.service_account,
            role_arn=self.role.role_arn,
        )
        agent = props.cluster.eks_pod_identity_agent
        if agent is not None:
            self.association.node.add_dependency(agent)
