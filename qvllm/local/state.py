"""The local stack's run folder: logs, and ``state.json`` (pids, ports, URLs, engines, timings).

One well-known folder per user, wherever a command is called from: ``$QVLLM_RUN_DIR``, else
``$XDG_STATE_HOME/qvllm/local``, else ``~/.local/state/qvllm/local`` (the XDG base-directory
default for state data). ``--run-dir`` picks another one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_RUN_DIR = "QVLLM_RUN_DIR"
STATE_FILE = "state.json"


def default_run_dir() -> Path:
    """The well-known run folder (see the module docstring), absolute."""
    explicit = os.environ.get(ENV_RUN_DIR)
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser().resolve() / "qvllm" / "local"


def run_dir(path: str | Path | None = None) -> Path:
    """The run folder: ``path`` when given, else :func:`default_run_dir`."""
    return Path(path).expanduser().resolve() if path else default_run_dir()


@dataclass
class RunState:
    """What `local up` started.

    Attributes:
        run_dir: the run folder (absolute).
        pids: component -> process id (each a process-group leader): ``s3``, ``vllm-0``, ...,
            ``gateway``.
        ports: component -> TCP port.
        urls: ``s3``, one per engine (``vllm-0``, ...), ``gateway`` (for tools on this machine),
            ``chat`` (the page, on the address the gateway listens on; the QR code's URL).
        model: served model name, S3 URI, size.
        timings: run-wide durations in seconds: ``prepare_s`` (model folder verified or built),
            ``upload_s``, ``total_up_s``.
        engines: engine name -> its record: ``url``, ``time_to_ready_s``, ``phases`` (durations
            in seconds, in start order) and, when the Run:ai streamer reported it,
            ``weights_stream`` (``seconds``, ``size``, ``rate_mib_s``).
        host: the address the gateway listens on.
    """

    run_dir: str
    pids: dict[str, int] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    model: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    engines: dict[str, dict[str, Any]] = field(default_factory=dict)
    host: str = "127.0.0.1"

    def engine_urls(self) -> dict[str, str]:
        """``{engine name: base URL}`` in start order."""
        return {name: self.urls[name] for name in self.engines if name in self.urls}

    def save(self) -> Path:
        """Write ``state.json`` in the run folder (atomically); returns its path."""
        path = Path(self.run_dir) / STATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))  # key order kept: phases are in start order
        tmp.replace(path)
        return path


def read_state(path: str | Path | None = None) -> RunState | None:
    """The saved state of the run folder, or None when there is none (or it is unreadable)."""
    file = run_dir(path) / STATE_FILE
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    known = {f.name for f in fields(RunState)}
    return RunState(**{k: v for k, v in data.items() if k in known})
