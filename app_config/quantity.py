"""Kubernetes resource quantities as numbers: one parser for the config's checks (NodePool limits,
memory sizes) and the dashboard (the HPA reports an AverageValue external metric as a
quantity such as ``"1334m"``, milli-units: 1.334; a dashboard must convert it, never print it as a count).
Grammar: https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/
"""

from __future__ import annotations

import re

_SUFFIX = {
    "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


def parse_quantity(text: str | int | float) -> float:
    """``"1334m"`` -> 1.334, ``"2"`` -> 2.0, ``"1500m"`` -> 1.5, ``"1Gi"`` -> 1073741824.0.

    Raises:
        ValueError: not a Kubernetes quantity (the message quotes it).
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    return float(match.group(1)) * _SUFFIX[match.group(2) or ""]
