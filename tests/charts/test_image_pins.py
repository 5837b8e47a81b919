"""Images pinned by digest: app_config.versions.ImagePin, the rendered references, and checkov's
view of them (CKV_K8S_43 "image should use digest").

The digest below is test data (64 zeros), never a recorded pin: app_config/versions.py takes a
digest only from a registry's answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app_config import config_from_dict, versions
from app_config.images import ImageSource
from app_config.versions import ImagePin, is_digest_pinned
from k8s_charts import ChartSpec, render_all, render_chart
from k8s_charts.otel_collector import OtelCollectorChart, OtelCollectorProps
from tests.charts.conftest import find
from tests.support.checkov import run_checkov

DIGEST = "sha256:" + "0" * 64


def _container(objects, name: str) -> dict:
    return find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def _skips(objects, name: str) -> set[str]:
    annotations = find(objects, "Deployment", name)["metadata"].get("annotations") or {}
    return {v.split("=", 1)[0] for k, v in annotations.items() if k.startswith("checkov.io/skip")}


def test_pin_reference_keeps_the_tag_and_adds_the_digest():
    pin = ImagePin("vllm/vllm-openai", "v0.32.0", DIGEST, "2026-12-04")
    assert pin.reference == f"vllm/vllm-openai:v0.32.0@{DIGEST}" and is_digest_pinned(pin.reference)
    assert ImagePin("vllm/vllm-openai", "v0.32.0").reference == "vllm/vllm-openai:v0.32.0"
    assert not is_digest_pinned("vllm/vllm-openai:v0.32.0")


@pytest.mark.parametrize(
    ("digest", "resolved", "message"),
    [
        ("sha256:abc", "2026-12-04", "is not sha256:<64 hex>"),
        ("sha256:" + "A" * 64, "2026-12-04", "is not sha256:<64 hex>"),  # registries write lower case
        (DIGEST, None, "go together"),
        (None, "2026-12-04", "go together"),
    ],
)
def test_pin_refuses_a_malformed_or_undated_digest(digest, resolved, message):
    with pytest.raises(ValueError, match=message):
        ImagePin("otel/opentelemetry-collector-contrib", "0.159.0", digest, resolved)


def test_every_pin_is_what_the_charts_render(all_objects):
    """The pins are the one owner of the images we run (not a second copy in a chart); by default
    the cluster pulls them through the ECR pull-through cache, under its prefix."""
    assert _container(all_objects, "vllm")["image"].endswith("/" + versions.VLLM.reference)
    assert _container(all_objects, "otel-collector")["image"].endswith("/" + versions.OTEL_COLLECTOR.reference)
    assert {p.reference for p in versions.IMAGE_PINS} == {
        versions.VLLM_IMAGE, versions.OTEL_COLLECTOR_IMAGE, versions.PAUSE_IMAGE,
    }


def test_an_unresolved_pin_is_acknowledged_and_a_resolved_one_is_not(all_objects):
    for name, pin in (("vllm", versions.VLLM), ("otel-collector", versions.OTEL_COLLECTOR)):
        assert ("CKV_K8S_43" in _skips(all_objects, name)) == (pin.digest is None), name
    pinned = render_all(config_from_dict({"vllm": {"image": f"vllm/vllm-openai:v0.32.0@{DIGEST}"}}))["vllm"]
    assert _container(pinned, "vllm")["image"].endswith(f"/vllm/vllm-openai:v0.32.0@{DIGEST}")
    assert "CKV_K8S_43" not in _skips(pinned, "vllm")
    collector = render_chart(ChartSpec(OtelCollectorChart, OtelCollectorProps(image=f"otel/opentelemetry-collector-contrib:0.159.0@{DIGEST}")))
    assert "CKV_K8S_43" not in _skips(collector, "otel-collector")


def test_the_pull_through_cache_keeps_the_digest():
    source = ImageSource("123456789012.dkr.ecr.us-west-2.amazonaws.com", "qvllm")
    assert source.image(f"vllm/vllm-openai:v0.32.0@{DIGEST}").endswith(f"/vllm/vllm-openai:v0.32.0@{DIGEST}")


@pytest.mark.slow  # a checkov run
def test_checkov_passes_a_digest_pinned_vllm(tmp_path: Path):
    """With a digest and no CKV_K8S_43 skip, checkov's own check passes the Deployment (scanned
    with the NetworkPolicies, which its graph check CKV2_K8S_6 looks for)."""
    rendered = render_all(config_from_dict({"vllm": {"image": f"vllm/vllm-openai:v0.32.0@{DIGEST}"}}))
    objects = rendered["network_policies"] + rendered["vllm"]
    path = tmp_path / "vllm.yaml"
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    report = run_checkov([path], "kubernetes")
    assert report.failed == () and "CKV_K8S_43" not in {s.check_id for s in report.skipped}
