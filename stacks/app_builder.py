"""Compose every stack of the app from one :class:`AppConfig`.

Dependency order (CloudFormation deploys left to right, destroys right to left):

    Network ─┬─> ModelStore ─┐
             ├─> Edge ───────┼─> Cluster
    Waf (us-east-1) ─> Edge ─┘
    Certificate (us-east-1, only for a custom domain with a hosted zone) ─> Edge

The Edge stack owns the internal ALB and the gateway target group, so CloudFront's VPC
origin references an ALB that exists in the same deploy; the cluster binds the gateway
pods to that target group with a TargetGroupBinding (no two-phase deploy).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from app_config import AppConfig
from app_config.constants import PROJECT_TAG_KEY
from app_config.model import DEFAULT_REGION
from cdk_constructs.checkov import acknowledge_cdk_singleton_handlers
from stacks.certificate_stack import CertificateStack
from stacks.cluster_stack import ClusterStack
from stacks.edge_stack import EdgeStack
from stacks.model_store_stack import ModelStoreStack
from stacks.network_stack import NetworkStack
from stacks.waf_stack import WafStack

WAF_REGION = "us-east-1"  # CloudFront-scope web ACLs (and CloudFront's certificates) must live in us-east-1


@dataclass(frozen=True)
class AppStacks:
    """The stacks of one app, for tests and for callers that wire more onto them."""

    network: NetworkStack
    model_store: ModelStoreStack
    waf: WafStack | None
    certificate: CertificateStack | None
    edge: EdgeStack
    cluster: ClusterStack


def resolve_env(config: AppConfig) -> cdk.Environment:
    """The deployment environment: account optional (env-agnostic), region always concrete.

    Region comes from ``config.env.region``, else ``CDK_DEFAULT_REGION``, else
    :data:`app_config.model.DEFAULT_REGION`; cross-region references need it concrete.
    """
    region = config.env.region or os.environ.get("CDK_DEFAULT_REGION") or DEFAULT_REGION
    account = config.env.account or os.environ.get("CDK_DEFAULT_ACCOUNT")
    return cdk.Environment(account=account, region=region)


def build_app(scope: Construct, config: AppConfig, *, nag: bool = True) -> AppStacks:
    """Create all stacks under ``scope`` (a ``cdk.App``) and attach cdk-nag's AwsSolutions pack.

    Args:
        scope: the app.
        config: validated configuration.
        nag: attach cdk-nag (synth then fails on any unacknowledged finding).
    """
    env = resolve_env(config)
    prefix = "".join(part.capitalize() for part in config.project_name.split("-"))
    # Stack-level tags are explicit (@aws-cdk/core:explicitStackTags ignores Tags.of for the
    # stack itself); Tags.of below still tags every resource in the templates.
    tags = {PROJECT_TAG_KEY: config.project_name}

    network = NetworkStack(scope, f"{prefix}-Network", config=config, env=env, tags=tags)
    model_store = ModelStoreStack(scope, f"{prefix}-ModelStore", config=config, env=env, tags=tags)

    waf: WafStack | None = None
    if config.edge.waf_enabled:
        waf = WafStack(
            scope,
            f"{prefix}-Waf",
            config=config,
            env=cdk.Environment(account=env.account, region=WAF_REGION),
            tags=tags,
            cross_region_references=True,
        )
    # The custom domain's certificate: the configured one, or one validated in its hosted zone.
    domain = config.edge.custom_domain
    certificate: CertificateStack | None = None
    viewer_certificate_arn = domain.certificate_arn if domain else None
    if domain is not None and viewer_certificate_arn is None:
        certificate = CertificateStack(
            scope,
            f"{prefix}-Certificate",
            domain=domain,
            env=cdk.Environment(account=env.account, region=WAF_REGION),
            tags=tags,
            cross_region_references=True,
        )
        viewer_certificate_arn = certificate.certificate_arn
    edge = EdgeStack(
        scope,
        f"{prefix}-Edge",
        config=config,
        vpc=network.vpc,
        web_acl_arn=waf.web_acl_arn if waf else None,
        viewer_certificate_arn=viewer_certificate_arn,
        env=env,
        tags=tags,
        cross_region_references=waf is not None or certificate is not None,
    )
    cluster = ClusterStack(
        scope,
        f"{prefix}-Cluster",
        config=config,
        vpc=network.vpc,
        model_store=model_store.model_store,
        edge=edge,
        env=env,
        tags=tags,
    )
    for stack in (network, model_store, edge, cluster, *(s for s in (waf, certificate) if s)):
        cdk.Tags.of(stack).add(PROJECT_TAG_KEY, config.project_name)
        acknowledge_cdk_singleton_handlers(stack)
    if nag:
        cdk.Validations.of(scope).add_plugins(AwsSolutionsChecks(scope))  # type: ignore[arg-type]
    return AppStacks(
        network=network, model_store=model_store, waf=waf, certificate=certificate, edge=edge, cluster=cluster
    )
