"""The load test's source files, for the in-cluster Job's ConfigMap (read here, not in the chart)."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
#: files the locustfile needs at run time, as paths under the package root
FILES = ("qvllm/loadtest/__init__.py", "qvllm/loadtest/profiles.py", "qvllm/loadtest/thresholds.py",
         "qvllm/loadtest/locustfile.py")


def loadtest_sources() -> tuple[tuple[str, str], ...]:
    """``((relative path, text), ...)``: the files above plus an empty ``qvllm/__init__.py``."""
    out = [("qvllm/__init__.py", "")]
    for rel in FILES:
        out.append((rel, (_HERE.parents[1] / rel).read_text()))
    return tuple(out)
