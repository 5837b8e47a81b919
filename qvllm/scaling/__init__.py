"""Scaling math shared by the dashboard, the `scale-math` command and a load simulator.

Public API: :class:`ScalingSpec` (a ScaledObject, typed; :meth:`ScalingSpec.from_config`
reads the manifest the chart renders), :func:`desired_replicas` (one evaluation),
:class:`ControlLoop` / :func:`simulate` (KEDA polls and HPA syncs over time), and the one
formula evaluator of :mod:`app_config.formula`.
"""

from app_config.formula import FormulaError, evaluate_formula, formula_identifiers
from app_config.scaled_object import ScaledObjectError
from qvllm.scaling.replicas import (
    ControlLoop,
    Decision,
    ScaleEvent,
    changes,
    complete_values,
    composite_value,
    control_times,
    desired_replicas,
    hpa_recommendation,
    is_active,
    keda_from_zero,
    reaction_times,
    ReactionTimes,
    scale_down_limit,
    scale_up_limit,
    simulate,
)
from qvllm.scaling.spec import Policy, Rules, ScalingSpec, Trigger

__all__ = [
    "ControlLoop", "Decision", "FormulaError", "Policy", "Rules", "ScaleEvent", "ScaledObjectError", "ScalingSpec",
    "Trigger", "changes", "complete_values", "composite_value", "control_times", "desired_replicas",
    "evaluate_formula", "formula_identifiers", "hpa_recommendation", "is_active", "keda_from_zero", "reaction_times", "ReactionTimes",
    "scale_down_limit", "scale_up_limit", "simulate",
]
