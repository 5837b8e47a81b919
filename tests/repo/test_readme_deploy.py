"""The README's deploy steps name the settings a first deploy needs, as the config spells them."""

from __future__ import annotations

import re
from pathlib import Path

from app_config import config_from_dict

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _deploy_section() -> str:
    match = re.search(r"^## Deploy\n(.*?)^## ", README, re.S | re.M)
    assert match, "README.md has no '## Deploy' section"
    return match.group(1)


def test_b10_deploy_steps_cover_admin_access_and_the_image_credential() -> None:
    section = _deploy_section()
    defaults = config_from_dict({})
    assert "cluster.admin_principal_arns" in section and "AmazonEKSClusterAdminPolicy" in section
    assert "images.docker_hub_secret" in section
    assert f"--name {defaults.images.docker_hub_secret}" in section  # the create-secret command
    assert "Unauthorized" in section  # what an empty admin list means
    # Every config key the example YAML sets exists (a typo would fail synth for the reader).
    example = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert example
    import yaml

    config_from_dict({k: v for k, v in yaml.safe_load(example.group(1)).items()})


def test_b10_deploy_steps_say_what_the_first_deploy_waits_on() -> None:
    section = _deploy_section()
    for phase in ("control plane", "node group", "helm --wait", "Karpenter", "startup"):
        assert phase in section, phase
