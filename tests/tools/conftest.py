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
    """The default ScaledObject (DESIGN section 2 values) in the KEDA CRD shape."""
    from app_config.loader import config_from_dict
    from qvllm.scaling import scaled_object_from_config

    return scaled_object_from_config(config_from_dict({}).scaling)


def load_json(name: str):
    """Read a recorded JSON fixture from tests/tools/data/."""
    return json.loads((DATA / name).read_text())
