"""The replica model: KEDA's composite metric, the HPA rule, and KEDA + HPA over time.

One code path for every tool that predicts replicas (``qvllm scale-math``, the dashboard, and
a load simulator): :func:`desired_replicas` is one evaluation; :class:`ControlLoop` runs KEDA's
polling loop (activation 0 -> 1, cooldown to 0 or idle) and the HPA controller's sync loop
(recommendation, stabilization, policies) on their own clocks; :func:`simulate` drives a
:class:`ControlLoop` over a load function.

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
  (truncated, so 3 replicas at 50 % go to 2, not 1), where periodStart = current - added + removed within the policy's period.
- KEDA: the composite value of ``scalingModifiers.formula`` replaces the per-trigger metrics
  (https://keda.sh/docs/2.17/concepts/scaling-deployments/#scaling-modifiers); KEDA alone
  does 0 <-> 1: it activates when the value exceeds ``activationTarget`` and, with
  ``minReplicaCount: 0``, goes to 0 once inactive for ``cooldownPeriod``, whatever the HPA's scale-down policy says
  (https://github.com/kedacore/keda/issues/6844).
  From 0 replicas KEDA's scale executor (``pkg/scaling/executor/scale_scaledobjects.go``) scales
  an active target to ``max(minReplicaCount, 1)`` (scaleFromZeroOrIdle) and an inactive one with
  ``minReplicaCount >= 1`` and no ``idleReplicaCount`` back to ``minReplicaCount``; the HPA
  takes over from there (https://keda.sh/docs/2.17/concepts/scaling-deployments/#activating-and-scaling-thresholds).
  With scalingModifiers, "active" is ``composite > activationTarget`` (``getScaledObjectState`` in
  kedacore/keda ``pkg/scaling/scale_handler.go``), checked every ``pollingInterval``.
- Clocks: KEDA checks activity every ``pollingInterval``; the HPA controller syncs every
  ``--horizontal-pod-autoscaler-sync-period`` (``cluster.hpa_sync_period_seconds``; the HPA
  does nothing while the target has 0 replicas, "ScalingDisabled"). Only the HPA's own changes
  count toward its policies' periods (``horizontal.go`` storeScaleEvent); KEDA's 0 <-> 1 does not.
- A trigger whose metric the add-on has not received reads 0 (the add-on's
  ``METRIC_STORE_VALUE_IF_NOT_FOUND`` default; :mod:`app_config.metric_query`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from app_config.constants import OTEL_SCRAPE_INTERVAL_SECONDS
from app_config.formula import evaluate_formula
from app_config.metric_query import VALUE_IF_NOT_FOUND
from app_config.scaled_object import format_number
from qvllm.scaling.spec import Rules, ScalingSpec

Values = Mapping[str, float]


def _n(value: float) -> str:
    return format_number(value, digits=3)


@dataclass(frozen=True)
class Decision:
    """One replica computation, with the steps that produced it (for printing).

    Attributes:
        composite: the metric value the HPA sees (formula result, or the deciding trigger's value).
        recommendation: the HPA's unclamped recommendation.
        desired: the replica count after activation, tolerance and [min, max] clamping.
        active: whether KEDA counts the ScaledObject active (composite > activationTarget).
        steps: human-readable lines, in order.
    """

    composite: float
    recommendation: int
    desired: int
    active: bool
    steps: tuple[str, ...]


def complete_values(spec: ScalingSpec, values: Values) -> tuple[dict[str, float], list[str]]:
    """``values`` with every external trigger present: a missing one reads 0, as the add-on answers
    for a metric it has not received. Returns ``(values, names filled in)``."""
    out = {k: float(v) for k, v in values.items()}
    missing = [t.name for t in spec.triggers if not t.is_resource and t.name and t.name not in out]
    for name in missing:
        out[name] = VALUE_IF_NOT_FOUND
    return out, missing


def trigger_values(spec: ScalingSpec, values: Values) -> dict[str, float]:
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


def composite_value(spec: ScalingSpec, values: Values) -> float:
    """The value KEDA reports to the HPA: the formula over the trigger values (missing ones read 0).

    Raises:
        FormulaError: see :func:`app_config.formula.evaluate_formula`.
    """
    values = trigger_values(spec, complete_values(spec, values)[0])
    if spec.formula:
        return evaluate_formula(spec.formula, values)
    return max(values[t.name] for t in spec.triggers if not t.is_resource)


def is_active(spec: ScalingSpec, composite: float) -> bool:
    """KEDA's activity with scalingModifiers: ``composite > activationTarget``."""
    return composite > spec.activation_target


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


def desired_replicas(spec: ScalingSpec, values: Values, current: int) -> Decision:
    """Desired replicas for one evaluation, without behavior history (what the HPA aims at).

    Tolerance, the HPA rule and the clamp to [max(min, 1), max] apply. With ``current == 0``
    KEDA acts first (:func:`keda_from_zero`): activation reached -> ``max(min, 1)``; not
    reached -> 0 with ``minReplicaCount`` 0 (or an ``idleReplicaCount``), else ``min``; then
    the HPA rule runs from that count. Triggers without a value read 0 (said in the steps).
    """
    steps: list[str] = []
    values, missing = complete_values(spec, values)
    if missing:
        steps.append(f"no value for {', '.join(missing)}: 0 (the add-on's answer for a metric it has not received)")
    clamped_values = trigger_values(spec, values)
    if spec.formula:
        composite = composite_value(spec, values)
        shown = ", ".join(f"{k}={_n(v)}" for k, v in sorted(clamped_values.items()))
        steps.append(f"formula {spec.formula!r} with {shown} = {_n(composite)}")
        candidates = [(composite, spec.target or 1.0)]
    else:
        candidates = []
        for trig in spec.triggers:
            if trig.is_resource:
                continue
            if trig.target is None:
                raise ValueError(f"trigger {trig.name or trig.type!r} has no target value")
            candidates.append((clamped_values[trig.name], trig.target))
        composite = max(c for c, _ in candidates)
        steps.append("no scalingModifiers: each trigger is its own HPA metric, the HPA takes the max")
    active = is_active(spec, composite)
    if current == 0:
        current = keda_from_zero(spec, active)
        if active:
            woke = [f"{t.name}={_n(clamped_values[t.name])}" for t in spec.activation_triggers
                    if clamped_values.get(t.name)]
            why = f" (activation trigger {', '.join(woke)})" if woke else ""
            steps.append(f"current 0, value {_n(composite)} > activationTarget {_n(spec.activation_target)}{why}: "
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
# KEDA + HPA over time
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScaleEvent:
    """A replica change: when, by whom (``keda`` or ``hpa``), from and to, and why."""

    time: float
    source: Literal["keda", "hpa"]
    before: int
    after: int
    reason: str


@dataclass
class _Event:
    time: float
    change: int


@dataclass
class ControlLoop:
    """KEDA's polling loop and the HPA controller's sync loop over one ScaledObject.

    Call :meth:`step` with increasing times (seconds) and the trigger values at that time; it
    runs every KEDA poll (every ``spec.polling_interval_seconds`` from ``keda_first_poll``) and
    every HPA sync (every ``hpa_sync_period_seconds`` from ``hpa_first_sync``) due up to that
    time, KEDA first on a tie, each with those values, and returns the replica count
    (``spec.replicas`` of the Deployment, which a cold-start model turns into ready pods).

    KEDA's poll: at 0 replicas an active ScaledObject goes to ``max(min, 1)`` (an inactive one to
    ``min`` when that is >= 1 and no idleReplicaCount is set); above 0, with minReplicaCount 0
    or an idleReplicaCount, inactivity for ``cooldownPeriod`` takes it straight to 0 / idle,
    past the HPA's policies (``notes`` says so). The HPA's sync (skipped at 0 replicas):
    recommendation (:func:`desired_replicas`), stabilization windows (scale-down takes the
    maximum of the window's recommendations, scale-up the minimum), then the policies
    (selectPolicy Max: the policy allowing the largest change; Min: the smallest; Disabled: none).

    Args:
        spec: the ScaledObject.
        replicas: replicas at the start.
        hpa_sync_period_seconds: the cluster's HPA sync period (``cluster.hpa_sync_period_seconds``).
        keda_first_poll / hpa_first_sync: time of each loop's first run (default: the first
            :meth:`step`); their offset is the phase between the two clocks, which the real
            controllers do not align.
    """

    spec: ScalingSpec
    replicas: int
    hpa_sync_period_seconds: float
    keda_first_poll: float | None = None
    hpa_first_sync: float | None = None
    events: list[ScaleEvent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[_Event] = field(default_factory=list)
    down_events: list[_Event] = field(default_factory=list)
    last_active: float | None = None
    last_decision: Decision | None = None

    def __post_init__(self) -> None:
        if self.hpa_sync_period_seconds <= 0:
            raise ValueError(f"hpa_sync_period_seconds must be > 0, got {self.hpa_sync_period_seconds}")
        self._next_poll = self.keda_first_poll
        self._next_sync = self.hpa_first_sync

    def step(self, now: float, values: Values) -> int:
        """Run the KEDA polls and HPA syncs due up to ``now`` with ``values``; return the replicas."""
        if self._next_poll is None:
            self._next_poll = now
        if self._next_sync is None:
            self._next_sync = now
        poll_every = max(self.spec.polling_interval_seconds, 1)
        while min(self._next_poll, self._next_sync) <= now + 1e-9:
            if self._next_poll <= self._next_sync + 1e-9:
                self._keda_poll(self._next_poll, values)
                self._next_poll += poll_every
            else:
                self._hpa_sync(self._next_sync, values)
                self._next_sync += self.hpa_sync_period_seconds
        return self.replicas

    # -- KEDA: pkg/scaling/executor/scale_scaledobjects.go
    def _keda_poll(self, now: float, values: Values) -> None:
        spec = self.spec
        composite = composite_value(spec, values)
        active = is_active(spec, composite)
        if active or self.last_active is None:
            self.last_active = now
        if self.replicas == 0:
            start = keda_from_zero(spec, active)
            if start:
                why = (f"composite {_n(composite)} > activationTarget {_n(spec.activation_target)}" if active
                       else f"minReplicaCount {spec.min_replicas}")
                self._set(now, "keda", start, why)
            return
        idle = 0 if spec.min_replicas == 0 else spec.idle_replicas
        if idle is not None and not active and self.replicas > idle and now - self.last_active >= spec.cooldown_seconds:
            self.notes.append(
                f"t={_n(now)}s: all triggers inactive for cooldownPeriod {spec.cooldown_seconds}s with "
                + (f"idleReplicaCount {idle}" if spec.idle_replicas is not None else "minReplicaCount 0")
                + f": KEDA scales {self.replicas} -> {idle} directly, skipping the HPA policies"
            )
            self._set(now, "keda", idle, f"inactive for cooldownPeriod {spec.cooldown_seconds}s")

    # -- HPA: pkg/controller/podautoscaler/horizontal.go
    def _hpa_sync(self, now: float, values: Values) -> None:
        if self.replicas == 0:
            return  # ScalingDisabled: the HPA leaves a target at 0 replicas to KEDA
        decision = desired_replicas(self.spec, values, self.replicas)
        self.last_decision = decision
        stabilized = self._stabilize(now, decision.recommendation)
        new = self._rate_limit(now, stabilized)
        if new != self.replicas:
            delta = new - self.replicas
            (self.up_events if delta > 0 else self.down_events).append(_Event(now, abs(delta)))
            self._set(now, "hpa", new, f"composite {_n(decision.composite)}, recommendation {decision.recommendation}")

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

    def _set(self, now: float, source: Literal["keda", "hpa"], new: int, reason: str) -> None:
        self.events.append(ScaleEvent(now, source, self.replicas, new, reason))
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

    Percent truncates: ``int(start * (1 - value/100))``, so 5 x 50 % gives 2 (kedacore/keda#6844).
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
    values_at: Callable[[float], Values],
    *,
    start: float,
    end: float,
    hpa_sync_period_seconds: float,
    keda_first_poll: float | None = None,
    hpa_first_sync: float | None = None,
) -> tuple[list[tuple[float, int]], list[str]]:
    """Run a :class:`ControlLoop` from ``start`` to ``end`` (inclusive) at every KEDA poll and HPA sync.

    ``values_at(t)`` returns the trigger values at time t. The first poll and sync default to
    ``start``. Returns the ``(t, replicas)`` series (one point per poll or sync) and the notes.
    """
    loop = ControlLoop(spec, initial_replicas, hpa_sync_period_seconds,
                       keda_first_poll=start if keda_first_poll is None else keda_first_poll,
                       hpa_first_sync=start if hpa_first_sync is None else hpa_first_sync)
    series: list[tuple[float, int]] = []
    for t in control_times(spec, hpa_sync_period_seconds, loop.keda_first_poll, loop.hpa_first_sync, end):
        if t >= start - 1e-9:
            series.append((t, loop.step(t, values_at(t))))
    return series, loop.notes


def control_times(spec: ScalingSpec, hpa_sync_period_seconds: float, first_poll: float, first_sync: float,
                  end: float) -> list[float]:
    """Every KEDA poll and HPA sync time up to ``end`` (inclusive), sorted."""
    times: set[float] = set()
    t = first_poll
    while t <= end + 1e-9:
        times.add(round(t, 6))
        t += max(spec.polling_interval_seconds, 1)
    t = first_sync
    while t <= end + 1e-9:
        times.add(round(t, 6))
        t += hpa_sync_period_seconds
    return sorted(times)


def changes(series: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """The points of a ``(t, replicas)`` series where the count changes (first point included)."""
    out: list[tuple[float, int]] = []
    for t, r in series:
        if not out or out[-1][1] != r:
            out.append((t, r))
    return out


@dataclass(frozen=True)
class ReactionTimes:
    """How long the deployed path takes to react to load, worst case, in seconds.

    Attributes:
        scrape_seconds: the collector's scrape interval (a new value reaches the add-on after it).
        poll_seconds: KEDA's ``pollingInterval`` (activity: 0 -> 1, and back to 0 / idle).
        sync_seconds: the HPA controller's sync period (``cluster.hpa_sync_period_seconds``): 1 -> N.
    """

    scrape_seconds: float
    poll_seconds: float
    sync_seconds: float

    @property
    def activation_s(self) -> float:
        """Worst case from the first held request to KEDA's 0 -> 1: one scrape plus one poll."""
        return self.scrape_seconds + self.poll_seconds

    @property
    def scale_up_s(self) -> float:
        """Worst case from a queue to the HPA's 1 -> N decision: one scrape plus one sync."""
        return self.scrape_seconds + self.sync_seconds

    def lines(self) -> list[str]:
        """The reaction times in words (``scale-math --timeline`` and the dashboard print these)."""
        return [
            f"0 -> 1: KEDA polls every {_n(self.poll_seconds)} s (pollingInterval), the collector scrapes every "
            f"{_n(self.scrape_seconds)} s: within {_n(self.activation_s)} s of the first held request",
            f"1 -> N: the HPA syncs every {_n(self.sync_seconds)} s (cluster.hpa_sync_period_seconds): within "
            f"{_n(self.scale_up_s)} s of a queue",
        ]


def reaction_times(spec: ScalingSpec, hpa_sync_period_seconds: float) -> ReactionTimes:
    """The :class:`ReactionTimes` of ``spec`` on a cluster whose HPA syncs every ``hpa_sync_period_seconds``."""
    return ReactionTimes(OTEL_SCRAPE_INTERVAL_SECONDS, spec.polling_interval_seconds, hpa_sync_period_seconds)
