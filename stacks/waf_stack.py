"""WAF stack (us-east-1): the CLOUDFRONT-scope web ACL the Edge stack's distribution uses."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from app_config import AppConfig
from cdk_constructs.waf import CloudFrontWebAcl, WebAclProps


class WafStack(cdk.Stack):
    """Holds :class:`cdk_constructs.waf.CloudFrontWebAcl`; exposes ``web_acl_arn``.

    Must be created with ``env.region == "us-east-1"`` and ``cross_region_references=True``
    (CloudFront reads web ACLs only from us-east-1); the Edge stack then consumes
    ``web_acl_arn`` through CDK's cross-region SSM export.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description="qvllm: WAF web ACL for CloudFront (us-east-1)", **kwargs)
        acl = CloudFrontWebAcl(
            self,
            "WebAcl",
            WebAclProps(
                name_prefix=config.project_name,
                rate_limit_per_5min=config.edge.waf_rate_limit_per_5min,
                common_rule_actions=tuple(sorted(config.edge.waf_common_rule_actions.items())),
            ),
        )
        self.web_acl = acl.web_acl
        self.web_acl_arn: str = acl.web_acl_arn
        cdk.CfnOutput(self, "WebAclArn", value=acl.web_acl_arn)
