"""Overload benchmark (``make bench-overload``): no request is lost silently under overload.

On the local stack with its default real model (SmolLM2-135M-Instruct streamed from moto S3, the
real CPU vLLM, started by the real ``qvllm local up``), the gateway's admission is set small
(``--max-in-flight`` slots plus ``--max-queue`` waiters: its admission capacity), and
``--factor`` times that many clients send requests back to back for ``--seconds`` (half of them
streaming, half not). Every request must end as one of:

- completed: 200 with a whole answer (a stream ends with ``data: [DONE]`` and carries no error
  event; a plain answer has its ``choices`` and a ``finish_reason``);
- 429 with ``Retry-After`` (no admission slot: queue full or queue timeout);
- 503 with ``Retry-After`` (no engine could take it).

Anything else is counted ``lost`` (a connection error, another status, a 429/503 without
``Retry-After``, a cut or errored stream), and a request still unanswered after the configured
bound (the queue timeout plus ``--answer-bound`` seconds for the answer itself) is counted
``hung``. The gateway's own rejection counters are read from its /metrics and printed beside the
client's counts.

The last line is ``key=value`` pairs; sent = completed + r429 + r503 + lost + hung. Measured on a
shared machine: throughput and latencies move with its load; the counts of lost and hung must not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.gateway.settings import settings_env  # noqa: E402
from tests.support.local_stack import running_local_stack  # noqa: E402

CHAT = "/v1/chat/completions"
OUTCOMES = ("completed", "r429", "r503", "lost", "hung")


@dataclass
class Tally:
    """Outcomes and their latencies (seconds), plus one example of each kind of loss."""

    counts: Counter = field(default_factory=Counter)
    latency: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in OUTCOMES})
    lost_examples: dict[str, str] = field(default_factory=dict)

    def add(self, outcome: str, seconds: float, why: str = "") -> None:
        self.counts[outcome] += 1
        self.latency[outcome].append(seconds)
        if outcome == "lost" and why.split(":")[0] not in self.lost_examples:
            self.lost_examples[why.split(":")[0]] = why[:300]


def classify(status: int, headers: httpx.Headers, body: str, stream: bool) -> tuple[str, str]:
    """(outcome, why) of one finished request; see the module docstring."""
    if status in (429, 503):
        if "retry-after" not in headers:
            return "lost", f"{status} without Retry-After: {body[:200]}"
        return ("r429" if status == 429 else "r503"), ""
    if status != 200:
        return "lost", f"status {status}: {body[:200]}"
    if stream:
        events = [line[6:] for line in body.split("\n") if line.startswith("data: ")]
        if not events or events[-1] != "[DONE]":
            return "lost", f"stream cut: last event {events[-1][:200] if events else None}"
        if any('"error"' in e and "error" in json.loads(e) for e in events[:-1]):
            return "lost", f"error event: {next(e for e in events if 'error' in e)[:200]}"
        return "completed", ""
    try:
        choice = json.loads(body)["choices"][0]
    except (ValueError, KeyError, IndexError):
        return "lost", f"bad body: {body[:200]}"
    return ("completed", "") if choice.get("finish_reason") else ("lost", f"no finish_reason: {body[:200]}")


async def one_request(client: httpx.AsyncClient, url: str, model: str, stream: bool, max_tokens: int,
                      bound: float, tally: Tally) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "Say something about the sea."}],
            "max_tokens": max_tokens, "stream": stream}
    start = time.perf_counter()
    try:
        async with asyncio.timeout(bound):
            async with client.stream("POST", url + CHAT, json=body) as resp:
                text = (await resp.aread()).decode(errors="replace")
        outcome, why = classify(resp.status_code, resp.headers, text, stream)
    except TimeoutError:
        outcome, why = "hung", ""
    except httpx.HTTPError as exc:
        outcome, why = "lost", f"{type(exc).__name__}: {exc}"
    tally.add(outcome, time.perf_counter() - start, why)


async def drive(url: str, model: str, clients: int, seconds: float, max_tokens: int, bound: float) -> Tally:
    """``clients`` loops, each sending its next request when the last one ended, for ``seconds``."""
    tally = Tally()
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=httpx.Timeout(bound + 5), limits=limits) as client:

        async def loop(i: int) -> None:
            n = 0
            while time.perf_counter() < stop_at:
                await one_request(client, url, model, (i + n) % 2 == 0, max_tokens, bound, tally)
                n += 1

        await asyncio.gather(*(loop(i) for i in range(clients)))
    return tally


def gateway_rejections(url: str) -> dict[str, float]:
    """``gateway_rejected_requests_total`` by reason, and upstream errors by kind, from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text):
        for s in family.samples:
            if s.name == "gateway_rejected_requests_total":
                out[s.labels["reason"]] = s.value
            elif s.name == "gateway_upstream_errors_total":
                out["upstream_" + s.labels["kind"]] = s.value
    return out


def ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    values = sorted(values)
    return f"{values[min(len(values) - 1, int(q * len(values)))] * 1000:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long new requests are sent")
    parser.add_argument("--factor", type=int, default=10, help="clients per unit of admission capacity")
    parser.add_argument("--max-in-flight", type=int, default=4, help="gateway admission slots (engine max-num-seqs)")
    parser.add_argument("--max-queue", type=int, default=4, help="gateway admission queue")
    parser.add_argument("--queue-timeout", type=float, default=5.0, help="gateway queue timeout, seconds")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--answer-bound", type=float, default=120.0,
                        help="seconds an admitted answer may take before the client counts it hung")
    parser.add_argument("--model", default=None, help="local up --model (default: the stack's default)")
    args = parser.parse_args()

    capacity = args.max_in_flight + args.max_queue
    clients = args.factor * capacity
    bound = args.queue_timeout + args.answer_bound
    gateway_env = settings_env(max_in_flight=args.max_in_flight, max_queue=args.max_queue,
                               queue_timeout_seconds=args.queue_timeout)
    os.environ.update(gateway_env)  # `local up` passes its environment to the gateway it starts
    up_args = ["--model", args.model] if args.model else []
    with tempfile.TemporaryDirectory(prefix="qvllm-bench-overload-") as tmp, \
            running_local_stack(Path(tmp) / "run", *up_args) as stack:
        gateway, model = stack.state.urls["gateway"], stack.state.model["served_model_name"]
        print(f"local stack: model {model}, {len(stack.state.engines)} engine(s); gateway "
              + " ".join(f"{k}={v}" for k, v in gateway_env.items()))
        print(f"driving {clients} clients ({args.factor}x admission capacity {capacity}) for {args.seconds:g} s, "
              f"max_tokens {args.max_tokens}, half streaming; hung = no answer within {bound:g} s")
        start = time.perf_counter()
        tally = asyncio.run(drive(gateway, model, clients, args.seconds, args.max_tokens, bound))
        wall = time.perf_counter() - start
        server = gateway_rejections(gateway)
    c = tally.counts
    sent = sum(c.values())
    for outcome in OUTCOMES:
        lat = tally.latency[outcome]
        print(f"  {outcome:9} {c[outcome]:6d}   latency p50 {ms(lat, 0.5):>6} ms  p99 {ms(lat, 0.99):>6} ms  "
              f"max {ms(lat, 1.0):>6} ms")
    for why in tally.lost_examples.values():
        print(f"  lost, e.g.: {why}")
    print("gateway /metrics: " + (", ".join(f"{k}={v:g}" for k, v in sorted(server.items())) or "no rejections"))
    print(f"sent {sent} in {wall:.1f} s (sending stopped at {args.seconds:g} s, then the last answers were awaited); "
          f"completed {c['completed'] / wall:.1f}/s. Machine shared and loaded: rates move, lost/hung must be 0.")
    ok = c["lost"] == 0 and c["hung"] == 0 and sent == sum(c[o] for o in OUTCOMES)
    print(f"sent={sent} completed={c['completed']} r429={c['r429']} r503={c['r503']} lost={c['lost']} hung={c['hung']} "
          f"clients={clients} capacity={capacity} seconds={args.seconds:g} "
          f"completed_per_s={c['completed'] / wall:.2f} r429_p50_ms={ms(tally.latency['r429'], 0.5)} "
          f"completed_p50_ms={ms(tally.latency['completed'], 0.5)} ok={str(ok).lower()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
