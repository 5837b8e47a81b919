"""A ScaledObject as the replica model reads it.

:class:`ScalingSpec` holds the fields of a KEDA ``keda.sh/v1alpha1`` ScaledObject that decide
replicas: ``spec.triggers[]``, ``spec.advanced.scalingModifiers``, ``minReplicaCount``,
``maxReplicaCount``, ``idleReplicaCount``, ``cooldownPeriod``, ``pollingInterval`` and
``spec.advanced.horizontalPodAutoscalerConfig.behavior`` (autoscaling/v2 HPABehavior).

- :meth:`ScalingSpec.from_scaled_object` reads any ScaledObject dict (a rendered file, the
  cluster's object) and applies KEDA's rules (:func:`app_config.scaled_object.check_scaling_modifiers`).
- :meth:`ScalingSpec.from_config` reads the very manifest the chart renders
  (:func:`app_config.scaled_object.scaled_object_manifest`): one builder, no copy.

Defaults that apply when a field is absent are KEDA's and Kubernetes' documented ones:
minReplicaCount 0, maxReplicaCount 100, cooldownPeriod 300 s, pollingInterval 30 s
(keda.sh ScaledObject spec); HPA behavior defaults from
https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#default-behavior
(scale-up: window 0 s, 100 % / 15 s and 4 pods / 15 s, Max; scale-down: window 300 s,
100 % / 15 s); tolerance 0.1 (``--horizontal-pod-autoscaler-tolerance``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from app_config.constants import GATEWAY_HELD_REQUESTS_METRIC, RESOURCE_TRIGGER_TYPES
from app_config.metric_query import MetricQuery, parse_metric_query
from app_config.scaled_object import (
    ScaledObjectError,
    ScaledObjectProps,
    ScalingModifiersSpec,
    TriggerSpec,
    check_replica_bounds,
    check_scale_to_zero,
    check_scaling_modifiers,
    scaled_object_manifest,
)

DEFAULT_TOLERANCE = 0.1
TARGET_METADATA_KEYS = ("targetValue", "value", "threshold", "targetMetricValue")


@dataclass(frozen=True)
class Policy:
    """An HPAScalingPolicy: ``type`` Pods or Percent, ``value``, ``period_seconds``."""

    type: Literal["Pods", "Percent"]
    value: int
    period_seconds: int


@dataclass(frozen=True)
class Rules:
    """HPAScalingRules for one direction."""

    stabilization_window_seconds: int
    select_policy: Literal["Max", "Min", "Disabled"]
    policies: tuple[Policy, ...]
    tolerance: float = DEFAULT_TOLERANCE


DEFAULT_SCALE_UP = Rules(0, "Max", (Policy("Percent", 100, 15), Policy("Pods", 4, 15)))
DEFAULT_SCALE_DOWN = Rules(300, "Max", (Policy("Percent", 100, 15),))


@dataclass(frozen=True)
class Trigger:
    """One ScaledObject trigger: its ``name``, ``type``, and the per-trigger target if any."""

    name: str
    type: str
    target: float | None = None
    activation_target: float | None = None
    clamp_min: float | None = None
    clamp_max: float | None = None
    query: str | None = None  # metadata.metricQuery (OTel add-on) or metadata.query (Prometheus)

    @property
    def is_resource(self) -> bool:
        """cpu/memory triggers are not formula variables."""
        return self.type in RESOURCE_TRIGGER_TYPES

    @property
    def metric_query(self) -> MetricQuery | None:
        """The parsed OTel add-on query (None for resource triggers and queries of other scalers)."""
        if self.is_resource or not self.query:
            return None
        try:
            return parse_metric_query(self.query)
        except ValueError:
            return None  # a Prometheus-scaler PromQL query: not the add-on's language

    @property
    def is_activation(self) -> bool:
        """Whether the trigger reads the gateway's held-requests gauge (the 0 -> 1 signal)."""
        query = self.metric_query
        return query is not None and query.name == GATEWAY_HELD_REQUESTS_METRIC


@dataclass(frozen=True)
class ScalingSpec:
    """What the replica model needs from a ScaledObject.

    ``formula`` is None when the ScaledObject has no scalingModifiers (then each trigger
    feeds the HPA as its own metric and the HPA takes the maximum).
    """

    triggers: tuple[Trigger, ...]
    formula: str | None
    target: float | None
    activation_target: float
    metric_type: Literal["AverageValue", "Value"]
    min_replicas: int
    max_replicas: int
    cooldown_seconds: int = 300
    polling_interval_seconds: int = 30
    scale_up: Rules = DEFAULT_SCALE_UP
    scale_down: Rules = DEFAULT_SCALE_DOWN
    warnings: tuple[str, ...] = field(default=())
    idle_replicas: int | None = None  # spec.idleReplicaCount (None when absent)

    @classmethod
    def from_scaled_object(cls, obj: Mapping[str, Any]) -> "ScalingSpec":
        """Read a ScaledObject dict (see the module docstring).

        Raises:
            ScaledObjectError: a missing or malformed field, or a broken KEDA rule, named by its path.
        """
        if not isinstance(obj, Mapping):
            raise ScaledObjectError("<root>", "a ScaledObject must be a mapping")
        if obj.get("kind", "ScaledObject") != "ScaledObject":
            raise ScaledObjectError("kind", f"is {obj.get('kind')!r}, expected 'ScaledObject'")
        spec = obj.get("spec")
        if not isinstance(spec, Mapping):
            raise ScaledObjectError("spec", "is missing")
        raw_triggers = spec.get("triggers")
        if not isinstance(raw_triggers, list) or not raw_triggers:
            raise ScaledObjectError("spec.triggers", "must be a non-empty list")
        advanced = spec.get("advanced") or {}
        trigger_specs = [TriggerSpec.from_manifest(i, t) for i, t in enumerate(raw_triggers)]
        modifiers = ScalingModifiersSpec.from_manifest(advanced.get("scalingModifiers"))
        if modifiers is not None and not modifiers.target:
            raise ScaledObjectError("spec.advanced.scalingModifiers.target", "is required with a formula")
        warnings = check_scaling_modifiers(trigger_specs, modifiers)
        metric_type = modifiers.metric_type if modifiers else (
            next((t.metric_type for t in trigger_specs if t.metric_type and not t.is_resource), "AverageValue")
        )
        if metric_type not in ("AverageValue", "Value"):
            raise ScaledObjectError("metricType", f"{metric_type!r} is not supported for external metrics "
                                    "(AverageValue or Value)")
        behavior = (advanced.get("horizontalPodAutoscalerConfig") or {}).get("behavior") or {}
        min_r = _integer(spec, "minReplicaCount", 0)
        max_r = _integer(spec, "maxReplicaCount", 100)
        idle = _integer(spec, "idleReplicaCount", None)
        check_replica_bounds(min_r, max_r, idle)
        try:
            check_scale_to_zero(trigger_specs, modifiers, min_r, idle)
        except ScaledObjectError as exc:  # a cluster may run such an object: model it, and say why it stalls
            warnings.append(str(exc))
        return cls(
            triggers=tuple(_trigger(i, t) for i, t in enumerate(trigger_specs)),
            formula=modifiers.formula if modifiers else None,
            target=float(modifiers.target) if modifiers else None,
            activation_target=float(modifiers.activation_target or 0) if modifiers else 0.0,
            metric_type=metric_type,
            min_replicas=min_r,
            max_replicas=max_r,
            cooldown_seconds=_integer(spec, "cooldownPeriod", 300),
            polling_interval_seconds=_integer(spec, "pollingInterval", 30),
            scale_up=_rules(behavior.get("scaleUp"), DEFAULT_SCALE_UP, "scaleUp"),
            scale_down=_rules(behavior.get("scaleDown"), DEFAULT_SCALE_DOWN, "scaleDown"),
            warnings=tuple(warnings),
            idle_replicas=idle,
        )

    @classmethod
    def from_config(cls, scaling: Any) -> "ScalingSpec":
        """The ScaledObject the chart renders from :class:`app_config.model.ScalingConfig`, read back."""
        manifest, _ = scaled_object_manifest(ScaledObjectProps(scaling=scaling))
        return cls.from_scaled_object(manifest)

    @property
    def activation_triggers(self) -> tuple[Trigger, ...]:
        """The triggers that read the gateway's held requests (what takes vLLM from 0 to 1)."""
        return tuple(t for t in self.triggers if t.is_activation)


def _integer(spec: Mapping[str, Any], key: str, default: int | None) -> Any:
    value = spec.get(key, default)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ScaledObjectError(f"spec.{key}", f"is {value!r}, not an integer") from None


def _number(meta: Mapping[str, str], key: str, path: str) -> float | None:
    if key not in meta or meta[key] in (None, ""):
        return None
    try:
        return float(meta[key])
    except (TypeError, ValueError):
        raise ScaledObjectError(path, f"is {meta[key]!r}, not a number") from None


def _trigger(index: int, spec: TriggerSpec) -> Trigger:
    path = f"spec.triggers[{index}].metadata"
    meta = dict(spec.metadata)
    target_key = next((k for k in TARGET_METADATA_KEYS if k in meta), None)
    return Trigger(
        name=spec.name or "",
        type=spec.type,
        target=_number(meta, target_key, f"{path}.{target_key}") if target_key else None,
        activation_target=_number(meta, "activationTargetValue", f"{path}.activationTargetValue"),
        clamp_min=_number(meta, "clampMin", f"{path}.clampMin"),
        clamp_max=_number(meta, "clampMax", f"{path}.clampMax"),
        query=spec.query,
    )


def _rules(raw: Any, default: Rules, path: str) -> Rules:
    if not raw:
        return default
    where = f"spec.advanced.horizontalPodAutoscalerConfig.behavior.{path}"
    policies_raw = raw.get("policies")
    policies = default.policies
    if policies_raw is not None:
        parsed = []
        for i, p in enumerate(policies_raw):
            if p.get("type") not in ("Pods", "Percent"):
                raise ScaledObjectError(f"{where}.policies[{i}].type", f"is {p.get('type')!r} (Pods or Percent)")
            try:
                parsed.append(Policy(p["type"], int(p["value"]), int(p["periodSeconds"])))
            except (KeyError, TypeError, ValueError):
                raise ScaledObjectError(f"{where}.policies[{i}]", "needs integer value and periodSeconds") from None
        policies = tuple(parsed)
    select = raw.get("selectPolicy", "Max")
    if select not in ("Max", "Min", "Disabled"):
        raise ScaledObjectError(f"{where}.selectPolicy", f"is {select!r} (Max, Min or Disabled)")
    return Rules(
        stabilization_window_seconds=int(raw.get("stabilizationWindowSeconds", default.stabilization_window_seconds)),
        select_policy=select,
        policies=policies,
        tolerance=float(raw.get("tolerance", default.tolerance)),
    )
