"""The Kedify OTel scaler add-on's ``metricQuery``: parse, render, and answer it as the add-on does.

Grammar and semantics are the add-on's own, read at v0.1.4 (the version we pin):

* ``metric/simple_parser.go``: a query is ``[agg(]name[{k1=v1, k2=v2}][)]`` with ``agg`` one of
  ``sum`` (the default), ``avg``, ``min``, ``max``, ``count``; labels are exact matches only,
  ``key=value`` pairs split on ``,`` and ``=`` with ``"`` ``'`` and spaces trimmed (so no
  ``=~``, ``!=``, no comma or ``=`` inside a value); an empty ``{}`` is an error. Anything
  PromQL has beyond that (``by``, arithmetic, ranges) is not part of the language.
* ``metric/mem_store.go`` (``get``): a series matches when each queried label is either
  equal or **absent** on the series (an absent label does not exclude it); the matched
  series are aggregated with ``agg``; a metric the add-on has not received answers
  ``METRIC_STORE_VALUE_IF_NOT_FOUND`` (default 0, ``util/config.go``) without an error.
* ``metric/mem_store.go`` (``escapeName``): names are stored with ``/`` and ``.`` turned into
  ``_``; ``:`` stays, so ``vllm:num_requests_waiting`` is found under its own name.
* The labels a series carries are its OTLP data-point attributes (``receiver/receiver.go``
  stores ``datapoint.Attributes()``); from the collector's Prometheus receiver those are the
  scraped labels plus the target labels our relabel rules add (everything but ``job``,
  ``instance`` and the ``__`` labels, ``getSortedNotUsefulLabels`` in
  open-telemetry/opentelemetry-collector-contrib ``receiver/prometheusreceiver/internal/util.go``).

Source: https://github.com/kedify/otel-add-on/tree/v0.1.4/metric
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

AGGREGATIONS = ("sum", "avg", "min", "max", "count")
DEFAULT_AGGREGATION = "sum"
VALUE_IF_NOT_FOUND = 0.0  # the add-on's METRIC_STORE_VALUE_IF_NOT_FOUND default (util/config.go)


class MetricQueryError(ValueError):
    """The query is outside the add-on's language; the message quotes it and says why."""


@dataclass(frozen=True)
class MetricQuery:
    """One parsed ``metricQuery``.

    Attributes:
        name: metric name as sent by the collector (colons kept).
        labels: exact-match label filters, in written order.
        aggregation: ``sum``, ``avg``, ``min``, ``max`` or ``count`` over the matching series.
    """

    name: str
    labels: tuple[tuple[str, str], ...] = ()
    aggregation: str = DEFAULT_AGGREGATION

    def render(self) -> str:
        """The query text, e.g. ``sum(vllm:num_requests_waiting{namespace=inference,deployment=vllm})``."""
        inner = self.name
        if self.labels:
            inner += "{" + ",".join(f"{k}={v}" for k, v in self.labels) + "}"
        return f"{self.aggregation}({inner})"

    def label(self, key: str) -> str | None:
        """The value the query requires for ``key``, or None."""
        return dict(self.labels).get(key)

    def with_labels(self, required: Iterable[tuple[str, str]]) -> "MetricQuery":
        """This query with ``required`` label filters added (kept first, in the given order).

        Raises:
            MetricQueryError: the query already requires a different value for one of them.
        """
        own = dict(self.labels)
        added: list[tuple[str, str]] = []
        for key, value in required:
            if key in own and own[key] != value:
                raise MetricQueryError(
                    f"metric query {self.render()!r} filters {key}={own[key]}, but the series it must read "
                    f"carry {key}={value}"
                )
            added.append((key, value))
        rest = tuple((k, v) for k, v in self.labels if k not in dict(added))
        return replace(self, labels=tuple(added) + rest)

    def matches(self, series_labels: Mapping[str, str]) -> bool:
        """Whether a series with ``series_labels`` is read: every filter equal or absent (add-on rule)."""
        return all(series_labels.get(k, v) == v for k, v in self.labels)

    def answer(self, series: Iterable[tuple[Mapping[str, str], float]]) -> tuple[float, bool]:
        """The add-on's value over ``(labels, latest value)`` series of this metric: ``(value, found)``.

        With no series of the metric at all the add-on answers :data:`VALUE_IF_NOT_FOUND`
        and ``found`` is False; series present but none matching gives the aggregation of
        nothing (0), as ``mem_store.go`` does.
        """
        series = list(series)
        if not series:
            return VALUE_IF_NOT_FOUND, False
        values = [value for labels, value in series if self.matches(labels)]
        if self.aggregation == "count":
            return float(len(values)), True
        if not values:
            return 0.0, True
        if self.aggregation == "sum":
            return float(sum(values)), True
        if self.aggregation == "avg":
            return float(sum(values) / len(values)), True
        return float(min(values) if self.aggregation == "min" else max(values)), True


def parse_metric_query(query: str) -> MetricQuery:
    """Parse a ``metricQuery`` as the add-on does (``metric/simple_parser.go`` at v0.1.4).

    Stricter than the add-on only where it would silently read the wrong thing: a PromQL
    operator in a label (``=~``, ``!=``), a metric name with spaces or parentheses, and a
    label key repeated.

    Raises:
        MetricQueryError: naming the query and the part that is not in the language.
    """
    if not isinstance(query, str) or not query.strip():
        raise MetricQueryError("metric query is empty")
    text = query.strip()
    aggregation = DEFAULT_AGGREGATION
    for agg in AGGREGATIONS:
        if text.startswith(agg + "(") and text.endswith(")"):
            aggregation, text = agg, text[len(agg) + 1:-1]
            break
    first, last = text.find("{"), text.rfind("}")
    if last < first or (last > 0 and first == -1):
        raise MetricQueryError(f"metric query {query!r}: unbalanced label braces")
    name = (text if first == -1 else text[:first]).strip()
    if not name or any(c in name for c in " (){}=,\"'"):
        raise MetricQueryError(
            f"metric query {query!r}: expected agg(metric_name{{key=value,...}}) with agg one of "
            f"{', '.join(AGGREGATIONS)} (the add-on reads no other PromQL)"
        )
    labels: list[tuple[str, str]] = []
    if first != -1:
        if text[last + 1:].strip():
            raise MetricQueryError(f"metric query {query!r}: text after the label braces")
        body = text[first + 1:last].strip()
        if not body:
            raise MetricQueryError(f"metric query {query!r}: empty label braces")
        for chunk in body.split(","):
            parts = chunk.split("=")
            if len(parts) != 2:
                raise MetricQueryError(f"metric query {query!r}: label {chunk.strip()!r} is not key=value")
            key, value = (p.strip().strip("\"' ") for p in parts)
            if not key or key[-1] in "!~" or value.startswith("~"):
                raise MetricQueryError(
                    f"metric query {query!r}: label {chunk.strip()!r}: the add-on matches labels exactly (key=value only)"
                )
            if key in dict(labels):
                raise MetricQueryError(f"metric query {query!r}: label {key!r} given twice")
            labels.append((key, value))
    return MetricQuery(name=name, labels=tuple(labels), aggregation=aggregation)


def metric_names_in_query(query: str) -> list[str]:
    """The metric names a ``metricQuery`` reads (one, in the add-on's language).

    Raises:
        MetricQueryError: see :func:`parse_metric_query`.
    """
    return [parse_metric_query(query).name]
