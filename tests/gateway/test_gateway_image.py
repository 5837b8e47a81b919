"""docker/gateway/Dockerfile: hadolint clean, slim pinned non-root with a healthcheck, and the
root .dockerignore sends only what the image needs (no Docker engine here: static checks)."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "gateway" / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_hadolint_clean() -> None:
    result = subprocess.run([str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_dockerfile_pinned_slim_nonroot_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^FROM (\S+)", text, re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    assert re.search(r"^USER (?!root|0\b)\S+", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert "-r /app/requirements.txt" in text and "services/gateway/requirements.txt" in text
    assert 'CMD ["python", "-m", "services.gateway"]' in text


def _included(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; '!' re-includes."""
    keep = True
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        if fnmatch.fnmatchcase(path, pattern.replace("**", "*")) or (pattern.startswith("**/") and fnmatch.fnmatchcase(path, pattern[3:])):
            keep = negate
    return keep


def test_dockerignore_whitelists_only_the_gateway() -> None:
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    needed = ["services/__init__.py", "services/gateway/requirements.txt", "services/gateway/app.py",
              "services/gateway/static/index.html", "services/gateway/static/chat.js"]
    for path in needed:
        assert (ROOT / path).exists(), path
        assert _included(path, patterns), f"{path} excluded from the build context"
    for path in ["app.py", "app_config/model.py", "tests/gateway/conftest.py", "services/model_upload/handler.py",
                 "node_modules/x/index.js", ".venv/bin/python", "cdk.out/manifest.json",
                 "services/gateway/__pycache__/app.cpython-311.pyc"]:
        assert not _included(path, patterns), f"{path} would be sent to the build context"
    # everything the Dockerfile copies is in the context
    for src in re.findall(r"^COPY (\S+) ", DOCKERFILE.read_text(), re.M):
        assert _included(src, patterns) or _included(src + "/app.py", patterns), src
    # the image does not import app_config (not in the context): the gateway stands alone
    for source in (ROOT / "services" / "gateway").glob("*.py"):
        assert not re.search(r"^\s*(from|import) (app_config|qvllm|tests)\b", source.read_text(), re.M), source
