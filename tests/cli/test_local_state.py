"""`qvllm local status | down` find the running stack from any directory: its state lives in one
well-known folder ($XDG_STATE_HOME/qvllm/local), not under the directory `up` was called from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from qvllm.local.processes import group_alive
from qvllm.local.state import RunState, default_run_dir, read_state

REPO = Path(__file__).resolve().parents[2]


def _cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qvllm.cli", "local", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_status_and_down_find_the_stack_from_another_directory(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_STATE_HOME": str(tmp_path / "state"),
           "HOME": str(tmp_path / "home")}
    env.pop("QVLLM_RUN_DIR", None)
    where_up_ran, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    where_up_ran.mkdir()
    elsewhere.mkdir()
    folder = tmp_path / "state" / "qvllm" / "local"

    nothing = _cli(elsewhere, env, "status")
    assert nothing.returncode == 0 and f"no local stack running (state folder {folder})" in nothing.stdout

    # a stand-in for a started component: a process in its own process group, as `up` starts them
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        RunState(run_dir=str(folder), pids={"s3": proc.pid}, urls={"s3": "http://127.0.0.1:9"}).save()
        shown = _cli(elsewhere, env, "status")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines()[0].split()[:3] == ["s3", "running", "http://127.0.0.1:9"]
        stopped = _cli(tmp_path, env, "down")
        assert stopped.returncode == 0 and "s3: stopped" in stopped.stdout, stopped.stdout + stopped.stderr
        proc.wait(timeout=10)
        assert not group_alive(proc.pid)
        assert read_state(folder).pids == {}
        assert not (where_up_ran / ".run").exists() and not (elsewhere / ".run").exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_default_folder_follows_xdg_and_the_override(tmp_path, monkeypatch):
    monkeypatch.delenv("QVLLM_RUN_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert default_run_dir() == tmp_path / "xdg" / "qvllm" / "local"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_run_dir() == tmp_path / "home" / ".local" / "state" / "qvllm" / "local"
    monkeypatch.setenv("QVLLM_RUN_DIR", str(tmp_path / "mine"))
    assert default_run_dir() == tmp_path / "mine"


def test_an_unreadable_state_file_is_no_stack(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    assert read_state(tmp_path) is None
