"""One vLLM replica in the replay: batch slots, vLLM's queue, and what a request's TTFT spread touches."""

from __future__ import annotations

import pytest

from app_config import config_from_dict
from qvllm.loadtest.profiles import Stage
from qvllm.scaling import ScalingSpec
from qvllm.simulate.cluster import simulate
from qvllm.simulate.engine import ServiceCurve
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
