"""The KEDA ScaledObject chart: a thin cdk8s wrapper over :mod:`app_config.scaled_object`.

The object and its rules live in the pure module (the config, ``qvllm scale-math`` and the
dashboard use the same builder); this chart adds the common labels, renders the builder's spec
through the typed KEDA classes generated from the CRD (:func:`typed_scaled_object_spec`), emits
the builder's warnings and runs the synth-time manifest checks.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from constructs import Construct

from app_config.scaled_object import (  # noqa: F401 - re-exported for chart users
    ScaledObjectError,
    ScaledObjectProps,
    ScalingModifiersSpec,
    ScalingModifiersWarning,
    TriggerSpec,
    check_scaling_modifiers,
    scaled_object_manifest,
)
from k8s_charts.common import QvllmChart, common_labels, custom_meta, wire_enum
from k8s_charts.imports.sh import keda


class Behavior:
    """Short names of the generated HPA behavior classes (their full names are 60+ characters)."""

    Behavior = keda.ScaledObjectSpecAdvancedHorizontalPodAutoscalerConfigBehavior
    ScaleUp = keda.ScaledObjectSpecAdvancedHorizontalPodAutoscalerConfigBehaviorScaleUp
    ScaleDown = keda.ScaledObjectSpecAdvancedHorizontalPodAutoscalerConfigBehaviorScaleDown
    ScaleUpPolicies = keda.ScaledObjectSpecAdvancedHorizontalPodAutoscalerConfigBehaviorScaleUpPolicies
    ScaleDownPolicies = keda.ScaledObjectSpecAdvancedHorizontalPodAutoscalerConfigBehaviorScaleDownPolicies


def _hpa_rules(rules: Mapping[str, Any], up: bool) -> Any:
    """Typed ``HPAScalingRules`` (scaleUp and scaleDown have distinct generated classes)."""
    rules_type = Behavior.ScaleUp if up else Behavior.ScaleDown
    policy_type = Behavior.ScaleUpPolicies if up else Behavior.ScaleDownPolicies
    return rules_type(
        stabilization_window_seconds=rules.get("stabilizationWindowSeconds"),
        select_policy=rules.get("selectPolicy"),
        policies=[
            policy_type(type=p["type"], value=p["value"], period_seconds=p["periodSeconds"])
            for p in rules.get("policies", [])
        ],
    )


def typed_scaled_object_spec(spec: Mapping[str, Any]) -> keda.ScaledObjectSpec:
    """The ScaledObject ``spec`` (as :func:`scaled_object_manifest` builds it) as the generated
    typed class, so the chart renders it through the CRD's types (a wrong type fails here, at
    synth).

    Raises:
        TypeError: a field has a type the CRD does not allow (names the field).
        KeyError: a field the CRD requires is missing.
    """
    advanced = spec.get("advanced", {})
    modifiers = advanced.get("scalingModifiers")
    behavior = advanced.get("horizontalPodAutoscalerConfig", {}).get("behavior")
    target = spec["scaleTargetRef"]
    return keda.ScaledObjectSpec(
        scale_target_ref=keda.ScaledObjectSpecScaleTargetRef(
            api_version=target.get("apiVersion"), kind=target.get("kind"), name=target["name"]
        ),
        polling_interval=spec.get("pollingInterval"),
        cooldown_period=spec.get("cooldownPeriod"),
        min_replica_count=spec.get("minReplicaCount"),
        max_replica_count=spec.get("maxReplicaCount"),
        idle_replica_count=spec.get("idleReplicaCount"),
        advanced=keda.ScaledObjectSpecAdvanced(
            scaling_modifiers=keda.ScaledObjectSpecAdvancedScalingModifiers(
                formula=modifiers["formula"],
                target=modifiers["target"],
                activation_target=modifiers.get("activationTarget"),
                metric_type=wire_enum(keda.ScaledObjectSpecAdvancedScalingModifiersMetricType, modifiers["metricType"]),
            )
            if modifiers
            else None,
            horizontal_pod_autoscaler_config=keda.ScaledObjectSpecAdvancedHorizontalPodAutoscalerConfig(
                behavior=Behavior.Behavior(
                    scale_up=_hpa_rules(behavior["scaleUp"], up=True) if "scaleUp" in behavior else None,
                    scale_down=_hpa_rules(behavior["scaleDown"], up=False) if "scaleDown" in behavior else None,
                )
            )
            if behavior
            else None,
        )
        if advanced
        else None,
        triggers=[
            keda.ScaledObjectSpecTriggers(
                type=t["type"], name=t.get("name"), metric_type=t.get("metricType"), metadata=dict(t["metadata"])
            )
            for t in spec["triggers"]
        ],
    )


class ScaledObjectChart(QvllmChart):
    """``keda.sh/v1alpha1`` ScaledObject for the vLLM Deployment (apply after KEDA and the add-on).

    Raises:
        ScaledObjectError: at construction (inside ``cdk synth``) when the triggers and
            scalingModifiers break a KEDA rule (see :func:`app_config.scaled_object.check_scaling_modifiers`).
    Warns:
        ScalingModifiersWarning: for each named trigger the formula does not use.
    """

    def __init__(self, scope: Construct, id: str, props: ScaledObjectProps) -> None:
        super().__init__(scope, id)
        manifest, messages = scaled_object_manifest(props, labels=common_labels(props.target_name))
        for message in messages:
            warnings.warn(message, ScalingModifiersWarning, stacklevel=2)
        self.warnings: tuple[str, ...] = tuple(messages)
        meta = manifest["metadata"]
        keda.ScaledObject(
            self,
            "scaled-object",
            metadata=custom_meta(meta["name"], meta["labels"], meta["namespace"]),
            spec=typed_scaled_object_spec(manifest["spec"]),
        )
        self._check()
