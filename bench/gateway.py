"""Gateway overhead benchmark (``make bench-gateway``).

Sends the same load, N concurrent streaming chat requests with a fixed ``max_tokens`` and
``ignore_eos`` (so every request generates exactly ``max_tokens`` tokens), directly to vLLM and
through the gateway, in one run, alternating direct/gateway rounds to cancel drift. Prints
output-token throughput of each path, their ratio (gateway/direct), and TTFT p50/p99 of each
path with the difference (added TTFT). TTFT = request sent -> first SSE token event (after vLLM's role event); tokens are counted
from the usage event (``stream_options.include_usage``).

By default it starts one real CPU vLLM with the tiny model (tests/support/vllm_server.py) and
the gateway as its own process (``python -m services.gateway``), like in the cluster.
``--upstream URL`` reuses a running vLLM instead.

Pinning (``taskset``): the engine runs on CPU 0, the gateway and this client on CPU 1, so the
gateway never competes with the engine's busy threads for a core (on two shared cores the
ratio would measure that contention, not the gateway); the output says which was done.

Aim: ratio >= 0.95 and added p50 TTFT <= 5 ms on the dev machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.gateway_process import gateway_process  # noqa: E402
from tests.support.vllm_server import running_vllm  # noqa: E402


@dataclass
class Result:
    """One request: TTFT in seconds, completion tokens (content events) received."""

    ttft: float
    tokens: int


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def one_request(client: httpx.AsyncClient, url: str, model: str, max_tokens: int) -> Result:
    """One streaming chat request; raises on a non-200 answer."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Tell me about queue-driven autoscaling."}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    ttft = None
    tokens = 0
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as resp:
        if resp.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status_code}: {(await resp.aread())[:300]!r}")
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
            choices = event.get("choices") or []
            delta = choices[0].get("delta", {}) if choices else {}
            if ttft is None and "content" in delta and "role" not in delta:  # first token event
                ttft = time.perf_counter() - start
    return Result(ttft=ttft if ttft is not None else float("nan"), tokens=tokens)


async def run_round(url: str, model: str, concurrency: int, requests: int, max_tokens: int) -> tuple[list[Result], float]:
    """``requests`` requests, ``concurrency`` at a time; returns results and wall seconds."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        sem = asyncio.Semaphore(concurrency)

        async def guarded() -> Result:
            async with sem:
                return await one_request(client, url, model, max_tokens)

        start = time.perf_counter()
        results = await asyncio.gather(*(guarded() for _ in range(requests)))
        return list(results), time.perf_counter() - start


def summarize(name: str, results: list[Result], seconds: float) -> dict[str, float]:
    """Aggregate figures of one path over all its rounds."""
    ttfts = [r.ttft for r in results]
    tokens = sum(r.tokens for r in results)
    return {
        "requests": len(results),
        "tokens": tokens,
        "tok_per_s": tokens / seconds,
        "ttft_p50_ms": percentile(ttfts, 50) * 1000,
        "ttft_p99_ms": percentile(ttfts, 99) * 1000,
    }


async def idle_ttft(direct: str, gateway: str, model: str, probes: int) -> dict[str, list[float]]:
    """TTFT of single requests on an idle engine (max_tokens=2), alternating the two paths:
    isolates the gateway's own latency from batching effects under load."""
    out: dict[str, list[float]] = {"direct": [], "gateway": []}
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(probes):
            for name, url in ((("direct", direct), ("gateway", gateway)) if i % 2 == 0 else (("gateway", gateway), ("direct", direct))):
                out[name].append((await one_request(client, url, model, 2)).ttft)
    return out


async def bench(direct: str, gateway: str, model: str, args: argparse.Namespace) -> None:
    """Warm up both paths, then alternate rounds and print the comparison."""
    await run_round(direct, model, args.concurrency, args.concurrency, 8)
    await run_round(gateway, model, args.concurrency, args.concurrency, 8)
    idle = await idle_ttft(direct, gateway, model, args.probes)
    collected: dict[str, tuple[list[Result], float]] = {"direct": ([], 0.0), "gateway": ([], 0.0)}
    for i in range(args.rounds):
        order = [("direct", direct), ("gateway", gateway)] if i % 2 == 0 else [("gateway", gateway), ("direct", direct)]
        for name, url in order:
            results, seconds = await run_round(url, model, args.concurrency, args.requests, args.max_tokens)
            bad = [r for r in results if r.tokens != args.max_tokens]
            if bad:
                raise RuntimeError(f"{name}: {len(bad)} requests did not get {args.max_tokens} tokens")
            prev, total = collected[name]
            collected[name] = (prev + results, total + seconds)
            print(f"round {i + 1} {name:8s} {sum(r.tokens for r in results) / seconds:8.1f} tok/s  {seconds:6.2f} s", flush=True)
    d = summarize("direct", *collected["direct"])
    g = summarize("gateway", *collected["gateway"])
    print()
    print(f"load: {args.rounds} rounds x {args.requests} streaming requests, {args.concurrency} concurrent, "
          f"max_tokens={args.max_tokens}, ignore_eos")
    print(f"{'path':8s} {'tok/s':>9s} {'TTFT p50 ms':>12s} {'TTFT p99 ms':>12s}")
    for name, s in (("direct", d), ("gateway", g)):
        print(f"{name:8s} {s['tok_per_s']:9.1f} {s['ttft_p50_ms']:12.1f} {s['ttft_p99_ms']:12.1f}")
    ratio = g["tok_per_s"] / d["tok_per_s"]
    added50 = g["ttft_p50_ms"] - d["ttft_p50_ms"]
    added99 = g["ttft_p99_ms"] - d["ttft_p99_ms"]
    print(f"throughput ratio gateway/direct: {ratio:.3f} (aim >= 0.95)")
    print(f"added TTFT under load p50: {added50:+.1f} ms   p99: {added99:+.1f} ms")
    i50 = {k: percentile(v, 50) * 1000 for k, v in idle.items()}
    i99 = {k: percentile(v, 99) * 1000 for k, v in idle.items()}
    print(f"idle TTFT ({args.probes} single requests each): direct p50 {i50['direct']:.1f} ms p99 {i99['direct']:.1f} ms, "
          f"gateway p50 {i50['gateway']:.1f} ms p99 {i99['gateway']:.1f} ms")
    print(f"added TTFT idle p50: {i50['gateway'] - i50['direct']:+.1f} ms (aim <= 5 ms)   "
          f"p99: {i99['gateway'] - i99['direct']:+.1f} ms")


def main() -> None:
    """Parse arguments, start what is needed, run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent requests (default 4 = vLLM max-num-seqs)")
    parser.add_argument("--requests", type=int, default=16, help="requests per round and path")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=4, help="rounds per path, alternated")
    parser.add_argument("--probes", type=int, default=40, help="idle single-request TTFT probes per path")
    parser.add_argument("--upstream", help="use this running vLLM (base URL) instead of starting one")
    parser.add_argument("--model", default="tiny-llama", help="served model name (with --upstream)")
    args = parser.parse_args()

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)  # `kill` still stops the vLLM and gateway we started

    pinned = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    engine_cpus, proxy_cpus = ("0", "1") if pinned else (None, None)
    if pinned:
        os.sched_setaffinity(0, {1})
        print("pinning (taskset): vLLM on CPU 0; the gateway and this client on CPU 1", flush=True)
    else:
        print("pinning: not possible here (needs 2 CPUs and taskset): engine, gateway and client share the CPUs")
    print("note: figures depend on what else runs on this machine", flush=True)
    with contextlib.ExitStack() as stack:
        if args.upstream:
            upstream, model = args.upstream.rstrip("/"), args.model
        else:
            print("starting vLLM (tiny model, about 60 s)...", flush=True)
            work = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-gateway-"))
            server = stack.enter_context(running_vllm(work, max_num_seqs=max(4, args.concurrency), cpus=engine_cpus))
            upstream, model = server.base_url, server.served_model_name
        gateway = stack.enter_context(gateway_process(
            cpus=proxy_cpus, upstream_url=upstream, served_model_name=model, max_in_flight=max(64, args.concurrency),
            log_level="WARNING"))
        asyncio.run(bench(upstream, gateway.url, model, args))


if __name__ == "__main__":
    main()
