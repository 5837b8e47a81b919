"""Fixtures of the cluster-stack tests, on the suite-wide default app (tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def cluster_app(default_app):
    """(AppStacks, cluster template dict) of the default config, from the suite's one synth."""
    return default_app.stacks, default_app.templates[default_app.stacks.cluster.stack_name]


@pytest.fixture(scope="session")
def template(cluster_app):
    """``aws_cdk.assertions.Template`` of the cluster stack."""
    from aws_cdk.assertions import Template

    return Template.from_json(cluster_app[1])


@pytest.fixture(scope="session")
def resources(cluster_app) -> dict:
    return cluster_app[1]["Resources"]
