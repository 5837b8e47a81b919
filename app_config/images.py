"""Where the cluster pulls each container image from: the one rule for every image reference.

Upstream references (``app_config.versions``, ``vllm.image``, the charts' own images) name public
registries. With ``images.pull_through_cache`` (the default) the cluster pulls them through ECR
pull-through cache rules in the deploy region instead (cdk_constructs/image_cache.py creates
them): pulls stay on the VPC's ECR and S3 endpoints, and Docker Hub's anonymous limit (pulls per
IP per hour, shared by every node behind one NAT gateway) cannot stop ten fresh GPU nodes.

A reference to any other registry (your own ECR repository, ghcr.io) is used as written.
ECR pull-through cache supports ghcr.io only with a GitHub token, so the KEDA and OTel add-on
images (ghcr.io, two system nodes) are pulled from ghcr.io directly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CacheUpstream:
    """One upstream registry served through an ECR pull-through cache rule.

    Attributes:
        name: short name, the last part of the cache's repository prefix (``<project>/<name>``).
        registry: how image references name the registry (``docker.io`` for Docker Hub).
        upstream_url: ``UpstreamRegistryUrl`` of ``AWS::ECR::PullThroughCacheRule``.
        upstream_registry: its ``UpstreamRegistry`` (the CloudFormation enum value).
        needs_credential: ECR requires a Secrets Manager credential for this upstream.
    """

    name: str
    registry: str
    upstream_url: str
    upstream_registry: str
    needs_credential: bool


# Upstream registry URLs as the ECR user guide lists them ("Creating a pull through cache rule").
DOCKER_HUB = CacheUpstream("docker-hub", "docker.io", "registry-1.docker.io", "docker-hub", True)
ECR_PUBLIC = CacheUpstream("ecr-public", "public.ecr.aws", "public.ecr.aws", "ecr-public", False)
KUBERNETES = CacheUpstream("k8s", "registry.k8s.io", "registry.k8s.io", "k8s", False)
CACHE_UPSTREAMS: tuple[CacheUpstream, ...] = (DOCKER_HUB, ECR_PUBLIC, KUBERNETES)


def split_reference(reference: str) -> tuple[str, str]:
    """``"vllm/vllm-openai:v1"`` -> ``("docker.io", "vllm/vllm-openai:v1")``: (registry, the rest).

    Follows the Docker reference rules: the first path part is a registry host only when it holds a
    ``.`` or ``:`` or is ``localhost``; otherwise the image is on Docker Hub, and a one-part name is
    under ``library/``.
    """
    first, _, rest = reference.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = "docker.io", reference
    if registry == "docker.io" and "/" not in path:
        path = f"library/{path}"
    return registry, path


def cache_prefix(project_name: str, upstream: CacheUpstream) -> str:
    """ECR repository prefix of ``upstream``'s cache rule (at most 30 characters by the API)."""
    return f"{project_name}/{upstream.name}"


@dataclass(frozen=True)
class ImageSource:
    """Maps upstream image references to what the cluster pulls.

    Attributes:
        registry_host: the private ECR registry of the deploy account and region
            (``<account>.dkr.ecr.<region>.amazonaws.com``, may hold CDK tokens), or None to pull
            from the upstream registries directly.
        project_name: the cache rules' prefix (``config.project_name``).
    """

    registry_host: str | None
    project_name: str

    def image(self, reference: str) -> str:
        """The reference the cluster pulls for ``reference`` (unchanged when it is not cached)."""
        if self.registry_host is None:
            return reference
        registry, rest = split_reference(reference)
        for upstream in CACHE_UPSTREAMS:
            if upstream.registry == registry:
                return f"{self.registry_host}/{cache_prefix(self.project_name, upstream)}/{rest}"
        return reference

    def repository(self, repository: str) -> str:
        """Same as :meth:`image` for a repository without tag (Helm values with separate tags)."""
        return self.image(repository)
