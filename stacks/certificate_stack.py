"""Certificate stack (us-east-1): the DNS-validated ACM certificate of ``edge.custom_domain``.

CloudFront serves only certificates from us-east-1, so, like the WAF's web ACL, the certificate
lives in a us-east-1 stack and reaches the Edge stack through CDK's cross-region reference.
Created only when ``edge.custom_domain`` names a hosted zone and no ``certificate_arn``.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_route53 as route53
from constructs import Construct

from app_config.model import CustomDomainConfig


class CertificateStack(cdk.Stack):
    """An ACM certificate for ``domain.name``, validated by DNS records in ``domain``'s hosted
    zone (imported by id and name: no lookup at synth). Exposes ``certificate_arn``.

    Must be created with ``env.region == "us-east-1"`` and ``cross_region_references=True``.

    Raises:
        ValueError: ``domain`` names no hosted zone (nothing could validate the certificate).
    """

    def __init__(self, scope: Construct, construct_id: str, *, domain: CustomDomainConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description="qvllm: ACM certificate of the custom domain (us-east-1)", **kwargs)
        if domain.hosted_zone_id is None or domain.hosted_zone_name is None:
            raise ValueError("edge.custom_domain: a certificate can be created only with hosted_zone_id and hosted_zone_name")
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "HostedZone", hosted_zone_id=domain.hosted_zone_id, zone_name=domain.hosted_zone_name
        )
        certificate = acm.Certificate(
            self, "Certificate", domain_name=domain.name, validation=acm.CertificateValidation.from_dns(zone)
        )
        self.certificate_arn: str = certificate.certificate_arn
        cdk.CfnOutput(self, "CertificateArn", value=certificate.certificate_arn)
