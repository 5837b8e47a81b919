"""Helpers for CloudFormation templates synthesized by the CDK: normalization for snapshots.

A snapshot must change only when the infrastructure does. These parts of a template change
without that and are normalized:

- asset hashes (64 hex chars: S3 object keys ``<hash>.zip``, ``aws:asset:*`` metadata, image
  tags) and other long hex digests (>= 32 chars, e.g. the code hash inside a Lambda
  ``CurrentVersion`` logical id) -> ``<hash>``;
- the bootstrap-version check (``Parameters.BootstrapVersion``, ``Rules.CheckBootstrapVersion``),
  which tracks the CLI's bootstrap template, not this app;
- the ``CDKMetadata`` analytics resource and its condition (a compressed list of library versions);
- ``aws:asset:*`` resource metadata (local file paths of the build).
"""

from __future__ import annotations

import copy
import re
from typing import Any

HASH_RE = re.compile(r"[0-9a-fA-F]{32,}")
HASH_PLACEHOLDER = "<hash>"


def _normalize_str(value: str) -> str:
    return HASH_RE.sub(HASH_PLACEHOLDER, value)


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            _normalize_str(key): _walk(value)
            for key, value in node.items()
            if not (isinstance(key, str) and key.startswith("aws:asset:"))
        }
    if isinstance(node, list):
        return [_walk(item) for item in node]
    if isinstance(node, str):
        return _normalize_str(node)
    return node


def normalize_template(template: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``template`` with volatile parts normalized (see module docstring).

    Args:
        template: a CloudFormation template as a dict (e.g. ``CloudFormationStackArtifact.template``).

    Returns:
        A new dict; the input is not modified.
    """
    tpl = copy.deepcopy(template)
    tpl.get("Parameters", {}).pop("BootstrapVersion", None)
    if not tpl.get("Parameters"):
        tpl.pop("Parameters", None)
    tpl.get("Rules", {}).pop("CheckBootstrapVersion", None)
    if not tpl.get("Rules"):
        tpl.pop("Rules", None)
    tpl.get("Resources", {}).pop("CDKMetadata", None)
    tpl.get("Conditions", {}).pop("CDKMetadataAvailable", None)
    if "Conditions" in tpl and not tpl["Conditions"]:
        tpl.pop("Conditions")
    return _walk(tpl)
