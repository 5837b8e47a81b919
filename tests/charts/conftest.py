"""Fixtures of the chart tests: the default config, its rendered manifests, the instance table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
_node = REPO_ROOT / "node_modules" / ".bin" / "node"
if _node.exists():
    os.environ.setdefault("JSII_NODE", str(_node))
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


@pytest.fixture(scope="session")
def default_config():
    from app_config import config_from_dict

    return config_from_dict({})


@pytest.fixture(scope="session")
def rendered(default_config) -> dict[str, list[dict[str, Any]]]:
    """Every chart rendered with the default config and placeholder deploy-time values."""
    from k8s_charts import render_all

    return render_all(default_config)


@pytest.fixture(scope="session")
def all_objects(rendered) -> list[dict[str, Any]]:
    return [obj for objects in rendered.values() for obj in objects]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of ``kind`` (and ``name``); fails the test if there is not exactly one."""
    hits = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected one {kind}/{name}, found {len(hits)}"
    return hits[0]


@pytest.fixture(scope="session")
def gpu_instances() -> dict[str, dict[str, Any]]:
    from app_config.gpu_instances import DATA_FILE

    return yaml.safe_load(DATA_FILE.read_text())["instances"]
