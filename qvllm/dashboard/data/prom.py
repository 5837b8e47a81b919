"""vLLM metrics from Prometheus text (vLLM's ``/metrics`` or the collector's :8889 exporter).

Parsed with ``prometheus_client.parser.text_string_to_metric_families``. Names are looked up
in both spellings: ``vllm:name`` (vLLM itself) and ``vllm_name`` (a collector that normalizes
names rewrites the colons); :attr:`MetricsSnapshot.spelling` says which one was found.
The KV-cache gauge is ``vllm:kv_cache_usage_perc``, with the removed
``vllm:gpu_cache_usage_perc`` only as a fallback; absent both, the value is None, shown as
"n/a", never 0: a zero would read as an idle cache when the gauge is simply missing.
Quantiles from histogram buckets follow Prometheus' ``histogram_quantile``: linear
interpolation inside the bucket holding the rank; the +Inf bucket answers its lower bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from app_config.metric_query import MetricQuery
from app_config.constants import METRIC_KV_CACHE_USAGE, METRIC_KV_CACHE_USAGE_LEGACY, METRIC_RUNNING, METRIC_WAITING

PROMPT_TOKENS = "vllm:prompt_tokens"  # counter (family name without _total)
GENERATION_TOKENS = "vllm:generation_tokens"
REQUEST_SUCCESS = "vllm:request_success"
TTFT_HISTOGRAM = "vllm:time_to_first_token_seconds"
E2E_HISTOGRAM = "vllm:e2e_request_latency_seconds"


@dataclass(frozen=True)
class Sample:
    """One sample: full sample ``name`` (e.g. with ``_bucket``/``_total``), ``labels``, ``value``."""

    name: str
    labels: Mapping[str, str]
    value: float


def spellings(name: str) -> tuple[str, str]:
    """``("vllm:x", "vllm_x")`` for a vLLM metric name given in either spelling."""
    base = name.replace("vllm_", "vllm:", 1) if name.startswith("vllm_") else name
    return base, base.replace(":", "_")


@dataclass
class ParsedMetrics:
    """All samples of one scrape, indexed by sample name."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)

    @classmethod
    def from_text(cls, text: str) -> "ParsedMetrics":
        """Parse Prometheus text exposition format.

        Raises:
            ValueError: the text is not valid exposition format.
        """
        out = cls()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out.samples.setdefault(s.name, []).append(Sample(s.name, dict(s.labels), float(s.value)))
        return out

    def find(self, name: str, suffix: str = "") -> tuple[str | None, list[Sample]]:
        """Samples of ``name + suffix`` in either spelling: ``(spelling found or None, samples)``."""
        for spelled in spellings(name):
            found = self.samples.get(spelled + suffix)
            if found:
                return spelled, found
        return None, []

    def total(self, name: str, suffix: str = "") -> float | None:
        """Sum over all series of a metric (None when absent)."""
        _, found = self.find(name, suffix)
        return sum(s.value for s in found) if found else None

    def buckets(self, name: str) -> dict[float, float]:
        """Cumulative histogram buckets ``{le: count}`` summed over series (e.g. over pods/models)."""
        _, found = self.find(name, "_bucket")
        out: dict[float, float] = {}
        for s in found:
            le = float(s.labels["le"])
            out[le] = out.get(le, 0.0) + s.value
        return out


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus ``histogram_quantile(q, ...)`` over cumulative ``{le: count}`` buckets.

    Returns None when there are no observations. Buckets must include ``+Inf``.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} not in [0, 1]")
    ordered = sorted(buckets.items())
    if not ordered or not math.isinf(ordered[-1][0]):
        return None
    total = ordered[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return lower_bound  # Prometheus returns the highest finite bound
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return lower_bound


def bucket_delta(new: Mapping[float, float], old: Mapping[float, float] | None) -> dict[float, float]:
    """Buckets of the observations between two scrapes (counter resets fall back to ``new``)."""
    if not old:
        return dict(new)
    delta = {le: count - old.get(le, 0.0) for le, count in new.items()}
    return dict(new) if any(v < 0 for v in delta.values()) else delta


@dataclass(frozen=True)
class MetricsSnapshot:
    """The numbers the dashboard shows from one scrape (and the previous one, for rates).

    Attributes:
        running / waiting: requests running / waiting (summed over series), None if absent.
        kv_cache_usage: 0..1, None when neither KV-cache gauge exists (shown "n/a").
        kv_cache_metric: which KV-cache name was found (new or legacy), or None.
        spelling: ``"vllm:"`` or ``"vllm_"``: the spelling the queue metrics were found in.
        requests_per_s / tokens_per_s: rates since the previous scrape (None on the first).
        ttft_p50_s / ttft_p95_s / e2e_p50_s / e2e_p95_s: quantiles (seconds) of the observations
            since the previous scrape, or over all observations on the first scrape.
    """

    running: float | None
    waiting: float | None
    kv_cache_usage: float | None
    kv_cache_metric: str | None
    spelling: str | None
    requests_per_s: float | None = None
    tokens_per_s: float | None = None
    ttft_p50_s: float | None = None
    ttft_p95_s: float | None = None
    e2e_p50_s: float | None = None
    e2e_p95_s: float | None = None

    def value_of(self, metric: str) -> float | None:
        """Total of a queue metric by name (either spelling); used for the ScaledObject triggers."""
        base = spellings(metric)[0]
        return {spellings(METRIC_RUNNING)[0]: self.running, spellings(METRIC_WAITING)[0]: self.waiting}.get(base)


def kv_cache(parsed: ParsedMetrics) -> tuple[float | None, str | None]:
    """``(usage 0..1, metric name found)``: the current gauge first, the removed one as fallback."""
    for name in (METRIC_KV_CACHE_USAGE, METRIC_KV_CACHE_USAGE_LEGACY):
        spelled, found = parsed.find(name)
        if found:
            return max(s.value for s in found), spelled
    return None, None


def _rate(new: float | None, old: float | None, seconds: float | None) -> float | None:
    if new is None or old is None or not seconds or seconds <= 0 or new < old:
        return None
    return (new - old) / seconds


def snapshot(parsed: ParsedMetrics, previous: ParsedMetrics | None = None, seconds: float | None = None) -> MetricsSnapshot:
    """Build the :class:`MetricsSnapshot` of ``parsed`` (``previous`` scraped ``seconds`` earlier)."""
    spelled, _ = parsed.find(METRIC_WAITING)
    if spelled is None:
        spelled, _ = parsed.find(METRIC_RUNNING)
    kv, kv_name = kv_cache(parsed)

    def tokens(p: ParsedMetrics | None) -> float | None:
        if p is None:
            return None
        parts = [p.total(GENERATION_TOKENS, "_total"), p.total(PROMPT_TOKENS, "_total")]
        return None if all(x is None for x in parts) else sum(x or 0.0 for x in parts)

    def quantiles(name: str) -> tuple[float | None, float | None]:
        buckets = bucket_delta(parsed.buckets(name), previous.buckets(name) if previous else None)
        if not buckets or buckets.get(math.inf, 0) <= 0:
            buckets = parsed.buckets(name)
        return histogram_quantile(0.5, buckets) if buckets else None, histogram_quantile(0.95, buckets) if buckets else None

    ttft50, ttft95 = quantiles(TTFT_HISTOGRAM)
    e2e50, e2e95 = quantiles(E2E_HISTOGRAM)
    return MetricsSnapshot(
        running=parsed.total(METRIC_RUNNING),
        waiting=parsed.total(METRIC_WAITING),
        kv_cache_usage=kv,
        kv_cache_metric=kv_name,
        spelling=None if spelled is None else ("vllm:" if ":" in spelled else "vllm_"),
        requests_per_s=_rate(parsed.total(REQUEST_SUCCESS, "_total"),
                             previous.total(REQUEST_SUCCESS, "_total") if previous else None, seconds),
        tokens_per_s=_rate(tokens(parsed), tokens(previous), seconds),
        ttft_p50_s=ttft50, ttft_p95_s=ttft95, e2e_p50_s=e2e50, e2e_p95_s=e2e95,
    )


def trigger_values(parsed: ParsedMetrics, queries: Iterable[tuple[str, MetricQuery | None]]) -> dict[str, float]:
    """``{trigger name: the add-on's answer to its query}`` for the triggers whose metric is on the page.

    Each query is answered as the add-on answers it (:meth:`app_config.metric_query.MetricQuery.answer`:
    label filters equal or absent, then the aggregation), over the metric's series in either
    spelling (a collector may write `vllm_` for `vllm:`). A metric absent from the page is left out
    (the replica model reads it as 0).
    """
    out: dict[str, float] = {}
    for name, query in queries:
        if query is None:
            continue
        _, samples = parsed.find(query.name)
        value, found = query.answer((s.labels, s.value) for s in samples)
        if found:
            out[name] = value
    return out
