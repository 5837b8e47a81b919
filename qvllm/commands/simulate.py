"""`qvllm simulate`: replay load through the scaling path the product deploys, print what users and the bill see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from qvllm.simulate.workload import GENERATED

DEFAULT_PNG = "qvllm-simulate.png"


def _load(config_file: str | None, engine_file: str | None) -> Any:
    """The app config, with ``simulation.engine`` replaced by a calibration file's when given."""
    from app_config.loader import config_from_dict, read_yaml

    data = read_yaml(config_file) if config_file else {}
    if engine_file:
        calibration = read_yaml(engine_file)
        engine = (calibration.get("simulation") or {}).get("engine")
        if not isinstance(engine, dict):
            raise click.BadParameter(f"{engine_file} has no simulation.engine mapping", param_hint="--engine")
        data = {**data, "simulation": {**(data.get("simulation") or {}), "engine": engine}}
    return config_from_dict(data)


def _run(label: str, config: Any, workload: Any) -> tuple[Any, Any, Any]:
    from app_config.cold_start import deployment_budget
    from qvllm.scaling import ScalingSpec
    from qvllm.simulate.cluster import simulate
    from qvllm.simulate.engine import ServiceCurve
    from qvllm.simulate.report import summarize

    spec = ScalingSpec.from_config(config.scaling)
    result = simulate(config, spec, ServiceCurve.from_config(config), workload)
    budget = deployment_budget(config, warm_node=False)
    return summarize(label, result, config, budget.total_s), result, budget


def _calibrate(url: str | None, start_engine: bool, max_num_seqs: int, seconds: float, out: str) -> None:
    import yaml

    from qvllm.simulate.calibrate import CalibrationError, calibrate

    stack = None
    if url is None and start_engine:
        import tempfile

        from qvllm.local.stack import LocalOptions, LocalStackError, up

        try:
            stack = up(LocalOptions(run_dir=Path(tempfile.mkdtemp(prefix="qvllm-calibrate-")),
                                    max_num_seqs=max_num_seqs), echo=click.echo)
        except (LocalStackError, ValueError, OSError) as exc:
            raise click.ClickException(f"could not start the local stack: {exc}") from None
        url = stack.urls["gateway"]
    if url is None:
        from qvllm.local.state import read_state

        state = read_state()
        url = state.urls.get("gateway") if state else None
    if not url:
        raise click.UsageError("give --url, start the local stack (`qvllm local up`), or pass --start-engine")
    import httpx

    try:
        curve, points = calibrate(url, max_num_seqs, seconds=seconds)
    except (CalibrationError, httpx.HTTPError, OSError, ValueError) as exc:
        raise click.ClickException(f"calibration against {url} failed: {exc}") from None
    finally:
        if stack is not None:
            from qvllm.local.stack import stop_all

            stop_all(stack)
    for p in points:
        click.echo(f"  concurrency {p.running:g}: TTFT {p.ttft_s * 1000:.1f} ms, inter-token {p.itl_s * 1000:.2f} ms")
    engine = {"ttft_base_seconds": round(curve.ttft_base_s, 6), "ttft_per_running_seconds": round(curve.ttft_per_running_s, 6),
              "prefill_seconds_per_token": 0.0, "itl_base_seconds": round(curve.itl_base_s, 6),
              "itl_per_running_seconds": round(curve.itl_per_running_s, 6), "ttft_cv": round(min(curve.ttft_cv, 3), 4),
              "source": curve.source}
    Path(out).write_text(yaml.safe_dump({"simulation": {"engine": engine}}, sort_keys=False))
    click.echo(f"service curve written to {out} (use it with --engine {out}):")
    click.echo(f"  TTFT = {curve.ttft_base_s * 1000:.2f} ms + {curve.ttft_per_running_s * 1000:.2f} ms x running; "
               f"inter-token = {curve.itl_base_s * 1000:.2f} ms + {curve.itl_per_running_s * 1000:.3f} ms x running "
               f"(max_num_seqs {max_num_seqs})")
    click.echo(f"ttft_base_s={curve.ttft_base_s:.6f} ttft_per_running_s={curve.ttft_per_running_s:.6f} "
               f"itl_base_s={curve.itl_base_s:.6f} itl_per_running_s={curve.itl_per_running_s:.6f}")


def _local_max_num_seqs() -> int:
    from qvllm.local.stack import LocalOptions

    return int(LocalOptions.__dataclass_fields__["max_num_seqs"].default)


@click.command(name="simulate")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="App config YAML (default: the built-in defaults).")
@click.option("--compare", "compare_file", type=click.Path(exists=True, dir_okay=False),
              help="A second app config: both replay the same load, side by side.")
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False),
              help="CSV trace: arrival_s,prompt_tokens,output_tokens (instead of --profile).")
@click.option("--profile", "profile_name", type=click.Choice(GENERATED), default="demo", show_default=True,
              help="Generated load: demo (5 -> 150 users, 30 min), short (2 min), diurnal (one day, bursts).")
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True, help="Seed of generated profiles (0 or more).")
@click.option("--engine", "engine_file", type=click.Path(exists=True, dir_okay=False),
              help="A calibration file (from --calibrate): its simulation.engine replaces the config's.")
@click.option("--png", "png", default=DEFAULT_PNG, show_default=True, help="Timeline plot to write ('' for none).")
@click.option("--calibrate", "do_calibrate", is_flag=True,
              help="Measure a local engine's service curve instead of simulating (see --url, --start-engine).")
@click.option("--url", help="--calibrate: the engine or gateway URL (default: the running local stack's gateway).")
@click.option("--start-engine", is_flag=True, help="--calibrate: start the local stack, measure it, stop it.")
@click.option("--max-num-seqs", type=click.IntRange(min=1), default=None,
              help="--calibrate: the engine's --max-num-seqs (default: the local stack's).")
@click.option("--seconds", type=click.FloatRange(min=1), default=8.0, show_default=True,
              help="--calibrate: seconds per concurrency.")
@click.option("--out", default="calibration.yaml", show_default=True, help="--calibrate: where to write the curve.")
def command(config_file: str | None, compare_file: str | None, trace_file: str | None, profile_name: str, seed: int,
            engine_file: str | None, png: str, do_calibrate: bool, url: str | None, start_engine: bool,
            max_num_seqs: int | None, seconds: float, out: str) -> None:
    """Replay a trace or a generated load through the deployed scaling path; print TTFT, queue wait,
    SLO misses, rejections, GPU-hours and cost (last line machine-readable)."""
    if do_calibrate:
        return _calibrate(url, start_engine, max_num_seqs or _local_max_num_seqs(), seconds, out)
    from qvllm.simulate.cluster import SimulationError
    from qvllm.simulate.report import plot, summary_line
    from qvllm.simulate.workload import WorkloadError, profile, read_trace

    try:
        workload = read_trace(trace_file) if trace_file else profile(profile_name, seed)
        configs = [("A" if compare_file else "simulated", _load(config_file, engine_file))]
        if compare_file:
            configs.append(("B", _load(compare_file, engine_file)))
        runs = [(label, *_run(label, config, workload)) for label, config in configs]
    except (WorkloadError, SimulationError, ValueError) as exc:  # ConfigError and ScaledObjectError are ValueErrors
        raise click.ClickException(str(exc)) from None
    source = f"trace {trace_file}" if trace_file else f"profile {profile_name} (seed {seed})"
    click.echo(f"load: {source}")
    for (label, config), (_, summary, _, budget) in zip(configs, runs):
        click.echo(f"cold start of a pod on a new node ({label}: {config.simulation.instance_type}, "
                   f"SOCI {'on' if budget.conditions['soci'] else 'off'}, compile-cache hit "
                   f"{'yes' if budget.conditions['compile_cache_hit'] else 'no'}):")
        for line in budget.lines():
            click.echo(line)
        if config.scaling.warm_gpu_nodes:
            from app_config.cold_start import deployment_budget

            warm = deployment_budget(config, warm_node=True)
            click.echo(f"  on a warm node (scaling.warm_gpu_nodes {config.scaling.warm_gpu_nodes}: node up, image "
                       f"pulled): total {warm.total_s:.1f} s")
        for line in summary.lines():
            click.echo(line)
    if png:
        path = plot([(label, result) for label, _, result, _ in runs], png, configs[0][1].simulation.slo_ttft_seconds)
        click.echo(f"timeline: {path}")
    click.echo(summary_line(runs[0][1], runs[1][1] if len(runs) > 1 else None))
    return None
