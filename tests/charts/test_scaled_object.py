"""The ScaledObject builder (app_config.scaled_object) and its chart: KEDA composite-metric rules
(cases B01, B02), config mapping, query scoping and the scale-from-zero trigger."""

from __future__ import annotations

import warnings

import cdk8s
import pytest

from app_config import config_from_dict
from app_config.constants import METRIC_RUNNING, METRIC_WAITING
from app_config.formula import FormulaError, formula_identifiers
from app_config.scaled_object import (
    ScaledObjectError,
    ScaledObjectProps,
    ScalingModifiersSpec,
    ScalingModifiersWarning,
    TriggerSpec,
    check_scaling_modifiers,
    scaled_object_manifest,
)
from k8s_charts.scaled_object import ScaledObjectChart
from tests.support.k8s_schemas import validate_custom

ADDR = "keda-otel-scaler.keda.svc.cluster.local:4318"


def _external(name, query, target, metric_type=None):
    return TriggerSpec(
        type="external",
        name=name,
        metric_type=metric_type,
        metadata=(("scalerAddress", ADDR), ("metricQuery", query), ("targetValue", target)),
    )


RUNNING = _external("running", f"sum({METRIC_RUNNING})", "25")
WAITING = _external("waiting", f"sum({METRIC_WAITING})", "5")
DESIGN = ScalingModifiersSpec(formula="running + (waiting * 10)", target="25", activation_target="5")


def _props(**scaling):
    return ScaledObjectProps(scaling=config_from_dict({"scaling": scaling} if scaling else {}).scaling)


def test_b01_formula_naming_a_cpu_trigger_is_rejected():
    """B01 (kedacore/keda#6938): resource triggers are not formula variables."""
    cpu = TriggerSpec(type="cpu", name="cpu_util", metric_type="Utilization", metadata=(("value", "70"),))
    modifiers = ScalingModifiersSpec(formula="running + waiting * 10 + cpu_util", target="25")
    with pytest.raises(ScaledObjectError, match=r"scalingModifiers\.formula.*'cpu_util'.*resource trigger"):
        scaled_object_manifest(_props(), triggers=[RUNNING, WAITING, cpu], modifiers=modifiers)


def test_b01_unknown_formula_name_is_rejected():
    modifiers = ScalingModifiersSpec(formula="running + queued", target="25")
    with pytest.raises(ScaledObjectError, match=r"scalingModifiers\.formula.*'queued'.*not the name of any trigger"):
        check_scaling_modifiers([RUNNING, WAITING], modifiers)


def test_b01_design_formula_passes_and_matches_the_crd():
    """B01: the design formula over `running` and `waiting` renders and passes the KEDA CRD schema."""
    manifest, messages = scaled_object_manifest(_props(), triggers=[RUNNING, WAITING], modifiers=DESIGN)
    assert messages == []
    validate_custom(manifest)
    assert manifest["spec"]["advanced"]["scalingModifiers"] == {
        "formula": "running + (waiting * 10)",
        "target": "25",
        "activationTarget": "5",
        "metricType": "AverageValue",
    }


def test_b02_unnamed_extra_trigger_is_rejected_with_its_index():
    """B02 (kedacore/keda#5367): with scalingModifiers every trigger needs a unique name."""
    floor = TriggerSpec(type="cron", metadata=(("timezone", "UTC"), ("start", "0 8 * * *"), ("end", "0 18 * * *"), ("desiredReplicas", "2")))
    with pytest.raises(ScaledObjectError, match=r"spec\.triggers\[2\].*has no name"):
        check_scaling_modifiers([RUNNING, WAITING, floor], DESIGN)



def test_b02_unnamed_extra_trigger_fails_the_chart_at_synth():
    """B02 through the chart: ``extra_triggers`` pass the same check, so `cdk synth` fails."""
    floor = _external(None, "sum(vllm:num_requests_running)", "1")
    scaling = config_from_dict({}).scaling
    props = ScaledObjectProps(scaling=scaling, extra_triggers=(floor,))
    with pytest.raises(ScaledObjectError, match=rf"spec\.triggers\[{len(scaling.triggers)}\]"):
        ScaledObjectChart(cdk8s.App(), "so", props)


def test_b02_duplicate_names_are_rejected():
    with pytest.raises(ScaledObjectError, match=r"spec\.triggers\[1\]\.name: repeats the name 'running'"):
        check_scaling_modifiers([RUNNING, _external("running", "sum(x)", "1")], DESIGN)


def test_b02_mixed_metric_types_are_rejected_with_the_index():
    mixed = [RUNNING, _external("waiting", f"sum({METRIC_WAITING})", "5", metric_type="Value")]
    with pytest.raises(ScaledObjectError, match=r"spec\.triggers\[1\]\.metricType: is 'Value'.*spec\.triggers\[0\]"):
        check_scaling_modifiers(mixed, DESIGN)


def test_b02_named_but_unused_trigger_warns():
    extra = _external("kv", "avg(vllm:kv_cache_usage_perc)", "1")
    messages = check_scaling_modifiers([RUNNING, WAITING, extra], DESIGN)
    assert len(messages) == 1 and "spec.triggers[2] 'kv' is not used" in messages[0]
    props = ScaledObjectProps(scaling=config_from_dict({}).scaling, extra_triggers=(extra,))
    with pytest.warns(ScalingModifiersWarning, match="'kv' is not used"):
        chart = ScaledObjectChart(cdk8s.App(), "so", props)
    assert len(chart.warnings) == 1


def test_default_config_renders_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chart = ScaledObjectChart(cdk8s.App(), "so", _props())
    (obj,) = chart.manifests()
    validate_custom(obj)
    assert [t["name"] for t in obj["spec"]["triggers"]] == ["running", "waiting", "held"]


def test_formula_identifiers_skip_functions_and_literals():
    assert formula_identifiers("max(running, waiting * 10) + float(3)") == ["running", "waiting"]
    assert formula_identifiers("running > 5 ? running : waiting") == ["running", "waiting"]
    with pytest.raises(FormulaError, match="column 36"):  # no strings in a formula over numbers
        formula_identifiers("max(running, waiting * 10) + float('3')")


def test_config_values_map_to_the_scaled_object():
    manifest, _ = scaled_object_manifest(
        _props(min_replicas=2, max_replicas=7, polling_interval_seconds=3, cooldown_period_seconds=60, target=30)
    )
    spec = manifest["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["pollingInterval"], spec["cooldownPeriod"]) == (2, 7, 3, 60)
    assert spec["advanced"]["scalingModifiers"]["target"] == "30"
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"] == {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 900, "periodSeconds": 15}, {"type": "Pods", "value": 9, "periodSeconds": 15}],
    }
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert [t["metadata"]["targetValue"] for t in spec["triggers"]] == ["25", "5", "1"]


def test_kedify_flavor_uses_the_kedify_otel_trigger_type():
    manifest, _ = scaled_object_manifest(_props(keda_flavor="kedify"))
    assert {t["type"] for t in manifest["spec"]["triggers"]} == {"kedify-otel"}
    validate_custom(manifest)
    upstream, _ = scaled_object_manifest(_props())
    assert {t["type"] for t in upstream["spec"]["triggers"]} == {"external"}
