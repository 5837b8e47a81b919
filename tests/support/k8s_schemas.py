"""Validate rendered Kubernetes objects: built-in kinds with ``kubernetes-validate`` (strict),
custom resources against the CRD ``openAPIV3Schema`` files in ``tests/support/schemas/crds/``
(copied from the upstream releases listed in its SOURCES.md, with their versions and SHA-256).

The CRD check is stricter than the API server's pruning: an unknown field where the schema
lists ``properties`` (and does not preserve unknown fields) is an error, so a misspelt field
fails here instead of being silently dropped by the cluster. CEL rules
(``x-kubernetes-validations``) are not evaluated; tests assert the ones we depend on.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

CRD_DIR = Path(__file__).resolve().parent / "schemas" / "crds"
KUBERNETES_VERSION = "1.35"


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@lru_cache(maxsize=None)
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """``{(apiVersion, kind): strict openAPIV3Schema}`` for every served version of every CRD file."""
    out = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served", True):
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                out[(f"{group}/{version['name']}", kind)] = _strict(schema)
    return out


def is_custom(obj: dict[str, Any]) -> bool:
    """True when ``obj`` is a custom resource (its apiVersion/kind is one of the CRD files)."""
    return (obj["apiVersion"], obj["kind"]) in crd_schemas()


def validate_custom(obj: dict[str, Any]) -> None:
    """Validate a custom resource against its CRD schema.

    Raises:
        KeyError: no CRD file serves this apiVersion/kind.
        jsonschema.ValidationError: the object does not match (message has the JSON path).
    """
    schema = crd_schemas()[(obj["apiVersion"], obj["kind"])]
    jsonschema.Draft7Validator(schema).validate(obj)


def validate_builtin(obj: dict[str, Any], version: str = KUBERNETES_VERSION) -> None:
    """Validate a built-in object against the Kubernetes ``version`` schemas (strict: no unknown fields).

    Raises:
        kubernetes_validate.ValidationError: naming the failing path.
    """
    kubernetes_validate.validate(obj, version, strict=True)


def validate_any(obj: dict[str, Any]) -> None:
    """Custom resources via their CRD, everything else via kubernetes-validate."""
    if is_custom(obj):
        validate_custom(obj)
    else:
        validate_builtin(obj)
