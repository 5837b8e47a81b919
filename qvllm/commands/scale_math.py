"""`qvllm scale-math`: print how a ScaledObject turns metric values into desired replicas, and when."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def load_scaled_object(path: str | Path) -> dict[str, Any]:
    """Read the first ``kind: ScaledObject`` document of a YAML or JSON file (multi-doc allowed).

    Raises:
        click.BadParameter: the file is not valid YAML/JSON, or holds no ScaledObject.
    """
    import yaml

    text = Path(path).read_text()
    try:
        docs = [json.loads(text)] if text.lstrip().startswith("{") else list(yaml.safe_load_all(text))
    except (ValueError, yaml.YAMLError) as exc:  # JSONDecodeError is a ValueError
        where = getattr(exc, "problem_mark", None)
        line = f"line {where.line + 1}: " if where is not None else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise click.BadParameter(f"{path} is not valid YAML or JSON ({line}{reason})",
                                 param_hint="--scaled-object") from None
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List":
            docs.extend(doc.get("items", []))
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "ScaledObject":
            return doc
    raise click.BadParameter(f"{path} holds no document with kind: ScaledObject", param_hint="--scaled-object")


def load_spec(config_file: str | None, scaled_object: str | None) -> tuple[Any, Any]:
    """The app config (``config_file`` or the defaults) and the ScaledObject to model: the file's
    when ``scaled_object`` is given, else the one the chart renders from the config.

    Returns:
        ``(AppConfig, ScalingSpec)``.

    Raises:
        click.ClickException: a bad config or ScaledObject (the message names the field).
    """
    from app_config.loader import config_from_dict, read_yaml
    from qvllm.scaling import ScalingSpec

    try:
        config = config_from_dict(read_yaml(config_file) if config_file else {})
        if scaled_object:
            return config, ScalingSpec.from_scaled_object(load_scaled_object(scaled_object))
        return config, ScalingSpec.from_config(config.scaling)
    except ValueError as exc:  # ConfigError, ScaledObjectError, FormulaError
        raise click.ClickException(str(exc)) from None


def _parse_values(pairs: tuple[str, ...], triggers: tuple[str, ...]) -> dict[str, float]:
    """``{trigger: value}`` from ``NAME=NUMBER`` pairs: finite, not negative (the triggers are
    counts and gauges of requests), naming one of ``triggers``.

    Raises:
        click.BadParameter: naming the pair and what is wrong with it.
    """
    values: dict[str, float] = {}
    for pair in pairs:
        name, sep, number = pair.partition("=")
        name = name.strip()
        try:
            if not sep or not name:
                raise ValueError
            value = float(number)
        except ValueError:
            raise click.BadParameter(f"{pair!r} is not NAME=NUMBER", param_hint="--value") from None
        if value < 0 or value != value or value in (float("inf"), float("-inf")):
            raise click.BadParameter(f"{pair!r}: a trigger value is a count of requests, 0 or more",
                                     param_hint="--value")
        if triggers and name not in triggers:
            raise click.BadParameter(f"{pair!r}: no trigger named {name!r} (triggers: {', '.join(triggers)})",
                                     param_hint="--value")
        values[name] = value
    return values


def _print_events(events, start: float) -> None:  # type: ignore[no-untyped-def]
    for event in events:
        click.echo(f"  t={max(event.time - start, 0):>6.0f}s  ({event.source}) replicas {event.after}")


@click.command(name="scale-math")
@click.option("--scaled-object", "scaled_object", type=click.Path(exists=True, dir_okay=False),
              help="ScaledObject YAML/JSON (e.g. from `make manifests`). Default: built from the app config.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="App config YAML: its `scaling` section (when no --scaled-object) and "
                   "cluster.hpa_sync_period_seconds (always). Default: the built-in defaults.")
@click.option("--value", "-v", "pairs", multiple=True, metavar="TRIGGER=NUMBER",
              help="A trigger's metric value, e.g. -v running=0 -v waiting=3 (-v held=2 with --current 0). "
                   "A trigger not given reads 0, as the add-on answers for a metric it has not received.")
@click.option("--current", type=click.IntRange(min=0), default=1, show_default=True, help="Current replicas.")
@click.option("--timeline", is_flag=True,
              help="Also print when it happens: the scale-up (KEDA polls, HPA syncs at the configured "
                   "cluster.hpa_sync_period_seconds), then the scale-down after the load stops.")
def command(scaled_object: str | None, config_file: str | None, pairs: tuple[str, ...], current: int, timeline: bool) -> None:
    """Compute desired replicas from trigger values, step by step (KEDA formula + HPA rule)."""
    from qvllm.scaling import ControlLoop, changes, desired_replicas, reaction_times, simulate

    config, spec = load_spec(config_file, scaled_object)
    values = _parse_values(pairs, tuple(t.name for t in spec.triggers))
    try:
        decision = desired_replicas(spec, values, current)
    except ValueError as exc:  # FormulaError: e.g. a value that makes the formula divide by zero
        raise click.ClickException(str(exc)) from None
    sync = config.cluster.hpa_sync_period_seconds
    click.echo(f"formula: {spec.formula}   target: {spec.target:g} ({spec.metric_type})   "
               f"activationTarget: {spec.activation_target:g}   replicas: {spec.min_replicas}..{spec.max_replicas}")
    for line in decision.steps:
        click.echo(f"  {line}")
    for warning in spec.warnings:
        click.echo(f"  warning: {warning}")
    click.echo(f"desired replicas: {decision.desired} (current {current})")
    if not timeline:
        return
    for line in reaction_times(spec, sync).lines():
        click.echo(line)
    loaded = dict(values)
    if decision.desired > current:
        # Worst case: the load arrives just after a KEDA poll, and the HPA synced just before it acted.
        poll = spec.polling_interval_seconds
        loop = ControlLoop(spec, current, sync, keda_first_poll=poll, hpa_first_sync=(poll if current == 0 else 0) + sync)
        end = poll + sync * 8
        t = 0.0
        while t <= end:
            loop.step(t, loaded)
            t += 1
        click.echo("scale-up with these values from t=0 (worst-case phase; pod start-up not modelled):")
        _print_events(loop.events, 0)
    start_replicas = max(decision.desired, current, 1)
    idle = {k: 0.0 for k in values}
    window = spec.scale_down.stabilization_window_seconds
    series, notes = simulate(spec, start_replicas, lambda t: loaded if t <= 0 else idle,
                             start=-window - 60, end=1800, hpa_sync_period_seconds=sync)
    click.echo(f"scale-down after load stops at t=0 (window {window}s, cooldownPeriod {spec.cooldown_seconds}s, "
               f"HPA sync {sync}s):")
    for t, replicas in changes(series):
        click.echo(f"  t={max(t, 0):>6.0f}s  replicas {replicas}")
    for note in notes:
        click.echo(f"  note: {note}")
