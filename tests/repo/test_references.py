"""Every reference in the code resolves inside the repository.

Code says why in its own words; the public reports behind a failure mode live in
docs/FAILURE_MODES.md, one paragraph per id, and tests keep the id in their names so a failure
points there. A bare id, an "issue N" or a pointer to a design document that is not in the
repository is a reference a reader cannot follow.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

FAILURE_MODES = REPO_ROOT / "docs" / "FAILURE_MODES.md"
CASE_ID = re.compile(r"\b[BC]\d{2}\b")
UNRESOLVABLE = re.compile(r"\bissues? \d+\b|\bDESIGN(\.md)? section\b|\bCASES\.md\b|/work/shared", re.IGNORECASE)
# Generated or vendored code is not ours to reword.
GENERATED = ("k8s_charts/imports/", "services/gateway/static/vendor/")


def tracked_files(*suffixes: str) -> list[Path]:
    """The repository's tracked files with one of ``suffixes`` (``git ls-files``)."""
    out = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return [REPO_ROOT / f for f in out.splitlines() if f.endswith(suffixes)]


def non_test_code() -> list[Path]:
    files = tracked_files(".py", ".js", ".ts", ".html", ".yaml", ".yml", ".toml", "Makefile", ".md")
    return [
        f
        for f in files
        if not f.relative_to(REPO_ROOT).as_posix().startswith(("tests/", *GENERATED))
        and f != FAILURE_MODES
    ]


def failure_mode_sections() -> dict[str, str]:
    """Failure-mode id -> its paragraph in docs/FAILURE_MODES.md."""
    parts = re.split(r"^## ([BC]\d{2}):.*$", FAILURE_MODES.read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def findings(pattern: re.Pattern[str], files: list[Path]) -> list[str]:
    """``path:line: text`` of every line matching ``pattern``; a line that names
    docs/FAILURE_MODES.md next to an id resolves, so it is not a finding."""
    found = []
    for path in files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(line) and "FAILURE_MODES.md" not in line:
                found.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    return found


def test_no_bare_failure_mode_id_in_non_test_code():
    assert findings(CASE_ID, non_test_code()) == []


def test_no_reference_the_repository_cannot_resolve():
    ours = Path(__file__).resolve()
    files = non_test_code() + [f for f in tracked_files(".py") if f.resolve() != ours]
    assert findings(UNRESOLVABLE, files) == []


def test_every_failure_mode_paragraph_links_its_public_report():
    sections = failure_mode_sections()
    assert sections, "docs/FAILURE_MODES.md has no '## B01: ...' sections"
    for case, text in sections.items():
        assert re.search(r"\(https://github\.com/[^)]+\)", text), f"{case} cites no public link"


def test_every_id_a_test_names_has_its_paragraph():
    named = {m.group(0) for path in tracked_files(".py") if "tests/" in path.as_posix()
             for m in CASE_ID.finditer(path.read_text())}
    assert named, "no test names a failure mode: the pattern no longer matches the tests"
    assert sorted(named - set(failure_mode_sections())) == []


@pytest.mark.parametrize("line", ["see case B09", "issue 7 asks", "DESIGN section 2", "see CASES.md"])
def test_the_patterns_catch_what_they_guard(line):
    assert CASE_ID.search(line) or UNRESOLVABLE.search(line)
