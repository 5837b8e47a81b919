"""The simulator against the real engine: calibrate the local stack's service curve, replay a load
profile on it, simulate the same profile with that curve: TTFT p50 and p95 agree within 25 %.

Calibration and replay run back to back in one test, so both see the same machine load; a second
round of both runs only when the first disagrees (the reason is at :func:`_round`)."""

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
MODEL = "smollm2"  # the real SmolLM2-135M: decoding is engine work (about 25 ms a token on 2 cores)
MAX_NUM_SEQS = 4
# A ramp across max_num_seqs: 2, then 4 users (every request runs at once), then 8 (four run, four wait in
# vLLM's queue for the running answers to finish): the replay has to get the batch slots, the queue and
# the decode rate right, not only the TTFT of a free slot. Most requests are sent in the 8-user stage, so
# p50 and p95 both measure the queue. Answers of exactly 64 tokens (ignore_eos), as in the calibration.
# The tiny random model is not used: its whole answer arrives in one burst (0.25 ms a token), so its
# TTFT is HTTP and host CPU shared with the client and gateway, and queued requests waited far less than
# any batch-slot model says (8 users on 4 slots: measured p50 0.392 s against a simulated 0.896 s).
# Nor is a ramp that stays below max_num_seqs: its TTFT is tens of milliseconds of host CPU on a shared
# machine (SmolLM2 with 1, 2, 4, 3 users: measured p50 0.072 s against a simulated 0.100 s).
PROFILE = Users("validation", (Stage(10, 2, 1000), Stage(20, 4, 1000), Stage(60, 8, 1000)),
                prompt_tokens=20, output_tokens=64)
CALIBRATION_SECONDS = 12  # per concurrency 1..MAX_NUM_SEQS
TOLERANCE = 0.25


ROUNDS = 2  # a second calibrate-and-replay round only when the first disagrees (see _round)


def _round(gateway: str, n: int) -> tuple[dict[int, tuple[float, float]], int, int, dict]:
    """One calibration then one replay, back to back; returns {q: (real, simulated)} TTFT percentiles,
    the request counts and the round's record.

    Two rounds, not one: the comparison is between the machine's speed during the calibration and
    during the replay a minute later. On a shared CI host a few seconds of CPU taken by something else
    in the replay stretch the requests running then to two batch times, and p95 with them (seen once
    in CI: p50 real 1.832 s / simulated 1.840 s, p95 real 3.458 s / simulated 1.884 s; the same test on
    a quiet machine: p95 1.749 s / 1.820 s). A simulator that is wrong disagrees in both rounds."""
    curve, points = calibrate(gateway, MAX_NUM_SEQS, seconds=CALIBRATION_SECONDS,
                              max_tokens=PROFILE.output_tokens)
    measured = replay(gateway, PROFILE)
    config = config_from_dict({"scaling": {"min_replicas": 1, "max_replicas": 1},
                               "vllm": {"max_num_seqs": MAX_NUM_SEQS}})
    result = simulate(config, ScalingSpec.from_config(config.scaling), curve, PROFILE)
    simulated = [r.ttft_s for r in result.requests if r.outcome == "ok" and r.ttft_s is not None]
    real = [t.ttft_s for t in measured]
    figures = {q: (percentile(real, q), percentile(simulated, q)) for q in (50, 95)}
    # The machine's decode speed in the replay against the calibration's, at a full batch: far from 1
    # means the host's speed changed between the two.
    replay_itl = percentile([t.itl_s for t in measured if t.itl_s is not None], 50)
    print(f"round {n}: calibration points:", [(p.running, round(p.ttft_s, 4), round(p.itl_s, 5),
                                              round(p.ttft_cv, 3)) for p in points])
    print(f"round {n}: curve: {curve}")
    print(f"round {n}: requests: real {len(real)}, simulated {len(simulated)}; replay ITL p50 "
          f"{replay_itl * 1000:.1f} ms vs calibrated {points[-1].itl_s * 1000:.1f} ms at {MAX_NUM_SEQS} running")
    for q, (r, s) in figures.items():
        print(f"round {n}: TTFT p{q}: real {r:.3f} s, simulated {s:.3f} s, ratio {s / r:.2f}")
    record = {"points": [vars(p) for p in points], "curve": vars(curve), "requests": [len(real), len(simulated)],
              "measured": [vars(t) for t in measured],
              "ttft": {f"p{q}": {"real": r, "simulated": s} for q, (r, s) in figures.items()}}
    return figures, len(real), len(simulated), record


def _agrees(figures: dict[int, tuple[float, float]], real_n: int, simulated_n: int) -> bool:
    return (all(abs(s - r) <= TOLERANCE * r for r, s in figures.values())
            and abs(simulated_n - real_n) <= 0.25 * real_n)


@pytest.mark.engine
@pytest.mark.timeout(1200)
def test_simulated_ttft_matches_the_local_engine(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "qvllm.cli", "local"]
    records = []
    try:
        started = subprocess.run([*cli, "up", "--run-dir", str(run), "--model", MODEL,
                                  "--max-num-seqs", str(MAX_NUM_SEQS)], cwd=REPO, env=env, capture_output=True,
                                 text=True, timeout=800)
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        state = read_state(run)
        assert state is not None
        for n in range(1, ROUNDS + 1):
            figures, real_n, simulated_n, record = _round(state.urls["gateway"], n)
            records.append(record)
            if _agrees(figures, real_n, simulated_n):
                break
    finally:
        subprocess.run([*cli, "down", "--run-dir", str(run)], cwd=REPO, env=env, capture_output=True, timeout=120)
        if os.environ.get("QVLLM_CALIBRATION_REPORT"):  # the figures of a full-suite run, for the record
            Path(os.environ["QVLLM_CALIBRATION_REPORT"]).write_text(json.dumps(records, indent=1))

    for q, (r, s) in figures.items():
        assert abs(s - r) <= TOLERANCE * r, f"TTFT p{q}: simulated {s:.3f} s vs measured {r:.3f} s in every round"
    assert abs(simulated_n - real_n) <= 0.25 * real_n, f"requests: simulated {simulated_n} vs real {real_n}"
