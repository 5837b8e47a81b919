"""Scaling math shared by the dashboard, the `scale-math` command and the docs.

Public API: :class:`ScalingSpec` (a ScaledObject, typed), :func:`desired_replicas`
(one evaluation), :class:`Autoscaler` / :func:`simulate` (behavior over time),
:func:`evaluate_formula` (the safe formula evaluator).
"""

from qvllm.scaling.formula import FormulaError, evaluate_formula, formula_names
from qvllm.scaling.replicas import (
    Autoscaler,
    Decision,
    changes,
    composite_value,
    desired_replicas,
    hpa_recommendation,
    keda_from_zero,
    scale_down_limit,
    scale_up_limit,
    simulate,
)
from qvllm.scaling.spec import (
    Policy,
    Rules,
    ScaledObjectError,
    ScalingSpec,
    Trigger,
    scaled_object_from_config,
)

__all__ = [
    "Autoscaler", "Decision", "FormulaError", "Policy", "Rules", "ScaledObjectError", "ScalingSpec",
    "Trigger", "changes", "composite_value", "desired_replicas", "evaluate_formula", "formula_names",
    "hpa_recommendation", "keda_from_zero", "scale_down_limit", "scale_up_limit", "scaled_object_from_config", "simulate",
]
