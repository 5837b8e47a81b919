"""Metric names between vLLM, the collector and the ScaledObject (cases B08, B09)."""

from __future__ import annotations

import copy

import cdk8s
import pytest
import yaml

from app_config import config_from_dict
from app_config import constants as c
from k8s_charts import render_all
from k8s_charts.common import ManifestCheckError, check_no_removed_metrics
from app_config.metric_query import metric_names_in_query
from k8s_charts.otel_collector import (
    PROMETHEUS_TRANSLATION_STRATEGY,
    OtelCollectorChart,
    OtelCollectorProps,
    collector_config_text,
)
from k8s_charts.scaled_object import ScaledObjectChart, ScaledObjectProps
from tests.charts.conftest import find

# Strategies of the collector's Prometheus exporter that keep ':' (0.159 README/config.go).
COLON_KEEPING_STRATEGIES = {"NoUTF8EscapingWithSuffixes", "NoTranslation"}
# Feature gates no longer registered in the pinned collector: passing them stops its start-up.
REMOVED_GATES = {"pkg.translator.prometheus.NormalizeName"}


def _collector_config(all_objects):
    return yaml.safe_load(find(all_objects, "ConfigMap", c.OTEL_COLLECTOR_NAME)["data"][c.OTEL_COLLECTOR_CONFIG_KEY])


def test_b08_queried_names_equal_the_emitted_constants(all_objects):
    """B08: the ScaledObject queries exactly the colon names vLLM emits and the collector forwards."""
    triggers = find(all_objects, "ScaledObject")["spec"]["triggers"]
    queried = [name for t in triggers for name in metric_names_in_query(t["metadata"]["metricQuery"])]
    assert queried == [c.METRIC_RUNNING, c.METRIC_WAITING, c.GATEWAY_HELD_REQUESTS_METRIC]
    assert all(name.startswith("vllm:") for name in queried[:2])


def test_b08_collector_forwards_every_queried_name(all_objects):
    """B08: the collector's filter to the add-on keeps every name the triggers query, unchanged."""
    config = _collector_config(all_objects)
    condition = config["processors"]["filter/scaler"]["metrics"]["metric"][0]
    for trigger in find(all_objects, "ScaledObject")["spec"]["triggers"]:
        for name in metric_names_in_query(trigger["metadata"]["metricQuery"]):
            assert f'name == "{name}"' in condition
    pipeline = config["service"]["pipelines"]["metrics/scaler"]
    assert pipeline["processors"] == ["filter/scaler"], "no processor may rename metrics on the way to the add-on"
    assert pipeline["exporters"] == ["otlp_grpc"]


def test_b08_name_translation_settings_keep_colons(all_objects):
    """B08: no setting that rewrites ``vllm:`` names is on.

    Receiver: scraped names are kept (no name-normalizing gate exists in 0.159). Exporter on
    :8889 (dashboard): translation_strategy keeps ':'; the deprecated add_metric_suffixes is
    not used; no removed/renaming feature gate is passed on the command line.
    """
    config = _collector_config(all_objects)
    prom = config["exporters"]["prometheus"]
    assert prom["translation_strategy"] in COLON_KEEPING_STRATEGIES
    assert "add_metric_suffixes" not in prom and "namespace" not in prom
    receiver = config["receivers"]["prometheus"]
    assert set(receiver) == {"config"}, "no receiver-level translation options"
    for job in receiver["config"]["scrape_configs"]:
        assert "metric_relabel_configs" not in job, "metric relabeling could rename __name__"
    container = find(all_objects, "Deployment", c.OTEL_COLLECTOR_NAME)["spec"]["template"]["spec"]["containers"][0]
    args = " ".join(container.get("args", []))
    assert "--feature-gates" not in args or not any(g in args for g in REMOVED_GATES)


def test_b08_strategy_constant_is_colon_keeping():
    assert PROMETHEUS_TRANSLATION_STRATEGY in COLON_KEEPING_STRATEGIES


def test_b08_custom_trigger_metric_is_forwarded():
    """A trigger on another metric makes the collector forward that name too."""
    config = config_from_dict(
        {
            "scaling": {
                "triggers": [
                    {"name": "running", "metric_query": "sum(vllm:num_requests_running)", "target_value": 25},
                    {"name": "waiting", "metric_query": "sum(vllm:num_requests_waiting)", "target_value": 5},
                    {"name": "swapped", "metric_query": 'avg(vllm:num_requests_swapped{model_name="m"})', "target_value": 1},
                ],
                "formula": "running + (waiting * 10) + swapped",
            }
        }
    )
    rendered = render_all(config)
    collector = _collector_config(rendered["otel_collector"])
    condition = collector["processors"]["filter/scaler"]["metrics"]["metric"][0]
    assert 'name == "vllm:num_requests_swapped"' in condition


def test_collector_config_escapes_dollars():
    """The collector expands ``$``: literal dollars must be written ``$$``."""
    props = OtelCollectorProps(scaler_metrics=("vllm:x", "odd$name"))
    text = collector_config_text(props)
    assert "odd$$name" in text and "odd$name" not in text.replace("$$", "")


def test_b09_removed_metric_fails_the_chart_at_synth():
    """B09: a ScaledObject querying the removed vllm:gpu_cache_usage_perc fails synth."""
    config = config_from_dict(
        {
            "scaling": {
                "triggers": [
                    {"name": "running", "metric_query": "sum(vllm:num_requests_running)", "target_value": 25},
                    {"name": "kv", "metric_query": f"avg({c.METRIC_KV_CACHE_USAGE_LEGACY})", "target_value": 1},
                ],
                "formula": "running + kv",
            }
        }
    )
    with pytest.raises(ManifestCheckError, match=r"ScaledObject/vllm references removed metric 'gpu_cache_usage_perc'"):
        ScaledObjectChart(cdk8s.App(), "so", ScaledObjectProps(scaling=config.scaling))
    with pytest.raises(ManifestCheckError):
        OtelCollectorChart(cdk8s.App(), "otel", OtelCollectorProps(scaler_metrics=(c.METRIC_KV_CACHE_USAGE_LEGACY,)))


def test_b09_rendered_manifests_never_mention_the_removed_metric(all_objects):
    check_no_removed_metrics(all_objects)  # raises on a hit
    assert "gpu_cache_usage_perc" not in yaml.safe_dump_all(all_objects)
    broken = copy.deepcopy(all_objects)
    broken[0].setdefault("metadata", {}).setdefault("annotations", {})["q"] = "vllm:gpu_cache_usage_perc"
    with pytest.raises(ManifestCheckError):
        check_no_removed_metrics(broken)
