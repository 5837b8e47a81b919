"""The public edge: CloudFront (VPC origin) -> internal ALB -> gateway target group.

Everything is created in one deploy (no two-phase deploy, a defect of the reference demo):
the ALB, its listener and the gateway's IP target group exist before CloudFront's VPC origin
references the ALB; the cluster later binds the gateway pods to ``target_group`` with a
``TargetGroupBinding`` (AWS Load Balancer Controller).
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from aws_cdk import aws_s3 as s3
from aws_cdk import custom_resources as cr
from constructs import Construct

from app_config.constants import (
    ALB_HTTPS_LISTENER_PORT,
    ALB_LISTENER_PORT,
    CLOUDFRONT_VPC_ORIGINS_SG_NAME,
    EDGE_LOG_PREFIX_ALB,
    EDGE_LOG_PREFIX_CLOUDFRONT,
    GATEWAY_HEALTH_PATH,
    GATEWAY_PORT,
)
from app_config.model import CustomDomainConfig, EdgeConfig, OriginTlsConfig
from cdk_constructs.checkov import acknowledge_log_bucket, skip_checks
from cdk_constructs.vpc_origin_wait import VpcOriginWait, VpcOriginWaitProps

_PRICE_CLASS = {
    "PriceClass_100": cloudfront.PriceClass.PRICE_CLASS_100,
    "PriceClass_200": cloudfront.PriceClass.PRICE_CLASS_200,
    "PriceClass_All": cloudfront.PriceClass.PRICE_CLASS_ALL,
}


@dataclass(frozen=True)
class EdgeProps:
    """Props of :class:`Edge`.

    Attributes:
        config: the ``edge`` section of the app config (timeouts in seconds, WAF, price class).
        vpc: the VPC; the ALB goes into its private (egress) subnets.
        web_acl_arn: ARN of a CLOUDFRONT-scope WAFv2 web ACL (from the us-east-1 stack), or
            ``None`` to run without WAF.
        viewer_certificate_arn: the us-east-1 ACM certificate of ``config.custom_domain`` (from the
            config, or from the us-east-1 certificate stack; may be a token), or ``None``.
        teardown_wait_seconds: how long ``cdk destroy`` waits, after deleting the VPC origin,
            for CloudFront to remove its ENIs and security group from the VPC (seconds).
    """

    config: EdgeConfig
    vpc: ec2.IVpc
    web_acl_arn: str | None
    viewer_certificate_arn: str | None
    teardown_wait_seconds: int


class Edge(Construct):
    """Internal ALB + HTTP listener + gateway target group, fronted by CloudFront.

    Attributes exposed to other stacks:
        ``alb`` (internal ``ApplicationLoadBalancer`` in the private subnets),
        ``alb_security_group`` (ingress only from CloudFront's VPC-origin security group),
        ``listener`` (HTTP :data:`ALB_LISTENER_PORT`, or HTTPS :data:`ALB_HTTPS_LISTENER_PORT` with
        ``config.origin_tls``; default action: forward to the gateway),
        ``target_group`` (IP targets, port ``gateway_port``, HTTP health check ``health_check_path``),
        ``distribution`` (caching disabled, all viewer headers except Host forwarded, all methods,
        origin read, keep-alive and (optional) response completion timeouts from ``config``,
        standard logging on; with ``config.custom_domain`` its name, certificate and the
        ``TLSv1.2_2021`` viewer policy, plus Route 53 alias records when a hosted zone is given),
        ``log_bucket`` (CloudFront and ALB access logs),
        ``vpc_origin_wait`` (on delete, waits after the VPC origin until CloudFront has removed
        its ENIs and security group from the VPC, so the network stack can delete it).

    ALB ingress: CloudFront creates a security group named
    :data:`CLOUDFRONT_VPC_ORIGINS_SG_NAME` in the VPC for its VPC-origin ENIs. CloudFormation does
    not return its id, and the managed prefix list ``com.amazonaws.global.cloudfront.origin-facing``
    needs an account lookup at synth time, so a custom resource (``ec2:DescribeSecurityGroups``,
    filtered by VPC and group name) resolves the group at deploy time, after the distribution
    (and so the VPC origin) exists; the ALB security group then admits only that group, on the
    listener port. Synth stays offline and no rule ever opens the ALB to 0.0.0.0/0.
    (Pattern from the aws-cdk-lib ``aws_cloudfront_origins`` README, "The VPC origin service
    security group".)
    """

    def __init__(self, scope: Construct, construct_id: str, props: EdgeProps) -> None:
        super().__init__(scope, construct_id)
        cfg = props.config
        vpc = props.vpc
        destroy = cfg.logs_removal_policy == "destroy"

        self.log_bucket = s3.Bucket(
            self,
            "Logs",
            # CloudFront standard logging writes with ACLs: the bucket must have ACLs enabled
            # (object ownership not BucketOwnerEnforced). Log delivery cannot use SSE-KMS here.
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(id="expire-logs", expiration=cdk.Duration.days(cfg.log_retention_days))],
            removal_policy=cdk.RemovalPolicy.DESTROY if destroy else cdk.RemovalPolicy.RETAIN,
            auto_delete_objects=destroy,
        )
        acknowledge_log_bucket(self.log_bucket)
        cdk.Validations.of(self.log_bucket).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-S1",
                reason="This bucket is the edge's log destination; logging its own access would log "
                "each log delivery again (a loop). Its writers are CloudFront and ELB log delivery only.",
            )
        )

        self.alb_security_group = ec2.SecurityGroup(
            self,
            "AlbSecurityGroup",
            vpc=vpc,
            description="Internal ALB: ingress only from CloudFront VPC-origin ENIs; egress to gateway pods",
            allow_all_outbound=False,
        )
        # Gateway pods get VPC IPs (VPC CNI): the ALB reaches them, and health-checks them, in the VPC.
        self.alb_security_group.add_egress_rule(
            ec2.Peer.ipv4(vpc.vpc_cidr_block),
            ec2.Port.tcp(GATEWAY_PORT),
            "ALB to gateway pods (traffic and health checks)",
        )
        self.alb = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            vpc=vpc,
            internet_facing=False,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_group=self.alb_security_group,
            idle_timeout=cdk.Duration.seconds(cfg.alb_idle_timeout_seconds),
            drop_invalid_header_fields=True,
        )
        self.alb.log_access_logs(self.log_bucket, EDGE_LOG_PREFIX_ALB)

        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "GatewayTargetGroup",
            vpc=vpc,
            port=GATEWAY_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            health_check=elbv2.HealthCheck(
                path=GATEWAY_HEALTH_PATH,  # the gateway answers 200 there, not 404
                port=str(GATEWAY_PORT),
                protocol=elbv2.Protocol.HTTP,
                healthy_http_codes="200",
                interval=cdk.Duration.seconds(10),
                timeout=cdk.Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )
        origin_tls = cfg.origin_tls
        self.listener_port = ALB_HTTPS_LISTENER_PORT if origin_tls else ALB_LISTENER_PORT
        self.listener = self.alb.add_listener(
            "Https" if origin_tls else "Http",
            port=self.listener_port,
            protocol=elbv2.ApplicationProtocol.HTTPS if origin_tls else elbv2.ApplicationProtocol.HTTP,
            certificates=[elbv2.ListenerCertificate.from_arn(origin_tls.certificate_arn)] if origin_tls else None,
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS if origin_tls else None,
            open=False,  # no 0.0.0.0/0 rule: ingress comes only from the VPC-origin security group
            default_action=elbv2.ListenerAction.forward([self.target_group]),
        )
        if origin_tls is None:
            skip_checks(
                self.listener,
                "HTTP by default on purpose (edge.origin_tls unset): the ALB is internal and admits only "
                "CloudFront's VPC-origin ENIs in this VPC, so the hop never leaves the VPC; set "
                "edge.origin_tls (a certificate for the ALB) to encrypt it too.",
                "CKV_AWS_2", "CKV_AWS_103",
            )

        origin = origins.VpcOrigin.with_application_load_balancer(
            self.alb,
            domain_name=origin_tls.domain_name if origin_tls else None,
            http_port=ALB_LISTENER_PORT,
            https_port=ALB_HTTPS_LISTENER_PORT,
            protocol_policy=(
                cloudfront.OriginProtocolPolicy.HTTPS_ONLY if origin_tls else cloudfront.OriginProtocolPolicy.HTTP_ONLY
            ),
            origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2] if origin_tls else None,
            read_timeout=cdk.Duration.seconds(cfg.origin_read_timeout_seconds),
            keepalive_timeout=cdk.Duration.seconds(cfg.origin_keepalive_timeout_seconds),
            response_completion_timeout=(
                cdk.Duration.seconds(cfg.response_completion_timeout_seconds)
                if cfg.response_completion_timeout_seconds is not None
                else None
            ),
        )
        domain = cfg.custom_domain
        if domain is not None and props.viewer_certificate_arn is None:
            raise ValueError("EdgeProps.viewer_certificate_arn is required with edge.custom_domain")
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="qvllm: OpenAI-compatible API (gateway behind an internal ALB)",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origin,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                compress=False,  # responses stream (SSE); nothing is cached
            ),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            enable_ipv6=True,
            enable_logging=True,
            log_bucket=self.log_bucket,
            log_file_prefix=EDGE_LOG_PREFIX_CLOUDFRONT,
            price_class=_PRICE_CLASS[cfg.price_class],
            web_acl_id=props.web_acl_arn,
            domain_names=[domain.name] if domain else None,
            certificate=(
                acm.Certificate.from_certificate_arn(self, "ViewerCertificate", props.viewer_certificate_arn)
                if domain and props.viewer_certificate_arn
                else None
            ),
            # Settable with a custom certificate only: with the default one CloudFront fixes TLSv1.
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021 if domain else None,
        )
        if domain is None:
            skip_checks(
                self.distribution,
                "No custom domain configured (edge.custom_domain): with the default *.cloudfront.net certificate "
                "CloudFront fixes the viewer policy at TLSv1 and accepts no minimum; a custom domain gets TLSv1.2_2021.",
                "CKV_AWS_174",
            )
        self._alias_records(domain, origin_tls)
        self._admit_only_vpc_origin(vpc)
        self._wait_for_vpc_origin_removal(vpc, props.teardown_wait_seconds)

    def _alias_records(self, domain: CustomDomainConfig | None, origin_tls: OriginTlsConfig | None) -> None:
        """With a hosted zone: A and AAAA aliases of the custom domain to the distribution, and a
        CNAME of ``origin_tls.domain_name`` to the ALB when that name is in the zone too."""
        self.hosted_zone: route53.IHostedZone | None = None
        if domain is None or domain.hosted_zone_id is None or domain.hosted_zone_name is None:
            return
        zone = self.hosted_zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "HostedZone", hosted_zone_id=domain.hosted_zone_id, zone_name=domain.hosted_zone_name
        )
        target = route53.RecordTarget.from_alias(route53_targets.CloudFrontTarget(self.distribution))
        route53.ARecord(self, "AliasA", zone=zone, record_name=domain.name, target=target)
        route53.AaaaRecord(self, "AliasAaaa", zone=zone, record_name=domain.name, target=target)
        if origin_tls and origin_tls.domain_name.endswith(f".{domain.hosted_zone_name}"):
            route53.CnameRecord(
                self, "OriginName", zone=zone, record_name=origin_tls.domain_name,
                domain_name=self.alb.load_balancer_dns_name,
            )

    def _wait_for_vpc_origin_removal(self, vpc: ec2.IVpc, timeout_seconds: int) -> None:
        """Delete order: the VPC origin, then a wait until CloudFront has removed its ENIs and
        security group (it does so asynchronously), then (network stack) the subnets and VPC."""
        self.vpc_origin_wait = VpcOriginWait(
            self, "VpcOriginWait", VpcOriginWaitProps(vpc=vpc, timeout_seconds=timeout_seconds)
        )
        vpc_origins = [c for c in self.distribution.node.find_all() if isinstance(c, cloudfront.CfnVpcOrigin)]
        assert vpc_origins, "the distribution has a VPC origin"
        for vpc_origin in vpc_origins:
            vpc_origin.node.add_dependency(self.vpc_origin_wait.resource)

    def _admit_only_vpc_origin(self, vpc: ec2.IVpc) -> None:
        """Allow the listener port from CloudFront's VPC-origin security group, and nothing else."""
        describe = cr.AwsSdkCall(
            service="ec2",
            action="describeSecurityGroups",
            parameters={
                "Filters": [
                    {"Name": "vpc-id", "Values": [vpc.vpc_id]},
                    {"Name": "group-name", "Values": [CLOUDFRONT_VPC_ORIGINS_SG_NAME]},
                ]
            },
            physical_resource_id=cr.PhysicalResourceId.of(f"{CLOUDFRONT_VPC_ORIGINS_SG_NAME}-lookup"),
            output_paths=["SecurityGroups.0.GroupId"],
        )
        lookup = cr.AwsCustomResource(
            self,
            "VpcOriginSecurityGroupLookup",
            on_create=describe,
            on_update=describe,
            policy=cr.AwsCustomResourcePolicy.from_sdk_calls(
                resources=cr.AwsCustomResourcePolicy.ANY_RESOURCE
            ),
            install_latest_aws_sdk=False,
        )
        # CloudFront creates the group with the VPC origin; the distribution depends on that origin.
        lookup.node.add_dependency(self.distribution)
        cdk.Validations.of(lookup).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ec2:DescribeSecurityGroups supports no resource-level permissions; the policy "
                "grants that one read-only action.",
            )
        )
        self.vpc_origin_security_group_id = lookup.get_response_field("SecurityGroups.0.GroupId")
        # A separate ingress resource (not inline in the group) avoids a cycle
        # security group -> lookup -> distribution -> VPC origin -> ALB -> security group.
        ec2.CfnSecurityGroupIngress(
            self,
            "AlbIngressFromVpcOrigin",
            group_id=self.alb_security_group.security_group_id,
            ip_protocol="tcp",
            from_port=self.listener_port,
            to_port=self.listener_port,
            source_security_group_id=self.vpc_origin_security_group_id,
            description="CloudFront VPC origin to the ALB listener",
        )
