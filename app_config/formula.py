"""KEDA's ``scalingModifiers.formula``: one parser for the config check, the chart and the replica model.

KEDA 2.20 evaluates the formula with expr-lang v1.17.8 (``github.com/expr-lang/expr`` in
kedacore/keda's go.mod). Its admission check compiles the formula with every named trigger
that is not a cpu/memory trigger as a float64 variable and runs it once with each set to -1
(``validateScalingModifiersFormula`` in kedacore/keda ``apis/keda/v1alpha1/scaledobject_webhook.go``),
after wrapping the text in ``float(...)`` (``castToFloatIfNecessary``), so the result must be a
number. :func:`check_formula` does the same.

This module parses the numeric part of expr-lang that a formula over trigger values uses,
with expr-lang's precedence and associativity (``parser/operator/operator.go`` at v1.17.8,
lowest first): ``c ? a : b``; ``or ||``; ``and &&``; ``== != < > <= >=`` (a chain ``a < b < c``
means ``a < b && b < c``); ``+ -``; ``* / %``; unary ``not !``; unary ``- +``; ``** ^``
(right-associative). Functions: ``min``/``max`` (one or more arguments), ``abs``, ``ceil``,
``floor``, ``round`` (Go's ``math.Round``: halves away from zero), ``float``, ``int``
(truncates toward zero). Types follow expr-lang: integer literals stay integers under
``+ - * %``; ``/`` and ``**`` give floats; trigger values are float64, so ``%`` (integers only)
cannot take them. Division by zero gives ±Inf or NaN as in Go; :func:`evaluate_formula`
refuses a result that is not finite (KEDA would hand the HPA a meaningless number).

Everything else of expr-lang (strings, arrays, maps, ``??``, ``in``, ``matches``, member
access, pipes, ``let``, ``if``) raises :class:`FormulaError` naming the offending part.
Nothing is ever passed to ``eval``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Union

# Words of expr-lang's operator table, and its boolean literals.
_WORD_OPERATORS = frozenset({"and", "or", "not"})
_BOOL_WORDS = {"true": True, "false": False}
_UNSUPPORTED_WORDS = frozenset({"nil", "in", "matches", "contains", "startsWith", "endsWith", "let", "if", "else"})

# Binary operators: precedence, right-associative (expr-lang parser/operator/operator.go).
_BINARY: dict[str, tuple[int, bool]] = {
    "or": (10, False), "||": (10, False),
    "and": (15, False), "&&": (15, False),
    "==": (20, False), "!=": (20, False), "<": (20, False), ">": (20, False), ">=": (20, False), "<=": (20, False),
    "+": (30, False), "-": (30, False),
    "*": (60, False), "/": (60, False), "%": (60, False),
    "**": (100, True), "^": (100, True),
}
_UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}
_COMPARISONS = frozenset({"<", ">", "<=", ">="})
_ROUNDING = {"ceil": math.ceil, "floor": math.floor}
FUNCTIONS = frozenset({"min", "max", "abs", "ceil", "floor", "round", "float", "int"})
SUPPORTED = (
    "numbers, trigger names, + - * / % ** ^, comparisons, and/or/not, c ? a : b, "
    "min(), max(), abs(), ceil(), floor(), round(), float(), int()"
)

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<number>(?:\d[\d_]*(?:\.\d[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_$][A-Za-z0-9_$]*)"
    r"|(?P<op>\*\*|==|!=|<=|>=|&&|\|\||\?\?|\?\.|\.\.|[-+*/%^<>!?:(),.\[\]{}|'\"`=;#@~&])"
    r")"
)


class FormulaError(ValueError):
    """The formula is outside the supported part of expr-lang, names an unknown trigger, or
    gives no finite number; the message quotes the formula and names the culprit."""


# ---------------------------------------------------------------------------------
# Syntax tree
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Num:
    value: float | int


@dataclass(frozen=True)
class _Bool:
    value: bool


@dataclass(frozen=True)
class _Name:
    name: str


@dataclass(frozen=True)
class _Unary:
    op: str
    operand: "_Node"


@dataclass(frozen=True)
class _Binary:
    op: str
    left: "_Node"
    right: "_Node"


@dataclass(frozen=True)
class _Call:
    function: str
    args: tuple["_Node", ...]


@dataclass(frozen=True)
class _Conditional:
    condition: "_Node"
    then: "_Node"
    otherwise: "_Node"


_Node = Union[_Num, _Bool, _Name, _Unary, _Binary, _Call, _Conditional]
_Value = Union[int, float, bool]


# ---------------------------------------------------------------------------------
# Parser (precedence climbing, as expr-lang's parseExpression)
# ---------------------------------------------------------------------------------
@dataclass
class _Token:
    kind: str  # number, name, op, end
    text: str
    column: int  # 1-based


def _tokens(formula: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(formula):
        if formula[pos:].strip() == "":
            break
        match = _TOKEN.match(formula, pos)
        if match is None or match.end() == pos:
            column = pos + len(formula[pos:]) - len(formula[pos:].lstrip()) + 1
            raise FormulaError(f"scalingModifiers.formula {formula!r}: unexpected character at column {column}")
        kind = match.lastgroup or "op"
        out.append(_Token(kind, match.group(kind), match.start(kind) + 1))
        pos = match.end()
    out.append(_Token("end", "", len(formula) + 1))
    return out


class _Parser:
    def __init__(self, formula: str) -> None:
        self.formula = formula
        self.tokens = _tokens(formula)
        self.index = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def fail(self, message: str, token: _Token | None = None) -> FormulaError:
        token = token or self.current
        where = "end of formula" if token.kind == "end" else f"{token.text!r} at column {token.column}"
        return FormulaError(f"scalingModifiers.formula {self.formula!r}: {where}: {message}")

    def advance(self) -> _Token:
        token = self.current
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        if self.current.text != text or self.current.kind != "op":
            raise self.fail(f"expected {text!r}")
        self.advance()

    def binary_operator(self) -> str | None:
        token = self.current
        if token.kind == "op" and token.text in _BINARY:
            return token.text
        if token.kind == "name" and token.text in ("and", "or"):
            return token.text
        return None

    def parse(self) -> _Node:
        if self.current.kind == "end":
            raise FormulaError("scalingModifiers.formula is empty")
        node = self.expression(0)
        if self.current.kind != "end":
            raise self.fail(f"not supported here (supported: {SUPPORTED})")
        return node

    def expression(self, precedence: int) -> _Node:
        left = self.primary()
        while True:
            op = self.binary_operator()
            if op is None:
                break
            op_precedence, right_assoc = _BINARY[op]
            if op_precedence < precedence:
                break
            self.advance()
            if op in _COMPARISONS:
                left = self.comparison_chain(left, op, op_precedence)
                continue
            right = self.expression(op_precedence if right_assoc else op_precedence + 1)
            left = _Binary(op, left, right)
        if precedence == 0 and self.current.kind == "op" and self.current.text == "?":
            self.advance()
            if self.current.kind == "op" and self.current.text == ":":
                raise self.fail("the short form 'a ?: b' is not supported; write 'c ? a : b'")
            then = self.expression(0)
            self.expect(":")
            otherwise = self.expression(0)
            left = _Conditional(left, then, otherwise)
        return left

    def comparison_chain(self, left: _Node, op: str, precedence: int) -> _Node:
        # expr-lang parseComparison: `a < b < c` is `a < b && b < c`.
        result: _Node | None = None
        while True:
            right = self.expression(precedence + 1)
            node = _Binary(op, left, right)
            result = node if result is None else _Binary("&&", result, node)
            left = right
            if self.current.kind == "op" and self.current.text in _COMPARISONS:
                op = self.advance().text
                continue
            return result

    def primary(self) -> _Node:
        token = self.current
        if (token.kind == "op" and token.text in ("-", "+", "!")) or (token.kind == "name" and token.text == "not"):
            self.advance()
            return _Unary(token.text, self.expression(_UNARY[token.text]))
        if token.kind == "number":
            self.advance()
            text = token.text.replace("_", "")
            node: _Node = _Num(float(text) if any(c in text for c in ".eE") else int(text))
        elif token.kind == "name":
            node = self.name_or_call()
        elif token.kind == "op" and token.text == "(":
            self.advance()
            node = self.expression(0)
            self.expect(")")
        elif token.kind == "end":
            raise self.fail("the formula ends where a value is expected")
        else:
            raise self.fail(f"not supported (supported: {SUPPORTED})")
        if self.current.kind == "op" and self.current.text in (".", "?.", "["):
            raise self.fail("member access and indexing are not supported: trigger values are numbers")
        return node

    def name_or_call(self) -> _Node:
        token = self.advance()
        name = token.text
        if name in _BOOL_WORDS:
            return _Bool(_BOOL_WORDS[name])
        if name in _UNSUPPORTED_WORDS or name in _WORD_OPERATORS:
            raise self.fail(f"not supported (supported: {SUPPORTED})", token)
        if self.current.kind == "op" and self.current.text == "(":
            if name not in FUNCTIONS:
                raise self.fail("only min(), max(), abs(), ceil(), floor(), round(), float() and int() may be called", token)
            self.advance()
            args: list[_Node] = []
            if not (self.current.kind == "op" and self.current.text == ")"):
                args.append(self.expression(0))
                while self.current.kind == "op" and self.current.text == ",":
                    self.advance()
                    args.append(self.expression(0))
            self.expect(")")
            if name in ("min", "max"):
                if not args:
                    raise self.fail(f"{name}() needs at least one argument", token)
            elif len(args) != 1:
                raise self.fail(f"{name}() takes exactly one argument, got {len(args)}", token)
            return _Call(name, tuple(args))
        if name in FUNCTIONS:
            raise self.fail(f"{name} is a function; call it as {name}(...)", token)
        return _Name(name)


# ---------------------------------------------------------------------------------
# Evaluation (expr-lang's runtime types: int, float64, bool)
# ---------------------------------------------------------------------------------
def _kind(value: _Value) -> str:
    return "bool" if isinstance(value, bool) else ("int" if isinstance(value, int) else "float")


class _Evaluator:
    def __init__(self, formula: str, values: Mapping[str, float]) -> None:
        self.formula = formula
        self.values = values

    def fail(self, message: str) -> FormulaError:
        return FormulaError(f"scalingModifiers.formula {self.formula!r}: {message}")

    def number(self, value: _Value, where: str) -> float | int:
        if isinstance(value, bool):
            raise self.fail(f"{where} needs a number, got a bool")
        return value

    def boolean(self, value: _Value, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(f"{where} needs a bool (a comparison), got the number {value!r}")
        return value

    def run(self, node: _Node) -> _Value:  # noqa: C901 - one branch per node type
        if isinstance(node, _Num):
            return node.value
        if isinstance(node, _Bool):
            return node.value
        if isinstance(node, _Name):
            if node.name not in self.values:
                raise self.fail(f"{node.name!r} names no trigger with a value (known: {sorted(self.values)})")
            return float(self.values[node.name])
        if isinstance(node, _Unary):
            operand = self.run(node.operand)
            if node.op in ("not", "!"):
                return not self.boolean(operand, f"'{node.op}'")
            number = self.number(operand, f"unary '{node.op}'")
            return -number if node.op == "-" else number
        if isinstance(node, _Conditional):
            branch = node.then if self.boolean(self.run(node.condition), "the condition of '? :'") else node.otherwise
            return self.run(branch)
        if isinstance(node, _Call):
            return self.call(node)
        return self.binary(node)

    def binary(self, node: _Binary) -> _Value:
        op = node.op
        if op in ("and", "&&", "or", "||"):
            left = self.boolean(self.run(node.left), f"'{op}'")
            if (op in ("and", "&&")) != left:  # short-circuit as expr-lang does
                return left
            return self.boolean(self.run(node.right), f"'{op}'")
        left, right = self.run(node.left), self.run(node.right)
        if op in ("==", "!="):
            if (_kind(left) == "bool") != (_kind(right) == "bool"):
                raise self.fail(f"'{op}' compares a bool with a number")
            return (left == right) == (op == "==")
        a, b = self.number(left, f"'{op}'"), self.number(right, f"'{op}'")
        if op == "<":
            return a < b
        if op == ">":
            return a > b
        if op == "<=":
            return a <= b
        if op == ">=":
            return a >= b
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return _go_divide(float(a), float(b))
        if op == "%":
            if not (isinstance(a, int) and isinstance(b, int)):
                raise self.fail("'%' takes integers only, and trigger values are float64 in KEDA")
            if b == 0:
                raise self.fail("'%' by zero")
            return int(math.fmod(a, b))  # Go's remainder keeps the dividend's sign
        # ** and ^: float power (expr-lang runtime.Exponent uses math.Pow)
        try:
            return math.pow(float(a), float(b))
        except (OverflowError, ValueError):
            return math.nan

    def call(self, node: _Call) -> _Value:
        args = [self.number(self.run(arg), f"{node.function}()") for arg in node.args]
        name = node.function
        if name == "min":
            return min(args)
        if name == "max":
            return max(args)
        (x,) = args
        if name == "abs":
            return abs(x)
        if name == "float":
            return float(x)
        if name == "int":
            if isinstance(x, float) and not math.isfinite(x):
                raise self.fail(f"int() of {x}")
            return int(x)  # Go's int(float64) truncates toward zero
        if name == "round":
            return math.copysign(math.floor(abs(x) + 0.5), x) if math.isfinite(x) else float(x)
        return float(_ROUNDING[name](x)) if math.isfinite(x) else float(x)


def _go_divide(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _names(node: _Node, out: list[str]) -> None:
    if isinstance(node, _Name):
        if node.name not in out:
            out.append(node.name)
    elif isinstance(node, _Unary):
        _names(node.operand, out)
    elif isinstance(node, _Binary):
        _names(node.left, out)
        _names(node.right, out)
    elif isinstance(node, _Call):
        for arg in node.args:
            _names(arg, out)
    elif isinstance(node, _Conditional):
        _names(node.condition, out)
        _names(node.then, out)
        _names(node.otherwise, out)


# ---------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Formula:
    """A parsed formula.

    Attributes:
        text: the formula as written.
        names: the trigger names it reads, in order of first use (function names excluded).
    """

    text: str
    names: tuple[str, ...]
    _root: _Node

    def evaluate(self, values: Mapping[str, float]) -> float:
        """The composite metric value for trigger ``values`` (trigger name -> metric value).

        Raises:
            FormulaError: a name without a value, a type error (a bool where a number is
                needed), or a result that is not a finite number.
        """
        result = self._raw(values)
        if not math.isfinite(result):
            raise FormulaError(f"scalingModifiers.formula {self.text!r} evaluated to {result} with {dict(values)}")
        return result

    def _raw(self, values: Mapping[str, float]) -> float:
        result = _Evaluator(self.text, values).run(self._root)
        if isinstance(result, bool):
            raise FormulaError(
                f"scalingModifiers.formula {self.text!r} gives a bool; KEDA wraps it in float(), "
                "which needs a number (use 'c ? a : b')"
            )
        return float(result)


@lru_cache(maxsize=256)
def parse_formula(formula: str) -> Formula:
    """Parse ``formula`` (see the module docstring for the language).

    Raises:
        FormulaError: empty, or outside the supported part of expr-lang (the message names
            the token and its column).
    """
    if not isinstance(formula, str):
        raise FormulaError(f"scalingModifiers.formula must be text, got {type(formula).__name__}")
    root = _Parser(formula).parse()
    names: list[str] = []
    _names(root, names)
    return Formula(formula, tuple(names), root)


def formula_identifiers(formula: str) -> list[str]:
    """The trigger names ``formula`` reads, in order of first use.

    Raises:
        FormulaError: see :func:`parse_formula`.
    """
    return list(parse_formula(formula).names)


def evaluate_formula(formula: str, values: Mapping[str, float]) -> float:
    """Evaluate ``formula`` with trigger ``values``; see :meth:`Formula.evaluate`.

    Raises:
        FormulaError: see :func:`parse_formula` and :meth:`Formula.evaluate`.
    """
    return parse_formula(formula).evaluate(values)


KEDA_CHECK_VALUE = -1.0  # the value KEDA's admission check gives every trigger


def check_formula(formula: str, variables: Iterable[str]) -> Formula:
    """KEDA's admission check: ``formula`` reads only ``variables`` and, with each at -1, gives a number.

    Args:
        formula: the ``scalingModifiers.formula``.
        variables: the names of the triggers that may be variables (named, not cpu/memory).

    Returns:
        The parsed formula.

    Raises:
        FormulaError: a parse error, a name that is not in ``variables`` (named), or a type error.
    """
    parsed = parse_formula(formula)
    known = list(variables)
    for name in parsed.names:
        if name not in known:
            raise FormulaError(f"scalingModifiers.formula {formula!r} names {name!r}, which is not a trigger it can read")
    parsed._raw({name: KEDA_CHECK_VALUE for name in known})  # non-finite results are legal here, as in Go
    return parsed
