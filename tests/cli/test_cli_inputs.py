"""Bad input to `scale-math` and `qr`: one clear error naming the option, a non-zero exit, nothing
written, no traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from qvllm.cli import main


def _run(*args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["-v", "waiting=-3"], "Invalid value for --value: 'waiting=-3': a trigger value is a count of requests, 0 or more"),
        (["-v", "running=nan"], "'running=nan': a trigger value is a count of requests"),
        (["-v", "running=inf"], "'running=inf': a trigger value is a count of requests"),
        (["-v", "waitng=3"], "'waitng=3': no trigger named 'waitng' (triggers: running, waiting"),
    ],
    ids=["negative", "nan", "infinite", "misspelt"],
)
def test_scale_math_refuses_impossible_trigger_values(values, message):
    result = _run("scale-math", *values)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "desired replicas" not in result.output


def test_scale_math_unset_trigger_reads_zero():
    only_waiting = _run("scale-math", "-v", "waiting=3")
    explicit = _run("scale-math", "-v", "waiting=3", "-v", "running=0", "-v", "held=0")
    assert only_waiting.exit_code == 0 and "running=0" in only_waiting.output
    assert "no value for running, held: 0" in only_waiting.output
    assert only_waiting.output.splitlines()[-1] == explicit.output.splitlines()[-1] == "desired replicas: 2 (current 1)"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.yaml", "kind: ScaledObject\n  spec: [\n", "bad.yaml is not valid YAML or JSON (line 2: mapping values are not allowed here)"),
        ("bad.json", '{"kind": "ScaledObject", ', "bad.json is not valid YAML or JSON (Expecting"),
        ("none.yaml", "kind: Deployment\n", "none.yaml holds no document with kind: ScaledObject"),
    ],
    ids=["yaml", "json", "no-scaledobject"],
)
def test_scale_math_malformed_scaled_object_file_is_a_clear_error(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    result = _run("scale-math", "--scaled-object", str(path))
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "--scaled-object" in errors[0] and message in errors[0], result.output
    assert "Traceback" not in result.output


def test_qr_png_does_not_create_folders(tmp_path):
    target = tmp_path / "no-such-folder" / "qr.png"
    result = _run("qr", "http://192.0.2.2:8000/", "--png", str(target))
    assert result.exit_code == 2, result.output
    assert f"Invalid value for --png: folder {target.parent} does not exist (create it first)" in result.output
    assert not target.parent.exists()
    assert "▀" not in result.output  # nothing printed as if it had worked
