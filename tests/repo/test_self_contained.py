"""A clone from GitHub tests with nothing beside it: nothing in the repository reads a folder outside
it (the CRD schemas once collected in a sibling ``shared`` folder live in tests/support/schemas/),
and the copied schemas are the files their SOURCES.md lists (SHA-256)."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "tests" / "support" / "schemas" / "crds"
# How code would reach outside the clone: a sibling "shared" folder, or this machine's /work tree.
OUTSIDE = re.compile(r"""\.\./shared|(parent|["']\.\.["'])\s*/\s*["']shared["']|["']/work/""")


def _tracked_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return [REPO_ROOT / name for name in names.splitlines()]


def test_b10_no_file_reads_outside_the_repository() -> None:
    offenders = []
    for path in _tracked_files():
        if path.suffix not in {".py", ".sh", ".toml", ".cfg", ".ini", ".json", ".yml", ".yaml"} and path.name != "Makefile":
            continue
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line) and path != Path(__file__):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_b10_crd_schemas_match_their_recorded_sha256() -> None:
    sources = (CRD_DIR / "SOURCES.md").read_text()
    recorded = dict((name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})\s+(\S+\.yaml)$", sources, re.M))
    files = sorted(p.name for p in CRD_DIR.glob("*.yaml"))
    assert sorted(recorded) == files, (sorted(recorded), files)
    for name in files:
        assert hashlib.sha256((CRD_DIR / name).read_bytes()).hexdigest() == recorded[name], name
