"""syrupy snapshots of each stack's template, normalized so they change only with infrastructure.

Update after an intended change: ``.venv/bin/python -m pytest tests/stacks/test_snapshots.py --snapshot-update``
and review the JSON diff under ``tests/stacks/__snapshots__/``.
"""

from __future__ import annotations

import copy
import json

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from tests.conftest import STACK_SUFFIXES
from tests.support.cfn_template import HASH_PLACEHOLDER, normalize_template


@pytest.fixture
def snapshot_json(snapshot):
    """One JSON file per snapshot."""
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("suffix", STACK_SUFFIXES)
def test_stack_template_snapshot(templates, snapshot_json, suffix):
    assert normalize_template(templates[suffix]) == snapshot_json


def test_normalization_hides_asset_hashes_and_bootstrap_version(templates):
    edge = templates["Edge"]
    text = json.dumps(edge)
    assert '"BootstrapVersion"' in text  # the raw template has them...
    other = json.loads(text)
    # ...a different asset build (new hashes) and bootstrap version normalizes to the same.
    for resource in other["Resources"].values():
        code = resource.get("Properties", {}).get("Code")
        if isinstance(code, dict) and "S3Key" in code:
            code["S3Key"] = "f" * 64 + ".zip"
    other["Parameters"]["BootstrapVersion"]["Default"] = "/cdk-bootstrap/other/version"
    normalized = normalize_template(edge)
    assert normalize_template(other) == normalized
    assert "BootstrapVersion" not in json.dumps(normalized)
    assert HASH_PLACEHOLDER in json.dumps(normalized)


def test_normalization_keeps_infrastructure_changes(templates):
    edge = templates["Edge"]
    changed = copy.deepcopy(edge)
    for resource in changed["Resources"].values():
        if resource["Type"] == "AWS::ElasticLoadBalancingV2::TargetGroup":
            resource["Properties"]["HealthCheckPath"] = "/health"
    assert normalize_template(changed) != normalize_template(edge)
    assert normalize_template(edge) == normalize_template(normalize_template(edge))
