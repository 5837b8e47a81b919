"""Local demo benchmark (``make bench-local``): what a user of `make local` gets.

In one run, on the local stack with its default real model (SmolLM2-135M-Instruct streamed from
moto S3 with the Run:ai streamer), started by the real ``qvllm local up``:

1. time to ready of each engine, split into its phases (durations of this run), with the
   streamer's reported rate; and the model folder check/preparation and upload times;
2. through the gateway: the first answer's TTFT, then ``--rounds`` rounds of one streamed
   200-token answer (TTFT and tokens/s per round; median and range);
3. the watchable-scaling profile (``qvllm loadtest --profile queue``) while the dashboard's poller
   samples the engines every 0.5 s: the share of loaded samples with
   ``vllm:num_requests_waiting`` > 0, and the peak desired replicas of the scaling math.

The last line is ``key=value`` pairs. Measured on a shared machine, figures move with its load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.local_stack import running_local_stack  # noqa: E402

QUESTION = "What is the capital of France?"


def stream_once(gateway: str, model: str, max_tokens: int, ignore_eos: bool) -> tuple[float, float | None, str]:
    """One streamed chat answer: ``(TTFT s, tokens/s after the first token or None, text)``."""
    body = {"model": model, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": max_tokens,
            "stream": True, "stream_options": {"include_usage": True}, "temperature": 0}
    if ignore_eos:
        body["ignore_eos"] = True
    start = time.perf_counter()
    first = None
    tokens = 0
    text = ""
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", json=body, timeout=600) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            chunk = json.loads(line[5:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            delta = (chunk.get("choices") or [{}])[0].get("delta") or {}
            if delta.get("content"):
                first = first or time.perf_counter()
                text += delta["content"]
    end = time.perf_counter()
    ttft = (first or end) - start
    tps = (tokens - 1) / (end - first) if first and tokens > 1 and end > first else None
    return ttft, tps, text


def watch_queue_profile(run_dir: Path, gateway: str) -> tuple[float, int, int]:
    """Run the queue profile; ``(share of loaded samples with waiting > 0, peak desired, samples)``."""
    from app_config.loader import config_from_dict
    from qvllm.dashboard.data.local import LocalEngines
    from qvllm.dashboard.data.sources import Poller
    from qvllm.scaling import ScalingSpec

    config = config_from_dict({})
    poller = Poller(None, ScalingSpec.from_config(config.scaling), config.cluster.hpa_sync_period_seconds,
                    local=LocalEngines(run_dir))
    samples: list[tuple[float, float, int]] = []
    running = threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            snap = poller.poll()
            if snap.metrics is not None and snap.decision is not None:
                samples.append((snap.metrics.running or 0.0, snap.metrics.waiting or 0.0, snap.decision.desired))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        load = subprocess.run([sys.executable, "-m", "qvllm.cli", "loadtest", gateway, "--profile", "queue"],
                              cwd=ROOT, capture_output=True, text=True, timeout=900,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        running.clear()
        sampler.join(timeout=30)
    print(load.stdout.strip().split("=== qvllm load test ===")[-1].strip())
    loaded = [s for s in samples if s[0] or s[1]]
    share = sum(1 for s in loaded if s[1] > 0) / max(len(loaded), 1)
    return share, max((s[2] for s in samples), default=0), len(loaded)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="streamed 200-token answers after the first")
    parser.add_argument("--model", default=None, help="local up --model (default: the stack's default)")
    args = parser.parse_args()
    up_args = ["--model", args.model] if args.model else []
    with tempfile.TemporaryDirectory(prefix="qvllm-bench-local-") as tmp, \
            running_local_stack(Path(tmp) / "run", *up_args) as stack:
        state = stack.state
        gateway, model = state.urls["gateway"], state.model["served_model_name"]
        engine = state.engines["vllm-0"]
        print(f"model {model} ({state.model['bytes']} bytes, {state.model['dtype']}), context "
              f"{state.model['max_model_len']} tokens; command: qvllm local up {' '.join(up_args)}")
        print(f"time to ready {engine['time_to_ready_s']:.1f} s: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in engine["phases"].items()))
        stream = engine.get("weights_stream") or {}
        if stream:
            print(f"streamer: {stream['size']} in {stream['seconds']} s, {stream['rate_mib_s']} MiB/s")
        print(f"model folder {state.timings.get('prepare_s', 0):.1f} s, upload {state.timings['upload_s']:.1f} s, "
              f"whole stack {state.timings['total_up_s']:.1f} s")

        first_ttft, _, first_text = stream_once(gateway, model, 40, ignore_eos=False)
        print(f"first answer: TTFT {first_ttft * 1000:.0f} ms: {first_text!r}")
        ttfts, rates = [], []
        for _ in range(args.rounds):
            ttft, tps, _ = stream_once(gateway, model, 200, ignore_eos=True)
            ttfts.append(ttft)
            rates.append(tps or 0.0)
        print(f"{args.rounds} x 200-token answers: TTFT median {statistics.median(ttfts) * 1000:.0f} ms "
              f"(range {min(ttfts) * 1000:.0f}-{max(ttfts) * 1000:.0f}), tokens/s median {statistics.median(rates):.1f} "
              f"(range {min(rates):.1f}-{max(rates):.1f})")

        share, peak, loaded = watch_queue_profile(stack.run_dir, gateway)
        print(f"queue profile: waiting > 0 in {share:.0%} of {loaded} loaded samples, peak desired replicas {peak} "
              f"(current {len(state.engines)})")
        phases = " ".join(f"{k}={v}" for k, v in engine["phases"].items())
        print(f"time_to_ready_s={engine['time_to_ready_s']} {phases} stream_mib_s={stream.get('rate_mib_s', '')} "
              f"first_ttft_ms={first_ttft * 1000:.0f} ttft_p50_ms={statistics.median(ttfts) * 1000:.0f} "
              f"tokens_per_s_p50={statistics.median(rates):.1f} waiting_share={share:.2f} peak_desired={peak}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
