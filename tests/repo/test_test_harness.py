"""The test harness itself: ``make test-fast`` runs the tests of the synthesized default app on one
pytest-xdist worker, so the app is synthesized once, not once per worker (about 10 s of CPU each on
a 2-core machine).

Runs the real pytest and pytest-xdist of requirements-dev.txt over a throwaway project whose
conftest is tests/conftest.py's own collection hook, with the worker count and ``--dist`` of the
Makefile's test-fast target."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CONFTEST = """
import pytest
from tests.conftest import pytest_collection_modifyitems  # the hook under test


@pytest.fixture(scope="session")
def default_app():
    return object()
"""
GROUPED = "def test_app_{n}(default_app):\n    assert default_app\n"
FREE = "def test_free_{n}():\n    pass\n"


def test_tests_of_the_synthesized_app_share_one_worker(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    for f in range(3):  # three files, so plain --dist load would spread them
        body = "".join(GROUPED.format(n=f"{f}_{n}") + FREE.format(n=f"{f}_{n}") for n in range(3))
        (tmp_path / f"test_{f}.py").write_text(body)
    ran = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-p", "no:randomly",
                          "-n", "4", "--dist", "loadgroup", "--rootdir", str(tmp_path), str(tmp_path)],
                         cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    workers = {name: gw for gw, name in re.findall(r"\[(gw\d+)\] \[[ \d]+%\] PASSED \S+::(test_\w+)", ran.stdout)}
    app_workers = {gw for name, gw in workers.items() if name.startswith("test_app_")}
    assert len(workers) == 18, ran.stdout[-2000:]
    assert len(app_workers) == 1, f"the default app's tests ran on {sorted(app_workers)}:\n{ran.stdout[-2000:]}"
