"""The KEDA ScaledObject chart: a thin cdk8s wrapper over :mod:`app_config.scaled_object`.

The object and its rules live in the pure module (the config, ``qvllm scale-math`` and the
dashboard use the same builder); this chart adds the common labels, emits the builder's
warnings and runs the synth-time manifest checks.
"""

from __future__ import annotations

import warnings

import cdk8s
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
from k8s_charts.common import QvllmChart, common_labels, k8s_object


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
        k8s_object(
            self,
            "scaled-object",
            api_version=manifest["apiVersion"],
            kind=manifest["kind"],
            metadata=cdk8s.ApiObjectMetadata(**manifest["metadata"]),
            spec=manifest["spec"],
        )
        self._check()
