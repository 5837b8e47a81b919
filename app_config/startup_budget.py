"""How long vLLM may take from container start to its first ``/health`` 200: the startup probe's budget.

The startup probe counts from the container's start, so node launch and image pull are outside it;
what is inside is the engine's own start. Its worst case, per phase, in seconds:

- ``weights``: stream the weights from S3 and load them to the GPU. The reference demo's written
  breakdown (Mistral-7B AWQ, 3.9 GiB, g5.2xlarge) took about 2 s to stream and 23 s to load to the
  GPU, 25 s for 3.9 GiB; the worst case is weights as large as the GPU memory vLLM may use on the
  smallest GPU the pod may land on (``gpu_memory_gib * gpu_memory_utilization``, per GPU:
  tensor-parallel ranks load their shards at the same time), at that same rate.
- ``compile``: torch.compile with no cache hit (the first pod of a model, or the cache off). The
  demo's cache hit took about 8 s; published vLLM start logs of 1B-8B models report
  "torch.compile takes 30-51 s in total" on a miss (the line vLLM's compilation monitor logs, see
  https://docs.vllm.ai/en/latest/design/torch_compile/), so 60 s is counted.
- ``cuda_graphs``: graph capture, about 1 s in the demo for sizes bounded by ``max_num_seqs`` 32
  (at most 7 sizes), so 0.25 s per capture size is counted.
- ``engine_init``: the rest of the engine's start (profiling run, KV cache, API server), about
  17 s in the demo.

The budget is that sum times :data:`STARTUP_MARGIN`. The default deployment (24 GiB A10G/L4 as the
smallest GPU, 0.90, 7 capture sizes) models 217 s and gets a 326 s budget, close to the demo's ~330 s.
The cold-start model's engine phases can import these figures rather than restate them.
"""

from __future__ import annotations

import math

DEMO_WEIGHTS_GIB = 3.9  # the demo's weights (Mistral-7B AWQ)
DEMO_STREAM_SECONDS = 2.0  # the demo's S3 stream of those weights
DEMO_LOAD_TO_GPU_SECONDS = 23.0  # the demo's load of those weights to the GPU
WEIGHTS_SECONDS_PER_GIB = (DEMO_STREAM_SECONDS + DEMO_LOAD_TO_GPU_SECONDS) / DEMO_WEIGHTS_GIB
COMPILE_MISS_SECONDS = 60.0  # torch.compile without a cache hit (30-51 s in published vLLM logs)
CUDA_GRAPH_SECONDS_PER_SIZE = 0.25  # the demo's ~1 s for at most 7 capture sizes, rounded up
ENGINE_INIT_SECONDS = 17.0  # the demo's engine init (profiling, KV cache, API server)
STARTUP_MARGIN = 1.5  # the probe allows 50 % more than the modeled worst case


def engine_start_worst_case(
    gpu_memory_gib: float, gpu_memory_utilization: float, capture_sizes: int
) -> dict[str, float]:
    """The modeled worst case of each phase of vLLM's start, in seconds, keyed by phase name
    (``weights``, ``compile``, ``cuda_graphs``, ``engine_init``; see the module docstring).

    Args:
        gpu_memory_gib: memory of one GPU, GiB (the smallest GPU the pod may land on).
        gpu_memory_utilization: vLLM's ``--gpu-memory-utilization`` (0 to 1].
        capture_sizes: how many CUDA-graph capture sizes the pod gets.

    Raises:
        ValueError: a non-positive memory, a utilization outside (0, 1], a negative size count.
    """
    if gpu_memory_gib <= 0 or not 0 < gpu_memory_utilization <= 1 or capture_sizes < 0:
        raise ValueError(
            f"need gpu_memory_gib > 0, 0 < gpu_memory_utilization <= 1, capture_sizes >= 0; got "
            f"{gpu_memory_gib}, {gpu_memory_utilization}, {capture_sizes}"
        )
    return {
        "weights": gpu_memory_gib * gpu_memory_utilization * WEIGHTS_SECONDS_PER_GIB,
        "compile": COMPILE_MISS_SECONDS,
        "cuda_graphs": capture_sizes * CUDA_GRAPH_SECONDS_PER_SIZE,
        "engine_init": ENGINE_INIT_SECONDS,
    }


def startup_budget_seconds(gpu_memory_gib: float, gpu_memory_utilization: float, capture_sizes: int) -> int:
    """The startup probe's budget: the modeled worst case times :data:`STARTUP_MARGIN`, whole seconds
    rounded up. Arguments and errors as :func:`engine_start_worst_case`."""
    worst = sum(engine_start_worst_case(gpu_memory_gib, gpu_memory_utilization, capture_sizes).values())
    return math.ceil(worst * STARTUP_MARGIN)
