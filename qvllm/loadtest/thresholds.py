"""Pass/fail of a load-test run: the reference demo's thresholds (DESIGN.md section 2).

A run passes when the 95th percentile of end-to-end request time is below 20 s and fewer
than 15 % of requests failed. No requests at all, or no successful request, is a failure
(nothing was measured); the summary then says so instead of printing times.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    """Limits: ``p95_s`` (seconds, strict), ``max_failure_ratio`` (0..1, strict)."""

    p95_s: float = 20.0
    max_failure_ratio: float = 0.15


@dataclass(frozen=True)
class RunSummary:
    """What a run measured.

    Attributes:
        requests: chat requests completed or failed.
        failures: failed requests (HTTP errors, broken streams, timeouts).
        p95_s: 95th percentile of end-to-end request time (seconds), None when no request succeeded.
        ttft_p50_s / ttft_p95_s: time to first token percentiles (seconds), None when unknown.
    """

    requests: int
    failures: int
    p95_s: float | None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None

    @property
    def successes(self) -> int:
        """Requests that did not fail."""
        return max(self.requests - self.failures, 0)

    @property
    def failure_ratio(self) -> float:
        """failures / requests (1.0 when no request ran)."""
        return self.failures / self.requests if self.requests else 1.0


@dataclass(frozen=True)
class Verdict:
    """``passed``, the exit code to use (0 or 1), and one reason per broken limit."""

    passed: bool
    exit_code: int
    reasons: tuple[str, ...]


def judge(summary: RunSummary, limits: Thresholds = Thresholds()) -> Verdict:
    """Apply the thresholds to a run summary."""
    reasons: list[str] = []
    if summary.requests == 0:
        reasons.append("no requests completed")
    else:
        if summary.failure_ratio >= limits.max_failure_ratio:
            reasons.append(
                f"failures {summary.failure_ratio:.1%} ({summary.failures}/{summary.requests}) are not below "
                f"{limits.max_failure_ratio:.0%}"
            )
        if summary.successes == 0:
            reasons.append("no successful requests")
        elif summary.p95_s is None:
            reasons.append("no end-to-end time measured")
        elif summary.p95_s >= limits.p95_s:
            reasons.append(f"p95 {summary.p95_s} s is not below {limits.p95_s:g} s")
    return Verdict(not reasons, 0 if not reasons else 1, tuple(reasons))


def format_summary(summary: RunSummary, verdict: Verdict) -> str:
    """A few lines for the terminal."""

    def s(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f} s"

    if summary.requests == 0:
        counts, times = "requests 0", "no requests completed: end-to-end and TTFT times n/a"
    else:
        counts = f"requests {summary.requests}, failures {summary.failures} ({summary.failure_ratio:.1%})"
        if summary.successes == 0:
            times = "no successful requests: end-to-end and TTFT times n/a"
        else:
            times = (f"end-to-end p95 {s(summary.p95_s)}; "
                     f"TTFT p50 {s(summary.ttft_p50_s)}, p95 {s(summary.ttft_p95_s)}")
    lines = [counts, times, "PASS" if verdict.passed else "FAIL: " + "; ".join(verdict.reasons)]
    return "\n".join(lines)
