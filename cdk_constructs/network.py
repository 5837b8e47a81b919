"""The VPC: public + private subnets over N AZs, NAT, endpoints, flow logs, discovery tags."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from app_config.constants import KARPENTER_DISCOVERY_TAG
from app_config.model import NetworkConfig
from cdk_constructs.checkov import LOG_GROUP_NOT_KMS, skip_checks

# Subnet role tags the AWS Load Balancer Controller reads (kubernetes-sigs/aws-load-balancer-controller
# docs, "Subnet auto-discovery").
ELB_PUBLIC_ROLE_TAG = "kubernetes.io/role/elb"
ELB_INTERNAL_ROLE_TAG = "kubernetes.io/role/internal-elb"


@dataclass(frozen=True)
class NetworkProps:
    """Props of :class:`Network`.

    Attributes:
        config: the network section of the app config.
        cluster_name: value of the ``karpenter.sh/discovery`` tag on the private subnets.
    """

    config: NetworkConfig
    cluster_name: str


class Network(Construct):
    """A VPC ready for EKS, Karpenter and an internal ALB.

    Private subnets (with egress through ``nat_gateways`` NAT gateways) hold nodes, pods and the
    ALB; public subnets hold only the NAT gateways. Interface endpoints for ECR (api, dkr) and STS
    and an S3 gateway endpoint keep image pulls, Pod Identity and model streaming off the NAT.
    """

    def __init__(self, scope: Construct, construct_id: str, props: NetworkProps) -> None:
        super().__init__(scope, construct_id)
        cfg = props.config
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(cfg.vpc_cidr),
            max_azs=cfg.max_azs,
            nat_gateways=cfg.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=19
                ),
            ],
            restrict_default_security_group=True,
        )
        flow_log_group = logs.LogGroup(
            self,
            "FlowLogs",
            retention=retention_for(cfg.flow_log_retention_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        skip_checks(
            flow_log_group,
            "Flow log records of rejected traffic hold addresses, ports and counts, no payload; CloudWatch "
            "Logs encrypts them at rest, and a customer key would add a key policy to keep for no secret.",
            LOG_GROUP_NOT_KMS,
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        for name, service in (
            ("EcrApi", ec2.InterfaceVpcEndpointAwsService.ECR),
            ("EcrDkr", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
            ("Sts", ec2.InterfaceVpcEndpointAwsService.STS),
        ):
            endpoint = self.vpc.add_interface_endpoint(
                name,
                service=service,
                private_dns_enabled=True,
                subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            )
            # cdk-nag cannot evaluate the ingress CIDR (an Fn::GetAtt of the VPC's CIDR) and reports
            # a rule error; the group admits HTTPS from the VPC's own CIDR only, never 0.0.0.0/0.
            cdk.Validations.of(endpoint).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions-EC23",
                    reason="Interface-endpoint security group: ingress is TCP 443 from the VPC CIDR "
                    "(an intrinsic cdk-nag cannot resolve), not from 0.0.0.0/0.",
                )
            )
        for subnet in self.vpc.public_subnets:
            cdk.Tags.of(subnet).add(ELB_PUBLIC_ROLE_TAG, "1")
        for subnet in self.vpc.private_subnets:
            cdk.Tags.of(subnet).add(ELB_INTERNAL_ROLE_TAG, "1")
            cdk.Tags.of(subnet).add(KARPENTER_DISCOVERY_TAG, props.cluster_name)


_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


def retention_for(days: int) -> logs.RetentionDays:
    """The smallest CloudWatch Logs retention >= ``days`` (the API takes fixed values; max one year here)."""
    return next((value for limit, value in sorted(_RETENTION.items()) if limit >= days), logs.RetentionDays.ONE_YEAR)
