"""Run checkov (pinned in requirements-checkov.txt, its own venv .venv-checkov) and read its report.

checkov's dependencies pin boto3/botocore/packaging versions that conflict with the test venv's,
so ``make deps-checkov`` installs it into ``.venv-checkov`` and the tests run its CLI.

Offline: ``--skip-download`` and ``BC_SKIP_MAPPING`` stop checkov from fetching its guideline
mappings from the Prisma Cloud API (``checkov/main.py``: ``skip_download or BC_SKIP_MAPPING``),
and ``CKV_SKIP_PACKAGE_UPDATE_CHECK`` stops its PyPI version check (``common/util/banner.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
# checkov's placeholder when a suppression names a check but gives no reason
# (cloudformation/context_parser.py and kubernetes/kubernetes_utils.py).
NO_COMMENT = "No comment provided"
MIN_REASON_WORDS = 6  # as tests/infra/test_nag.py asks of every cdk-nag acknowledgement


@dataclass(frozen=True)
class Finding:
    """One checkov result: the check, the resource, the file and (for a skip) its reason."""

    check_id: str
    check_name: str
    resource: str
    file: str
    reason: str | None = None

    def __str__(self) -> str:
        text = f"{self.check_id} {self.resource} ({self.file}): {self.check_name}"
        return text + (f" [skip reason: {self.reason!r}]" if self.reason is not None else "")


@dataclass(frozen=True)
class CheckovReport:
    """Failed, skipped and passed results of one checkov run (one framework)."""

    failed: tuple[Finding, ...]
    skipped: tuple[Finding, ...]
    passed: int


def run_checkov(files: Sequence[Path], framework: str) -> CheckovReport:
    """Scan ``files`` with checkov's ``framework`` (``cloudformation`` or ``kubernetes``).

    Raises:
        AssertionError: checkov is not installed (names ``make deps-checkov``), failed to run,
            or could not parse a file (a parse error would otherwise pass silently).
    """
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run `make deps-checkov` (make test does)"
    args = [str(CHECKOV), "--framework", framework, "--output", "json", "--compact", "--skip-download"]
    for path in files:
        args += ["--file", str(path)]
    env = os.environ | {"BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE", "LOG_LEVEL": "ERROR"}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    # Exit status 1 means "some check failed"; anything else is checkov itself failing.
    assert proc.returncode in (0, 1), f"checkov exited {proc.returncode}: {proc.stderr[-3000:]}"
    data = json.loads(proc.stdout)
    reports = data if isinstance(data, list) else [data]
    if not reports or "results" not in reports[0]:
        # checkov prints an empty summary (no "results") when it found nothing to scan.
        raise AssertionError(f"checkov scanned nothing of {[str(f) for f in files]}: {proc.stdout[:500]}")
    failed: list[Finding] = []
    skipped: list[Finding] = []
    passed = 0
    for report in reports:
        summary = report["summary"]
        assert summary.get("parsing_errors", 0) == 0, f"checkov could not parse: {report['results'].get('parsing_errors')}"
        results = report["results"]
        failed += [_finding(r) for r in results.get("failed_checks", [])]
        skipped += [_finding(r, skip=True) for r in results.get("skipped_checks", [])]
        passed += summary["passed"]
    return CheckovReport(failed=tuple(failed), skipped=tuple(skipped), passed=passed)


def _finding(result: dict[str, Any], *, skip: bool = False) -> Finding:
    reason = result.get("check_result", {}).get("suppress_comment", NO_COMMENT) if skip else None
    return Finding(
        check_id=result["check_id"],
        check_name=result["check_name"],
        resource=result["resource"],
        file=result["file_path"],
        reason=reason,
    )


def unreasoned(skips: Iterable[Finding]) -> list[Finding]:
    """The skips whose reason is missing or too short for a reviewer to judge."""
    return [
        s for s in skips
        if not s.reason or s.reason.strip() == NO_COMMENT or len(s.reason.split()) < MIN_REASON_WORDS
    ]
