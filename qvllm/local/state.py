"""The local stack's run folder: logs, and ``state.json`` (pids, ports, URLs, timings).

Default folder: ``.run/local/`` under the current directory (``QVLLM_RUN_DIR`` overrides).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_RUN_DIR = Path(".run") / "local"
STATE_FILE = "state.json"


def run_dir(path: str | Path | None = None) -> Path:
    """The run folder: ``path``, else ``$QVLLM_RUN_DIR``, else ``.run/local``."""
    return Path(path or os.environ.get("QVLLM_RUN_DIR") or DEFAULT_RUN_DIR).resolve()


@dataclass
class RunState:
    """What `local up` started.

    Attributes:
        run_dir: the run folder (absolute).
        pids: component -> process id (each is a process-group leader).
        ports: component -> TCP port on 127.0.0.1.
        urls: ``s3``, ``vllm``, ``gateway``, ``chat``, ``metrics``.
        model: served model name and S3 URI.
        timings: measured durations in seconds (``upload_s``, ``vllm_ready_s``, phases).
    """

    run_dir: str
    pids: dict[str, int] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    model: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def save(self) -> Path:
        """Write ``state.json`` in the run folder; returns its path."""
        path = Path(self.run_dir) / STATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        tmp.replace(path)
        return path


def read_state(path: str | Path | None = None) -> RunState | None:
    """The saved state of the run folder, or None when there is none."""
    file = run_dir(path) / STATE_FILE
    if not file.exists():
        return None
    return RunState(**json.loads(file.read_text()))
