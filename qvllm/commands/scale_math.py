"""`qvllm scale-math`: print how a ScaledObject turns metric values into desired replicas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def load_scaled_object(path: str | Path) -> dict[str, Any]:
    """Read the first ``kind: ScaledObject`` document of a YAML or JSON file (multi-doc allowed).

    Raises:
        click.BadParameter: no ScaledObject in the file.
    """
    import yaml

    text = Path(path).read_text()
    docs = [json.loads(text)] if text.lstrip().startswith("{") else list(yaml.safe_load_all(text))
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List":
            docs.extend(doc.get("items", []))
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "ScaledObject":
            return doc
    raise click.BadParameter(f"{path} holds no document with kind: ScaledObject", param_hint="--scaled-object")


def _parse_values(pairs: tuple[str, ...]) -> dict[str, float]:
    values: dict[str, float] = {}
    for pair in pairs:
        name, sep, number = pair.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            values[name.strip()] = float(number)
        except ValueError:
            raise click.BadParameter(f"{pair!r} is not NAME=NUMBER", param_hint="--value") from None
    return values


@click.command(name="scale-math")
@click.option("--scaled-object", "scaled_object", type=click.Path(exists=True, dir_okay=False),
              help="ScaledObject YAML/JSON (e.g. from `make manifests`). Default: built from the app config.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="App config YAML whose `scaling` section to use (when no --scaled-object).")
@click.option("--value", "-v", "pairs", multiple=True, metavar="TRIGGER=NUMBER",
              help="A trigger's metric value, e.g. -v running=0 -v waiting=3.")
@click.option("--current", type=click.IntRange(min=0), default=1, show_default=True, help="Current replicas.")
@click.option("--timeline", is_flag=True,
              help="Also print the scale-down timeline after the load stops (HPA behavior, 15 s syncs).")
def command(scaled_object: str | None, config_file: str | None, pairs: tuple[str, ...], current: int, timeline: bool) -> None:
    """Compute desired replicas from trigger values, step by step (KEDA formula + HPA rule)."""
    from qvllm.scaling import FormulaError, ScaledObjectError, ScalingSpec, changes, desired_replicas, simulate

    try:
        if scaled_object:
            spec = ScalingSpec.from_scaled_object(load_scaled_object(scaled_object))
        else:
            from app_config.loader import config_from_dict, read_yaml

            data = read_yaml(config_file) if config_file else {}
            spec = ScalingSpec.from_config(config_from_dict(data).scaling)
        values = _parse_values(pairs)
        if not values:
            values = {t.name: 0.0 for t in spec.triggers}
        decision = desired_replicas(spec, values, current)
    except (FormulaError, ScaledObjectError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"formula: {spec.formula}   target: {spec.target:g} ({spec.metric_type})   "
               f"activationTarget: {spec.activation_target:g}   replicas: {spec.min_replicas}..{spec.max_replicas}")
    for line in decision.steps:
        click.echo(f"  {line}")
    for warning in spec.warnings:
        click.echo(f"  warning: {warning}")
    click.echo(f"desired replicas: {decision.desired} (current {current})")
    if timeline:
        start_replicas = max(decision.desired, current, 1)
        loaded = dict(values)
        idle = {k: 0.0 for k in values}
        series, notes = simulate(spec, start_replicas, lambda t: loaded if t <= 0 else idle, start=-spec.scale_down.stabilization_window_seconds - 60, end=1800)
        click.echo(f"scale-down after load stops at t=0 (window {spec.scale_down.stabilization_window_seconds}s, "
                   f"cooldownPeriod {spec.cooldown_seconds}s):")
        for t, replicas in changes(series):
            click.echo(f"  t={max(t, 0):>6.0f}s  replicas {replicas}")
        for note in notes:
            click.echo(f"  note: {note}")
