"""Pass/fail of a load-test run: the reference demo's thresholds, plus
optional limits on time to first token (TTFT) and inter-token latency (ITL).

A run passes when the 95th percentile of end-to-end request time is below the limit (20 s for
the reference profiles) and fewer than 15 % of requests failed, and, when set, TTFT p95 and ITL
p95 are below theirs. No requests at all, or no successful request, is a failure (nothing was
measured); the summary then says so instead of printing times.
"""

from __future__ import annotations

from dataclasses import dataclass

LATENCY_CSV_SUFFIX = "_latency.csv"  # written beside Locust's own <prefix>_stats.csv


@dataclass(frozen=True)
class Thresholds:
    """Limits (strict: a value equal to its limit fails).

    Attributes:
        p95_s: end-to-end p95, seconds.
        max_failure_ratio: failed / all requests, 0..1.
        ttft_p95_s / itl_p95_s: TTFT and ITL p95 limits in seconds; None = not checked.
    """

    p95_s: float = 20.0
    max_failure_ratio: float = 0.15
    ttft_p95_s: float | None = None
    itl_p95_s: float | None = None


@dataclass(frozen=True)
class RunSummary:
    """What a run measured (times in seconds; None when not measured).

    Attributes:
        requests: chat requests completed or failed (TTFT and ITL entries are not requests).
        failures: failed requests (HTTP errors, broken streams, timeouts).
        p50_s / p95_s: end-to-end request time percentiles, None when no request succeeded.
        ttft_p50_s / ttft_p95_s: time to first token percentiles, over successful requests.
        itl_p50_s / itl_p95_s: inter-token latency percentiles: the gaps between consecutive
            content chunks of successful requests, all requests' gaps together.
    """

    requests: int
    failures: int
    p95_s: float | None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    p50_s: float | None = None
    itl_p50_s: float | None = None
    itl_p95_s: float | None = None

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
        if summary.successes:
            for label, value, limit in (("TTFT", summary.ttft_p95_s, limits.ttft_p95_s),
                                        ("ITL", summary.itl_p95_s, limits.itl_p95_s)):
                if limit is None:
                    continue
                if value is None:
                    reasons.append(f"no {label} measured")
                elif value >= limit:
                    reasons.append(f"{label} p95 {value} s is not below {limit:g} s")
    return Verdict(not reasons, 0 if not reasons else 1, tuple(reasons))


def _s(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} s"


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 1000:.0f} ms"


def format_summary(summary: RunSummary, verdict: Verdict) -> str:
    """A few lines for the terminal."""
    if summary.requests == 0:
        counts, times = "requests 0", "no requests completed: end-to-end, TTFT and ITL times n/a"
    else:
        counts = f"requests {summary.requests}, failures {summary.failures} ({summary.failure_ratio:.1%})"
        if summary.successes == 0:
            times = "no successful requests: end-to-end, TTFT and ITL times n/a"
        else:
            times = (f"end-to-end p50 {_s(summary.p50_s)}, p95 {_s(summary.p95_s)}; "
                     f"TTFT p50 {_s(summary.ttft_p50_s)}, p95 {_s(summary.ttft_p95_s)}; "
                     f"ITL p50 {_ms(summary.itl_p50_s)}, p95 {_ms(summary.itl_p95_s)}")
    lines = [counts, times, "PASS" if verdict.passed else "FAIL: " + "; ".join(verdict.reasons)]
    return "\n".join(lines)


def latency_rows(summary: RunSummary) -> list[list[str]]:
    """The latency CSV: a header, then end-to-end, TTFT and ITL with p50 and p95 in seconds
    (empty when not measured)."""

    def cell(v: float | None) -> str:
        return "" if v is None else f"{v:.4f}"

    return [["metric", "p50_s", "p95_s"],
            ["end_to_end", cell(summary.p50_s), cell(summary.p95_s)],
            ["ttft", cell(summary.ttft_p50_s), cell(summary.ttft_p95_s)],
            ["itl", cell(summary.itl_p50_s), cell(summary.itl_p95_s)]]
