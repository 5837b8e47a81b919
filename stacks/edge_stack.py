"""Edge stack: CloudFront (+ the us-east-1 WAF) -> internal ALB -> gateway target group."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from app_config import AppConfig
from cdk_constructs.edge import Edge, EdgeProps

# The AwsCustomResource that resolves CloudFront's VPC-origin security group runs on a
# CDK-provided singleton Lambda whose role carries this AWS managed policy.
LAMBDA_BASIC_EXECUTION_FINDING = (
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]"
)


class EdgeStack(cdk.Stack):
    """Holds :class:`cdk_constructs.edge.Edge`.

    Exposes ``alb``, ``alb_security_group``, ``listener``, ``target_group`` (the cluster binds
    the gateway pods to it with a TargetGroupBinding) and ``distribution``; outputs the public
    URL. ``web_acl_arn`` (from :class:`stacks.waf_stack.WafStack`) or ``None`` without WAF;
    ``viewer_certificate_arn`` (``edge.custom_domain``'s certificate, from the config or from
    :class:`stacks.certificate_stack.CertificateStack`) or ``None`` without a custom domain.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        vpc: ec2.IVpc,
        web_acl_arn: str | None,
        viewer_certificate_arn: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, description="qvllm: CloudFront, internal ALB, gateway target group", **kwargs)
        edge = Edge(self, "Edge", EdgeProps(
            config=config.edge, vpc=vpc, web_acl_arn=web_acl_arn, viewer_certificate_arn=viewer_certificate_arn,
            teardown_wait_seconds=config.teardown.wait_timeout_seconds,
        ))
        self.edge = edge
        self.alb = edge.alb
        self.alb_security_group = edge.alb_security_group
        self.listener = edge.listener
        self.target_group = edge.target_group
        self.distribution = edge.distribution
        self.log_bucket = edge.log_bucket
        cdk.Validations.of(self).acknowledge(
            cdk.Acknowledgment(
                id=LAMBDA_BASIC_EXECUTION_FINDING,
                reason="CDK's AwsCustomResource handler (resolves CloudFront's VPC-origin security group "
                "at deploy time) uses AWSLambdaBasicExecutionRole, which only lets it write its own logs.",
            )
        )
        if web_acl_arn is None:
            cdk.Validations.of(edge.distribution).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions-CFR2",
                    reason="WAF switched off in config (edge.waf_enabled: false) by the operator.",
                )
            )
        cdk.Validations.of(edge.distribution).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-CFR1",
                reason="An API for a worldwide audience: no geo restriction by design; abuse is "
                "limited by the WAF rate rule.",
            ),
        )
        domain = config.edge.custom_domain
        if domain is None:
            cdk.Validations.of(edge.distribution).acknowledge(
                cdk.Acknowledgment(
                    id="AwsSolutions-CFR4",
                    reason="No custom domain configured (edge.custom_domain): the default *.cloudfront.net "
                    "certificate's viewer TLS policy is fixed by CloudFront; a custom domain gets TLSv1.2_2021.",
                ),
            )
        host = domain.name if domain else edge.distribution.distribution_domain_name
        cdk.CfnOutput(self, "ApiUrl", value=f"https://{host}",
                      description="Public OpenAI-compatible endpoint (CloudFront)")
        cdk.CfnOutput(self, "AlbDnsName", value=edge.alb.load_balancer_dns_name,
                      description="Internal ALB (reachable only from CloudFront's VPC origin)")
        cdk.CfnOutput(self, "GatewayTargetGroupArn", value=edge.target_group.target_group_arn)
