"""Synth-time guard for Helm charts from ``oci://`` registries on the kubectl v35 layer (case B12).

The kubectl v35 layer ships Helm 4. Before aws-cdk-lib 2.275.0 the CDK's kubectl handler pulled
an OCI chart and then also passed the ``oci://`` URL as ``--repo``, which Helm 4 treats as a
classic chart repository (it fetches an ``index.yaml``), so every OCI chart (Karpenter, the Kedify
OTel add-on) failed at deploy time (aws/aws-cdk#37143). This module turns that deploy-time failure
into a synth-time error naming the package and the minimum version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import metadata

from app_config.versions import MIN_AWS_CDK_LIB_FOR_OCI_WITH_HELM4, HelmChartPin

CDK_LIB_DISTRIBUTION = "aws-cdk-lib"
# First kubectl layer whose Helm is Helm 4 (aws-cdk.lambda-layer-kubectl-v35).
FIRST_HELM4_KUBECTL_LAYER = "1.35"


class HelmOciSupportError(RuntimeError):
    """The installed aws-cdk-lib cannot install OCI Helm charts with this kubectl layer."""


def _version_tuple(version: str) -> tuple[int, ...]:
    """``"2.275.0"`` -> ``(2, 275, 0)``; pre-release/local suffixes are ignored.

    Raises:
        ValueError: ``version`` has no leading numeric component.
    """
    parts = re.findall(r"\d+", version.split("+")[0].split("-")[0])
    if not parts:
        raise ValueError(f"cannot parse version {version!r}")
    numbers = [int(part) for part in parts[:3]]
    return tuple(numbers + [0] * (3 - len(numbers)))


def installed_cdk_lib_version() -> str:
    """Version of the installed ``aws-cdk-lib`` Python distribution (e.g. ``"2.275.0"``)."""
    return metadata.version(CDK_LIB_DISTRIBUTION)


def check_oci_helm_support(
    charts: Iterable[HelmChartPin],
    *,
    kubectl_layer_version: str,
    cdk_lib_version: str | None = None,
    minimum: str = MIN_AWS_CDK_LIB_FOR_OCI_WITH_HELM4,
) -> None:
    """Fail when an ``oci://`` chart would be installed through Helm 4 by a CDK handler that predates the fix.

    Args:
        charts: every Helm chart the app installs.
        kubectl_layer_version: Kubernetes minor version of the kubectl layer (``"1.35"``).
        cdk_lib_version: installed aws-cdk-lib version; read from the environment when omitted
            (tests inject an older string).
        minimum: first aws-cdk-lib with the handler fix (``versions.MIN_AWS_CDK_LIB_FOR_OCI_WITH_HELM4``).

    Raises:
        HelmOciSupportError: naming ``aws-cdk-lib``, the installed and minimum versions and the charts.
    """
    oci = [pin for pin in charts if pin.repository.startswith("oci://")]
    if not oci or _version_tuple(kubectl_layer_version) < _version_tuple(FIRST_HELM4_KUBECTL_LAYER):
        return
    installed = cdk_lib_version or installed_cdk_lib_version()
    if _version_tuple(installed) >= _version_tuple(minimum):
        return
    names = ", ".join(f"{pin.repository}/{pin.chart}:{pin.version}" for pin in oci)
    raise HelmOciSupportError(
        f"{CDK_LIB_DISTRIBUTION} {installed} cannot install Helm charts from oci:// repositories with "
        f"the kubectl v{kubectl_layer_version.split('.')[-1]} layer (Helm 4; aws/aws-cdk#37143). "
        f"Install {CDK_LIB_DISTRIBUTION}>={minimum} (requirements.txt). Affected charts: {names}"
    )
