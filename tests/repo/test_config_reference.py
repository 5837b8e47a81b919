"""docs/CONFIG.md is generated from app_config.model.AppConfig and must be up to date."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gen_config_reference.py"


def test_config_reference_is_up_to_date():
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_reference_lists_every_leaf_setting_with_its_default():
    sys.path.insert(0, str(REPO / "scripts"))
    from gen_config_reference import render

    text = render()
    assert "| `teardown.wait_timeout_seconds` | `int` | `900` |" in text
    assert "| `model_store.auto_delete_objects` | `bool` | `false` | empty the bucket on delete" in text
    assert "| `scaling.max_replicas` |" in text and "| `karpenter.gpu.capacity_types` |" in text


def test_check_fails_when_the_model_changes(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "scripts"))
    import gen_config_reference as gen

    stale = tmp_path / "CONFIG.md"
    stale.write_text(gen.render().replace("`900`", "`600`"))
    monkeypatch.setattr(gen, "OUTPUT", stale)
    monkeypatch.setattr(gen, "REPO", tmp_path)
    assert gen.main(["--check"]) == 1
