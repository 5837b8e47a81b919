"""cfn-lint on every template of the default app: zero errors, zero unlisted warnings.

Rules ignored are listed in :data:`IGNORED_RULES`, each with the reason (one place).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file

# rule id -> why it is ignored. Only warnings/informational rules may be listed here.
IGNORED_RULES: dict[str, str] = {
    "W3005": "CDK's own custom-resource providers (cross-region export reader/writer, "
    "restrict-default-SG, AwsCustomResource) add a DependsOn on their role that a GetAtt "
    "already implies; redundant but harmless, and not ours to change.",
}


def _lint(artifact) -> list:
    template = Path(artifact.assembly.directory) / artifact.template_file
    region = artifact.environment.region
    return lint_file(template, config=ManualArgs(regions=[region], ignore_checks=list(IGNORED_RULES)))


@pytest.mark.parametrize("suffix", ["Network", "ModelStore", "Waf", "Edge", "Cluster"])
def test_template_lints_clean(artifacts, suffix):
    matches = _lint(artifacts[suffix])
    problems = [
        f"{m.rule.id} {m.message} ({m.path_string})" for m in matches if m.rule.id[0] in {"E", "W"}
    ]
    assert problems == [], "\n".join(problems)


def test_ignored_rules_are_warnings_with_reasons():
    for rule_id, reason in IGNORED_RULES.items():
        assert rule_id[0] in {"W", "I"}, f"{rule_id}: errors must never be ignored"
        assert len(reason.split()) >= 8, f"{rule_id}: give a reason a reviewer would accept"


def test_cfn_lint_catches_an_error(tmp_path):
    """The linter wiring can fail: an invalid property is reported as an error."""
    bad = tmp_path / "bad.template.json"
    bad.write_text('{"Resources": {"B": {"Type": "AWS::S3::Bucket", "Properties": {"BucketNme": "x"}}}}')
    matches = lint_file(bad, config=ManualArgs(regions=["us-west-2"]))
    assert any(m.rule.id.startswith("E") for m in matches)
