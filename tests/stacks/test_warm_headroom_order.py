"""The warm headroom's manifest in an app with ``scaling.warm_gpu_nodes: 1``, on the app's real
dependency graph (tests/support/cfn_graph.py): created after its namespace and the GPU NodePool,
deleted before them, before Karpenter and before the teardown cleanup (its nodes are Karpenter's)."""

from __future__ import annotations

import json

import pytest

from app_config import config_from_dict
from app_config.constants import WARM_HEADROOM_NAME
from tests.support.cdk_app import resource_id
from tests.support.cfn_graph import AppGraph


@pytest.fixture(scope="module")
def headroom_app(tmp_path_factory):
    from stacks.app_builder import build_app
    from tests.support.cdk_app import new_app

    app = new_app(tmp_path_factory.mktemp("headroom"))
    stacks = build_app(app, config_from_dict({"scaling": {"warm_gpu_nodes": 1}}), nag=True)
    return stacks, AppGraph.from_assembly(app.synth())


def test_headroom_manifest_holds_the_priority_class_and_the_placeholders(headroom_app):
    stacks, graph = headroom_app
    manifest = resource_id(stacks.cluster.workloads.warm_headroom)
    text = json.dumps(graph.resources[manifest]["Properties"]["Manifest"])
    for kind in ("PriorityClass", "Deployment"):
        assert f'\\"kind\\":\\"{kind}\\"' in text
    assert f'\\"name\\":\\"{WARM_HEADROOM_NAME}\\"' in text


def test_headroom_goes_after_its_namespace_and_nodepool_and_before_karpenter(headroom_app):
    stacks, graph = headroom_app
    cluster = stacks.cluster
    manifest = resource_id(cluster.workloads.warm_headroom)
    needed = [
        resource_id(cluster.workloads.namespaces),
        resource_id(cluster.workloads.nodepools),
        resource_id(cluster.karpenter.chart),  # Karpenter replaces the headroom's nodes
        resource_id(cluster.cleanup.resource),
        *(resource_id(controller) for controller in cluster.controllers),
    ]
    missing = [str(rid) for rid in needed if not graph.depends_on(manifest, rid)]
    assert missing == []


def test_default_app_has_no_headroom(default_app):
    assert default_app.stacks.cluster.workloads.warm_headroom is None
    assert WARM_HEADROOM_NAME not in json.dumps(default_app.templates[default_app.stacks.cluster.stack_name])
