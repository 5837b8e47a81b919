"""Safe evaluation of a KEDA ``scalingModifiers.formula``.

KEDA evaluates the formula with expr-lang over the values of the ScaledObject's named
triggers (https://keda.sh/docs/2.17/concepts/scaling-deployments/#scaling-modifiers).
This module supports the arithmetic subset: numbers, trigger names, ``+ - * /``, unary minus,
parentheses, ``min(...)`` / ``max(...)`` (two or more arguments) and expr-lang's one-argument
math builtins ``abs``, ``ceil``, ``floor`` and ``round`` (expr-lang docs, "Language
Definition", math functions; ``round`` as Go's ``math.Round``: halves away from zero). The
text is parsed with :mod:`ast` and only those node types are walked; anything else (attribute
access, comparisons, the ``?:`` conditional, other calls, ``**``) raises :class:`FormulaError`
naming the offending part. Nothing is ever passed to ``eval``.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Mapping

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_BINARY_TEXT = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_FUNCTIONS = {"min": min, "max": max}  # two or more arguments


def _round_half_away(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x)


_UNARY_FUNCTIONS = {"abs": abs, "ceil": math.ceil, "floor": math.floor, "round": _round_half_away}
_SUPPORTED = "numbers, trigger names, + - * /, parentheses, min(), max(), abs(), ceil(), floor() and round()"


class FormulaError(ValueError):
    """The formula is not in the supported subset, names an unknown trigger, or divides by zero."""


def _parse(formula: str) -> ast.expr:
    if not isinstance(formula, str) or not formula.strip():
        raise FormulaError("scalingModifiers.formula is empty")
    try:
        tree = ast.parse(formula.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(
            f"scalingModifiers.formula {formula!r} is not a valid expression (column {exc.offset}): "
            f"only {_SUPPORTED} are supported"
        ) from None
    return tree.body


def formula_names(formula: str) -> set[str]:
    """Return the trigger names a formula refers to (function names excluded).

    Raises:
        FormulaError: the formula is not in the supported subset.
    """
    names: set[str] = set()
    _walk(_parse(formula), formula, None, names)
    return names


def evaluate_formula(formula: str, values: Mapping[str, float]) -> float:
    """Evaluate ``formula`` with trigger ``values`` (trigger name -> metric value).

    Returns the composite metric value KEDA hands to the HPA (a float).

    Raises:
        FormulaError: unsupported syntax, an unknown name, a non-finite result or a
            division by zero; the message quotes the formula and names the culprit.
    """
    result = _walk(_parse(formula), formula, values, None)
    if not math.isfinite(result):
        raise FormulaError(f"scalingModifiers.formula {formula!r} evaluated to {result}")
    return result


def _walk(node: ast.AST, formula: str, values: Mapping[str, float] | None, names: set[str] | None) -> float:
    def where(n: ast.AST) -> str:
        segment = ast.get_source_segment(formula.strip(), n) or type(n).__name__
        return f"scalingModifiers.formula {formula!r}: {segment!r}"

    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise FormulaError(f"{where(node)} is not a number")
        return float(node.value)
    if isinstance(node, ast.Name):
        if names is not None:
            names.add(node.id)
            return 0.0
        assert values is not None
        if node.id not in values:
            raise FormulaError(f"{where(node)} names no trigger with a value (known: {sorted(values)})")
        return float(values[node.id])
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _walk(node.left, formula, values, names)
        right = _walk(node.right, formula, values, names)
        if names is None and isinstance(node.op, ast.Div) and right == 0:
            raise FormulaError(f"{where(node)} divides by zero")
        return 0.0 if names is not None else _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _walk(node.operand, formula, values, names)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Call):
        func = node.func
        if not isinstance(func, ast.Name) or func.id not in {**_FUNCTIONS, **_UNARY_FUNCTIONS}:
            raise FormulaError(f"{where(node)}: only min(), max(), abs(), ceil(), floor() and round() may be called")
        if func.id in _UNARY_FUNCTIONS:
            if node.keywords or len(node.args) != 1:
                raise FormulaError(f"{where(node)}: {func.id}() takes exactly one positional argument")
            arg = _walk(node.args[0], formula, values, names)
            return 0.0 if names is not None else float(_UNARY_FUNCTIONS[func.id](arg))
        if node.keywords or len(node.args) < 2:
            raise FormulaError(f"{where(node)}: {func.id}() takes two or more positional arguments")
        args = [_walk(a, formula, values, names) for a in node.args]
        return 0.0 if names is not None else float(_FUNCTIONS[func.id](args))
    if isinstance(node, ast.BinOp):
        raise FormulaError(f"{where(node)}: operator {type(node.op).__name__} is not supported (use {' '.join(_BINARY_TEXT.values())})")
    raise FormulaError(f"{where(node)} is not supported: only {_SUPPORTED}")
