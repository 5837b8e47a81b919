"""Run the gateway as its own process (``python -m services.gateway``), as in the cluster.

For tests and benchmarks that must not share a process (GIL, garbage-collector pauses) with
the test runner or the load client: the chat-page browser test and ``make bench-gateway``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from services.gateway.settings import settings_env
from tests.support.vllm_server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class GatewayProcess:
    """A running gateway process: its base URL, process id (for /proc CPU accounting) and process."""

    url: str
    pid: int
    process: subprocess.Popen = field(repr=False)
    log_file: IO[bytes] = field(repr=False)

    def log(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        self.log_file.flush()
        self.log_file.seek(0)
        return self.log_file.read().decode(errors="replace")


class GatewayStartError(RuntimeError):
    """The gateway process exited or did not answer ``/healthz`` in time (message: its stderr tail)."""


@contextlib.contextmanager
def gateway_process(start_timeout: float = 30.0, cpus: str | None = None, port: int | None = None,
                    root: Path = REPO_ROOT, host: str | None = None, **settings: Any) -> Iterator[GatewayProcess]:
    """Start ``python -m services.gateway`` on a free loopback port (or ``port``); yield it.

    Args:
        start_timeout: seconds to wait for ``GET /healthz`` to answer.
        port: listen on this port (a restart test reuses the port of the gateway it replaces).
        root: the checkout whose ``services/gateway`` runs (a benchmark compares another commit's).
        host: ``--host`` for the entry point (default: none given, all interfaces as in the container).
        cpus: a CPU list for ``taskset -c`` (benchmarks pin the gateway apart from the engine).
        settings: :class:`~services.gateway.settings.GatewaySettings` fields
            (``upstream_url=...``, ``served_model_name=...``), passed as ``GATEWAY_*`` variables.

    Raises:
        GatewayStartError: see the class.
        SettingsError: a setting is unknown or invalid.
    """
    port = port or free_port()
    env = {**os.environ, **settings_env(port=port, **settings), "PYTHONPATH": str(root)}
    # Logs go to a file, not a pipe nobody reads while it runs (a full pipe would block it).
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finally
    command = [*(["taskset", "-c", cpus] if cpus else []), sys.executable, "-m", "services.gateway",
               *(["--host", host] if host else [])]
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - ours
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1):  # noqa: S310 - loopback
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    log.seek(0)
                    raise GatewayStartError("gateway did not start: " + log.read().decode(errors="replace")[-2000:]) from None
                time.sleep(0.1)
        yield GatewayProcess(url, proc.pid, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
