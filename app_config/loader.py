"""Load :class:`AppConfig` from cdk.json context and an optional YAML file.

Precedence (later wins, dictionaries merged key by key):
defaults  <  context key ``config`` (cdk.json or ``-c config=...``)  <  YAML file named by
context key ``config_file`` (``cdk synth -c config_file=my.yaml``).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from app_config.model import AppConfig


class ConfigError(ValueError):
    """A configuration value is invalid. The message names every failing field by dotted path."""


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _defaults() -> dict[str, Any]:
    """The default config as plain data (what overrides are merged onto)."""
    return AppConfig().model_dump(mode="json")


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the config model that holds the last key of ``loc`` (empty if unknown)."""
    model: Any = AppConfig
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return sorted(getattr(model, "model_fields", {}))


def _format(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "<root>"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden" and item["loc"]:
            close = difflib.get_close_matches(str(item["loc"][-1]), _fields_at(tuple(item["loc"])), n=1)
            if close:
                message += f" (did you mean {close[0]!r}?)"
        # A check across fields names its own field path; the section's path in front repeats it.
        if message.startswith(path + "."):
            lines.append(f"  - {message}")
        else:
            lines.append(f"  - {path}: {message}")
    return "invalid configuration:\n" + "\n".join(lines)


def config_from_dict(data: Mapping[str, Any]) -> AppConfig:
    """Validate a plain mapping of overrides into an :class:`AppConfig`.

    Overrides are merged onto the defaults key by key, so ``{"scaling": {"scale_up":
    {"stabilization_window_seconds": 30}}}`` changes that one value and keeps the default
    policies; a list (``scaling.triggers``, ``allow_patterns``) replaces the default list whole.

    Raises:
        ConfigError: with one line per failing field, ``  - <dotted.path>: <reason>``.
    """
    try:
        return AppConfig.model_validate(_deep_merge(_defaults(), data))
    except ValidationError as exc:
        raise ConfigError(_format(exc)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path``.

    Raises:
        ConfigError: the file is missing, not YAML, or not a mapping at top level.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config_file {str(file)!r} does not exist")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        # One line: the parser's own text spans several and names "<unicode string>", not the file.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"config_file {str(file)!r} is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config_file {str(file)!r} must hold a mapping at top level")
    return data


def load_config(context: Mapping[str, Any] | None = None, base_dir: str | Path = ".") -> AppConfig:
    """Build the config from CDK context values.

    Args:
        context: ``{"config": {...} or JSON string, "config_file": "path.yaml"}``; both optional.
        base_dir: folder a relative ``config_file`` is resolved against.

    Raises:
        ConfigError: bad file or invalid value (message names the field).
    """
    context = context or {}
    data: dict[str, Any] = {}
    inline = context.get("config")
    if isinstance(inline, str):
        try:
            inline = json.loads(inline)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"context 'config' is not JSON: {exc}") from None
    if inline:
        if not isinstance(inline, Mapping):
            raise ConfigError("context 'config' must be a mapping")
        data = _deep_merge(data, inline)
    config_file = context.get("config_file")
    if config_file:
        path = Path(config_file)
        if not path.is_absolute():
            path = Path(base_dir) / path
        data = _deep_merge(data, read_yaml(path))
    return config_from_dict(data)
