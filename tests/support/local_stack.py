"""Run the whole local stack (`qvllm local up`) for engine tests and benchmarks, and stop it after.

Usage::

    from tests.support.local_stack import running_local_stack

    with running_local_stack(tmp_path / "run", "--model", "tiny", "--replicas", "2") as stack:
        stack.state.urls["gateway"]      # the gateway, for tools on this machine
        stack.up_output                  # what `local up` printed

What it does: ``python -m qvllm.cli local up --run-dir RUN ARGS...`` in a subprocess (the real
command a user runs: moto S3, the model prepared and uploaded with ``qvllm upload-model``, vLLM
streaming it with the Run:ai streamer, the gateway), then ``local down --run-dir RUN`` at exit,
even when ``up`` failed or timed out (its servers run in their own sessions).

Errors: :class:`LocalStackStartError` when ``up`` exits non-zero or times out (message: its output).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from qvllm.local.state import RunState, read_state

REPO_ROOT = Path(__file__).resolve().parents[2]


class LocalStackStartError(RuntimeError):
    """`qvllm local up` failed; the message holds the end of its output."""


@dataclass(frozen=True)
class RunningStack:
    """A started local stack.

    Attributes:
        run_dir: its run folder (state.json, logs/).
        state: the state `local up` saved.
        up_output: stdout of `local up` (URLs, QR code, time to ready).
        pids: every component's process-group id, for checking that `down` stopped them.
    """

    run_dir: Path
    state: RunState
    up_output: str
    pids: dict[str, int]


def cli(*args: str, timeout: float, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    """``python -m qvllm.cli ARGS...`` with the repository on the path."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "qvllm.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@contextlib.contextmanager
def running_local_stack(run_dir: Path, *args: str, timeout: float = 1500.0) -> Iterator[RunningStack]:
    """Start the stack with ``local up --run-dir run_dir ARGS``; yield it; ``local down`` at exit.

    Raises:
        LocalStackStartError: see the class.
    """
    run_dir = Path(run_dir)
    try:
        try:
            started = cli("local", "up", "--run-dir", str(run_dir), *args, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise LocalStackStartError(f"`local up` did not finish in {timeout:.0f} s: {str(exc.stdout)[-3000:]}") from None
        state = read_state(run_dir)
        if started.returncode != 0 or state is None:
            raise LocalStackStartError(f"`local up` exited {started.returncode}:\n"
                                       f"{started.stdout[-3000:]}\n{started.stderr[-3000:]}")
        yield RunningStack(run_dir, state, started.stdout, dict(state.pids))
    finally:
        cli("local", "down", "--run-dir", str(run_dir), timeout=180)
