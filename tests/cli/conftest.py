"""Fixtures of the operator-tools tests (qvllm/): recorded data and the default ScaledObject."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder of recorded fixtures (metrics pages, Kubernetes API JSON)."""
    return DATA


@pytest.fixture(scope="session")
def default_scaled_object() -> dict:
    """The default ScaledObject, as the chart renders it (the pure builder, no cdk8s)."""
    from app_config.loader import config_from_dict
    from app_config.scaled_object import ScaledObjectProps, scaled_object_manifest

    manifest, _ = scaled_object_manifest(ScaledObjectProps(scaling=config_from_dict({}).scaling))
    return manifest


@pytest.fixture(scope="session")
def hpa_sync_period_seconds() -> int:
    """The HPA sync period of the default config (cluster.hpa_sync_period_seconds)."""
    from app_config.loader import config_from_dict

    return config_from_dict({}).cluster.hpa_sync_period_seconds


def load_json(name: str):
    """Read a recorded JSON fixture from tests/cli/data/."""
    return json.loads((DATA / name).read_text())
