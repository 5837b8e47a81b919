"""The README's figures are what the commands it names print today."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from app_config import config_from_dict
from app_config.cold_start import deployment_budget
from qvllm.cli import main

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_one_to_ten_in_one_decision_is_printed_by_the_command_named():
    match = re.search(r"`qvllm (scale-math [^`]+)` prints `([^`]+)`", README)
    assert match, "the README names the scale-math command and the line it prints"
    result = CliRunner().invoke(main, shlex.split(match.group(1)))
    assert result.exit_code == 0, result.output
    assert match.group(2) in result.output


def test_cold_start_figures_are_the_model_budget():
    budget = deployment_budget(config_from_dict({}), warm_node=False)
    claim = README.split("**Cold start**")[1].split("- **Spot savings**")[0]
    assert f"{budget.total_s:.1f} s" in claim
    shown = {"node": "node_launch", "image": "image_pull", "weights": "weights_stream", "load": "load_to_gpu",
             "compile": "compile", "CUDA graphs": "cuda_graphs", "engine": "engine_init", "readiness": "readiness"}
    for word, phase in shown.items():
        figure = f"{budget.seconds(phase):.1f}".rstrip("0").rstrip(".")
        assert f"{word} {figure} s" in " ".join(claim.split()), (word, figure)
    miss = deployment_budget(config_from_dict({}), warm_node=False, compile_cache_hit=False)
    assert f"compiles for {miss.seconds('compile'):.1f} s instead" in " ".join(claim.split())
    warm = deployment_budget(config_from_dict({"scaling": {"warm_gpu_nodes": 1}}))
    assert "`scaling.warm_gpu_nodes: 1`" in claim and f"{warm.total_s:.1f} s" in claim


def test_warm_node_figure_is_printed_by_simulate(tmp_path):
    claim = " ".join(README.split("**Cold start**")[1].split("- **Spot savings**")[0].split())
    figure = re.search(r"`scaling.warm_gpu_nodes: 1`\) the next pod skips the node launch and the image pull: "
                       r"([\d.]+) s \(`qvllm (simulate --config warm.yaml)` with that setting prints it\)", claim)
    assert figure, "the README names the warm-node figure and the command"
    (tmp_path / "warm.yaml").write_text("scaling:\n  warm_gpu_nodes: 1\n")
    result = CliRunner().invoke(main, [*shlex.split(figure.group(2).replace("warm.yaml", str(tmp_path / "warm.yaml"))),
                                       "--profile", "short", "--png", ""])
    assert result.exit_code == 0, result.output
    assert f"on a warm node (scaling.warm_gpu_nodes 1: node up, image pulled): total {figure.group(1)} s" in result.output


def test_no_spot_saving_is_claimed_while_no_spot_price_ships():
    prices = config_from_dict({}).simulation.prices
    assert all(p.spot_usd_per_hour is None for p in prices.values())
    assert "no figure is claimed" in README and "60-70" not in README


def test_shutdown_figures_are_the_owners():
    """The drain figures of the gateway and of a vLLM pod, as their owners set them today."""
    from app_config.constants import VLLM_EXIT_MARGIN_SECONDS
    from services.gateway.settings import GRACEFUL_SHUTDOWN_SECONDS, STREAM_END_MARGIN_SECONDS

    from k8s_charts.gateway import PRE_STOP_SECONDS, TERMINATION_GRACE_SECONDS

    text = " ".join(README.split())
    vllm = config_from_dict({}).vllm
    assert (f"it comes after the gateway pod's {PRE_STOP_SECONDS}-s preStop sleep, within its "
            f"{TERMINATION_GRACE_SECONDS}-s grace") in text
    assert f"run to their end, for up to {GRACEFUL_SHUTDOWN_SECONDS - STREAM_END_MARGIN_SECONDS} s" in text
    assert (f"after its {vllm.pre_stop_delay_seconds}-s preStop sleep it finishes the answers it is running, for up "
            f"to `vllm.termination_grace_period_seconds` less the sleep and a {VLLM_EXIT_MARGIN_SECONDS}-s exit "
            f"margin (vLLM's `--shutdown-timeout`, {vllm.shutdown_timeout_seconds} s by default") in text
