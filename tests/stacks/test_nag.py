"""cdk-nag 3 (AwsSolutions pack) on the whole app: zero unacknowledged findings, and every
acknowledgement carries a reason.

The session synth (``default_app``) already raises on any unacknowledged finding; these tests
also read what it recorded in the cloud assembly, and prove the check can fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

ACK_METADATA = "aws:cdk:acknowledged-rules"  # cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
NAG_PLUGIN = "AwsSolutions"


def _acknowledgements(default_app) -> list[tuple[str, str, str]]:
    """(construct path, rule id, reason) of every acknowledgement in the assembly.

    Read from each stack's metadata file named in manifest.json (``additionalMetadataFile``);
    jsii cannot serialize ``CloudFormationStackArtifact.find_metadata_by_type`` results here.
    """
    outdir = Path(default_app.assembly.directory)
    manifest = json.loads((outdir / "manifest.json").read_text())
    found = []
    for artifact in manifest["artifacts"].values():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        metadata = dict(artifact.get("metadata", {}))
        if "additionalMetadataFile" in artifact:
            metadata.update(json.loads((outdir / artifact["additionalMetadataFile"]).read_text()))
        for path, entries in metadata.items():
            for entry in entries:
                if entry["type"] == ACK_METADATA:
                    found.extend((path, rule_id, reason) for rule_id, reason in entry["data"].items())
    return found


def test_metadata_key_matches_cdk():
    assert cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY == ACK_METADATA


def test_no_unacknowledged_awssolutions_findings(default_app):
    report = Path(default_app.assembly.directory) / "validation-report.json"
    if report.exists():  # written when any plugin reported something (warnings included)
        plugins = json.loads(report.read_text())["pluginReports"]
        nag = [p for p in plugins if p["pluginName"] == NAG_PLUGIN]
        findings = [
            f"{v['ruleName']} at {c['constructPath']}"
            for p in nag for v in p["violations"] for c in v["violatingConstructs"]
        ]
        assert findings == [], "\n".join(findings)


def test_every_acknowledgement_has_a_reason(default_app):
    acks = _acknowledgements(default_app)
    nag_acks = [a for a in acks if f"{NAG_PLUGIN}-" in a[1]]
    assert nag_acks, "expected AwsSolutions acknowledgements (e.g. the edge log bucket's S1)"
    for path, rule_id, reason in acks:
        assert isinstance(reason, str) and len(reason.split()) >= 6, f"{path} {rule_id}: reason {reason!r}"


def test_acknowledgements_are_scoped_not_app_wide(default_app):
    """No acknowledgement sits on the app root: each sits on the construct or stack it excuses."""
    acks = _acknowledgements(default_app)
    assert acks
    for path, rule_id, _ in acks:
        assert path.startswith("/") and path.count("/") >= 1 and path != "/", f"{rule_id} at {path!r}"


def test_nag_blocks_an_unacknowledged_finding(tmp_path):
    """The real app plus one bucket without access logs (AwsSolutions-S1) fails synth."""
    from app_config import config_from_dict
    from stacks.app_builder import build_app
    from tests.support.cdk_app import new_app

    app = new_app(tmp_path)
    stacks = build_app(app, config_from_dict({}), nag=True)
    s3.Bucket(stacks.edge, "UnloggedBucket", enforce_ssl=True)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    violations = {
        (v["ruleName"], c["constructPath"])
        for p in report["pluginReports"] if p["pluginName"] == NAG_PLUGIN
        for v in p["violations"] for c in v["violatingConstructs"]
    }
    assert ("AwsSolutions-S1", f"{stacks.edge.stack_name}/UnloggedBucket/Resource") in violations
