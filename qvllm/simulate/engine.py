"""One vLLM replica's service curve: TTFT and inter-token latency as a function of running sequences.

vLLM runs at most ``max_num_seqs`` sequences at once (continuous batching); the others wait in
its queue (``vllm:num_requests_waiting``). The curve is linear in ``n``, the sequences running:

- time to first token of a request admitted while ``n`` others run (``n`` includes it):
  ``ttft_base + ttft_per_running * n + prefill_per_token * prompt_tokens``;
- every running sequence gets its next token after ``itl_base + itl_per_running * n`` seconds, so
  the replica's token throughput is ``n / itl(n)``;
- of a lone request's TTFT, one engine step (``itl_base``) is spent in the batch; the rest
  (:attr:`ServiceCurve.entry_s`: the HTTP hops, parsing, tokenization) passes before the request
  reaches vLLM's scheduler and holds no batch slot, so a queued request pays it while it waits.

:meth:`ServiceCurve.fit` fits the four coefficients by least squares to measured points (one per
concurrency of a calibration sweep); :meth:`ServiceCurve.from_config` reads
``simulation.engine`` and ``vllm.max_num_seqs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CurvePoint:
    """One measured concurrency: mean running sequences, mean TTFT and mean inter-token latency (s)."""

    running: float
    ttft_s: float
    itl_s: float
    prompt_tokens: int = 0
    ttft_cv: float = 0.0  # standard deviation / mean of the TTFTs at this concurrency


@dataclass(frozen=True)
class ServiceCurve:
    """TTFT and inter-token latency of one replica (see the module docstring; seconds)."""

    max_num_seqs: int
    ttft_base_s: float
    ttft_per_running_s: float
    itl_base_s: float
    itl_per_running_s: float
    prefill_s_per_token: float = 0.0
    source: str = ""
    ttft_cv: float = 0.0  # a request's TTFT varies by a mean-1 Gamma factor with this coefficient of variation

    def __post_init__(self) -> None:
        if self.max_num_seqs < 1:
            raise ValueError(f"max_num_seqs must be >= 1, got {self.max_num_seqs}")
        if self.itl_base_s <= 0:
            raise ValueError(f"itl_base_s must be > 0, got {self.itl_base_s}")

    @property
    def entry_s(self) -> float:
        """Seconds from arrival to vLLM's scheduler queue (part of every TTFT; holds no slot)."""
        return max(self.ttft_base_s - self.itl_base_s, 0.0)

    def ttft(self, running: int, prompt_tokens: int) -> float:
        """Seconds from admission to the first token with ``running`` sequences (this one included)."""
        return max(self.ttft_base_s + self.ttft_per_running_s * running + self.prefill_s_per_token * prompt_tokens,
                   0.0)

    def itl(self, running: int) -> float:
        """Seconds between two tokens of each sequence while ``running`` run."""
        return max(self.itl_base_s + self.itl_per_running_s * running, 1e-6)

    @classmethod
    def from_config(cls, config: Any) -> "ServiceCurve":
        """The curve of ``simulation.engine`` with ``vllm.max_num_seqs`` of an :class:`~app_config.model.AppConfig`."""
        e = config.simulation.engine
        return cls(config.vllm.max_num_seqs, e.ttft_base_seconds, e.ttft_per_running_seconds, e.itl_base_seconds,
                   e.itl_per_running_seconds, e.prefill_seconds_per_token, e.source, e.ttft_cv)

    @classmethod
    def fit(cls, points: Sequence[CurvePoint], max_num_seqs: int, source: str = "") -> "ServiceCurve":
        """Least-squares lines through ``points`` (TTFT and ITL against running sequences).

        The prompt length of the points is folded into ``ttft_base`` (``prefill_s_per_token`` 0):
        replay prompts of the same length. Negative slopes (noise) are clamped to 0. ``ttft_cv``
        is the mean of the points' TTFT coefficients of variation.

        Raises:
            ValueError: fewer than two distinct concurrencies.
        """
        if len({round(p.running, 6) for p in points}) < 2:
            raise ValueError("a service curve needs points at two or more concurrencies")
        ttft_a, ttft_b = _line([p.running for p in points], [p.ttft_s for p in points])
        itl_a, itl_b = _line([p.running for p in points], [p.itl_s for p in points])
        cv = sum(p.ttft_cv for p in points) / len(points)
        return cls(max_num_seqs, ttft_a, ttft_b, max(itl_a, 1e-6), itl_b, 0.0, source, cv)


def _line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """``(intercept, slope)`` of the least-squares line; a negative slope becomes 0 (intercept = mean)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    if slope < 0:
        return my, 0.0
    return my - slope * mx, slope
