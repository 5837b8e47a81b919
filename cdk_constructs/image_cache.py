"""ECR pull-through cache rules for the public registries our images come from (app_config/images.py).

One ``AWS::ECR::PullThroughCacheRule`` per upstream in :data:`app_config.images.CACHE_UPSTREAMS`,
under the prefix ``<project>/<upstream>``. The first pull of an image creates its cache repository
and imports the image: ECR does that with the puller's permissions, so the node roles get
``ecr:BatchImportUpstreamImage`` and ``ecr:CreateRepository`` on the cache prefixes only
(https://docs.aws.amazon.com/AmazonECR/latest/userguide/pull-through-cache-iam.html); pulling
itself is the nodes' ECR pull policy.

Docker Hub needs a credential: a Secrets Manager secret whose name starts with
``ecr-pullthroughcache/`` (``images.docker_hub_secret``). A name becomes the name-only ARN
``arn:<partition>:secretsmanager:<region>:<account>:secret:<name>``, which the rule's
``CredentialArn`` pattern accepts; give the full ARN in the config to pin one secret version's ARN.
The cached repositories are created by ECR, not by CloudFormation, so they outlive the stack.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from constructs import Construct

from app_config.images import CACHE_UPSTREAMS, ImageSource, cache_prefix
from cdk_constructs.nag import acknowledge_wildcard_resources


@dataclass(frozen=True)
class ImageCacheProps:
    """Props of :class:`ImageCache`.

    Attributes:
        project_name: prefix of the cache repositories (``config.project_name``).
        docker_hub_secret: Secrets Manager secret name or ARN of the Docker Hub credential.
        node_roles: roles of every node that pulls images (system node group, Karpenter nodes).
    """

    project_name: str
    docker_hub_secret: str
    node_roles: tuple[iam.IRole, ...]


def registry_host(scope: Construct) -> str:
    """The private ECR registry host of ``scope``'s stack: ``<account>.dkr.ecr.<region>.<url suffix>``."""
    stack = cdk.Stack.of(scope)
    return f"{stack.account}.dkr.ecr.{stack.region}.{stack.url_suffix}"


class ImageCache(Construct):
    """The pull-through cache rules and the node roles' permission to fill them.

    Exposes ``rules`` (upstream name -> ``CfnPullThroughCacheRule``), ``policy`` (the node roles'
    import policy; charts depend on the construct so pods pull only once both exist) and
    ``source`` (the :class:`ImageSource` that maps references to the cache).
    """

    def __init__(self, scope: Construct, construct_id: str, props: ImageCacheProps) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.source = ImageSource(registry_host=registry_host(self), project_name=props.project_name)
        self.rules: dict[str, ecr.CfnPullThroughCacheRule] = {}
        for upstream in CACHE_UPSTREAMS:
            self.rules[upstream.name] = ecr.CfnPullThroughCacheRule(
                self,
                f"Rule-{upstream.name}",
                ecr_repository_prefix=cache_prefix(props.project_name, upstream),
                upstream_registry=upstream.upstream_registry,
                upstream_registry_url=upstream.upstream_url,
                credential_arn=self._credential_arn(props.docker_hub_secret) if upstream.needs_credential else None,
            )
        repositories = [
            stack.format_arn(service="ecr", resource="repository", resource_name=f"{cache_prefix(props.project_name, u)}/*")
            for u in CACHE_UPSTREAMS
        ]
        self.policy = iam.Policy(
            self,
            "ImportPolicy",
            statements=[
                iam.PolicyStatement(
                    sid="FillPullThroughCache",
                    actions=["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
                    resources=repositories,
                )
            ],
        )
        for role in props.node_roles:
            self.policy.attach_to_role(role)
        acknowledge_wildcard_resources(
            self.policy,
            "The cache repositories do not exist before the first pull (ECR creates them under the rule's "
            "prefix), so the statement names the prefixes <project>/<upstream>/*, nothing wider.",
        )

    def _credential_arn(self, secret: str) -> str:
        if secret.startswith("arn:"):
            return secret
        return cdk.Stack.of(self).format_arn(
            service="secretsmanager", resource="secret", resource_name=secret, arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
        )
