"""One vLLM replica in the replay: batch slots, vLLM's queue, and what a request's TTFT spread touches."""

from __future__ import annotations

import pytest

from app_config import config_from_dict
from qvllm.loadtest.profiles import Stage
from qvllm.scaling import ScalingSpec
from qvllm.simulate.cluster import simulate
from qvllm.simulate.calibrate import Timing, curve_point, read_in_time
from qvllm.simulate.engine import CurvePoint, ServiceCurve
from qvllm.simulate.workload import Users

CONFIG = config_from_dict({"scaling": {"min_replicas": 1, "max_replicas": 1}, "vllm": {"max_num_seqs": 4}})
CURVE = ServiceCurve(4, ttft_base_s=0.05, ttft_per_running_s=0.01, itl_base_s=0.02, itl_per_running_s=0.001,
                     ttft_cv=0.5)
TOKENS = 65


def _replay(users: int) -> list:
    profile = Users("steady", (Stage(30, users, 1000),), prompt_tokens=20, output_tokens=TOKENS)
    result = simulate(CONFIG, ScalingSpec.from_config(CONFIG.scaling), CURVE, profile, seed=3)
    return [r for r in result.requests if r.outcome == "ok"]


def test_decoding_is_one_token_per_engine_step_whatever_the_ttft_spread():
    # A lone user: first token to last is (tokens - 1) steps of itl(1), for every request, even though
    # each request's TTFT is drawn with a CV of 0.5 (vLLM gives every running sequence one token per step).
    done = _replay(1)
    assert len(done) > 10
    for r in done:
        assert r.done - r.first_token == pytest.approx((TOKENS - 1) * CURVE.itl(1), rel=1e-6)
    ttfts = {round(r.ttft_s, 6) for r in done}
    assert len(ttfts) > len(done) // 2  # the TTFTs do vary


def test_users_beyond_max_num_seqs_wait_one_batch_each():
    # 8 users on 4 slots, in step: after the first round every request waits for the running batch
    # to finish its answers (64 steps of itl(4)), then gets its first token.
    done = _replay(8)
    later = [r for r in done if r.arrival > 10]
    assert later
    decode = (TOKENS - 1) * CURVE.itl(4)
    for r in later:
        assert decode < r.ttft_s < decode + 4 * CURVE.ttft(4, 20)


def test_one_stalled_calibration_point_does_not_set_the_full_batch_itl():
    # ITL 25, 26, 28 ms at 1, 2, 4 running lie on one line (1 ms a sequence); a stall of the host
    # during the 3-running step measured 37 ms there. The simulator decodes a full batch at itl(4):
    # a least-squares line gives 32 ms (14 % slow, and every queued request's wait with it), the
    # median of the pairwise slopes keeps 28 ms.
    points = [CurvePoint(1.0, 0.05, 0.025), CurvePoint(2.0, 0.06, 0.026), CurvePoint(3.0, 0.07, 0.037),
              CurvePoint(4.0, 0.08, 0.028)]
    curve = ServiceCurve.fit(points, 4)
    assert curve.itl(4) == pytest.approx(0.028)
    assert curve.itl(1) == pytest.approx(0.025)
    assert curve.ttft(4, 0) == pytest.approx(0.08)


def _timing(sent: float, ttft: float, itl: float, tokens: int = 64) -> Timing:
    return Timing(sent, sent + ttft, sent + ttft + itl * (tokens - 1), tokens)


def test_a_calibration_point_is_the_median_of_the_requests_read_in_time():
    # 10 requests at 26 ms a token, 3 slowed by a 2-s stall of the engine, 1 whose whole answer the
    # stalled reader took in one burst 4.7 s after sending it.
    normal = [_timing(i, 0.1 + 0.001 * i, 0.026) for i in range(10)]
    stalled = [_timing(20 + i, 2.0, 0.06) for i in range(3)]
    burst = _timing(30, 4.7, 0.0)
    in_time, late = read_in_time([*normal, *stalled, burst])
    assert late == [burst]
    assert len(in_time) == 13
    point = curve_point(3, [*normal, *stalled, burst])
    assert point.running == 3.0
    assert point.itl_s == pytest.approx(0.026)
    assert 0.1 <= point.ttft_s <= 0.11  # the mean of the 14 TTFTs is 0.84 s
    assert point.ttft_cv < 1.0


def test_an_engine_that_answers_in_one_burst_keeps_its_requests():
    # The tiny random model decodes 0.25 ms a token: a short ITL is its speed, not a late reader.
    timings = [_timing(i, 0.02, 0.00025) for i in range(8)]
    assert read_in_time(timings) == (timings, [])
