"""`qvllm local up` with a model it cannot use: one line before anything starts, and after a
start that failed half-way, nothing left that `local status` would show as ours."""

from __future__ import annotations

import pytest

from qvllm.local.stack import LocalStackError, check_model_option
from tests.support.local_stack import cli


@pytest.mark.parametrize("model", ["tiny", "smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct"])
def test_known_models_and_repo_ids_pass(model):
    check_model_option(model)


@pytest.mark.parametrize(
    ("model", "message"),
    [("/nonexistent/model-dir", "no such model folder"), ("./absent", "no such model folder"),
     ("justaname", "a Hugging Face repo id like 'org/name'"), ("a/b/c", "a Hugging Face repo id like 'org/name'")],
)
def test_a_model_that_is_neither_folder_nor_repo_id_is_named(model, message):
    with pytest.raises(LocalStackError, match=message):
        check_model_option(model)


def test_local_up_with_a_missing_folder_fails_before_anything_starts(tmp_path):
    run = tmp_path / "run"
    result = cli("local", "up", "--run-dir", str(run), "--model", str(tmp_path / "absent"), timeout=60)
    assert result.returncode != 0
    assert "no such model folder" in result.stderr and "Traceback" not in result.stderr
    assert not (run / "state.json").exists()


@pytest.mark.engine  # the engine venv's preflight runs before S3 starts
def test_a_start_that_failed_half_way_leaves_no_running_stack(tmp_path):
    run, empty = tmp_path / "run", tmp_path / "empty-model"
    empty.mkdir()
    result = cli("local", "up", "--run-dir", str(run), "--model", str(empty), timeout=300)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    status = cli("local", "status", "--run-dir", str(run), timeout=60)
    assert "no local stack running" in status.stdout, status.stdout
