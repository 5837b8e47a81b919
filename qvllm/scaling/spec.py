"""A ScaledObject, read into typed, frozen values the replica model works on.

Input shapes:

- :meth:`ScalingSpec.from_scaled_object` takes the ScaledObject as a dict, exactly as the
  KEDA CRD (``keda.sh/v1alpha1``) shapes it and as the charts render it: ``spec.triggers[]``
  (``name``, ``type``, ``metadata``, ``metricType``), ``spec.advanced.scalingModifiers``
  (``formula``, ``target``, ``activationTarget``, ``metricType``), ``minReplicaCount``,
  ``maxReplicaCount``, ``cooldownPeriod``, ``pollingInterval`` and
  ``spec.advanced.horizontalPodAutoscalerConfig.behavior`` (autoscaling/v2 HPABehavior).
- :meth:`ScalingSpec.from_config` takes :class:`app_config.model.ScalingConfig`.
- :func:`scaled_object_from_config` renders the config as that dict (the fields the model
  reads), for tools that have no rendered chart at hand.

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

from app_config.constants import EXTERNAL_TRIGGER_TYPE, KEDIFY_OTEL_TRIGGER_TYPE, RESOURCE_TRIGGER_TYPES
from qvllm.scaling.formula import FormulaError, formula_names

DEFAULT_TOLERANCE = 0.1
HPA_SYNC_PERIOD_SECONDS = 15  # kube-controller-manager --horizontal-pod-autoscaler-sync-period


class ScaledObjectError(ValueError):
    """The ScaledObject dict lacks a field the model needs or has a malformed one."""


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
        """cpu/memory triggers are not formula variables (KEDA, case B01)."""
        return self.type in RESOURCE_TRIGGER_TYPES


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

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_scaled_object(cls, obj: Mapping[str, Any]) -> "ScalingSpec":
        """Read a ScaledObject dict (see the module docstring).

        Raises:
            ScaledObjectError: a missing or malformed field, named by its path.
            FormulaError: the formula is unsupported or names a trigger that cannot be a variable.
        """
        if not isinstance(obj, Mapping):
            raise ScaledObjectError("ScaledObject must be a mapping")
        if obj.get("kind", "ScaledObject") != "ScaledObject":
            raise ScaledObjectError(f"kind is {obj.get('kind')!r}, expected 'ScaledObject'")
        spec = obj.get("spec")
        if not isinstance(spec, Mapping):
            raise ScaledObjectError("spec is missing")
        raw_triggers = spec.get("triggers")
        if not isinstance(raw_triggers, list) or not raw_triggers:
            raise ScaledObjectError("spec.triggers must be a non-empty list")
        advanced = spec.get("advanced") or {}
        modifiers = advanced.get("scalingModifiers") or {}
        triggers = tuple(_trigger(i, t) for i, t in enumerate(raw_triggers))
        formula = modifiers.get("formula")
        target = _number(modifiers, "target", "spec.advanced.scalingModifiers.target") if formula else None
        if formula and target is None:
            raise ScaledObjectError("spec.advanced.scalingModifiers.target is required with a formula")
        activation = _number(modifiers, "activationTarget", "spec.advanced.scalingModifiers.activationTarget")
        metric_type = modifiers.get("metricType") or _first_metric_type(raw_triggers)
        if metric_type not in ("AverageValue", "Value"):
            raise ScaledObjectError(
                f"metricType {metric_type!r} is not supported for external metrics (AverageValue or Value)"
            )
        behavior = (advanced.get("horizontalPodAutoscalerConfig") or {}).get("behavior") or {}
        min_r = int(spec.get("minReplicaCount", 0))
        max_r = int(spec.get("maxReplicaCount", 100))
        if min_r < 0 or max_r < 1 or min_r > max_r:
            raise ScaledObjectError(
                f"spec.minReplicaCount ({min_r}) / spec.maxReplicaCount ({max_r}): need 0 <= min <= max, max >= 1"
            )
        result = cls(
            triggers=triggers,
            formula=formula,
            target=target,
            activation_target=activation if activation is not None else 0.0,
            metric_type=metric_type,
            min_replicas=min_r,
            max_replicas=max_r,
            cooldown_seconds=int(spec.get("cooldownPeriod", 300)),
            polling_interval_seconds=int(spec.get("pollingInterval", 30)),
            scale_up=_rules(behavior.get("scaleUp"), DEFAULT_SCALE_UP, "scaleUp"),
            scale_down=_rules(behavior.get("scaleDown"), DEFAULT_SCALE_DOWN, "scaleDown"),
            idle_replicas=int(spec["idleReplicaCount"]) if spec.get("idleReplicaCount") is not None else None,
        )
        return result._checked()

    @classmethod
    def from_config(cls, scaling: Any) -> "ScalingSpec":
        """Build from :class:`app_config.model.ScalingConfig` (via :func:`scaled_object_from_config`)."""
        return cls.from_scaled_object(scaled_object_from_config(scaling))

    # ------------------------------------------------------------------ checks
    def _checked(self) -> "ScalingSpec":
        warnings: list[str] = []
        if self.formula:
            names = {t.name for t in self.triggers}
            for index, trig in enumerate(self.triggers):
                if not trig.name:
                    raise ScaledObjectError(
                        f"spec.triggers[{index}] has no name: with scalingModifiers every trigger must be named"
                    )
            for ident in sorted(formula_names(self.formula)):
                trig = next((t for t in self.triggers if t.name == ident), None)
                if trig is None:
                    raise FormulaError(
                        f"scalingModifiers.formula names {ident!r}, but no trigger has that name "
                        f"(triggers: {sorted(names)})"
                    )
                if trig.is_resource:
                    raise FormulaError(
                        f"scalingModifiers.formula names {ident!r}, a {trig.type} trigger: resource "
                        "triggers are not formula variables"
                    )
            unused = names - formula_names(self.formula)
            if unused:
                warnings.append(f"triggers {sorted(unused)} are not used by the formula")
        object.__setattr__(self, "warnings", tuple(warnings))
        return self


def _number(mapping: Mapping[str, Any], key: str, path: str) -> float | None:
    if key not in mapping or mapping[key] in (None, ""):
        return None
    try:
        return float(mapping[key])
    except (TypeError, ValueError):
        raise ScaledObjectError(f"{path} is {mapping[key]!r}, not a number") from None


def _first_metric_type(raw_triggers: list[Any]) -> str:
    for trig in raw_triggers:
        if isinstance(trig, Mapping) and trig.get("metricType"):
            return str(trig["metricType"])
    return "AverageValue"


def _trigger(index: int, raw: Any) -> Trigger:
    path = f"spec.triggers[{index}]"
    if not isinstance(raw, Mapping) or not raw.get("type"):
        raise ScaledObjectError(f"{path}.type is missing")
    meta = raw.get("metadata") or {}
    target = None
    for key in ("targetValue", "value", "threshold", "targetMetricValue"):
        if key in meta:
            target = _number(meta, key, f"{path}.metadata.{key}")
            break
    return Trigger(
        name=str(raw.get("name") or ""),
        type=str(raw["type"]),
        target=target,
        activation_target=_number(meta, "activationTargetValue", f"{path}.metadata.activationTargetValue"),
        clamp_min=_number(meta, "clampMin", f"{path}.metadata.clampMin"),
        clamp_max=_number(meta, "clampMax", f"{path}.metadata.clampMax"),
        query=meta.get("metricQuery") or meta.get("query"),
    )


def _rules(raw: Any, default: Rules, path: str) -> Rules:
    if not raw:
        return default
    where = f"spec.advanced.horizontalPodAutoscalerConfig.behavior.{path}"
    policies_raw = raw.get("policies")
    policies = default.policies
    if policies_raw is not None:
        policies = []
        for i, p in enumerate(policies_raw):
            if p.get("type") not in ("Pods", "Percent"):
                raise ScaledObjectError(f"{where}.policies[{i}].type is {p.get('type')!r} (Pods or Percent)")
            try:
                policies.append(Policy(p["type"], int(p["value"]), int(p["periodSeconds"])))
            except (KeyError, TypeError, ValueError):
                raise ScaledObjectError(f"{where}.policies[{i}] needs integer value and periodSeconds") from None
        policies = tuple(policies)
    select = raw.get("selectPolicy", "Max")
    if select not in ("Max", "Min", "Disabled"):
        raise ScaledObjectError(f"{where}.selectPolicy is {select!r} (Max, Min or Disabled)")
    return Rules(
        stabilization_window_seconds=int(raw.get("stabilizationWindowSeconds", default.stabilization_window_seconds)),
        select_policy=select,
        policies=policies,
        tolerance=float(raw.get("tolerance", default.tolerance)),
    )


def _rules_dict(rules: Any) -> dict[str, Any]:
    return {
        "stabilizationWindowSeconds": rules.stabilization_window_seconds,
        "selectPolicy": rules.select_policy,
        "policies": [
            {"type": p.type, "value": p.value, "periodSeconds": p.period_seconds} for p in rules.policies
        ],
    }


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def scaled_object_from_config(scaling: Any, *, name: str = "vllm") -> dict[str, Any]:
    """Render :class:`app_config.model.ScalingConfig` as a ScaledObject dict (model fields only).

    The charts render the deployable object (with ``scalerAddress`` and friends); this is
    the subset the replica model reads, in the same CRD shape, so both paths agree.
    """
    external = KEDIFY_OTEL_TRIGGER_TYPE if scaling.keda_flavor == "kedify" else EXTERNAL_TRIGGER_TYPE
    triggers = []
    for trig in scaling.triggers:
        trigger_type = external if trig.kind == "external" else trig.kind  # cpu / memory
        entry: dict[str, Any] = {"type": trigger_type, "name": trig.name, "metadata": {}}
        if trig.kind == "external":
            entry["metadata"] = {"metricQuery": trig.metric_query, "targetValue": _fmt(trig.target_value)}
        else:
            entry["metricType"] = "Utilization"
            entry["metadata"] = {"value": _fmt(trig.target_value)}
        triggers.append(entry)
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"name": name},
            "pollingInterval": scaling.polling_interval_seconds,
            "cooldownPeriod": scaling.cooldown_period_seconds,
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "triggers": triggers,
            "advanced": {
                "scalingModifiers": {
                    "formula": scaling.formula,
                    "target": _fmt(scaling.target),
                    "activationTarget": _fmt(scaling.activation_target),
                    "metricType": scaling.metric_type,
                },
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleUp": _rules_dict(scaling.scale_up),
                        "scaleDown": _rules_dict(scaling.scale_down),
                    }
                },
            },
        },
    }
