"""Measure a real engine: its service curve (a concurrency sweep) and what a load profile does to TTFT.

:func:`sweep` keeps ``c`` streaming requests in flight for a while at each concurrency ``c`` (no
more than ``max_num_seqs``, so none waits in vLLM's queue), and records each request's TTFT (send
to first text chunk) and mean inter-token latency ((last chunk - first chunk) / (max_tokens - 1):
with ``ignore_eos`` the answer is exactly ``max_tokens`` long, and vLLM may pack several tokens
into one chunk when the reader lags, so chunks are not counted as tokens); the
medians per concurrency become :class:`~qvllm.simulate.engine.CurvePoint` s and
:meth:`~qvllm.simulate.engine.ServiceCurve.fit` turns them into a curve. Medians, not means, and
without the requests :func:`read_in_time` sets aside: on a shared host a stall of a couple of
seconds slows a few requests of one concurrency, and a mean carries it into the curve (a CI run:
mean ITL 36.4 ms at 3 running between 25.0 and 27.1 ms at 2 and 26.9 ms at 4). :func:`replay` plays a
closed-loop :class:`~qvllm.simulate.workload.Users` profile against the same URL and returns each
request's timings, so a test can compare them with the simulator's replay of the same profile.

Requests are OpenAI completions (``/v1/completions``, ``stream: true``) with ``ignore_eos`` so each
answer is exactly ``max_tokens`` long (vLLM's sampling parameter); the same prompt every time.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass

import httpx

from qvllm.simulate.engine import CurvePoint, ServiceCurve
from qvllm.simulate.workload import Users

COMPLETIONS_PATH = "/v1/completions"
PROMPT = "Explain in two sentences why queue depth is a better autoscaling signal than CPU."
REQUEST_TIMEOUT_S = 300.0


class CalibrationError(RuntimeError):
    """The engine did not answer as a streaming OpenAI completions server; the message says how."""


@dataclass(frozen=True)
class Timing:
    """One measured request: sent, first text chunk, last chunk (monotonic seconds), tokens generated."""

    sent: float
    first: float
    last: float
    tokens: int

    @property
    def ttft_s(self) -> float:
        """Send to first token."""
        return self.first - self.sent

    @property
    def itl_s(self) -> float | None:
        """Mean time between tokens after the first (None with one token)."""
        return (self.last - self.first) / (self.tokens - 1) if self.tokens > 1 else None


# A request whose inter-token latency is under this share of its group's median was read in one
# burst: the whole answer had arrived before the reader ran (a CI run: 4 requests sent together at
# 73.0 s, TTFT 4.75 s each, first to last chunk under 0.05 ms for 64 tokens that the engine decodes
# at about 26 ms each). Its "first token" is when the reader woke, not when the engine answered.
READ_LATE_SHARE = 0.1


def read_in_time(timings: list[Timing]) -> tuple[list[Timing], list[Timing]]:
    """``(in_time, read_late)``: split ``timings`` by :data:`READ_LATE_SHARE` of their median ITL.

    Requests of one token (no ITL) count as in time. The split is relative, so an engine that
    really answers in one burst (a tiny model: 0.25 ms a token) keeps all its requests.
    """
    itls = [t.itl_s for t in timings if t.itl_s is not None]
    if not itls:
        return list(timings), []
    floor = READ_LATE_SHARE * statistics.median(itls)
    late = [t.itl_s is not None and t.itl_s < floor for t in timings]
    return [t for t, x in zip(timings, late) if not x], [t for t, x in zip(timings, late) if x]


def curve_point(running: int, timings: list[Timing]) -> CurvePoint:
    """One :class:`CurvePoint` from the requests of one concurrency, with the median of each figure.

    TTFT and ITL are the medians over the requests :func:`read_in_time` keeps; the TTFT's coefficient
    of variation is the scaled median absolute deviation over the median (1.4826 * MAD is the standard
    deviation of a normal distribution), so a stalled minority does not set the spread either.
    """
    kept, _ = read_in_time(timings)
    ttfts = [t.ttft_s for t in kept]
    median = statistics.median(ttfts)
    mad = statistics.median(abs(x - median) for x in ttfts)
    cv = 1.4826 * mad / median if median > 0 else 0.0
    return CurvePoint(float(running), median, statistics.median(t.itl_s for t in kept if t.itl_s is not None),
                      ttft_cv=cv)


async def _one(client: httpx.AsyncClient, model: str, max_tokens: int) -> Timing:
    body = {"model": model, "prompt": PROMPT, "max_tokens": max_tokens, "stream": True, "ignore_eos": True,
            "temperature": 0}
    sent = time.monotonic()
    first = last = None
    async with client.stream("POST", COMPLETIONS_PATH, json=body) as resp:
        if resp.status_code != 200:
            text = (await resp.aread()).decode(errors="replace")[:300]
            raise CalibrationError(f"POST {COMPLETIONS_PATH} answered {resp.status_code}: {text}")
        async for line in resp.aiter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            if any(choice.get("text") for choice in chunk.get("choices", [])):
                now = time.monotonic()
                first = now if first is None else first
                last = now
    if first is None or last is None:
        raise CalibrationError("the stream carried no text")
    return Timing(sent, first, last, max_tokens)


async def model_name(client: httpx.AsyncClient) -> str:
    """The first model id of ``GET /v1/models``."""
    resp = await client.get("/v1/models")
    try:
        return str(resp.json()["data"][0]["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise CalibrationError(f"GET /v1/models answered {resp.status_code}: no model id") from None


async def _closed_loop(client: httpx.AsyncClient, model: str, max_tokens: int, users: int, until: float,
                       out: list[Timing]) -> None:
    async def user() -> None:
        while time.monotonic() < until:
            out.append(await _one(client, model, max_tokens))

    await asyncio.gather(*(user() for _ in range(users)))


async def _sweep(url: str, max_num_seqs: int, seconds: float, max_tokens: int,
                 concurrencies: tuple[int, ...] | None) -> list[CurvePoint]:
    levels = concurrencies or tuple(range(1, max_num_seqs + 1))
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        model = await model_name(client)
        await _one(client, model, max_tokens)  # warm-up: the first request pays one-time costs
        points = []
        for c in levels:
            timings: list[Timing] = []
            await _closed_loop(client, model, max_tokens, c, time.monotonic() + seconds, timings)
            points.append(curve_point(min(c, max_num_seqs), timings))
        return points


def sweep(url: str, max_num_seqs: int, *, seconds: float = 8.0, max_tokens: int = 64,
          concurrencies: tuple[int, ...] | None = None) -> list[CurvePoint]:
    """Measure one point per concurrency (default 1..``max_num_seqs``), ``seconds`` each, against ``url``."""
    return asyncio.run(_sweep(url.rstrip("/"), max_num_seqs, seconds, max_tokens, concurrencies))


def calibrate(url: str, max_num_seqs: int, *, seconds: float = 8.0, max_tokens: int = 64,
              source: str = "") -> tuple[ServiceCurve, list[CurvePoint]]:
    """:func:`sweep` then :meth:`ServiceCurve.fit`; returns the curve and the points."""
    points = sweep(url, max_num_seqs, seconds=seconds, max_tokens=max_tokens)
    return ServiceCurve.fit(points, max_num_seqs, source or f"calibrated against {url}"), points


async def _replay(url: str, users: Users) -> list[Timing]:
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        model = await model_name(client)
        start = time.monotonic()
        out: list[Timing] = []
        tasks: list[asyncio.Task[None]] = []
        active: list[int] = []

        async def user(uid: int) -> None:
            while uid < active[0] and time.monotonic() < start + users.duration_s:
                out.append(await _one(client, model, users.output_tokens))

        active.append(0)
        for stage in users.stages:  # users start at once at each stage (spawn rates are ignored here)
            previous = active[0]
            active[0] = stage.users
            tasks += [asyncio.ensure_future(user(uid)) for uid in range(previous, stage.users)]
            await asyncio.sleep(max(start + stage.until_s - time.monotonic(), 0))
        await asyncio.gather(*tasks)
        return [Timing(t.sent - start, t.first - start, t.last - start, t.tokens) for t in out]


def replay(url: str, users: Users) -> list[Timing]:
    """Play ``users`` against ``url`` (each stage's users start at once; times relative to the start)."""
    return asyncio.run(_replay(url.rstrip("/"), users))
