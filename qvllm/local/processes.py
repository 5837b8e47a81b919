"""Start and stop the local stack's processes, each in its own process group."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, then release)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(argv: Sequence[str], *, log: Path, env: Mapping[str, str], cwd: str | Path | None = None) -> int:
    """Start ``argv`` detached in a new session (own process group); returns the pid.

    Its output goes to ``log``, emptied first: a log holds one run only, so whatever reads it
    (the time-to-ready phases) never sees an earlier run's lines.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(env), cwd=cwd, start_new_session=True,
        )
    return proc.pid


def alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def group_alive(pgid: int) -> bool:
    """Whether any process of process group ``pgid`` is still there."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg succeeds on zombies; look for a live member
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().split(")")[-1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


STOP_GRACE_S = 20.0  # seconds between SIGTERM and SIGKILL


def stop_group(pgid: int, *, grace_s: float = STOP_GRACE_S) -> bool:
    """Stop process group ``pgid`` (led by the process :func:`spawn` started) as the kubelet stops a
    container; True when all its processes are gone.

    SIGTERM goes to the leader only, as a container's main process gets it, so each process stops
    as it does in a pod: vLLM's API server drains (``--shutdown-timeout``) and then stops its
    engine core itself, rather than the engine core getting the signal at the same moment. Once
    the leader is gone, what is left of the group gets SIGTERM; after ``grace_s`` in all, SIGKILL.
    """
    try:
        os.kill(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    leader_gone = False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        _reap(pgid)
        if not group_alive(pgid):
            return True
        if not leader_gone and not alive(pgid):
            leader_gone = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and group_alive(pgid):
        _reap(pgid)
        time.sleep(0.2)
    _reap(pgid)
    return not group_alive(pgid)
