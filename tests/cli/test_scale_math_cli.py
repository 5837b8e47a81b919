"""`qvllm scale-math`: prints the computation, reads rendered ScaledObject YAML, names bad input."""

from __future__ import annotations

import copy

import yaml
from click.testing import CliRunner

from qvllm.cli import main


def test_prints_steps_and_result():
    result = CliRunner().invoke(main, ["scale-math", "-v", "running=0", "-v", "waiting=3"])
    assert result.exit_code == 0, result.output
    assert "= 30" in result.output and "ceil(30 / 25) = 2" in result.output
    assert result.output.strip().endswith("desired replicas: 2 (current 1)")


def test_reads_multi_document_yaml_and_prints_timeline(tmp_path, default_scaled_object):
    """Case B05 timeline from a rendered manifest file (other documents before it are skipped)."""
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}},
                                        default_scaled_object]))
    result = CliRunner().invoke(main, ["scale-math", "--scaled-object", str(path), "-v", "running=30",
                                       "-v", "waiting=30", "--current", "10", "--timeline"])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines() if line.strip().startswith("t=")]
    assert [parts[-1] for parts in lines] == ["10", "5", "2", "1"]
    assert "300s" in result.output and "360s" in result.output and "420s" in result.output


def test_bad_formula_is_a_clear_error(tmp_path, default_scaled_object):
    default_scaled_object = copy.deepcopy(default_scaled_object)  # the fixture is shared
    default_scaled_object["spec"]["advanced"]["scalingModifiers"]["formula"] = "sqrt(running)"
    path = tmp_path / "so.yaml"
    path.write_text(yaml.safe_dump(default_scaled_object))
    result = CliRunner().invoke(main, ["scale-math", "--scaled-object", str(path), "-v", "running=1"])
    assert result.exit_code == 1 and "'sqrt' at column 1: only min(), max()" in result.output


def test_bad_value_names_the_option():
    result = CliRunner().invoke(main, ["scale-math", "-v", "running"])
    assert result.exit_code == 2 and "--value" in result.output


def test_current_zero_with_min_one_runs_min_replicas():
    """Default config (minReplicaCount 1): an idle target at 0 replicas is brought back to 1, not left at 0."""
    result = CliRunner().invoke(main, ["scale-math", "--current", "0"])
    assert result.exit_code == 0, result.output
    assert "minReplicaCount 1 >= 1" in result.output
    assert result.output.strip().endswith("desired replicas: 1 (current 0)")


def test_current_zero_active_scales_to_min_first(tmp_path, default_scaled_object):
    obj = copy.deepcopy(default_scaled_object)
    obj["spec"]["minReplicaCount"] = 3
    path = tmp_path / "so.yaml"
    path.write_text(yaml.safe_dump(obj))
    result = CliRunner().invoke(main, ["scale-math", "--scaled-object", str(path), "--current", "0",
                                       "-v", "running=6", "-v", "waiting=0"])
    assert result.exit_code == 0, result.output
    assert "KEDA activates to max(minReplicaCount 3, 1) = 3" in result.output
    assert result.output.strip().endswith("desired replicas: 3 (current 0)")
