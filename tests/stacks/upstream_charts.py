"""Where the upstream projects publish the Helm charts we install: facts read from their release
tooling at the pinned versions, each with its source.

These are written down here on purpose, not imported from ``app_config.versions``: the deploy
rehearsal publishes exactly these paths, names and version strings on its loopback registries,
so a pin that disagrees with what upstream serves fails the rehearsal as it would fail a deploy.

``default_values`` holds the few chart defaults the tests read through Helm's real values merge
(so an override of ours is checked against the chart's own default), with the source of each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class UpstreamChart:
    """One chart as its upstream publishes it.

    Attributes:
        location: ``oci://HOST/PATH/NAME`` (the full OCI reference of the chart) or the
            ``https://`` chart repository URL.
        chart: chart name.
        version: the version string exactly as published (an OCI tag, or the index version).
        source: where these facts were read (repository, path, tag or commit).
        default_values: chart defaults the tests rely on (same source unless noted).
    """

    location: str
    chart: str
    version: str
    source: str
    default_values: dict[str, Any] = field(default_factory=dict)

    @property
    def is_oci(self) -> bool:
        return self.location.startswith("oci://")

    @property
    def host(self) -> str:
        return self.location.split("://", 1)[1].split("/", 1)[0]


KARPENTER_RELEASE_SOURCE = (
    "aws/karpenter-provider-aws v1.14.1 (bde00654c, 2026-08-20): hack/release/release.sh calls "
    "release with version ${git_tag#v} = 1.14.1; hack/release/common.sh publishHelmChart runs "
    "`helm package <chart> --version 1.14.1` and `helm push <chart>-1.14.1.tgz oci://public.ecr.aws/karpenter/`"
)

UPSTREAM_CHARTS: tuple[UpstreamChart, ...] = (
    UpstreamChart(
        location="oci://public.ecr.aws/karpenter/karpenter-crd",
        chart="karpenter-crd",
        version="1.14.1",
        source=KARPENTER_RELEASE_SOURCE,
    ),
    UpstreamChart(
        location="oci://public.ecr.aws/karpenter/karpenter",
        chart="karpenter",
        version="1.14.1",
        source=KARPENTER_RELEASE_SOURCE,
        default_values={
            # charts/karpenter/values.yaml as released: build() in hack/release/common.sh sets the
            # image repository/tag/digest of the pushed controller (main 1d927085d after v1.14.1).
            "controller": {
                "image": {
                    "repository": "public.ecr.aws/karpenter/controller",
                    "tag": "1.14.1",
                    "digest": "sha256:723130949e4cab989461ff07d1be4cd781d63515432494641b33c235f300ae23",
                },
                "resources": {},
            },
            "replicas": 2,
        },
    ),
    UpstreamChart(
        location="oci://ghcr.io/kedify/charts/otel-add-on",
        chart="otel-add-on",
        # The tag carries the "v": .github/workflows/release-chart.yaml pushes tag
        # `yq .version helmchart/otel-add-on/Chart.yaml`, and Chart.yaml says `version: v0.1.4`
        # (kedify/otel-add-on 4fab37a, 2026-06-12, "[post-release] Updating Chart.yaml: v0.1.3 -> v0.1.4").
        version="v0.1.4",
        source="kedify/otel-add-on f3acd93 (2026-06-16): .github/workflows/release-chart.yaml "
        "(appany/helm-oci-chart-releaser, registry ghcr.io, repository kedify/charts, name otel-add-on)",
        default_values={"resources": {"limits": {"cpu": "500m", "memory": "256Mi"},
                                      "requests": {"cpu": "500m", "memory": "128Mi"}}},
    ),
    UpstreamChart(
        location="https://kedacore.github.io/charts",
        chart="keda",
        version="2.20.2",
        source="kedacore/charts v2.20.2 (cbb9bb8, 2026-07-31): keda/Chart.yaml version 2.20.2; "
        "README `helm repo add kedacore https://kedacore.github.io/charts`",
    ),
    UpstreamChart(
        # Kedify publishes its KEDA build to its GitHub Pages chart repository, not to ghcr.io:
        # .github/workflows/gh-release-chart.yml (stefanprodan/helm-gh-pages); the OCI workflow
        # gh-release-oci-chart.yml releases only kedify-proxy and kedify-observability.
        location="https://kedify.github.io/charts",
        chart="keda",
        version="v2.20.1-6",
        source="kedify/charts 4a5d125 (2026-07-21, 'keda: release v2.20.1-6'): keda/Chart.yaml "
        "version v2.20.1-6; keda/README.md `helm repo add kedify https://kedify.github.io/charts`",
    ),
    UpstreamChart(
        location="https://aws.github.io/eks-charts",
        chart="aws-load-balancer-controller",
        version="3.5.0",
        source="kubernetes-sigs/aws-load-balancer-controller v3.5.0 (11eb202c9, 2026-08-03): "
        "helm/aws-load-balancer-controller/Chart.yaml version 3.5.0; README `helm repo add eks "
        "https://aws.github.io/eks-charts`",
        default_values={
            # helm/aws-load-balancer-controller/values.yaml at v3.5.0
            "replicaCount": 2,
            "image": {"repository": "public.ecr.aws/eks/aws-load-balancer-controller", "tag": "v3.5.0"},
            "resources": {},
            "enableServiceMutatorWebhook": True,
            "serviceMutatorWebhookConfig": {"failurePolicy": "Fail"},
        },
    ),
    UpstreamChart(
        location="https://kubernetes-sigs.github.io/metrics-server/",
        chart="metrics-server",
        version="3.13.0",
        source="kubernetes-sigs/metrics-server metrics-server-helm-chart-3.13.0 (1a64100c, 2025-07-22): "
        "charts/metrics-server/Chart.yaml version 3.13.0; README `helm repo add metrics-server "
        "https://kubernetes-sigs.github.io/metrics-server/`",
        default_values={
            "image": {"repository": "registry.k8s.io/metrics-server/metrics-server"},
            "replicas": 1,
            "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}},
        },
    ),
)
