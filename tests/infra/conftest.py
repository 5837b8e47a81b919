"""Whole-app harness: the default app, synthesized once per session with cdk-nag on.

Builds on the suite-wide ``default_app`` fixture (tests/conftest.py: ``build_app`` with the
default config, ``app.synth()``, which raises on any unacknowledged cdk-nag finding).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk.assertions import Template

STACK_SUFFIXES = ("Network", "ModelStore", "Waf", "Edge", "Cluster")


@pytest.fixture(scope="session")
def stack_names(default_app) -> dict[str, str]:
    """Stack suffix ("Edge") -> stack name ("Qvllm-Edge") of the default app."""
    names: dict[str, str] = {}
    for name in default_app.templates:
        suffix = name.rsplit("-", 1)[-1]
        names[suffix] = name
    return names


@pytest.fixture(scope="session")
def templates(default_app, stack_names) -> dict[str, dict]:
    """Stack suffix -> synthesized CloudFormation template (dict)."""
    return {suffix: default_app.templates[name] for suffix, name in stack_names.items()}


@pytest.fixture(scope="session")
def assertions(templates) -> dict[str, Template]:
    """Stack suffix -> ``aws_cdk.assertions.Template``."""
    return {suffix: Template.from_json(tpl) for suffix, tpl in templates.items()}


@pytest.fixture(scope="session")
def assembly_dir(default_app) -> Path:
    """The cloud assembly directory the session synth wrote (templates, metadata, reports)."""
    return Path(default_app.assembly.directory)


@pytest.fixture(scope="session")
def artifacts(default_app, stack_names) -> dict[str, object]:
    """Stack suffix -> ``CloudFormationStackArtifact``."""
    by_name = {art.stack_name: art for art in default_app.assembly.stacks}
    return {suffix: by_name[name] for suffix, name in stack_names.items()}

