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

:meth:`ServiceCurve.fit` fits the four coefficients with robust (Theil-Sen) lines to measured points
(one per concurrency of a calibration sweep); :meth:`ServiceCurve.from_config` reads
``simulation.engine`` and ``vllm.max_num_seqs``.
"""

from __future__ import annotations

import itertools
import statistics
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
        """Robust lines through ``points`` (TTFT and ITL against running sequences; see :func:`_line`).

        The prompt length of the points is folded into ``ttft_base`` (``prefill_s_per_token`` 0):
        replay prompts of the same length. Negative slopes (noise) are clamped to 0. ``ttft_cv``
        is the median of the points' TTFT coefficients of variation.

        Raises:
            ValueError: fewer than two distinct concurrencies.
        """
        if len({round(p.running, 6) for p in points}) < 2:
            raise ValueError("a service curve needs points at two or more concurrencies")
        ttft_a, ttft_b = _line([p.running for p in points], [p.ttft_s for p in points])
        itl_a, itl_b = _line([p.running for p in points], [p.itl_s for p in points])
        cv = statistics.median(p.ttft_cv for p in points)
        return cls(max_num_seqs, ttft_a, ttft_b, max(itl_a, 1e-6), itl_b, 0.0, source, cv)


def _line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """``(intercept, slope)`` of the Theil-Sen line; a negative slope becomes 0 (intercept = median).

    The slope is the median of the slopes between every two points, the intercept the median of
    ``y - slope * x`` (Sen, "Estimates of the regression coefficient based on Kendall's tau", 1968).
    A calibration has one point per concurrency, four for ``max_num_seqs`` 4; a least-squares line
    through them follows one point that a stall of the host moved (a CI run: ITL 36.4 ms at 3
    running between 25.0, 27.1 and 26.9 ms set the fitted ITL at 4 running to 31.1 ms, and the
    replay then decoded at 26.4 ms); the median of the pairwise slopes follows it less (29.5 ms
    through those points). The points themselves are medians over requests
    (:func:`qvllm.simulate.calibrate.sweep`), so a stall that slows a minority of one
    concurrency's requests does not move its point at all.
    """
    pairs = [(a, b) for a, b in itertools.combinations(zip(xs, ys), 2) if a[0] != b[0]]
    slope = statistics.median((y2 - y1) / (x2 - x1) for (x1, y1), (x2, y2) in pairs)
    if slope < 0:
        return statistics.median(ys), 0.0
    return statistics.median(y - slope * x for x, y in zip(xs, ys)), slope
