"""Snapshots of each chart's YAML (syrupy): review diffs with `pytest --snapshot-update`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.charts.test_schemas import CHART_KEYS

_spec = importlib.util.spec_from_file_location(
    "render_manifests", Path(__file__).resolve().parents[2] / "scripts" / "render_manifests.py"
)
render_manifests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_manifests)


@pytest.mark.parametrize("chart", CHART_KEYS)
def test_chart_yaml_snapshot(rendered, chart, snapshot):
    assert render_manifests.to_yaml(rendered[chart]) == snapshot
