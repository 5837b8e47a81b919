"""The replica model: KEDA's composite metric, the HPA rule, and HPA behavior over time.

Sources (the arithmetic mirrors them; tests quote their examples):

- HPA algorithm: https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#algorithm-details
  ``desiredReplicas = ceil(currentReplicas * currentMetricValue / desiredMetricValue)``, skipped
  when the ratio is within the tolerance (0.1). For an external metric with an
  ``AverageValue`` target (what KEDA creates by default) the controller computes
  ``ratio = C / (target * current)`` and, outside the tolerance, ``ceil(C / target)``
  (kubernetes ``pkg/controller/podautoscaler/replica_calculator.go``, GetExternalPerPodMetricReplicas);
  for a ``Value`` target ``ratio = C / target`` and ``ceil(ratio * current)``.
- Behavior (stabilization windows, Pods/Percent policies, selectPolicy):
  https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#configurable-scaling-behavior
  and ``horizontal.go`` (stabilizeRecommendationWithBehaviors, calculateScaleUpLimitWithScalingRules,
  calculateScaleDownLimitWithBehaviors): scale-up limit per Percent policy is
  ``ceil(periodStart * (1 + value/100))``; scale-down limit is ``int(periodStart * (1 - value/100))``
  (truncated, case B05), where periodStart = current - added + removed within the policy's period.
- KEDA: the composite value of ``scalingModifiers.formula`` replaces the per-trigger metrics
  (https://keda.sh/docs/2.17/concepts/scaling-deployments/#scaling-modifiers); KEDA alone
  does 0 <-> 1: it activates when the value exceeds ``activationTarget`` and, with
  ``minReplicaCount: 0``, goes to 0 once inactive for ``cooldownPeriod`` (cases B05, kedacore/keda#6844).
  From 0 replicas KEDA's scale executor (``pkg/scaling/executor/scale_scaledobjects.go``) scales
  an active target to ``max(minReplicaCount, 1)`` (scaleFromZeroOrIdle) and an inactive one with
  ``minReplicaCount >= 1`` and no ``idleReplicaCount`` back to ``minReplicaCount``; the HPA
  takes over from there (https://keda.sh/docs/2.17/concepts/scaling-deployments/#activating-and-scaling-thresholds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from qvllm.scaling.formula import evaluate_formula
from qvllm.scaling.spec import Rules, ScalingSpec

HPA_SYNC_PERIOD_SECONDS = 15


@dataclass(frozen=True)
class Decision:
    """One replica computation, with the steps that produced it (for printing).

    Attributes:
        composite: the metric value the HPA sees (formula result, or the deciding trigger's value).
        recommendation: the HPA's unclamped recommendation.
        desired: the replica count after activation, tolerance and [min, max] clamping.
        steps: human-readable lines, in order.
    """

    composite: float
    recommendation: int
    desired: int
    active: bool
    steps: tuple[str, ...]


def trigger_values(spec: ScalingSpec, values: Mapping[str, float]) -> dict[str, float]:
    """Apply each trigger's clampMin/clampMax (OTel add-on metadata) to the raw values."""
    out = dict(values)
    for trig in spec.triggers:
        if trig.name in out:
            v = float(out[trig.name])
            if trig.clamp_min is not None:
                v = max(v, trig.clamp_min)
            if trig.clamp_max is not None:
                v = min(v, trig.clamp_max)
            out[trig.name] = v
    return out


def composite_value(spec: ScalingSpec, values: Mapping[str, float]) -> float:
    """The value KEDA reports to the HPA: the formula over the trigger values.

    Raises:
        FormulaError: see :func:`qvllm.scaling.formula.evaluate_formula`.
        ValueError: no formula and a trigger value is missing.
    """
    values = trigger_values(spec, values)
    if spec.formula:
        return evaluate_formula(spec.formula, values)
    missing = [t.name for t in spec.triggers if t.name not in values]
    if missing:
        raise ValueError(f"no value given for triggers {missing}")
    return max(values[t.name] for t in spec.triggers)


def hpa_recommendation(
    value: float, target: float, current: int, metric_type: str, tolerance: float = 0.1
) -> tuple[int, float]:
    """The HPA's recommendation for one external metric, before min/max and behavior.

    Args:
        value: the metric value C (for AverageValue, the total the scaler reports).
        target: the target (``scalingModifiers.target`` or the trigger's targetValue), > 0.
        current: current replicas (>= 1; KEDA handles 0).
        metric_type: ``AverageValue`` or ``Value``.
        tolerance: HPA tolerance (0.1 unless behavior sets one).

    Returns:
        ``(replicas, usage_ratio)``.
    """
    if target <= 0:
        raise ValueError(f"target must be > 0, got {target}")
    current = max(current, 1)
    if metric_type == "AverageValue":
        ratio = value / (target * current)
        if abs(ratio - 1.0) <= tolerance:
            return current, ratio
        return math.ceil(value / target), ratio
    ratio = value / target
    if abs(ratio - 1.0) <= tolerance:
        return current, ratio
    return math.ceil(ratio * current), ratio


def desired_replicas(spec: ScalingSpec, values: Mapping[str, float], current: int) -> Decision:
    """Desired replicas for one evaluation, without behavior history (what the HPA aims at).

    Tolerance, the HPA rule and the clamp to [max(min, 1), max] apply. With ``current == 0``
    KEDA acts first (:func:`keda_from_zero`): activation reached -> ``max(min, 1)``; not
    reached -> 0 with ``minReplicaCount`` 0 (or an ``idleReplicaCount``), else ``min``; then
    the HPA rule runs from that count.
    """
    steps: list[str] = []
    clamped_values = trigger_values(spec, values)
    if spec.formula:
        composite = composite_value(spec, values)
        shown = ", ".join(f"{k}={_n(v)}" for k, v in sorted(clamped_values.items()))
        steps.append(f"formula {spec.formula!r} with {shown} = {_n(composite)}")
        target = spec.target or 1.0
        candidates = [(composite, target)]
    else:
        candidates = []
        for trig in spec.triggers:
            if trig.target is None:
                raise ValueError(f"trigger {trig.name or trig.type!r} has no target value")
            candidates.append((clamped_values[trig.name], trig.target))
        composite = max(c for c, _ in candidates)
        steps.append("no scalingModifiers: each trigger is its own HPA metric, the HPA takes the max")
    active = composite > spec.activation_target
    if current == 0:
        current = keda_from_zero(spec, active)
        if active:
            steps.append(f"current 0, value {_n(composite)} > activationTarget {_n(spec.activation_target)}: "
                         f"KEDA activates to max(minReplicaCount {spec.min_replicas}, 1) = {current}")
        elif current == 0:
            why = (f"idleReplicaCount {spec.idle_replicas}" if spec.idle_replicas is not None
                   else "minReplicaCount 0")
            steps.append(f"current 0 and value {_n(composite)} <= activationTarget {_n(spec.activation_target)} "
                         f"with {why}: stays 0")
            return Decision(composite, 0, 0, False, tuple(steps))
        else:
            steps.append(f"current 0 and value {_n(composite)} <= activationTarget {_n(spec.activation_target)}, "
                         f"but minReplicaCount {spec.min_replicas} >= 1: KEDA sets the replicas to {current}")
    tolerance = spec.scale_up.tolerance
    recs = []
    for value, target in candidates:
        rec, ratio = hpa_recommendation(value, target, current, spec.metric_type, tolerance)
        if spec.metric_type == "AverageValue":
            steps.append(
                f"{spec.metric_type}: ratio {_n(value)} / ({_n(target)} x {current}) = {ratio:.3f}"
                + (
                    f", within tolerance {tolerance}: stays {current}"
                    if rec == current and abs(ratio - 1) <= tolerance
                    else f" -> ceil({_n(value)} / {_n(target)}) = {rec}"
                )
            )
        else:
            steps.append(f"Value: ratio {_n(value)} / {_n(target)} = {ratio:.3f} -> {rec}")
        recs.append(rec)
    recommendation = max(recs)
    low, high = max(spec.min_replicas, 1), spec.max_replicas
    desired = min(max(recommendation, low), high)
    if desired != recommendation:
        steps.append(f"clamped to [{low}, {high}]: {desired}")
    return Decision(composite, recommendation, desired, active, tuple(steps))


def keda_from_zero(spec: ScalingSpec, active: bool) -> int:
    """Replicas KEDA sets for a target at 0 replicas (before the HPA acts).

    Active (value > activationTarget): ``max(minReplicaCount, 1)`` (scaleFromZeroOrIdle).
    Inactive: ``minReplicaCount`` when it is >= 1 and no ``idleReplicaCount`` is set, else 0.
    """
    if active:
        return max(spec.min_replicas, 1)
    if spec.min_replicas >= 1 and spec.idle_replicas is None:
        return spec.min_replicas
    return 0


# ---------------------------------------------------------------------------------
# Behavior over time
# ---------------------------------------------------------------------------------
@dataclass
class _Event:
    time: float
    change: int


@dataclass
class Autoscaler:
    """A KEDA + HPA replica controller, stepped once per sync period.

    Call :meth:`step` with the time (seconds, increasing) and the trigger values; it returns
    the replica count after that sync. Stabilization windows keep the recommendations of
    the last window seconds (scale-down takes their maximum, scale-up their minimum);
    policies limit the change per period; selectPolicy Max picks the policy allowing the
    largest change, Min the smallest, Disabled none.

    ``notes`` collects events worth quoting (e.g. the min-0 cooldown jump, case B05).
    """

    spec: ScalingSpec
    replicas: int
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[_Event] = field(default_factory=list)
    down_events: list[_Event] = field(default_factory=list)
    last_active: float | None = None
    notes: list[str] = field(default_factory=list)

    def step(self, now: float, values: Mapping[str, float]) -> int:
        """Advance to ``now`` with trigger ``values``; returns the new replica count."""
        spec = self.spec
        decision = desired_replicas(spec, values, self.replicas)
        # KEDA's own 0 <-> 1 logic.
        if decision.active or self.last_active is None:
            self.last_active = now
        if self.replicas == 0:
            start = keda_from_zero(spec, decision.active)
            if start:
                self._change(now, start)
            return self.replicas
        if (
            spec.min_replicas == 0
            and not decision.active
            and now - self.last_active >= spec.cooldown_seconds
        ):
            self.notes.append(
                f"t={_n(now)}s: all triggers inactive for cooldownPeriod {spec.cooldown_seconds}s with "
                f"minReplicaCount 0: KEDA scales {self.replicas} -> 0 directly, skipping the HPA policies"
            )
            self._change(now, 0)
            return 0
        prenormalized = decision.recommendation
        stabilized = self._stabilize(now, prenormalized)
        new = self._rate_limit(now, stabilized)
        if new != self.replicas:
            self._change(now, new)
        return self.replicas

    # -- horizontal.go: stabilizeRecommendationWithBehaviors
    def _stabilize(self, now: float, recommendation: int) -> int:
        up_cutoff = now - self.spec.scale_up.stabilization_window_seconds
        down_cutoff = now - self.spec.scale_down.stabilization_window_seconds
        up_rec, down_rec = recommendation, recommendation
        for time, rec in self.recommendations:
            if time > up_cutoff:
                up_rec = min(up_rec, rec)
            if time > down_cutoff:
                down_rec = max(down_rec, rec)
        result = self.replicas
        if result < up_rec:
            result = up_rec
        if result > down_rec:
            result = down_rec
        keep = max(self.spec.scale_up.stabilization_window_seconds, self.spec.scale_down.stabilization_window_seconds)
        self.recommendations = [(t, r) for t, r in self.recommendations if t > now - keep]
        self.recommendations.append((now, recommendation))
        return result

    # -- horizontal.go: convertDesiredReplicasWithBehaviorRate
    def _rate_limit(self, now: float, desired: int) -> int:
        current = self.replicas
        low, high = max(self.spec.min_replicas, 1), self.spec.max_replicas
        if desired > current:
            limit = max(scale_up_limit(current, self.up_events, self.down_events, self.spec.scale_up, now), current)
            return min(desired, high, limit)
        if desired < current:
            limit = min(scale_down_limit(current, self.up_events, self.down_events, self.spec.scale_down, now), current)
            return max(desired, low, limit)
        return min(max(desired, low), high)

    def _change(self, now: float, new: int) -> None:
        delta = new - self.replicas
        if delta > 0:
            self.up_events.append(_Event(now, delta))
        elif delta < 0:
            self.down_events.append(_Event(now, -delta))
        self.replicas = new


def _changed_within(events: list[_Event], period: int, now: float) -> int:
    return sum(e.change for e in events if e.time > now - period)


def scale_up_limit(current: int, up: list[_Event], down: list[_Event], rules: Rules, now: float) -> int:
    """The most replicas the scale-up policies allow now (horizontal.go calculateScaleUpLimitWithScalingRules)."""
    if rules.select_policy == "Disabled":
        return current
    pick = max if rules.select_policy == "Max" else min
    result: int | None = None
    for policy in rules.policies:
        start = current - _changed_within(up, policy.period_seconds, now) + _changed_within(
            down, policy.period_seconds, now
        )
        if policy.type == "Pods":
            proposed = start + policy.value
        else:
            proposed = math.ceil(start * (1 + policy.value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def scale_down_limit(current: int, up: list[_Event], down: list[_Event], rules: Rules, now: float) -> int:
    """The fewest replicas the scale-down policies allow now (horizontal.go calculateScaleDownLimitWithBehaviors).

    Percent truncates: ``int(start * (1 - value/100))``, so 5 x 50 % gives 2 (case B05).
    """
    if rules.select_policy == "Disabled":
        return current
    pick = min if rules.select_policy == "Max" else max
    result: int | None = None
    for policy in rules.policies:
        start = current - _changed_within(up, policy.period_seconds, now) + _changed_within(
            down, policy.period_seconds, now
        )
        if policy.type == "Pods":
            proposed = start - policy.value
        else:
            proposed = int(start * (1 - policy.value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def simulate(
    spec: ScalingSpec,
    initial_replicas: int,
    values_at,
    *,
    start: float,
    end: float,
    period: float = HPA_SYNC_PERIOD_SECONDS,
) -> tuple[list[tuple[float, int]], list[str]]:
    """Run an :class:`Autoscaler` from ``start`` to ``end`` (inclusive) every ``period`` seconds.

    ``values_at(t)`` returns the trigger values at time t. Returns the ``(t, replicas)``
    series and the notes.
    """
    scaler = Autoscaler(spec, initial_replicas)
    series: list[tuple[float, int]] = []
    t = start
    while t <= end + 1e-9:
        series.append((t, scaler.step(t, values_at(t))))
        t += period
    return series, scaler.notes


def changes(series: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """The points of a ``(t, replicas)`` series where the count changes (first point included)."""
    out: list[tuple[float, int]] = []
    for t, r in series:
        if not out or out[-1][1] != r:
            out.append((t, r))
    return out


def _n(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}".rstrip("0").rstrip(".")
