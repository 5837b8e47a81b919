"""The scaling rules have one owner: the config, the chart and the replica model accept the same
formulas and queries, and the add-on's query language is parsed as the add-on parses it."""

from __future__ import annotations

import pytest

from app_config import ConfigError, config_from_dict
from app_config.formula import FormulaError, evaluate_formula
from app_config.metric_query import MetricQueryError, parse_metric_query

VALUES = {"running": 3.0, "waiting": 2.0, "held": 1.0}

FORMULAS = [
    "running + (waiting * 10) + (held * 10)",
    "running > 2 ? running : waiting",  # the KEDA docs' conditional
    "running ** 2 + held",
    "max(running, waiting * 4, held)",
    "ceil(waiting / 4) + abs(-running) + round(held / 3)",
    "running >= 1 && waiting < 5 ? 25 : 0",
    "running > 1",  # a bool: KEDA's float() refuses it
    "running % 2",  # % takes integers; trigger values are float64
    "running ?? 1",
    "float('3') + running",
    "running.value",
    "sqrt(running)",
]


@pytest.mark.parametrize("formula", FORMULAS)
def test_config_and_replica_model_accept_the_same_formulas(formula):
    """A formula the config accepts is one `qvllm scale-math` evaluates, and the reverse."""
    try:
        config_from_dict({"scaling": {"formula": formula}})
        accepted = True
    except ConfigError as exc:
        assert "scaling.formula" in str(exc)
        accepted = False
    try:
        evaluate_formula(formula, VALUES)
        evaluates = True
    except FormulaError:
        evaluates = False
    assert accepted == evaluates, f"config accepts: {accepted}, evaluator evaluates: {evaluates}"


# The add-on's own parser tests, kedify/otel-add-on v0.1.4 metric/simple_parser_test.go.
@pytest.mark.parametrize(("query", "name", "labels", "aggregation"), [
    ("avg(metric_foo_bar{a=1, b=2})", "metric_foo_bar", {"a": "1", "b": "2"}, "avg"),
    ('avg(metric_foo_bar{a="1", b="2"})', "metric_foo_bar", {"a": "1", "b": "2"}, "avg"),
    ("metric_foo{a=1, b=2, c=5}", "metric_foo", {"a": "1", "b": "2", "c": "5"}, "sum"),
    ("min(metric_foo{ahoj=cau})", "metric_foo", {"ahoj": "cau"}, "min"),
    ("count(metric_foo{ahoj=cau})", "metric_foo", {"ahoj": "cau"}, "count"),
    ("max(metric_foo)", "metric_foo", {}, "max"),
    ("hello", "hello", {}, "sum"),
    ("sum(vllm:num_requests_waiting{namespace=inference,deployment=vllm})", "vllm:num_requests_waiting",
     {"namespace": "inference", "deployment": "vllm"}, "sum"),
])
def test_metric_query_parses_as_the_addon_does(query, name, labels, aggregation):
    parsed = parse_metric_query(query)
    assert (parsed.name, dict(parsed.labels), parsed.aggregation) == (name, labels, aggregation)
    assert parse_metric_query(parsed.render()) == parsed


@pytest.mark.parametrize("query", [
    "avg(metric_foo_bar{a=1, b=2=2})",  # the add-on's failing cases, same file
    "avg(metric_foo_bar{a=1, b=2)",
    "metric_foo_bara=1, b=2})",
    "avg(metric_foo_bar{a:1})",
    "metric_foo_bar{}",
    'sum(vllm:num_requests_waiting{pod=~"vllm-.*"})',  # PromQL the add-on would misread as a value "~..."
    "sum by (pod) (vllm:num_requests_waiting)",
    "sum(vllm:a) + sum(vllm:b)",
])
def test_metric_query_outside_the_language_is_refused(query):
    with pytest.raises(MetricQueryError):
        parse_metric_query(query)


def test_a_bad_trigger_query_names_the_config_field():
    triggers = [{"name": "running", "metric_query": "sum by (pod) (vllm:num_requests_running)", "target_value": 25}]
    with pytest.raises(ConfigError, match=r"scaling\.triggers\.0\.metric_query.*the add-on reads no other PromQL"):
        config_from_dict({"scaling": {"triggers": triggers, "formula": "running"}})


def test_addon_matching_keeps_series_without_the_label():
    """mem_store.go: a series lacking a queried label still matches; one with another value does not."""
    query = parse_metric_query("sum(x{namespace=inference})")
    series = [({"namespace": "inference"}, 1.0), ({}, 2.0), ({"namespace": "other"}, 4.0)]
    assert query.answer(series) == (3.0, True)
    assert query.answer([]) == (0.0, False)  # METRIC_STORE_VALUE_IF_NOT_FOUND
    assert parse_metric_query("count(x{namespace=inference})").answer(series) == (2.0, True)
