"""The cold-start model: the phases sum as documented, each switch removes what it says, the
reference demo's breakdown is the default budget, and bad figures are named."""

from __future__ import annotations

import types

import pytest

from app_config import config_from_dict
from app_config.cold_start import (
    MILESTONE_NAMES,
    PHASES,
    ColdStartError,
    ColdStartParameters,
    cold_start_budget,
    deployment_budget,
)
from app_config.constants import VLLM_READINESS_PROBE_PERIOD_SECONDS, VLLM_STARTUP_PROBE_PERIOD_SECONDS
from app_config.loader import ConfigError

PARAMS = ColdStartParameters()
ENGINE_PHASES = ("weights_stream", "load_to_gpu", "compile", "cuda_graphs", "engine_init")


def _budget(**switches):
    return cold_start_budget(PARAMS, instance_type="g5.2xlarge", soci=True, **switches)


def test_phases_sum_to_the_total_in_order():
    budget = _budget()
    assert tuple(p.name for p in budget.phases) == PHASES
    assert budget.total_s == pytest.approx(sum(budget.seconds(p) for p in PHASES))
    assert budget.milestones()["ready"] == pytest.approx(budget.total_s)
    assert list(budget.milestones()) == list(MILESTONE_NAMES)


def test_reference_demo_breakdown_is_the_default_budget():
    """Node 47 s, image 44 s (AWS measured 44.974 s for SOCI on Bottlerocket), vLLM 51 s with a
    compile-cache hit: stream ~2 s, load ~23 s, compile ~8 s, graphs ~1 s, init ~17 s."""
    budget = _budget(compile_cache_hit=True)
    assert budget.seconds("node_launch") == 47.0
    assert budget.seconds("image_pull") == pytest.approx(44.974)
    assert sum(budget.seconds(p) for p in ENGINE_PHASES) == pytest.approx(51, abs=0.5)
    readiness = (VLLM_STARTUP_PROBE_PERIOD_SECONDS + VLLM_READINESS_PROBE_PERIOD_SECONDS) / 2
    assert budget.total_s == pytest.approx(47 + 44.974 + 51.4375 + readiness)
    assert budget.worst_case_s - budget.total_s == pytest.approx(readiness)


def test_each_switch_removes_its_phase():
    cold = _budget()
    warm = _budget(warm_node=True, image_cached=True)
    assert warm.seconds("node_launch") == 0 and warm.seconds("image_pull") == 0
    assert cold.total_s - warm.total_s == pytest.approx(47 + 44.974)
    plain = cold_start_budget(PARAMS, instance_type="g5.2xlarge", soci=False)
    assert plain.seconds("image_pull") == pytest.approx(112.33)
    assert cold.seconds("compile") - _budget(compile_cache_hit=True).seconds("compile") == pytest.approx(31.58 - 8)


def test_sizes_scale_the_transfer_phases():
    big = ColdStartParameters(model_gib=7.8, image_bytes=PARAMS.image_bytes * 2)
    budget = cold_start_budget(big, instance_type="g5.xlarge", soci=True)
    assert budget.seconds("weights_stream") == pytest.approx(2 * _budget().seconds("weights_stream"))
    assert budget.seconds("load_to_gpu") == pytest.approx(46.0)
    assert budget.seconds("image_pull") == pytest.approx(2 * 44.974)


def test_unknown_family_takes_the_default_and_says_so():
    budget = cold_start_budget(PARAMS, instance_type="p5.48xlarge", soci=True)
    phase = budget.phases[0]
    assert phase.seconds == PARAMS.node_launch_default_seconds and "'p5'" in phase.source


def test_bad_figures_are_named():
    with pytest.raises(ColdStartError, match="stream_gib_per_second"):
        ColdStartParameters(stream_gib_per_second=0)
    with pytest.raises(ColdStartError, match=r"node_launch_seconds\['g6'\]"):
        ColdStartParameters(node_launch_seconds={"g6": -1})
    with pytest.raises(ConfigError, match="simulation.cold_start.model_gib"):
        config_from_dict({"simulation": {"cold_start": {"model_gib": -1}}})


def test_deployment_budget_follows_the_config_and_the_headroom_switches():
    config = config_from_dict({"simulation": {"cold_start": {"node_launch_seconds": {"g5": 60}}},
                               "karpenter": {"gpu": {"soci_parallel_pull": False}}})
    budget = deployment_budget(config)
    assert budget.seconds("node_launch") == 60 and budget.seconds("image_pull") == pytest.approx(112.33)
    assert budget.conditions["compile_cache_hit"] is False
    # The warm-headroom and compile-cache settings are read when the config has them.
    with_levers = types.SimpleNamespace(
        karpenter=config.karpenter, simulation=config.simulation,
        scaling=types.SimpleNamespace(warm_gpu_nodes=1), vllm=types.SimpleNamespace(compile_cache=types.SimpleNamespace(enabled=True)))
    warm = deployment_budget(with_levers)
    assert warm.seconds("node_launch") == 0 and warm.seconds("image_pull") == 0
    assert warm.seconds("compile") == PARAMS.compile_hit_seconds
    assert deployment_budget(with_levers, warm_node=False).seconds("node_launch") == 60


def test_dashboard_pod_table_uses_the_model_milestone_names():
    import asyncio

    from textual.app import App

    from qvllm.dashboard.widgets.panels import PodsTable

    class Host(App):
        def compose(self):
            yield PodsTable()

    async def columns():
        app = Host()
        async with app.run_test():
            return [str(c.label) for c in app.query_one(PodsTable).columns.values()]

    assert asyncio.run(columns())[3:] == list(MILESTONE_NAMES)
