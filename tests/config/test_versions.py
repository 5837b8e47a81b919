"""Pinned chart references (app_config/versions.py) in the form the CDK's kubectl handler needs."""

from __future__ import annotations

import pytest

from app_config import versions


@pytest.mark.parametrize(
    "chart, registry_path", [("karpenter-crd", "oci://public.ecr.aws/karpenter"), ("otel-add-on", "oci://ghcr.io/kedify/charts")]
)
def test_b10_an_oci_pin_must_be_the_full_chart_reference(chart: str, registry_path: str) -> None:
    """The old pins (registry path in ``repository``, name in ``chart``) are refused at import.

    (``oci://public.ecr.aws/karpenter`` for the chart ``karpenter`` cannot be told apart from a full
    reference; the deploy rehearsal catches that one against the upstream registry layout.)
    """
    with pytest.raises(ValueError, match=rf"'{chart}'.*must be the full chart reference ending in '/{chart}'"):
        versions.HelmChartPin(chart, registry_path, "1.14.1")


def test_b10_https_pins_keep_chart_and_repository_apart() -> None:
    pin = versions.HelmChartPin("keda", "https://kedacore.github.io/charts", "2.20.2")
    assert pin.chart_options() == {"chart": "keda", "repository": "https://kedacore.github.io/charts", "version": "2.20.2"}
