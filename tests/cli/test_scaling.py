"""Scaling math: formula evaluation, the HPA rule, and HPA behavior over time.

Documented examples are quoted from
- Kubernetes HPA docs, "Algorithm details" and "Scaling policies":
  https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/
- KEDA docs, "Scaling Modifiers": https://keda.sh/docs/2.17/concepts/scaling-deployments/
Failure modes B03 and B05: docs/FAILURE_MODES.md.
"""

from __future__ import annotations

import copy

import pytest

from qvllm.scaling import (
    ControlLoop,
    FormulaError,
    Policy,
    Rules,
    ScaledObjectError,
    ScalingSpec,
    changes,
    desired_replicas,
    evaluate_formula,
    formula_identifiers,
    hpa_recommendation,
    scale_down_limit,
    simulate,
)


@pytest.fixture()
def spec(default_scaled_object) -> ScalingSpec:
    return ScalingSpec.from_scaled_object(default_scaled_object)


# ----------------------------------------------------------------------------- formula
@pytest.mark.parametrize(
    ("formula", "values", "expected"),
    [
        ("running + (waiting * 10)", {"running": 0, "waiting": 3}, 30),
        ("running + waiting * 10", {"running": 2, "waiting": 3}, 32),
        ("(running + waiting) * 10", {"running": 2, "waiting": 3}, 50),
        ("(trig_one + trig_two)/2", {"trig_one": 3, "trig_two": 4}, 3.5),  # KEDA docs example formula
        ("min(4, q / 6)", {"q": 25}, 4),
        ("max(a, b, 2) - -1", {"a": 0.5, "b": 1}, 3),
        ("10 - a / 4", {"a": 8}, 8),
        ("ceil(waiting / 4) + abs(-running)", {"waiting": 9, "running": 2}, 5),  # expr-lang builtins
        ("floor(waiting / 4)", {"waiting": 9}, 2),
        ("round(a) + round(b) + round(c)", {"a": 2.5, "b": -2.5, "c": 0.49}, 0),  # halves away from zero
        ("round(a)", {"a": 2.5}, 3),  # Go math.Round, not Python's banker's rounding (2)
        # expr-lang operators the config accepts, so the evaluator must too:
        ("running ** 2", {"running": 3}, 9),
        ("2 ^ 3 ^ 2", {}, 512),  # right-associative
        ("-2 ** 2", {}, -4),  # unary minus binds looser than ** (precedence 90 < 100)
        ("running > 2 ? running : 1", {"running": 3}, 3),  # the KEDA docs' conditional
        ("running > 2 ? running : 1", {"running": 1}, 1),
        ("1 < running < 5 && !(waiting >= 2) ? 10 : 0", {"running": 3, "waiting": 1}, 10),
        ("max(running)", {"running": 4}, 4),  # expr-lang min/max take one or more
        ("int(running / 4) + float(7 % 3)", {"running": 9}, 3),  # int() truncates; % on integer literals
        ("1_000 / 4e2", {}, 2.5),
    ],
)
def test_formula_evaluates_supported_subset(formula, values, expected):
    assert evaluate_formula(formula, values) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("formula", "fragment"),
    [
        ("__import__('os').system('true')", "may be called"),
        ("running.real", "not supported"),
        ("running if waiting else 1", "not supported"),
        ("sqrt(running)", "may be called"),
        ("ceil(running, 2)", "exactly one"),
        ("'text'", "not supported"),
        ("", "empty"),
        ("running / waiting", "evaluated to inf"),  # Go float division: +Inf, which no replica count is
        ("running > 2", "gives a bool"),  # KEDA wraps the formula in float()
        ("running % 2", "integers only"),  # trigger values are float64 in KEDA
        ("running ?? 1", "not supported"),
        ("running ?: 1", "short form"),
        ("running > 1 ? 2", "expected ':'"),
        ("(running + 1", "expected ')'"),
        ("min()", "at least one"),
    ],
)
def test_formula_rejects_everything_else_clearly(formula, fragment):
    with pytest.raises(FormulaError) as err:
        evaluate_formula(formula, {"running": 1, "waiting": 0})
    assert fragment in str(err.value)
    assert "formula" in str(err.value)


def test_formula_unknown_name_is_named():
    with pytest.raises(FormulaError, match="'queue'"):
        evaluate_formula("running + queue", {"running": 1})


def test_formula_names():
    assert formula_identifiers("running + (waiting * 10) + max(a, 1)") == ["running", "waiting", "a"]
    assert formula_identifiers("ceil(q / 4) + round(r)") == ["q", "r"]
    assert formula_identifiers("waiting > 0 ? waiting : running") == ["waiting", "running"]


# ----------------------------------------------------------------------------- HPA rule
def test_hpa_docs_algorithm_examples():
    """HPA docs "Algorithm details": current 200m vs desired 100m doubles the replicas;
    50m vs 100m halves them; a ratio within 0.1 of 1.0 skips scaling.
    (Value target: desired = ceil(current x ratio).)"""
    assert hpa_recommendation(0.200, 0.100, 4, "Value")[0] == 8
    assert hpa_recommendation(0.050, 0.100, 4, "Value")[0] == 2
    assert hpa_recommendation(0.105, 0.100, 4, "Value")[0] == 4
    # The docs' blog example for tolerance: 50 replicas at 90 % vs 75 % target -> 60.
    assert hpa_recommendation(90, 75, 50, "Value")[0] == 60


def test_reference_demo_zero_running_three_waiting_gives_two(spec):
    """0 running + 3 waiting -> C = 30, target 25, current 1 -> ceil(30/25) = 2."""
    decision = desired_replicas(spec, {"running": 0, "waiting": 3}, current=1)
    assert decision.composite == 30
    assert decision.desired == 2


def test_reference_demo_composite_226_reaches_ten(spec):
    """a composite of 226 or more reaches 10 (ceil(226/25) = 10); 225 gives 9."""
    assert desired_replicas(spec, {"running": 6, "waiting": 22}, current=1).desired == 10
    assert desired_replicas(spec, {"running": 5, "waiting": 22}, current=1).desired == 9
    assert desired_replicas(spec, {"running": 100, "waiting": 100}, current=1).desired == 10


@pytest.mark.parametrize(
    ("current", "running", "waiting", "composite", "expected"),
    [
        (1, 20, 3, 50, 2),
        (1, 32, 30, 332, 10),  # ceil = 14, clamped to max 10
        (4, 28, 8, 108, 4),  # ratio 1.08: within tolerance, stays 4
    ],
)
def test_b03_replica_arithmetic_with_our_values(spec, current, running, waiting, composite, expected):
    """Case B03 (kedacore/keda#7072): our values, formula running + (waiting * 10), target 25."""
    decision = desired_replicas(spec, {"running": running, "waiting": waiting}, current=current)
    assert decision.composite == composite
    assert decision.desired == expected


def test_b03_reporters_tier_formula_stays_at_min(default_scaled_object):
    """Case B03: a formula returning a replica tier 0..4 with target "2" and min 3: the HPA asks
    ceil(4 / 2) = 2 < minReplicaCount 3, so the deployment stays at 3."""
    obj = copy.deepcopy(default_scaled_object)
    obj["spec"]["minReplicaCount"] = 3
    obj["spec"]["maxReplicaCount"] = 20
    obj["spec"]["triggers"] = [{"type": "external", "name": "queue", "metadata": {"targetValue": "5"}}]
    obj["spec"]["advanced"]["scalingModifiers"] = {"formula": "min(4, queue / 6)", "target": "2"}
    spec = ScalingSpec.from_scaled_object(obj)
    assert spec.metric_type == "AverageValue"  # left at default
    decision = desired_replicas(spec, {"queue": 25}, current=3)
    assert decision.composite == 4
    assert decision.recommendation == 2
    assert decision.desired == 3


def test_per_trigger_targets_unused_with_scaling_modifiers(spec):
    """Case B03: once scalingModifiers is present only its target counts (waiting's 5 is ignored)."""
    # waiting 3 alone against its own target 5 would be ceil(3/5) = 1; composite 30/25 -> 2.
    assert desired_replicas(spec, {"running": 0, "waiting": 3}, current=1).desired == 2


def test_activation_from_zero(default_scaled_object):
    obj = copy.deepcopy(default_scaled_object)
    obj["spec"]["minReplicaCount"] = 0
    obj["spec"]["advanced"]["scalingModifiers"]["activationTarget"] = "5"
    spec = ScalingSpec.from_scaled_object(obj)
    assert desired_replicas(spec, {"running": 5, "waiting": 0}, current=0).desired == 0  # 5 is not > 5
    assert desired_replicas(spec, {"running": 0, "waiting": 3}, current=0).desired == 2


# ----------------------------------------------------------------------------- ScaledObject parsing
def test_resource_trigger_in_formula_is_refused(default_scaled_object):
    """Case B01 shape: a cpu trigger named in the formula is a clear error."""
    obj = copy.deepcopy(default_scaled_object)
    obj["spec"]["triggers"].append({"type": "cpu", "name": "cpu_util", "metricType": "Utilization", "metadata": {"value": "70"}})
    obj["spec"]["advanced"]["scalingModifiers"]["formula"] = "running + waiting * 10 + cpu_util"
    with pytest.raises(ScaledObjectError, match="cpu_util.*resource trigger"):
        ScalingSpec.from_scaled_object(obj)


def test_malformed_fields_are_named(default_scaled_object):
    obj = copy.deepcopy(default_scaled_object)
    obj["spec"]["advanced"]["scalingModifiers"]["target"] = "lots"
    with pytest.raises(ScaledObjectError, match=r"scalingModifiers\.target"):
        ScalingSpec.from_scaled_object(obj)
    obj = copy.deepcopy(default_scaled_object)
    obj["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["policies"][0]["type"] = "Nodes"
    with pytest.raises(ScaledObjectError, match=r"scaleDown\.policies\[0\]\.type"):
        ScalingSpec.from_scaled_object(obj)
    with pytest.raises(ScaledObjectError, match="spec.triggers"):
        ScalingSpec.from_scaled_object({"kind": "ScaledObject", "spec": {"triggers": []}})


def test_unnamed_trigger_with_modifiers_is_refused(default_scaled_object):
    """Case B02 shape: with scalingModifiers every trigger must be named (index given)."""
    obj = copy.deepcopy(default_scaled_object)
    obj["spec"]["triggers"].append({"type": "external", "metadata": {"targetValue": "1"}})
    index = len(obj["spec"]["triggers"]) - 1
    with pytest.raises(ScaledObjectError, match=rf"spec\.triggers\[{index}\]"):
        ScalingSpec.from_scaled_object(obj)


# ----------------------------------------------------------------------------- behavior over time
def test_hpa_docs_percent_policy_example():
    """HPA docs "Scaling policies": with 80 replicas and a 10 % / 60 s scale-down policy, the first
    step removes 8; at 72 replicas 10 % is 7.2, rounded up to 8 removed (72 -> 64)."""
    rules = Rules(0, "Max", (Policy("Pods", 4, 60), Policy("Percent", 10, 60)))
    assert scale_down_limit(80, [], [], rules, now=0) == 72
    assert scale_down_limit(72, [], [], rules, now=60) == 64


def test_hpa_docs_default_behavior_scale_up_doubles_or_adds_four(default_scaled_object):
    """HPA docs "Default Behavior": scale-up by 100 % or 4 pods per 15 s, whichever is more."""
    obj = copy.deepcopy(default_scaled_object)
    del obj["spec"]["advanced"]["horizontalPodAutoscalerConfig"]
    obj["spec"]["maxReplicaCount"] = 100
    spec = ScalingSpec.from_scaled_object(obj)
    scaler = ControlLoop(spec, replicas=1, hpa_sync_period_seconds=15)
    assert scaler.step(0, {"running": 0, "waiting": 100}) == 5  # max(1*2, 1+4)
    assert scaler.step(15, {"running": 0, "waiting": 100}) == 10  # max(5*2, 5+4)
    assert scaler.step(30, {"running": 0, "waiting": 100}) == 20


def _load_then_idle(t: float) -> dict[str, float]:
    return {"running": 30, "waiting": 30} if t <= 0 else {"running": 0, "waiting": 0}


def test_b05_scale_down_timeline_with_design_behavior(spec, hpa_sync_period_seconds):
    """Case B05 (kedacore/keda#6844): 10 replicas, load stops at t = 0 (last loaded sample at 0).
    Window 300 s keeps 10 until t = 300; Percent 50 / 60 s truncates: 10 -> 5 -> 2 -> 1.
    cooldownPeriod plays no part while min >= 1."""
    assert hpa_sync_period_seconds == 15  # the timeline below is for EKS's sync period
    series, notes = simulate(spec, 10, _load_then_idle, start=-600, end=900, hpa_sync_period_seconds=15)
    assert changes(series) == [(-600, 10), (300, 5), (360, 2), (420, 1)]
    assert notes == []


def test_b05_cooldown_does_not_change_timeline_with_min_one(default_scaled_object):
    obj = copy.deepcopy(default_scaled_object)
    obj["spec"]["cooldownPeriod"] = 60
    spec = ScalingSpec.from_scaled_object(obj)
    series, _ = simulate(spec, 10, _load_then_idle, start=-600, end=900, hpa_sync_period_seconds=15)
    assert changes(series) == [(-600, 10), (300, 5), (360, 2), (420, 1)]


def test_b05_scale_up_one_to_ten_in_one_step(spec):
    """Case B05: 900 % / 15 s and 9 pods / 15 s with selectPolicy Max: 1 -> 10 in one decision."""
    scaler = ControlLoop(spec, replicas=1, hpa_sync_period_seconds=15)
    assert scaler.step(0, {"running": 32, "waiting": 30}) == 10


def test_b05_min_zero_flags_cooldown_jump(default_scaled_object):
    """Case B05: with min 0 and all triggers inactive past cooldownPeriod, KEDA goes N -> 0 directly."""
    obj = copy.deepcopy(default_scaled_object)
    obj["spec"]["minReplicaCount"] = 0
    obj["spec"]["cooldownPeriod"] = 60
    spec = ScalingSpec.from_scaled_object(obj)
    series, notes = simulate(spec, 10, _load_then_idle, start=-600, end=900, hpa_sync_period_seconds=15)
    assert changes(series) == [(-600, 10), (60, 0)]
    assert len(notes) == 1 and "skipping the HPA policies" in notes[0] and "10 -> 0" in notes[0]


def test_scale_up_stabilization_window_takes_minimum(default_scaled_object):
    """HPA docs: a scale-up window uses the lowest recommendation in the window."""
    obj = copy.deepcopy(default_scaled_object)
    obj["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] = 30
    spec = ScalingSpec.from_scaled_object(obj)
    scaler = ControlLoop(spec, replicas=1, hpa_sync_period_seconds=15)
    scaler.step(0, {"running": 25, "waiting": 0})  # rec 1
    assert scaler.step(15, {"running": 0, "waiting": 30}) == 1  # rec 12, min over window = 1
    # At t = 30 the t = 0 recommendation has left the window (kept only if newer than now - 30):
    # the minimum is 12, and the scale-up policies allow 1 -> 10 at once.
    assert scaler.step(30, {"running": 0, "waiting": 30}) == 10


# ----------------------------------------------------------------------------- KEDA from 0 replicas
def _spec_with(default_scaled_object, **fields) -> ScalingSpec:
    obj = copy.deepcopy(default_scaled_object)
    obj["spec"].update(fields)
    obj["spec"]["advanced"]["scalingModifiers"]["activationTarget"] = "5"  # the reference demo's threshold
    return ScalingSpec.from_scaled_object(obj)


@pytest.mark.parametrize(
    ("fields", "values", "keda", "desired"),
    [
        # Not active (0 and 5 are not > activationTarget 5): min >= 1 still runs min replicas.
        ({"minReplicaCount": 1}, {"running": 0, "waiting": 0}, 1, 1),
        ({"minReplicaCount": 1}, {"running": 5, "waiting": 0}, 1, 1),
        ({"minReplicaCount": 3}, {"running": 0, "waiting": 0}, 3, 3),
        # min 0, or an idleReplicaCount: KEDA leaves an inactive target at 0.
        ({"minReplicaCount": 0}, {"running": 0, "waiting": 0}, 0, 0),
        ({"minReplicaCount": 2, "idleReplicaCount": 0}, {"running": 0, "waiting": 0}, 0, 0),
        # Active: KEDA scales to max(min, 1) first, then the HPA rule runs from there.
        ({"minReplicaCount": 0}, {"running": 6, "waiting": 0}, 1, 1),
        ({"minReplicaCount": 3}, {"running": 6, "waiting": 0}, 3, 3),
        ({"minReplicaCount": 1}, {"running": 0, "waiting": 3}, 1, 2),  # then ceil(30 / 25)
        ({"minReplicaCount": 2, "idleReplicaCount": 0}, {"running": 6, "waiting": 0}, 2, 2),
    ],
)
def test_from_zero_follows_keda(default_scaled_object, fields, values, keda, desired):
    """KEDA scale executor: active -> max(minReplicaCount, 1) (scaleFromZeroOrIdle); inactive with
    minReplicaCount >= 1 and no idleReplicaCount -> minReplicaCount; otherwise stays 0."""
    spec = _spec_with(default_scaled_object, **fields)
    assert desired_replicas(spec, values, current=0).desired == desired
    # Over time: KEDA's poll first, then the HPA's next sync from that count.
    scaler = ControlLoop(spec, replicas=0, hpa_sync_period_seconds=15, hpa_first_sync=15)
    assert scaler.step(0, values) == keda
    assert scaler.step(15, values) == desired


def test_from_zero_steps_name_the_keda_rule(default_scaled_object):
    spec = _spec_with(default_scaled_object, minReplicaCount=1)
    idle = desired_replicas(spec, {"running": 0, "waiting": 0}, current=0)
    assert idle.desired == 1 and not idle.active
    assert any("minReplicaCount 1 >= 1: KEDA sets the replicas to 1" in s for s in idle.steps)
    woken = desired_replicas(_spec_with(default_scaled_object, minReplicaCount=3), {"running": 6, "waiting": 0}, 0)
    assert any("KEDA activates to max(minReplicaCount 3, 1) = 3" in s for s in woken.steps)
