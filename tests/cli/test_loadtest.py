"""Load test: the stage profiles, the Locust shape, the thresholds, and one short real headless run.

Locust monkey-patches the standard library (gevent) on import, so everything that imports
Locust runs in a subprocess; profiles and thresholds are Locust-free and tested here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from qvllm.loadtest.profiles import DEMO, SHORT, Profile, Stage, constant
from qvllm.loadtest.thresholds import RunSummary, Thresholds, judge

REPO = Path(__file__).resolve().parents[2]
FIRST_TOKEN_DELAY_S = 0.2


def test_demo_profile_is_the_reference_ramp():
    """The reference demo's ramp: 5 -> 10 -> 15 -> 50 -> 150 virtual users over 30 minutes."""
    assert [s.users for s in DEMO.stages] == [5, 10, 15, 50, 150]
    assert DEMO.duration_s == 30 * 60
    assert DEMO.tick(0) == (5, 1)
    assert DEMO.tick(3 * 60 - 0.1)[0] == 5
    assert DEMO.tick(3 * 60)[0] == 10
    assert DEMO.tick(29 * 60)[0] == 150
    assert DEMO.tick(30 * 60) is None


def test_short_profile_is_short_and_rising():
    users = [s.users for s in SHORT.stages]
    assert users == sorted(users) and SHORT.duration_s <= 180
    assert SHORT.tick(SHORT.duration_s) is None


def test_profile_validation_names_the_stage():
    with pytest.raises(ValueError, match="stage 1: until_s must increase"):
        Profile("bad", (Stage(10, 1, 1), Stage(5, 2, 1)))
    assert constant(24, 20).tick(19.9) == (24, 24.0)


@pytest.mark.parametrize(
    ("summary", "passed", "fragment"),
    [
        (RunSummary(requests=100, failures=14, p95_s=19.9), True, ""),
        (RunSummary(requests=100, failures=15, p95_s=5.0), False, "failures 15.0%"),
        (RunSummary(requests=100, failures=0, p95_s=20.0), False, "p95 20.0 s is not below 20"),
        (RunSummary(requests=0, failures=0, p95_s=None), False, "no requests"),
    ],
)
def test_thresholds_decide_the_exit_code(summary, passed, fragment):
    verdict = judge(summary, Thresholds())
    assert verdict.passed is passed
    assert verdict.exit_code == (0 if passed else 1)
    assert fragment in " ".join(verdict.reasons)


def test_locust_shape_follows_the_profile():
    """The LoadTestShape in the locustfile, driven at given run times (in a subprocess)."""
    code = textwrap.dedent(
        """
        import json, time
        from qvllm.loadtest.locustfile import StageShape
        from qvllm.loadtest.profiles import DEMO
        shape = StageShape()
        shape.profile = DEMO
        out = []
        for t in (0, 200, 400, 700, 1500, 1800):
            shape.start_time = time.perf_counter() - t
            out.append(shape.tick())
        print(json.dumps(out))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [[5, 1], [10, 1], [15, 1], [50, 2], [150, 5], None]


# ----------------------------------------------------------------------------- a real headless run
def _fake_openai_server(fail_status: int = 0):
    """The fake gateway of :mod:`tests.support.fake_openai` with this module's first-token delay."""
    from tests.support.fake_openai import fake_openai_server

    return fake_openai_server(fail_status, first_token_delay_s=FIRST_TOKEN_DELAY_S)


@pytest.mark.timeout(180)
def test_short_headless_run_passes_and_records_ttft(tmp_path):
    server = _fake_openai_server()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        summary_path = tmp_path / "summary.json"
        result = subprocess.run(
            [sys.executable, "-m", "qvllm.cli", "loadtest", url, "--profile", "constant", "--users", "3",
             "--seconds", "4", "--max-tokens", "8", "--summary-json", str(summary_path)],
            cwd=REPO, capture_output=True, text=True, timeout=150,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads(summary_path.read_text())
    assert summary["requests"] > 0 and summary["failures"] == 0 and summary["passed"] is True
    # TTFT is measured at the first content chunk, after the heartbeat comment and the delay.
    assert summary["ttft_p50_s"] >= FIRST_TOKEN_DELAY_S * 0.75
    assert summary["p95_s"] >= FIRST_TOKEN_DELAY_S * 0.75
    assert "PASS" in result.stdout


@pytest.mark.timeout(180)
def test_failing_run_exits_nonzero(tmp_path):
    """Wrong model name: every request gets 400, so failures = 100 % and the exit code is 1."""
    server = _fake_openai_server()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = subprocess.run(
            [sys.executable, "-m", "qvllm.cli", "loadtest", url, "--profile", "constant", "--users", "2",
             "--seconds", "3", "--model", "other"],
            cwd=REPO, capture_output=True, text=True, timeout=150, env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    finally:
        server.shutdown()
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "FAIL: failures 100.0%" in result.stdout


def _run_loadtest(server, *args: str) -> subprocess.CompletedProcess:
    """``qvllm loadtest URL ARGS...`` against ``server`` in a subprocess (Locust never imported here)."""
    url = f"http://127.0.0.1:{server.server_address[1]}"
    return subprocess.run(
        [sys.executable, "-m", "qvllm.cli", "loadtest", url, *args],
        cwd=REPO, capture_output=True, text=True, timeout=150, env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("users", "model_args"), [(4, []), (3, ["--model", "tiny"])], ids=["learned-model", "given-model"])
def test_several_users_all_succeed_at_a_bounded_rate(tmp_path, users, model_args):
    """Every user's session goes through Locust's HttpSession (regression: 'explicit_name'
    AttributeError for every user but the one that looked up /v1/models, and for all of them
    with --model), and the request rate stays what the streams allow."""
    seconds = 5
    server = _fake_openai_server()
    summary_path = tmp_path / "summary.json"
    try:
        result = _run_loadtest(server, "--profile", "constant", "--users", str(users), "--seconds", str(seconds),
                               "--max-tokens", "8", "--summary-json", str(summary_path), *model_args)
    finally:
        server.shutdown()
    output = result.stdout[-2000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
    assert "explicit_name" not in output
    summary = json.loads(summary_path.read_text())
    assert summary["failures"] == 0 and summary["passed"] is True, summary
    # Each request waits FIRST_TOKEN_DELAY_S for its first token: at most users / delay per second.
    ceiling = users * (seconds + 2) / FIRST_TOKEN_DELAY_S
    assert users <= summary["requests"] <= ceiling, summary
    assert server.chat_requests <= ceiling
    assert summary["ttft_p50_s"] >= FIRST_TOKEN_DELAY_S * 0.75


@pytest.mark.timeout(180)
@pytest.mark.parametrize("model_args", [[], ["--model", "tiny"]], ids=["learned-model", "given-model"])
def test_failing_server_does_not_spin_and_says_no_successful_requests(tmp_path, model_args):
    """Every chat request gets 503: each user pauses after a failure (no busy loop), the
    summary reports no successful requests instead of 0.00 s times, and the exit code is 1."""
    users, seconds = 3, 4
    server = _fake_openai_server(fail_status=503)
    summary_path = tmp_path / "summary.json"
    try:
        started = time.monotonic()
        result = _run_loadtest(server, "--profile", "constant", "--users", str(users), "--seconds", str(seconds),
                               "--summary-json", str(summary_path), *model_args)
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
    output = result.stdout[-2000:] + result.stderr[-2000:]
    assert result.returncode == 1, output
    summary = json.loads(summary_path.read_text())
    assert summary["requests"] > 0 and summary["failures"] == summary["requests"], summary
    assert summary["successes"] == 0 and summary["p95_s"] is None and summary["ttft_p50_s"] is None
    # One request per user per second of failure pause (1 s), plus the first one: not thousands.
    ceiling = users * (seconds + 2)
    assert summary["requests"] <= ceiling, summary
    assert server.chat_requests <= ceiling
    assert "no successful requests" in result.stdout
    assert "0.00 s" not in result.stdout
    assert "FAIL: failures 100.0%" in result.stdout
    assert elapsed < 60


def test_summary_without_successes_prints_no_times():
    from qvllm.loadtest.thresholds import format_summary

    none_ok = RunSummary(requests=7, failures=7, p95_s=None)
    text = format_summary(none_ok, judge(none_ok))
    assert "no successful requests" in text and "0.00 s" not in text and "p95 None" not in text
    assert judge(none_ok).reasons == ("failures 100.0% (7/7) are not below 15%", "no successful requests")
    nothing = RunSummary(requests=0, failures=0, p95_s=None)
    assert "no requests completed" in format_summary(nothing, judge(nothing))
