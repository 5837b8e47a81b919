"""`make manifests` (scripts/render_manifests.py) and the purity of the charts."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import yaml

from app_config import config_from_dict
from k8s_charts import DeployValues, chart_props, render_all, render_chart

_spec = importlib.util.spec_from_file_location(
    "render_manifests", Path(__file__).resolve().parents[2] / "scripts" / "render_manifests.py"
)
render_manifests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_manifests)


def test_render_script_writes_one_file_per_chart(tmp_path, capsys, rendered):
    assert render_manifests.main([str(tmp_path)]) == 0
    files = sorted(p.name for p in tmp_path.glob("*.yaml"))
    assert files == [
        "01-namespaces.yaml",
        "02-network-policies.yaml",
        "03-karpenter-nodepools.yaml",
        "04-otel-collector.yaml",
        "05-compile-cache.yaml",
        "06-vllm.yaml",
        "07-gateway.yaml",
        "08-scaled-object.yaml",
    ]
    for (key, objects), name in zip(rendered.items(), files):
        assert list(yaml.safe_load_all((tmp_path / name).read_text())) == objects, key
    assert "Rendered 32 objects from 8 charts" in capsys.readouterr().out


def test_render_script_takes_a_config_file(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("scaling:\n  max_replicas: 4\n")
    assert render_manifests.main([str(tmp_path / "out"), "-c", f"config_file={config}"]) == 0
    scaled = yaml.safe_load((tmp_path / "out" / "08-scaled-object.yaml").read_text())
    assert scaled["spec"]["maxReplicaCount"] == 4


def test_render_script_reports_a_bad_config(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("scaling:\n  max_replicas: 0\n")
    assert render_manifests.main([str(tmp_path / "out"), "-c", f"config_file={config}"]) == 2
    assert "scaling.max_replicas" in capsys.readouterr().err


def test_charts_are_pure_functions_of_props(monkeypatch):
    config = config_from_dict({})
    first = render_all(config)
    monkeypatch.setenv("AWS_REGION", "eu-north-1")
    monkeypatch.setenv("CDK_DEFAULT_REGION", "eu-north-1")
    monkeypatch.chdir("/")
    assert render_all(config) == first


def test_deploy_time_tokens_pass_through_verbatim():
    """Values may be CDK tokens at synth: charts copy them, never parse them."""
    token = "${Token[TOKEN.123]}"
    values = dataclasses.replace(
        DeployValues.placeholders(),
        model_uri=f"s3://{token}/models/m/",
        region=token,
        cluster_name=token,
        node_role_name=token,
        gateway_image_uri=token,
        target_group_arn=token,
        alb_security_group_id=token,
        vpc_id=token,
    )
    specs = chart_props(config_from_dict({}), values)
    text = yaml.safe_dump_all([o for key in ("karpenter_nodepools", "vllm", "gateway") for o in render_chart(specs[key])])
    assert text.count(token) >= 10
    assert f"s3://{token}/models/m/" in text
