"""Fixtures of the cluster-stack tests: the default app, synthesized once per session (nag off;
the suite-wide harness owns the nag + cfn-lint run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["JSII_NODE"] = str(Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "node")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


@pytest.fixture(scope="session")
def cluster_app(tmp_path_factory: pytest.TempPathFactory):
    """(AppStacks, cluster template dict) of the default config."""
    from app_config import config_from_dict
    from stacks.app_builder import build_app
    from tests.support.cdk_app import new_app

    app = new_app(tmp_path_factory.mktemp("cluster-cdk.out"))
    stacks = build_app(app, config_from_dict({}), nag=False)
    assembly = app.synth()
    template = assembly.get_stack_by_name(stacks.cluster.stack_name).template
    return stacks, template


@pytest.fixture(scope="session")
def template(cluster_app):
    """``aws_cdk.assertions.Template`` of the cluster stack."""
    from aws_cdk.assertions import Template

    return Template.from_json(cluster_app[1])


@pytest.fixture(scope="session")
def resources(cluster_app) -> dict:
    return cluster_app[1]["Resources"]
