"""``vllm --shutdown-timeout`` comes from the pod's grace: what is left after the preStop sleep and
vLLM's exit margin (a real engine drains with it: tests/charts/test_vllm_engine_args.py)."""

from __future__ import annotations

import pytest

from app_config import ConfigError, config_from_dict
from app_config.constants import VLLM_EXIT_MARGIN_SECONDS
from k8s_charts.vllm import vllm_args


@pytest.mark.parametrize("grace, pre_stop", [(120, 15), (300, 30), (46, 30), (30, 0), (16, 0)])
def test_the_drain_fits_between_the_pre_stop_sleep_and_the_grace(grace, pre_stop):
    config = config_from_dict({"vllm": {"termination_grace_period_seconds": grace, "pre_stop_delay_seconds": pre_stop}})
    args = vllm_args(config.vllm, config.model, "s3://bucket/models/m/")
    drain = int(args[args.index("--shutdown-timeout") + 1])
    assert drain >= 1
    assert pre_stop + drain + VLLM_EXIT_MARGIN_SECONDS == grace


@pytest.mark.parametrize(
    "vllm, expected",
    [
        ({"termination_grace_period_seconds": 30},
         "vllm.termination_grace_period_seconds (30) must exceed vllm.pre_stop_delay_seconds (15) by more than 15 s"),
        ({"termination_grace_period_seconds": 60, "pre_stop_delay_seconds": 45}, "vllm.pre_stop_delay_seconds (45)"),
        ({"extra_args": ["--shutdown-timeout", "5"]}, "set vllm.termination_grace_period_seconds instead"),
        ({"extra_args": ["--shutdown_timeout=5"]}, "set vllm.termination_grace_period_seconds instead"),
        ({"extra_args": ["--shutdown-timeout 5"]}, "set vllm.termination_grace_period_seconds instead"),
        ({"termination_grace_period_seconds": 29},
         "vllm.termination_grace_period_seconds (29) must exceed vllm.pre_stop_delay_seconds (15) by more than 15 s"),
    ],
)
def test_a_grace_without_room_for_a_drain_fails_naming_the_fields(vllm, expected):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"vllm": vllm})
    assert expected in str(info.value), str(info.value)
