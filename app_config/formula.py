"""The identifiers a KEDA ``scalingModifiers.formula`` refers to (shared by config and charts).

KEDA evaluates formulas with expr-lang (KEDA docs, "Scaling Modifiers"): trigger names are the
variables; functions such as ``min``, ``max``, ``abs``, ``ceil``... and the language's words are not.
"""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRING_LITERAL = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`")
# Words of KEDA's formula language (expr-lang) that are not trigger names.
FORMULA_KEYWORDS = frozenset(
    {"min", "max", "and", "or", "not", "in", "true", "false", "nil", "abs", "ceil", "floor", "round", "float", "int"}
)


def formula_identifiers(formula: str) -> list[str]:
    """Identifiers a KEDA formula refers to as variables, in order of first use.

    String literals and the formula language's own words (``min``, ``max``, ``abs``...) are
    skipped; ``x.y`` member access counts only ``x``.
    """
    text = _STRING_LITERAL.sub(" ", formula)
    seen: list[str] = []
    for match in _IDENTIFIER.finditer(text):
        ident = match.group(0)
        start = match.start()
        if start > 0 and text[start - 1] == ".":
            continue
        if ident in FORMULA_KEYWORDS or ident in seen:
            continue
        seen.append(ident)
    return seen
