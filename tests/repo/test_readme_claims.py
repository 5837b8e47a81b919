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


def test_no_spot_saving_is_claimed_while_no_spot_price_ships():
    prices = config_from_dict({}).simulation.prices
    assert all(p.spot_usd_per_hour is None for p in prices.values())
    assert "no figure is claimed" in README and "60-70" not in README
