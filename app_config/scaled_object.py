"""The KEDA ScaledObject of the vLLM Deployment, built from the ``scaling`` config, and its rules.

One pure module (standard library and :mod:`app_config` only; no cdk8s, no jsii) used by
everything that needs the ScaledObject:

* the config (:class:`app_config.model.ScalingConfig`) calls :func:`validate_scaling`, so a
  bad setting fails when the config loads, naming the config field;
* the chart (:mod:`k8s_charts.scaled_object`) renders :func:`scaled_object_manifest`;
* ``qvllm scale-math`` and the dashboard read the same manifest into their replica model
  (:meth:`qvllm.scaling.ScalingSpec.from_config`).

Triggers read the collector-fed metrics through the Kedify OTel scaler add-on: upstream KEDA
uses ``type: external`` + ``metadata.scalerAddress`` (the add-on's :4318 external-scaler
endpoint); Kedify's KEDA build uses ``type: kedify-otel``. Every external trigger's
``metricQuery`` is scoped to the namespace and Deployment whose pods export the metric (labels
the collector's relabel rules attach, :data:`app_config.constants.SERIES_NAMESPACE_LABEL` and
``SERIES_DEPLOYMENT_LABEL``): without it ``sum(vllm:num_requests_waiting)`` would sum any
series of that name the add-on receives. The triggers are combined by
``advanced.scalingModifiers``.

The KEDA rules are checked here rather than left to the admission webhook because the webhook
accepted or mis-handled such objects in the field (kedacore/keda#6938, kedacore/keda#5367),
and because extra triggers may reach the chart without passing through the config.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from app_config.constants import (
    EXTERNAL_TRIGGER_TYPE,
    GATEWAY_HELD_REQUESTS_METRIC,
    GATEWAY_NAME,
    INFERENCE_NAMESPACE,
    KEDA_NAMESPACE,
    KEDIFY_OTEL_TRIGGER_TYPE,
    METRIC_RUNNING,
    METRIC_WAITING,
    OTEL_ADDON_NAME,
    RESOURCE_TRIGGER_TYPES,
    SERIES_DEPLOYMENT_LABEL,
    SERIES_NAMESPACE_LABEL,
    VLLM_NAME,
    addon_scaler_address,
)
from app_config.formula import FormulaError, check_formula, parse_formula
from app_config.metric_query import MetricQuery, MetricQueryError, parse_metric_query

if TYPE_CHECKING:
    from app_config.model import HpaRules, ScalingConfig

SCALED_OBJECT_API_VERSION = "keda.sh/v1alpha1"
COMPOSITE_METRIC_TYPES = frozenset({"AverageValue", "Value"})
DEFAULT_TRIGGER_METRIC_TYPE = "AverageValue"  # KEDA's default when a trigger leaves metricType out
QUERY_METADATA_KEYS = ("metricQuery", "query")  # OTel add-on; Prometheus scaler

# Which Deployment's pods export a trigger's metric (ScalingTrigger.source -> Deployment name).
METRIC_SOURCES: dict[str, str] = {"vllm": VLLM_NAME, "gateway": GATEWAY_NAME}
# Metrics that count requests: one request of any of them must keep a scale-to-zero ScaledObject
# active, or KEDA takes the last pod away under it.
REQUEST_COUNT_METRICS = (METRIC_RUNNING, METRIC_WAITING, GATEWAY_HELD_REQUESTS_METRIC)


class ScaledObjectError(ValueError):
    """The ScaledObject breaks a KEDA rule, or a field is missing or malformed.

    Attributes:
        path: the ScaledObject field, e.g. ``spec.triggers[2].name`` or
            ``spec.advanced.scalingModifiers.formula``.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(_join(path, message))
        self.path = path
        self.reason = message


def _join(path: str, message: str) -> str:
    # "spec.maxReplicaCount (2) must be ..." reads as a sentence; other reasons follow a colon.
    return f"{path} {message}" if message.startswith("(") else f"{path}: {message}"


class ScalingModifiersWarning(UserWarning):
    """A legal but suspicious ScaledObject, e.g. a named trigger the formula does not use."""


def format_number(value: float | int, digits: int | None = None) -> str:
    """A number as KEDA's string fields want it and as the tools print it.

    ``25.0`` -> ``"25"``, ``0.5`` -> ``"0.5"``; with ``digits``, rounded to that many
    decimals and trailing zeros dropped (``1/3`` -> ``"0.333"`` with 3).

    Raises:
        TypeError: a bool (a YAML ``true`` where a number belongs).
    """
    if isinstance(value, bool):
        raise TypeError("booleans are not numbers here")
    number = float(value)
    if digits is not None:
        number = round(number, digits)
    if number.is_integer():
        return str(int(number))
    return repr(number) if digits is None else f"{number:.{digits}f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class TriggerSpec:
    """One ``spec.triggers[]`` entry, as rendered (before the composite-metric checks).

    Attributes:
        type: KEDA scaler type (``external``, ``kedify-otel``, ``cpu``, ``memory``...).
        metadata: scaler metadata; values must already be strings (the CRD allows only strings).
        name: trigger name, required (unique, non-empty) when scalingModifiers is set.
        metric_type: ``AverageValue`` (default when None), ``Value`` or ``Utilization``.
    """

    type: str
    metadata: tuple[tuple[str, str], ...]
    name: str | None = None
    metric_type: str | None = None

    @classmethod
    def from_manifest(cls, index: int, raw: Any) -> "TriggerSpec":
        """Read ``spec.triggers[index]`` of a ScaledObject dict.

        Raises:
            ScaledObjectError: not a mapping, or no ``type``.
        """
        path = f"spec.triggers[{index}]"
        if not isinstance(raw, Mapping) or not raw.get("type"):
            raise ScaledObjectError(f"{path}.type", "is missing")
        metadata = raw.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise ScaledObjectError(f"{path}.metadata", "must be a mapping")
        name = raw.get("name")
        return cls(
            type=str(raw["type"]),
            metadata=tuple((str(k), str(v)) for k, v in metadata.items()),
            name=None if name is None else str(name),
            metric_type=raw.get("metricType"),
        )

    def to_manifest(self) -> dict[str, Any]:
        """The trigger as a ScaledObject ``spec.triggers[]`` item."""
        out: dict[str, Any] = {"type": self.type}
        if self.name is not None:
            out["name"] = self.name
        if self.metric_type is not None:
            out["metricType"] = self.metric_type
        out["metadata"] = dict(self.metadata)
        return out

    @property
    def is_resource(self) -> bool:
        """cpu/memory triggers: the HPA's own resource metrics, never formula variables."""
        return self.type in RESOURCE_TRIGGER_TYPES

    @property
    def query(self) -> str | None:
        """``metadata.metricQuery`` (OTel add-on) or ``metadata.query`` (Prometheus), if any."""
        meta = dict(self.metadata)
        return next((meta[k] for k in QUERY_METADATA_KEYS if k in meta), None)

    def metric_query(self) -> MetricQuery | None:
        """The parsed add-on query of an OTel-add-on trigger (None for other scalers)."""
        meta = dict(self.metadata)
        if self.is_resource or "metricQuery" not in meta:
            return None
        return parse_metric_query(meta["metricQuery"])


@dataclass(frozen=True)
class ScalingModifiersSpec:
    """``spec.advanced.scalingModifiers``: the composite metric (all strings, as the CRD wants)."""

    formula: str
    target: str
    activation_target: str | None = None
    metric_type: Literal["AverageValue", "Value"] = "AverageValue"

    @classmethod
    def from_manifest(cls, raw: Any) -> "ScalingModifiersSpec | None":
        """Read ``spec.advanced.scalingModifiers`` (None when absent or without a formula)."""
        if not isinstance(raw, Mapping) or not raw.get("formula"):
            return None
        activation = raw.get("activationTarget")
        return cls(
            formula=str(raw["formula"]),
            target=str(raw.get("target", "")),
            activation_target=None if activation in (None, "") else str(activation),
            metric_type=raw.get("metricType") or "AverageValue",
        )

    def to_manifest(self) -> dict[str, Any]:
        """The ``scalingModifiers`` object."""
        out: dict[str, Any] = {"formula": self.formula, "target": self.target}
        if self.activation_target is not None:
            out["activationTarget"] = self.activation_target
        out["metricType"] = self.metric_type
        return out


# ---------------------------------------------------------------------------------
# KEDA's rules
# ---------------------------------------------------------------------------------
_FORMULA = "spec.advanced.scalingModifiers.formula"
_ACTIVATION = "spec.advanced.scalingModifiers.activationTarget"


def _number(path: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise ScaledObjectError(path, f"{value!r} is not a number") from None


def check_scaling_modifiers(triggers: Sequence[TriggerSpec], modifiers: ScalingModifiersSpec | None) -> list[str]:
    """Apply KEDA's composite-metric rules; return warnings, raise on errors.

    Rules (KEDA docs "Scaling Modifiers"; kedacore/keda#6938, kedacore/keda#5367):
      * at least one trigger; every OTel add-on query is in the add-on's language;
      * with scalingModifiers: every trigger has a unique, non-empty ``name``;
      * every formula identifier is the name of a non-resource trigger, and the formula passes
        KEDA's own check (:func:`app_config.formula.check_formula`);
      * all non-resource triggers use one metricType; ``scalingModifiers.metricType`` is
        AverageValue or Value; target and activationTarget are numbers, target > 0;
      * a named trigger the formula does not use still joins the composite: warned, not refused.

    Returns:
        Warning messages (emitted as :class:`ScalingModifiersWarning` by the chart).

    Raises:
        ScaledObjectError: the first broken rule, with the field path.
    """
    _check_queries(triggers)
    if modifiers is None:
        return []
    names = _trigger_names(triggers)
    used = _check_formula_names(triggers, names, modifiers.formula)
    _check_metric_types(triggers, modifiers)
    target = _number("spec.advanced.scalingModifiers.target", modifiers.target)
    if target is None or target <= 0:
        raise ScaledObjectError("spec.advanced.scalingModifiers.target", f"{modifiers.target!r} must be a number > 0")
    _number(_ACTIVATION, modifiers.activation_target)
    return [
        f"spec.triggers[{index}] {name!r} is not used by advanced.scalingModifiers.formula "
        f"{modifiers.formula!r} but still joins the composite metric"
        for name, index in names.items()
        if name not in used
    ]


def _check_queries(triggers: Sequence[TriggerSpec]) -> None:
    """At least one trigger, and every OTel add-on query in the add-on's language.

    Raises:
        ScaledObjectError: naming ``spec.triggers`` or the trigger's ``metricQuery``.
    """
    if not triggers:
        raise ScaledObjectError("spec.triggers", "at least one trigger is required")
    for index, trigger in enumerate(triggers):
        try:
            trigger.metric_query()
        except MetricQueryError as exc:
            raise ScaledObjectError(f"spec.triggers[{index}].metadata.metricQuery", str(exc)) from None


def _trigger_names(triggers: Sequence[TriggerSpec]) -> dict[str, int]:
    """Trigger name -> index; with scalingModifiers every trigger joins the composite, so each
    needs a unique, non-empty name.

    Raises:
        ScaledObjectError: naming the trigger's index.
    """
    names: dict[str, int] = {}
    for index, trigger in enumerate(triggers):
        if trigger.name is None or not trigger.name.strip():
            raise ScaledObjectError(
                f"spec.triggers[{index}].name",
                f"trigger of type {trigger.type!r} has no name; with advanced.scalingModifiers every trigger "
                "must have a unique non-empty name",
            )
        if trigger.name in names:
            raise ScaledObjectError(
                f"spec.triggers[{index}].name",
                f"repeats the name {trigger.name!r} of spec.triggers[{names[trigger.name]}]; trigger names must "
                "be unique when advanced.scalingModifiers is set",
            )
        names[trigger.name] = index
    return names


def _check_formula_names(triggers: Sequence[TriggerSpec], names: dict[str, int], formula: str) -> frozenset[str]:
    """Every formula identifier is the name of a non-resource trigger (KEDA refuses a cpu or
    memory trigger as a formula variable), and the formula passes KEDA's own check.

    Returns:
        The identifiers the formula uses.

    Raises:
        ScaledObjectError: naming ``scalingModifiers.formula`` and the identifier.
    """
    if not formula.strip():
        raise ScaledObjectError(_FORMULA, "is empty")
    try:
        used = parse_formula(formula).names
    except FormulaError as exc:
        raise ScaledObjectError(_FORMULA, str(exc)) from None
    for ident in used:
        if ident not in names:
            raise ScaledObjectError(
                _FORMULA,
                f"{formula!r} names {ident!r}, which is not the name of any trigger (trigger names: {sorted(names)})",
            )
        trigger = triggers[names[ident]]
        if trigger.is_resource:
            raise ScaledObjectError(
                _FORMULA,
                f"{formula!r} names {ident!r}, which is a {trigger.type!r} resource trigger "
                f"(spec.triggers[{names[ident]}]); resource triggers are not formula variables, only "
                "external-metric triggers are",
            )
    try:
        check_formula(formula, [t.name for t in triggers if t.name and not t.is_resource])
    except FormulaError as exc:
        raise ScaledObjectError(_FORMULA, str(exc)) from None
    return frozenset(used)


def _check_metric_types(triggers: Sequence[TriggerSpec], modifiers: ScalingModifiersSpec) -> None:
    """All non-resource triggers use one composite-capable metricType, and so does the composite.

    Raises:
        ScaledObjectError: naming the trigger's or the composite's ``metricType``.
    """
    first: tuple[int, str] | None = None
    for index, trigger in enumerate(triggers):
        if trigger.is_resource:
            continue
        metric_type = trigger.metric_type or DEFAULT_TRIGGER_METRIC_TYPE
        if metric_type not in COMPOSITE_METRIC_TYPES:
            raise ScaledObjectError(
                f"spec.triggers[{index}].metricType",
                f"{metric_type!r} cannot join a composite metric (use one of {sorted(COMPOSITE_METRIC_TYPES)})",
            )
        if first is None:
            first = (index, metric_type)
        elif metric_type != first[1]:
            raise ScaledObjectError(
                f"spec.triggers[{index}].metricType",
                f"is {metric_type!r} but spec.triggers[{first[0]}] uses {first[1]!r}; with "
                "advanced.scalingModifiers all triggers must use one metricType",
            )
    if modifiers.metric_type not in COMPOSITE_METRIC_TYPES:
        raise ScaledObjectError(
            "spec.advanced.scalingModifiers.metricType",
            f"{modifiers.metric_type!r} must be one of {sorted(COMPOSITE_METRIC_TYPES)}",
        )

def check_replica_bounds(min_replicas: int, max_replicas: int, idle_replica_count: int | None) -> None:
    """``minReplicaCount <= maxReplicaCount``, ``maxReplicaCount >= 1``, ``idleReplicaCount < minReplicaCount``.

    KEDA's webhook refuses an idleReplicaCount not below minReplicaCount; the bounds are not
    left to the webhook, which a cluster may not run.

    Raises:
        ScaledObjectError: naming the field.
    """
    if min_replicas < 0:
        raise ScaledObjectError("spec.minReplicaCount", f"({min_replicas}) must be >= 0")
    if max_replicas < 1:
        raise ScaledObjectError("spec.maxReplicaCount", f"({max_replicas}) must be >= 1")
    if max_replicas < min_replicas:
        raise ScaledObjectError(
            "spec.maxReplicaCount", f"({max_replicas}) must be >= spec.minReplicaCount ({min_replicas})"
        )
    if idle_replica_count is not None and idle_replica_count >= min_replicas:
        raise ScaledObjectError(
            "spec.idleReplicaCount",
            f"({idle_replica_count}) must be < spec.minReplicaCount ({min_replicas})",
        )


def activation_triggers(triggers: Sequence[TriggerSpec]) -> list[TriggerSpec]:
    """The triggers that read the gateway's held-requests gauge (the scale-from-zero signal)."""
    out = []
    for trigger in triggers:
        query = trigger.metric_query()
        if query is not None and query.name == GATEWAY_HELD_REQUESTS_METRIC:
            out.append(trigger)
    return out


def check_scale_to_zero(
    triggers: Sequence[TriggerSpec],
    modifiers: ScalingModifiersSpec | None,
    min_replicas: int,
    idle_replica_count: int | None,
) -> None:
    """With no vLLM pod left (minReplicaCount 0 or idleReplicaCount 0), something must wake KEDA.

    vLLM's own metrics vanish with its last pod, so the ScaledObject needs a trigger on the
    gateway's held-requests gauge, used by the formula, and one held request must lift the
    composite above ``activationTarget`` (KEDA's activity with scalingModifiers is
    ``composite > activationTarget``, kedacore/keda ``pkg/scaling/scale_handler.go``
    getScaledObjectState). The same holds for one running or waiting request: otherwise KEDA
    counts a serving ScaledObject inactive and takes the last pod away after cooldownPeriod.

    Raises:
        ScaledObjectError: naming minReplicaCount/idleReplicaCount or activationTarget, with why.
    """
    if min_replicas != 0 and idle_replica_count != 0:
        return
    where = "spec.minReplicaCount" if min_replicas == 0 else "spec.idleReplicaCount"
    held = activation_triggers(triggers)
    used = set(parse_formula(modifiers.formula).names) if modifiers is not None else {t.name for t in held}
    if not any(t.name in used for t in held):
        raise ScaledObjectError(
            where,
            f"0 (scale to zero) needs an activation trigger: a trigger reading the gateway's "
            f"{GATEWAY_HELD_REQUESTS_METRIC} gauge (source: gateway) used by the formula. The other triggers "
            "read vLLM's own metrics, which vanish with the last vLLM pod, so KEDA could never scale up again",
        )
    if modifiers is None:
        return
    activation = _number(_ACTIVATION, modifiers.activation_target) or 0.0
    formula = parse_formula(modifiers.formula)
    variables = [t.name for t in triggers if t.name and not t.is_resource]
    for trigger in triggers:
        query = trigger.metric_query()
        if query is None or query.name not in REQUEST_COUNT_METRICS or trigger.name not in formula.names:
            continue
        try:
            one = formula.evaluate({name: 1.0 if name == trigger.name else 0.0 for name in variables})
        except FormulaError:
            continue  # no finite composite to compare; KEDA's own check has passed the formula
        if one <= activation:
            raise ScaledObjectError(
                _ACTIVATION,
                f"{format_number(activation)} must be below the composite of one {trigger.name} request "
                f"({format_number(one)}) when scaling to zero: at or under it KEDA counts the ScaledObject "
                + ("inactive and never takes vLLM from 0 to 1"
                   if query.name == GATEWAY_HELD_REQUESTS_METRIC
                   else "inactive while it serves and removes the last pod after cooldownPeriod"),
            )


# ---------------------------------------------------------------------------------
# Building the ScaledObject from the config
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScaledObjectProps:
    """What the ScaledObject is built from.

    Attributes:
        scaling: the ``scaling`` config section (triggers, formula, bounds, HPA behavior).
        namespace: namespace of the ScaledObject, its target Deployment and the scraped pods.
        target_name: name of the Deployment KEDA scales (the vLLM Deployment).
        addon_service: Service name of the OTel scaler add-on (its Helm release name).
        addon_namespace: namespace of the add-on (KEDA's).
        extra_triggers: triggers appended after the config's (e.g. a schedule floor); they go
            through the same checks.
    """

    scaling: "ScalingConfig"
    namespace: str = INFERENCE_NAMESPACE
    target_name: str = VLLM_NAME
    addon_service: str = OTEL_ADDON_NAME
    addon_namespace: str = KEDA_NAMESPACE
    extra_triggers: tuple[TriggerSpec, ...] = field(default_factory=tuple)


def scoped_query(metric_query: str, source: str, namespace: str) -> str:
    """``metric_query`` limited to the series of ``source``'s Deployment in ``namespace``.

    ``sum(vllm:num_requests_waiting)`` -> ``sum(vllm:num_requests_waiting{namespace=inference,deployment=vllm})``.

    Raises:
        MetricQueryError: the query is not in the add-on's language, or it filters the
            namespace or deployment label to another value.
    """
    query = parse_metric_query(metric_query)
    return query.with_labels(
        [(SERIES_NAMESPACE_LABEL, namespace), (SERIES_DEPLOYMENT_LABEL, METRIC_SOURCES[source])]
    ).render()


def triggers_from_config(props: ScaledObjectProps) -> tuple[TriggerSpec, ...]:
    """The config's triggers as ScaledObject triggers for the configured KEDA flavor.

    External triggers get ``scalerAddress`` (the add-on's :4318), the scoped ``metricQuery``
    and ``targetValue`` (string). cpu/memory triggers get ``value`` and metricType Utilization.

    Raises:
        ScaledObjectError: a query outside the add-on's language (``spec.triggers[i]...``).
    """
    scaling = props.scaling
    address = addon_scaler_address(props.addon_service, props.addon_namespace)
    trigger_type = KEDIFY_OTEL_TRIGGER_TYPE if scaling.keda_flavor == "kedify" else EXTERNAL_TRIGGER_TYPE
    out = []
    for index, trigger in enumerate(scaling.triggers):
        if trigger.kind != "external":
            out.append(TriggerSpec(type=trigger.kind, name=trigger.name, metric_type="Utilization",
                                   metadata=(("value", format_number(trigger.target_value)),)))
            continue
        try:
            query = scoped_query(trigger.metric_query, trigger.source, props.namespace)
        except MetricQueryError as exc:
            raise ScaledObjectError(f"spec.triggers[{index}].metadata.metricQuery", str(exc)) from None
        out.append(TriggerSpec(
            type=trigger_type,
            name=trigger.name,
            metric_type=scaling.metric_type,
            metadata=(("scalerAddress", address), ("metricQuery", query),
                      ("targetValue", format_number(trigger.target_value))),
        ))
    return tuple(out)


def modifiers_from_config(scaling: "ScalingConfig") -> ScalingModifiersSpec:
    """``advanced.scalingModifiers`` from the config (numbers rendered as strings)."""
    return ScalingModifiersSpec(
        formula=scaling.formula,
        target=format_number(scaling.target),
        activation_target=format_number(scaling.activation_target),
        metric_type=scaling.metric_type,
    )


def hpa_rules(rules: "HpaRules") -> dict[str, Any]:
    """autoscaling/v2 ``HPAScalingRules`` from the config."""
    return {
        "stabilizationWindowSeconds": rules.stabilization_window_seconds,
        "selectPolicy": rules.select_policy,
        "policies": [{"type": p.type, "value": p.value, "periodSeconds": p.period_seconds} for p in rules.policies],
    }


def scaled_object_manifest(
    props: ScaledObjectProps,
    triggers: Sequence[TriggerSpec] | None = None,
    modifiers: ScalingModifiersSpec | None = None,
    labels: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Build the ScaledObject as a dict and check it (pure).

    Args:
        props: what to build from.
        triggers: override of the triggers (default: config triggers + ``extra_triggers``).
        modifiers: override of scalingModifiers (default: from the config).
        labels: ``metadata.labels`` (the chart passes its common labels).

    Returns:
        ``(manifest, warnings)``.

    Raises:
        ScaledObjectError: a KEDA rule is broken (see :func:`check_scaling_modifiers`,
            :func:`check_replica_bounds`, :func:`check_scale_to_zero`).
    """
    scaling = props.scaling
    if triggers is None:
        triggers = triggers_from_config(props) + props.extra_triggers
    if modifiers is None:
        modifiers = modifiers_from_config(scaling)
    messages = check_scaling_modifiers(triggers, modifiers)
    check_replica_bounds(scaling.min_replicas, scaling.max_replicas, scaling.idle_replica_count)
    check_scale_to_zero(triggers, modifiers, scaling.min_replicas, scaling.idle_replica_count)
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": props.target_name},
        "pollingInterval": scaling.polling_interval_seconds,
        "cooldownPeriod": scaling.cooldown_period_seconds,
        "minReplicaCount": scaling.min_replicas,
        "maxReplicaCount": scaling.max_replicas,
    }
    if scaling.idle_replica_count is not None:
        spec["idleReplicaCount"] = scaling.idle_replica_count
    spec["advanced"] = {
        "scalingModifiers": modifiers.to_manifest(),
        "horizontalPodAutoscalerConfig": {
            "behavior": {"scaleUp": hpa_rules(scaling.scale_up), "scaleDown": hpa_rules(scaling.scale_down)}
        },
    }
    spec["triggers"] = [t.to_manifest() for t in triggers]
    metadata: dict[str, Any] = {"name": props.target_name, "namespace": props.namespace}
    if labels:
        metadata["labels"] = dict(labels)
    manifest = {"apiVersion": SCALED_OBJECT_API_VERSION, "kind": "ScaledObject", "metadata": metadata, "spec": spec}
    return manifest, messages


def scaler_metrics(scaling: "ScalingConfig", always: Iterable[str] = ()) -> tuple[str, ...]:
    """Metric names the collector must forward to the add-on: ``always`` plus every name a trigger reads.

    Raises:
        MetricQueryError: a trigger query outside the add-on's language.
    """
    names = list(always)
    for trigger in scaling.triggers:
        if trigger.kind == "external":
            name = parse_metric_query(trigger.metric_query).name
            if name not in names:
                names.append(name)
    return tuple(names)


# ---------------------------------------------------------------------------------
# The config's view: the same checks, errors named by config field
# ---------------------------------------------------------------------------------
_CONFIG_FIELDS = {
    "spec.advanced.scalingModifiers.formula": "scaling.formula",
    "spec.advanced.scalingModifiers.target": "scaling.target",
    "spec.advanced.scalingModifiers.activationTarget": "scaling.activation_target",
    "spec.advanced.scalingModifiers.metricType": "scaling.metric_type",
    "spec.minReplicaCount": "scaling.min_replicas",
    "spec.maxReplicaCount": "scaling.max_replicas",
    "spec.idleReplicaCount": "scaling.idle_replica_count",
    "spec.triggers": "scaling.triggers",
}
_TRIGGER_PATH = re.compile(r"spec\.triggers\[(\d+)\](?:\.(name|metadata\.metricQuery|metricType))?")
_TRIGGER_FIELDS = {None: "", "name": ".name", "metadata.metricQuery": ".metric_query", "metricType": ""}


_SPEC_PATH = re.compile(r"spec\.[A-Za-z.]*[A-Za-z](?:\[\d+\](?:\.[A-Za-z.]*[A-Za-z])?)?")


def config_field(path: str) -> str:
    """The config field a ScaledObject path comes from (``spec.triggers[1].name`` -> ``scaling.triggers.1.name``).

    A path with no config field of its own maps to ``scaling``.
    """
    match = _TRIGGER_PATH.fullmatch(path)
    if match:
        return f"scaling.triggers.{match.group(1)}{_TRIGGER_FIELDS[match.group(2)]}"
    return _CONFIG_FIELDS.get(path, "scaling")


def validate_scaling(scaling: "ScalingConfig") -> None:
    """Build the ScaledObject from ``scaling`` and apply every KEDA rule once, at config load.

    Raises:
        ValueError: the rule's message in config terms, e.g.
            ``scaling.max_replicas (2) must be >= scaling.min_replicas (5)`` or
            ``scaling.formula: 'running + queued' names 'queued', which is not the name of any trigger ...``.
    """
    try:
        scaled_object_manifest(ScaledObjectProps(scaling=scaling))
    except ScaledObjectError as exc:
        reason = _SPEC_PATH.sub(lambda m: config_field(m.group(0)) if m.group(0) != exc.path else m.group(0),
                                exc.reason)
        raise ValueError(_join(config_field(exc.path), reason)) from None
