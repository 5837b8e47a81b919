"""checkov (CloudFormation framework) on every synthesized template: zero unacknowledged findings,
and every acknowledgement (``Metadata.checkov.skip``, cdk_constructs/checkov.py) carries a reason.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.support.checkov import CheckovReport, run_checkov, unreasoned


def _templates(default_app) -> list[Path]:
    outdir = Path(default_app.assembly.directory)
    paths = sorted(outdir.glob("*.template.json"))
    assert {p.name.removesuffix(".template.json") for p in paths} == set(default_app.templates)
    return paths


@pytest.fixture(scope="module")
def template_report(default_app) -> CheckovReport:
    return run_checkov(_templates(default_app), "cloudformation")


@pytest.mark.slow  # a checkov run (every template)
def test_no_unacknowledged_findings(template_report):
    assert template_report.passed > 0
    assert [str(f) for f in template_report.failed] == []


@pytest.mark.slow  # a checkov run (every template)
def test_every_skip_has_a_reason(template_report):
    assert template_report.skipped, "expected acknowledged findings (e.g. the CDK's handler Lambdas)"
    assert [str(s) for s in unreasoned(template_report.skipped)] == []


@pytest.mark.parametrize("comment", [None, "not needed"], ids=["no-comment", "two-words"])
@pytest.mark.slow  # a checkov run (every template)
def test_a_skip_without_a_reason_fails(default_app, tmp_path, comment):
    """The guard can fail: the Waf template's web ACL with a Log4j-check skip lacking a real reason."""
    template = copy.deepcopy(default_app.templates[default_app.stacks.waf.stack_name])
    acl = next(r for r in template["Resources"].values() if r["Type"] == "AWS::WAFv2::WebACL")
    skip = {"id": "CKV_AWS_192"} | ({"comment": comment} if comment else {})
    acl.setdefault("Metadata", {})["checkov"] = {"skip": [skip]}
    path = tmp_path / "Waf.template.json"
    path.write_text(json.dumps(template))
    report = run_checkov([path], "cloudformation")
    assert [s.check_id for s in unreasoned(report.skipped)] == ["CKV_AWS_192"]


@pytest.mark.slow  # a checkov run (every template)
def test_an_unacknowledged_finding_fails(default_app, tmp_path):
    """The guard can fail: the Cluster's interruption queue without its customer key."""
    template = copy.deepcopy(default_app.templates[default_app.stacks.cluster.stack_name])
    queue = next(r for r in template["Resources"].values() if r["Type"] == "AWS::SQS::Queue")
    queue["Properties"].pop("KmsMasterKeyId", None)
    path = tmp_path / "Cluster.template.json"
    path.write_text(json.dumps(template))
    report = run_checkov([path], "cloudformation")
    assert "CKV_AWS_27" in {f.check_id for f in report.failed}
