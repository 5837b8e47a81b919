"""The KEDA ScaledObject that scales the vLLM Deployment on queue depth.

Triggers read the collector-fed vLLM metrics through the Kedify OTel scaler add-on:
upstream KEDA uses ``type: external`` + ``metadata.scalerAddress`` (the add-on's :4318 gRPC
external-scaler endpoint); Kedify's KEDA build uses ``type: kedify-otel``. The triggers are
combined by ``advanced.scalingModifiers`` (formula ``running + (waiting * 10)``, target 25,
activation target 5; DESIGN section 2).

The builder re-checks the KEDA composite-metric rules itself (cases B01, B02) because the
admission webhook accepted or mis-handled such objects in the field, and because the chart
may be fed triggers that did not come through :class:`app_config.model.ScalingConfig`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cdk8s
from constructs import Construct

from app_config.constants import (
    EXTERNAL_TRIGGER_TYPE,
    INFERENCE_NAMESPACE,
    KEDA_NAMESPACE,
    KEDIFY_OTEL_TRIGGER_TYPE,
    OTEL_ADDON_NAME,
    RESOURCE_TRIGGER_TYPES,
    VLLM_NAME,
)
from app_config.formula import formula_identifiers
from app_config.model import HpaRules, ScalingConfig
from k8s_charts.common import k8s_object, QvllmChart, addon_scaler_address, common_labels, format_number

SCALED_OBJECT_API_VERSION = "keda.sh/v1alpha1"
COMPOSITE_METRIC_TYPES = frozenset({"AverageValue", "Value"})
DEFAULT_TRIGGER_METRIC_TYPE = "AverageValue"  # KEDA's default when a trigger leaves metricType out

class ScaledObjectError(ValueError):
    """The ScaledObject breaks a KEDA rule; the message names the field (and trigger index)."""


class ScalingModifiersWarning(UserWarning):
    """A legal but suspicious ScaledObject, e.g. a named trigger the formula does not use (B02)."""


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


@dataclass(frozen=True)
class ScalingModifiersSpec:
    """``spec.advanced.scalingModifiers``: the composite metric (all strings, as the CRD wants)."""

    formula: str
    target: str
    activation_target: str | None = None
    metric_type: Literal["AverageValue", "Value"] = "AverageValue"

    def to_manifest(self) -> dict[str, Any]:
        """The ``scalingModifiers`` object."""
        out: dict[str, Any] = {"formula": self.formula, "target": self.target}
        if self.activation_target is not None:
            out["activationTarget"] = self.activation_target
        out["metricType"] = self.metric_type
        return out


def check_scaling_modifiers(triggers: Sequence[TriggerSpec], modifiers: ScalingModifiersSpec | None) -> list[str]:
    """Apply KEDA's composite-metric rules; return warnings, raise on errors.

    Rules (cases B01, B02; KEDA docs "scaling modifiers"):
      * every trigger has a unique, non-empty ``name`` (error names ``triggers[i]``);
      * every formula identifier is the name of a non-resource trigger (error names
        ``scalingModifiers.formula`` and the identifier);
      * all non-resource triggers use one metricType (error names the index that differs);
      * ``scalingModifiers.metricType`` is AverageValue or Value, target is a number;
      * a named trigger the formula does not use still joins the composite: warned, not refused.

    Args:
        triggers: the ``spec.triggers`` entries.
        modifiers: ``advanced.scalingModifiers`` or None (then nothing is checked).

    Returns:
        Warning messages (also emitted as :class:`ScalingModifiersWarning` by the chart).

    Raises:
        ScaledObjectError: the first broken rule, with the field path.
    """
    if not triggers:
        raise ScaledObjectError("spec.triggers: at least one trigger is required")
    if modifiers is None:
        return []
    names: dict[str, int] = {}
    for index, trigger in enumerate(triggers):
        if trigger.name is None or not trigger.name.strip():
            raise ScaledObjectError(
                f"spec.triggers[{index}] (type {trigger.type!r}) has no name; with "
                "advanced.scalingModifiers every trigger must have a unique non-empty name"
            )
        if trigger.name in names:
            raise ScaledObjectError(
                f"spec.triggers[{index}] repeats the name {trigger.name!r} of spec.triggers[{names[trigger.name]}]; "
                "trigger names must be unique when advanced.scalingModifiers is set"
            )
        names[trigger.name] = index
    if not modifiers.formula.strip():
        raise ScaledObjectError("advanced.scalingModifiers.formula is empty")
    for ident in formula_identifiers(modifiers.formula):
        if ident not in names:
            raise ScaledObjectError(
                f"advanced.scalingModifiers.formula {modifiers.formula!r} names {ident!r}, which is not the name "
                f"of any trigger (trigger names: {sorted(names)})"
            )
        trigger = triggers[names[ident]]
        if trigger.is_resource:
            raise ScaledObjectError(
                f"advanced.scalingModifiers.formula {modifiers.formula!r} names {ident!r}, which is a "
                f"{trigger.type!r} resource trigger (spec.triggers[{names[ident]}]); resource triggers are not "
                "formula variables, only external-metric triggers are"
            )
    first: tuple[int, str] | None = None
    for index, trigger in enumerate(triggers):
        if trigger.is_resource:
            continue
        metric_type = trigger.metric_type or DEFAULT_TRIGGER_METRIC_TYPE
        if metric_type not in COMPOSITE_METRIC_TYPES:
            raise ScaledObjectError(
                f"spec.triggers[{index}].metricType {metric_type!r} cannot join a composite metric "
                f"(use one of {sorted(COMPOSITE_METRIC_TYPES)})"
            )
        if first is None:
            first = (index, metric_type)
        elif metric_type != first[1]:
            raise ScaledObjectError(
                f"spec.triggers[{index}].metricType is {metric_type!r} but spec.triggers[{first[0]}] uses "
                f"{first[1]!r}; with advanced.scalingModifiers all triggers must use one metricType"
            )
    if modifiers.metric_type not in COMPOSITE_METRIC_TYPES:
        raise ScaledObjectError(
            f"advanced.scalingModifiers.metricType {modifiers.metric_type!r} must be one of "
            f"{sorted(COMPOSITE_METRIC_TYPES)}"
        )
    for label, value in (("target", modifiers.target), ("activationTarget", modifiers.activation_target)):
        if value is None:
            continue
        try:
            float(value)
        except ValueError:
            raise ScaledObjectError(f"advanced.scalingModifiers.{label} {value!r} is not a number") from None
    used = set(formula_identifiers(modifiers.formula))
    return [
        f"spec.triggers[{index}] {name!r} is not used by advanced.scalingModifiers.formula "
        f"{modifiers.formula!r} but still joins the composite metric"
        for name, index in names.items()
        if name not in used
    ]


def triggers_from_config(
    scaling: ScalingConfig,
    addon_service: str = OTEL_ADDON_NAME,
    addon_namespace: str = KEDA_NAMESPACE,
) -> tuple[TriggerSpec, ...]:
    """The config's triggers as ScaledObject triggers for the configured KEDA flavor.

    ``external`` triggers get ``scalerAddress`` (the add-on's :4318), ``metricQuery`` and
    ``targetValue`` (string). ``cpu``/``memory`` triggers get ``value`` and metricType Utilization.
    """
    address = addon_scaler_address(addon_service, addon_namespace)
    trigger_type = KEDIFY_OTEL_TRIGGER_TYPE if scaling.keda_flavor == "kedify" else EXTERNAL_TRIGGER_TYPE
    out = []
    for trigger in scaling.triggers:
        if trigger.kind == "external":
            out.append(
                TriggerSpec(
                    type=trigger_type,
                    name=trigger.name,
                    metric_type=scaling.metric_type,
                    metadata=(
                        ("scalerAddress", address),
                        ("metricQuery", trigger.metric_query),
                        ("targetValue", format_number(trigger.target_value)),
                    ),
                )
            )
        else:
            out.append(
                TriggerSpec(
                    type=trigger.kind,
                    name=trigger.name,
                    metric_type="Utilization",
                    metadata=(("value", format_number(trigger.target_value)),),
                )
            )
    return tuple(out)


def modifiers_from_config(scaling: ScalingConfig) -> ScalingModifiersSpec:
    """``advanced.scalingModifiers`` from the config (numbers rendered as strings)."""
    return ScalingModifiersSpec(
        formula=scaling.formula,
        target=format_number(scaling.target),
        activation_target=format_number(scaling.activation_target),
        metric_type=scaling.metric_type,
    )


def hpa_rules(rules: HpaRules) -> dict[str, Any]:
    """autoscaling/v2 ``HPAScalingRules`` from the config."""
    return {
        "stabilizationWindowSeconds": rules.stabilization_window_seconds,
        "selectPolicy": rules.select_policy,
        "policies": [
            {"type": p.type, "value": p.value, "periodSeconds": p.period_seconds} for p in rules.policies
        ],
    }


@dataclass(frozen=True)
class ScaledObjectProps:
    """Props of :class:`ScaledObjectChart`.

    Attributes:
        scaling: the ``scaling`` config section (triggers, formula, bounds, HPA behavior).
        namespace: namespace of the ScaledObject and its target Deployment.
        target_name: name of the Deployment KEDA scales (the vLLM Deployment).
        addon_service: Service name of the OTel scaler add-on (its Helm release name).
        addon_namespace: namespace of the add-on (KEDA's).
        extra_triggers: triggers appended after the config's (e.g. a schedule floor); they go
            through the same composite-metric checks.
    """

    scaling: ScalingConfig
    namespace: str = INFERENCE_NAMESPACE
    target_name: str = VLLM_NAME
    addon_service: str = OTEL_ADDON_NAME
    addon_namespace: str = KEDA_NAMESPACE
    extra_triggers: tuple[TriggerSpec, ...] = field(default_factory=tuple)


def scaled_object_manifest(
    props: ScaledObjectProps,
    triggers: Sequence[TriggerSpec] | None = None,
    modifiers: ScalingModifiersSpec | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Build the ScaledObject as a dict and check it (pure; the chart wraps it).

    Args:
        props: chart props.
        triggers: override of the triggers (default: config triggers + ``extra_triggers``).
        modifiers: override of scalingModifiers (default: from the config).

    Returns:
        ``(manifest, warnings)``.

    Raises:
        ScaledObjectError: see :func:`check_scaling_modifiers`.
    """
    scaling = props.scaling
    if triggers is None:
        triggers = triggers_from_config(scaling, props.addon_service, props.addon_namespace) + props.extra_triggers
    if modifiers is None:
        modifiers = modifiers_from_config(scaling)
    messages = check_scaling_modifiers(triggers, modifiers)
    if scaling.max_replicas < scaling.min_replicas:
        raise ScaledObjectError(
            f"spec.maxReplicaCount ({scaling.max_replicas}) < spec.minReplicaCount ({scaling.min_replicas})"
        )
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
    manifest = {
        "apiVersion": SCALED_OBJECT_API_VERSION,
        "kind": "ScaledObject",
        "metadata": {"name": props.target_name, "namespace": props.namespace, "labels": common_labels(props.target_name)},
        "spec": spec,
    }
    return manifest, messages


class ScaledObjectChart(QvllmChart):
    """``keda.sh/v1alpha1`` ScaledObject for the vLLM Deployment (apply after KEDA and the add-on).

    Raises:
        ScaledObjectError: at construction (inside ``cdk synth``) when the triggers and
            scalingModifiers break KEDA's composite rules (cases B01, B02).
    Warns:
        ScalingModifiersWarning: for each named trigger the formula does not use.
    """

    def __init__(self, scope: Construct, id: str, props: ScaledObjectProps) -> None:
        super().__init__(scope, id)
        manifest, messages = scaled_object_manifest(props)
        for message in messages:
            warnings.warn(message, ScalingModifiersWarning, stacklevel=2)
        self.warnings: tuple[str, ...] = tuple(messages)
        k8s_object(
            self,
            "scaled-object",
            api_version=manifest["apiVersion"],
            kind=manifest["kind"],
            metadata=cdk8s.ApiObjectMetadata(**manifest["metadata"]),
            spec=manifest["spec"],
        )
        self._check()
