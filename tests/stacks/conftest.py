"""Fixtures of the stack tests: the deploy rehearsal of the default app, run once per session."""

from __future__ import annotations

import pytest

from tests.stacks.upstream_charts import UPSTREAM_CHARTS, UpstreamChart
from tests.support.cfn_graph import AppGraph
from tests.support.deploy_rehearsal import RehearsalResult, rehearse


@pytest.fixture(scope="session")
def rehearsal(default_app, tmp_path_factory) -> RehearsalResult:
    """Create, Update, Delete of every chart and manifest of the default Cluster template (real handler)."""
    cluster = default_app.stacks.cluster
    return rehearse(
        default_app.templates[cluster.stack_name],
        region=cluster.region,
        workdir=tmp_path_factory.mktemp("rehearsal"),
        charts=UPSTREAM_CHARTS,
        graph=app_graph(default_app),
        stack=cluster.stack_name,
    )


def app_graph(default_app) -> AppGraph:
    """CloudFormation's dependency graph of the default app (tests/support/cfn_graph.py)."""
    return AppGraph.from_assembly(default_app.assembly)


def fact_for(props: dict) -> UpstreamChart:
    """The upstream chart a HelmChart resource installs, matched by chart name and location."""
    repo = props.get("Repository", "")
    for fact in UPSTREAM_CHARTS:
        if fact.is_oci and repo.startswith("oci://") and fact.chart == props.get("Chart"):
            return fact
        if not fact.is_oci and repo == fact.location and fact.chart == props.get("Chart"):
            return fact
    raise AssertionError(f"no upstream fact for chart {props.get('Chart')!r} from {repo!r}")


def release_values(rehearsal: RehearsalResult, release: str) -> dict:
    """The values Helm merged for ``release`` in the rehearsal's Create."""
    from tests.support.deploy_rehearsal import merged_values

    (lid,) = [lid for lid, p in rehearsal.helm_charts().items() if p["Release"] == release]
    return merged_values(rehearsal.create_of(lid))


@pytest.fixture(scope="session")
def cluster_template(default_app) -> dict:
    """The default app's Cluster stack template (dict)."""
    return default_app.templates[default_app.stacks.cluster.stack_name]
