"""The simulator against the real engine: calibrate the local stack's service curve, replay a load
profile on it, simulate the same profile with that curve: TTFT p50 and p95 agree within 25 %.

Calibration and replay run back to back in one round, so both see the same machine; a round whose
replay ran at another decode speed than its calibration, or whose reader was stalled, does not
count, and up to four rounds run until one agrees (the reasons are at :func:`_round`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app_config import config_from_dict
from qvllm.loadtest.profiles import Stage
from qvllm.local.state import read_state
from qvllm.scaling import ScalingSpec
from qvllm.simulate.calibrate import calibrate, read_in_time, replay
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
# The 8-user stage lasts 110 s (about 270 requests in all): a stall of the host's CPU for a couple of
# seconds stretches the TTFT of the 8 requests in vLLM then, under 5 % of them, so p95 still measures
# the queue (with a 40-s stage, 122 requests, one such stall set p95 in a CI run: 3.8 s real against
# 1.9 s simulated, while p50 agreed, 1.823 s against 1.844 s).
# The tiny random model is not used: its whole answer arrives in one burst (0.25 ms a token), so its
# TTFT is HTTP and host CPU shared with the client and gateway, and queued requests waited far less than
# any batch-slot model says (8 users on 4 slots: measured p50 0.392 s against a simulated 0.896 s).
# Nor is a ramp that stays below max_num_seqs: its TTFT is tens of milliseconds of host CPU on a shared
# machine (SmolLM2 with 1, 2, 4, 3 users: measured p50 0.072 s against a simulated 0.100 s).
PROFILE = Users("validation", (Stage(10, 2, 1000), Stage(20, 4, 1000), Stage(130, 8, 1000)),
                prompt_tokens=20, output_tokens=64)
CALIBRATION_SECONDS = 12  # per concurrency 1..MAX_NUM_SEQS
TOLERANCE = 0.25
ROUNDS = 4
# The replay's median inter-token latency may differ this much from the calibrated curve's at a full
# batch (the ITL the simulator decodes at) before the round is void: the machine ran at another speed,
# and a curve measured at one speed says nothing about TTFTs at another (a CI run: calibrated 35.1 ms,
# replay 28.5 ms, simulated p50 1.33x).
SPEED_TOLERANCE = 0.12
# A round whose reader read more than this share of the replay's answers in one burst (see
# read_in_time: the test process itself was stalled) is void: their TTFTs are the reader's delay.
# Below it they are left out of the measured percentiles, and counted (a CI run: p50 agreed, 1.968 s
# real against 1.922 s simulated, while p95 was 4.297 s against 1.964 s, and the 8 slowest answers,
# all the run printed, had each been read in one burst).
READ_LATE_SHARE_MAX = 0.05


@dataclass
class Round:
    """One calibration and replay: TTFT percentiles ``{q: (real, simulated)}``, request counts, speeds."""

    figures: dict[int, tuple[float, float]]
    real_n: int
    simulated_n: int
    calibrated_itl_s: float
    replay_itl_s: float
    read_late: int
    record: dict = field(repr=False)

    @property
    def speed_changed(self) -> bool:
        """The replay decoded at another speed than the calibration measured (see SPEED_TOLERANCE)."""
        return abs(self.replay_itl_s - self.calibrated_itl_s) > SPEED_TOLERANCE * self.calibrated_itl_s

    @property
    def reader_stalled(self) -> bool:
        """More than READ_LATE_SHARE_MAX of the replay's answers were read in one burst."""
        return self.read_late > READ_LATE_SHARE_MAX * self.real_n

    @property
    def void(self) -> str:
        """Why the round does not count ('' when it does)."""
        if self.speed_changed:
            return "speed changed"
        return "reader stalled" if self.reader_stalled else ""

    @property
    def agrees(self) -> bool:
        """TTFT p50 and p95 and the request count within TOLERANCE of the measured ones."""
        return (all(abs(s - r) <= TOLERANCE * r for r, s in self.figures.values())
                and abs(self.simulated_n - self.real_n) <= TOLERANCE * self.real_n)

    def summary(self) -> str:
        ttft = ", ".join(f"p{q} real {r:.3f} s / simulated {s:.3f} s" for q, (r, s) in self.figures.items())
        return (f"TTFT {ttft}; requests real {self.real_n} / simulated {self.simulated_n} ({self.read_late} read "
                f"late, left out of the real TTFTs); ITL replay {self.replay_itl_s * 1000:.1f} ms / calibrated "
                f"{self.calibrated_itl_s * 1000:.1f} ms")


def _round(gateway: str, n: int) -> Round:
    """One calibration then one replay, back to back, and the simulator's replay with that calibration.

    The comparison is between the machine's speed during the calibration and during the replay a
    minute later; on a shared CI host something else may take CPU in one and not the other. The
    replay's median inter-token latency (the decode speed it actually got) against the curve's at a
    full batch tells: a round whose speed changed is void, and another round runs. So is a round in
    which the test process itself was stalled more than a little (answers read in one burst, see
    :func:`~qvllm.simulate.calibrate.read_in_time`). A simulator that is wrong disagrees in every
    round that counts. The slowest requests are printed with their send times, so a tail
    from one stall of the host (requests sent within a couple of seconds) can be told from a
    scheduling difference."""
    curve, points = calibrate(gateway, MAX_NUM_SEQS, seconds=CALIBRATION_SECONDS,
                              max_tokens=PROFILE.output_tokens)
    measured = replay(gateway, PROFILE)
    config = config_from_dict({"scaling": {"min_replicas": 1, "max_replicas": 1},
                               "vllm": {"max_num_seqs": MAX_NUM_SEQS}})
    result = simulate(config, ScalingSpec.from_config(config.scaling), curve, PROFILE)
    simulated = [r.ttft_s for r in result.requests if r.outcome == "ok" and r.ttft_s is not None]
    in_time, late = read_in_time(measured)
    real = [t.ttft_s for t in in_time]
    figures = {q: (percentile(real, q), percentile(simulated, q)) for q in (50, 95)}
    replay_itl = percentile([t.itl_s for t in in_time if t.itl_s is not None], 50)
    slowest = sorted(measured, key=lambda t: t.ttft_s, reverse=True)[:8]
    print(f"round {n}: calibration points:", [(p.running, round(p.ttft_s, 4), round(p.itl_s, 5),
                                              round(p.ttft_cv, 3)) for p in points])
    print(f"round {n}: curve: {curve}")
    print(f"round {n}: slowest requests (sent s, TTFT s, ITL ms):",
          [(round(t.sent, 1), round(t.ttft_s, 3), round((t.itl_s or 0) * 1000, 1)) for t in slowest])
    record = {"points": [vars(p) for p in points], "curve": vars(curve), "requests": [len(measured), len(simulated)],
              "measured": [vars(t) for t in measured],
              "ttft": {f"p{q}": {"real": r, "simulated": s} for q, (r, s) in figures.items()}}
    outcome = Round(figures, len(measured), len(simulated), curve.itl(MAX_NUM_SEQS), replay_itl, len(late), record)
    verdict = f"{outcome.void}, void" if outcome.void else ("agrees" if outcome.agrees else "disagrees")
    print(f"round {n}: {outcome.summary()}: {verdict}")
    return outcome


@pytest.mark.engine
@pytest.mark.timeout(1800)
def test_simulated_ttft_matches_the_local_engine(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "qvllm.cli", "local"]
    rounds: list[Round] = []
    try:
        started = subprocess.run([*cli, "up", "--run-dir", str(run), "--model", MODEL,
                                  "--max-num-seqs", str(MAX_NUM_SEQS)], cwd=REPO, env=env, capture_output=True,
                                 text=True, timeout=800)
        assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
        state = read_state(run)
        assert state is not None
        for n in range(1, ROUNDS + 1):
            rounds.append(_round(state.urls["gateway"], n))
            if rounds[-1].agrees and not rounds[-1].void:
                break
    finally:
        subprocess.run([*cli, "down", "--run-dir", str(run)], cwd=REPO, env=env, capture_output=True, timeout=120)
        if os.environ.get("QVLLM_CALIBRATION_REPORT"):  # the figures of a full-suite run, for the record
            Path(os.environ["QVLLM_CALIBRATION_REPORT"]).write_text(json.dumps([r.record for r in rounds], indent=1))

    report = "\n".join(f"round {n}: {r.summary()}" for n, r in enumerate(rounds, 1))
    valid = [r for r in rounds if not r.void]
    assert valid, f"the host's speed changed or the reader stalled in every round:\n{report}"
    assert any(r.agrees for r in valid), f"the simulator disagrees with the engine in every round:\n{report}"
