"""The README tells the truth about versions and set-up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app_config import versions

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text()


def _architecture_section() -> str:
    match = re.search(r"^## Architecture\n(.*?)^## ", README, re.S | re.M)
    assert match, "README.md has no '## Architecture' section"
    return match.group(1)


@pytest.mark.parametrize(
    "name, version",
    [
        ("Kubernetes", versions.KUBERNETES_VERSION),
        ("karpenter", versions.KARPENTER.version),
        ("karpenter-crd", versions.KARPENTER_CRD.version),
        ("kedacore/keda", versions.KEDA.version),
        ("Kedify's build", versions.KEDIFY_KEDA.version),
        ("otel-add-on", versions.OTEL_ADDON.version),
        ("AWS Load Balancer Controller", versions.AWS_LOAD_BALANCER_CONTROLLER.version),
        ("AWS Load Balancer Controller", versions.AWS_LOAD_BALANCER_CONTROLLER_IMAGE_TAG),
        ("metrics-server", versions.METRICS_SERVER.version),
        ("OpenTelemetry collector", versions.OTEL_COLLECTOR_IMAGE.rsplit(":", 1)[1]),
        ("vLLM", versions.VLLM_IMAGE.rsplit(":", 1)[1]),
    ],
)
def test_architecture_table_names_each_addon_with_its_pinned_version(name: str, version: str) -> None:
    row = next((line for line in _architecture_section().splitlines() if name in line), None)
    assert row is not None, f"README architecture section does not mention {name}"
    assert re.search(rf"(?<![\w.]){re.escape(version)}(?![\w.])", row), (
        f"README row for {name} does not show the pinned version {version}: {row}"
    )


def test_readme_gives_the_two_setup_commands_and_ci_runs_the_test_one() -> None:
    setup = re.search(r"^## Set up\n(.*?)^## ", README, re.S | re.M)
    assert setup, "README.md has no '## Set up' section"
    commands = re.findall(r"^(make \w+)", setup.group(1), re.M)
    assert commands == ["make synth", "make test"]
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M), ".ci/run must call README's test command"
