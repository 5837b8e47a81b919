"""checkov (Kubernetes framework) on every rendered manifest (k8s_charts.render_all): zero
unacknowledged findings, and every acknowledgement (a ``checkov.io/skip<n>`` annotation,
k8s_charts.common.skip_annotations) carries a reason."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.charts.conftest import find
from tests.support.checkov import CheckovReport, run_checkov, unreasoned


def _write(rendered: dict, folder: Path) -> list[Path]:
    paths = []
    for n, (key, objects) in enumerate(rendered.items(), start=1):
        path = folder / f"{n:02d}-{key}.yaml"
        path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def manifest_report(rendered, tmp_path_factory) -> CheckovReport:
    return run_checkov(_write(rendered, tmp_path_factory.mktemp("manifests")), "kubernetes")


@pytest.mark.slow  # a checkov run
def test_no_unacknowledged_findings(manifest_report):
    assert manifest_report.passed > 0
    assert [str(f) for f in manifest_report.failed] == []


@pytest.mark.slow  # a checkov run
def test_every_skip_has_a_reason(manifest_report):
    assert manifest_report.skipped, "expected acknowledged findings (e.g. no CPU limit on vLLM)"
    assert [str(s) for s in unreasoned(manifest_report.skipped)] == []


@pytest.mark.slow  # a checkov run
def test_a_skip_without_a_reason_fails(rendered, tmp_path):
    """The guard can fail: vLLM's CPU-limit skip with its reason removed."""
    objects = copy.deepcopy(rendered["vllm"])
    annotations = find(objects, "Deployment", "vllm")["metadata"]["annotations"]
    key = next(k for k, v in annotations.items() if v.startswith("CKV_K8S_11="))
    annotations[key] = "CKV_K8S_11"
    report = run_checkov(_write({"vllm": objects}, tmp_path), "kubernetes")
    assert [s.check_id for s in unreasoned(report.skipped)] == ["CKV_K8S_11"]


@pytest.mark.slow  # a checkov run
def test_an_unacknowledged_finding_fails(rendered, tmp_path):
    """The guard can fail: the gateway without its security contexts (root, writable root filesystem)."""
    objects = copy.deepcopy(rendered["gateway"])
    pod = find(objects, "Deployment", "gateway")["spec"]["template"]["spec"]
    pod.pop("securityContext")
    pod["containers"][0].pop("securityContext")
    report = run_checkov(_write({"gateway": objects}, tmp_path), "kubernetes")
    assert {"CKV_K8S_22", "CKV_K8S_23"} <= {f.check_id for f in report.failed}


def test_skip_annotations_refuse_a_reason_checkov_would_cut():
    from k8s_charts.common import skip_annotations

    with pytest.raises(ValueError, match="without '='"):
        skip_annotations({"CKV_K8S_11": "limit=none"})
    assert skip_annotations({"CKV_K8S_15": "why", "CKV_K8S_11": "because"}) == {
        "checkov.io/skip1": "CKV_K8S_11=because", "checkov.io/skip2": "CKV_K8S_15=why",
    }
