"""The simulator against the real engine: calibrate the local stack's service curve, replay a load
profile on it, simulate the same profile with that curve: TTFT p50 and p95 agree within 25 %.

Calibration and replay run back to back in one test, so both see the same machine load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app_config import config_from_dict
from qvllm.loadtest.profiles import Stage
from qvllm.local.state import read_state
from qvllm.scaling import ScalingSpec
from qvllm.simulate.calibrate import calibrate, replay
from qvllm.simulate.cluster import simulate
from qvllm.simulate.report import percentile
from qvllm.simulate.workload import Users

REPO = Path(__file__).resolve().parents[2]
MAX_NUM_SEQS = 4
# A ramp up and down within max_num_seqs: 1, 2, 4, then 3 users. Beyond max_num_seqs this machine
# does not behave like batch slots (see the report of this test's runs: with 8 users on 4 slots the
# real TTFT p50 was 0.392 s against a simulated 0.896 s): on 2 shared cores the tiny model's whole
# answer reaches the client in one burst, so TTFT is the whole request, and most of it is host CPU
# shared by client, gateway and API server, not the engine's batch.
PROFILE = Users("validation", (Stage(10, 1, 1000), Stage(25, 2, 1000), Stage(45, 4, 1000), Stage(60, 3, 1000)),
                prompt_tokens=20, output_tokens=128)
TOLERANCE = 0.25


@pytest.mark.engine
@pytest.mark.timeout(900)
def test_simulated_ttft_matches_the_local_engine(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "qvllm.cli", "local"]
    try:
        started = subprocess.run([*cli, "up", "--run-dir", str(run), "--max-num-seqs", str(MAX_NUM_SEQS)], cwd=REPO,
                                 env=env, capture_output=True, text=True, timeout=800)
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        state = read_state(run)
        assert state is not None
        gateway = state.urls["gateway"]

        curve, points = calibrate(gateway, MAX_NUM_SEQS, seconds=12, max_tokens=PROFILE.output_tokens)
        measured = replay(gateway, PROFILE)
    finally:
        subprocess.run([*cli, "down", "--run-dir", str(run)], cwd=REPO, env=env, capture_output=True, timeout=120)

    config = config_from_dict({"scaling": {"min_replicas": 1, "max_replicas": 1},
                               "vllm": {"max_num_seqs": MAX_NUM_SEQS}})
    result = simulate(config, ScalingSpec.from_config(config.scaling), curve, PROFILE)
    simulated = [r.ttft_s for r in result.requests if r.outcome == "ok" and r.ttft_s is not None]
    real = [t.ttft_s for t in measured]
    figures = {q: (percentile(real, q), percentile(simulated, q)) for q in (50, 95)}
    print("calibration points:", [(p.running, round(p.ttft_s, 4), round(p.itl_s, 5), round(p.ttft_cv, 3))
                                  for p in points])
    print(f"curve: {curve}")
    print(f"requests: real {len(real)}, simulated {len(simulated)}")
    for q, (r, s) in figures.items():
        print(f"TTFT p{q}: real {r:.3f} s, simulated {s:.3f} s, ratio {s / r:.2f}")
    if os.environ.get("QVLLM_CALIBRATION_REPORT"):  # the figures of a full-suite run, for the record
        Path(os.environ["QVLLM_CALIBRATION_REPORT"]).write_text(json.dumps({
            "points": [vars(p) for p in points], "curve": vars(curve), "requests": [len(real), len(simulated)],
            "ttft": {f"p{q}": {"real": r, "simulated": s} for q, (r, s) in figures.items()}}, indent=1))
    for q, (r, s) in figures.items():
        assert abs(s - r) <= TOLERANCE * r, f"TTFT p{q}: simulated {s:.3f} s vs measured {r:.3f} s"
    assert abs(len(simulated) - len(real)) <= 0.25 * len(real)
