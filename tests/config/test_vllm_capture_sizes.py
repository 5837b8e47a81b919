"""``vllm.cudagraph_capture_sizes``: one setting of vLLM's CUDA-graph capture sizes, bounded by
``vllm.max_num_seqs`` (vLLM's parser reads the rendered flag: tests/charts/test_vllm_engine_args.py)."""

from __future__ import annotations

import pytest

from app_config import ConfigError, config_from_dict
from app_config.model import default_cudagraph_capture_sizes


@pytest.mark.parametrize(
    "max_num_seqs, expected",
    [
        (1, [1]),
        (3, [1, 2, 3]),
        (4, [1, 2, 4]),
        (32, [1, 2, 4, 8, 16, 24, 32]),
        (33, [1, 2, 4, 8, 16, 24, 32, 33]),
        (260, [1, 2, 4, *range(8, 256, 8), 256, 260]),
    ],
)
def test_default_sizes_are_vllms_grid_cut_at_max_num_seqs(max_num_seqs, expected):
    assert default_cudagraph_capture_sizes(max_num_seqs) == expected


@pytest.mark.parametrize(
    "vllm, expected",
    [
        ({"cudagraph_capture_sizes": [1, 2, 64]}, "vllm.cudagraph_capture_sizes: 64 is above vllm.max_num_seqs (32)"),
        ({"cudagraph_capture_sizes": [8, 4]}, "must be a non-empty, strictly ascending list"),
        ({"cudagraph_capture_sizes": []}, "must be a non-empty, strictly ascending list"),
        ({"cudagraph_capture_sizes": [0, 4]}, "vllm.cudagraph_capture_sizes.0"),
        ({"extra_args": ["--cudagraph-capture-sizes", "1", "2"]}, "set vllm.cudagraph_capture_sizes instead"),
        ({"extra_args": ["-cc.max_cudagraph_capture_size=64"]}, "set vllm.cudagraph_capture_sizes instead"),
        ({"extra_args": ["--compilation-config", '{"cudagraph_capture_sizes": [1]}']}, "vllm.extra_args"),
    ],
)
def test_bad_capture_sizes_fail_naming_the_field(vllm, expected):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"vllm": vllm})
    assert expected in str(info.value), str(info.value)


def test_configured_sizes_are_passed_as_given():
    config = config_from_dict({"vllm": {"cudagraph_capture_sizes": [1, 4, 16], "max_num_seqs": 16}})
    assert config.vllm.capture_sizes == [1, 4, 16]
    assert config_from_dict({"vllm": {"max_num_seqs": 16}}).vllm.capture_sizes == [1, 2, 4, 8, 16]
