"""`qvllm local up | down | status`: the serving path (S3 -> vLLM -> gateway) on this machine.

The stack's state lives in one well-known folder (:func:`qvllm.local.state.default_run_dir`),
so every subcommand finds the running stack from any directory.
"""

from __future__ import annotations

from pathlib import Path

import click

RUN_DIR_HELP = "Run folder (default: $QVLLM_RUN_DIR, else ~/.local/state/qvllm/local)."


def _model_help() -> str:
    from qvllm.local.models import DEFAULT_LOCAL_MODEL, LOCAL_MODELS

    known = "; ".join(f"{m.name}: {m.summary}" for m in LOCAL_MODELS.values())
    return f"{known}; or a local model folder, or a Hugging Face repo id. Default: {DEFAULT_LOCAL_MODEL}."


@click.group(name="local")
def command() -> None:
    """Run the serving path locally: moto S3, vLLM streaming from it, the gateway in front."""


@command.command()
@click.option("--run-dir", type=click.Path(file_okay=False), help=RUN_DIR_HELP)
@click.option("--model", default=None, help=_model_help())
@click.option("--served-model-name", help="Model name clients send (default: the model's).")
@click.option("--replicas", type=click.IntRange(min=1, max=16), default=1, show_default=True,
              help="vLLM engines behind the one gateway.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address the gateway (chat page and API) listens on: 0.0.0.0 or a LAN address lets "
                   "phones on the same network open it; the QR code then points there.")
@click.option("--vllm-python", type=click.Path(dir_okay=False), help="Engine interpreter (default .venv-vllm/bin/python).")
@click.option("--max-num-seqs", type=click.IntRange(min=1), default=4, show_default=True,
              help="Sequences each engine runs at once; more requests wait (the scaling signal).")
@click.option("--max-model-len", type=click.IntRange(min=16), default=None,
              help="Context length in tokens (default: the model's; 2048 for smollm2, 512 for tiny).")
@click.option("--ready-timeout", type=click.FloatRange(min=1), default=900, show_default=True,
              help="Seconds to wait for the engines.")
@click.option("--vllm-arg", "vllm_args", multiple=True, help="Extra vLLM argument (repeatable).")
def up(run_dir, model, served_model_name, replicas, host, vllm_python, max_num_seqs, max_model_len, ready_timeout,  # type: ignore[no-untyped-def]
       vllm_args) -> None:
    """Start S3, prepare and upload the model, start vLLM and the gateway; print URLs, QR code and timings."""
    from qvllm.local.env import PreflightError
    from qvllm.local.models import DEFAULT_LOCAL_MODEL
    from qvllm.local.network import AddressError
    from qvllm.local.stack import DEFAULT_VLLM_PYTHON, LocalOptions, LocalStackError
    from qvllm.local.stack import up as stack_up
    from qvllm.local.state import run_dir as resolve
    from qvllm.qr import loopback_note, terminal_text

    opts = LocalOptions(
        run_dir=resolve(run_dir), model=model or DEFAULT_LOCAL_MODEL, served_model_name=served_model_name,
        vllm_python=Path(vllm_python) if vllm_python else DEFAULT_VLLM_PYTHON, replicas=replicas, host=host,
        max_num_seqs=max_num_seqs, max_model_len=max_model_len, ready_timeout_s=ready_timeout,
        extra_vllm_args=tuple(vllm_args),
    )
    try:
        state = stack_up(opts, echo=click.echo)
    except AddressError as exc:
        raise click.BadParameter(str(exc), param_hint="--host") from None
    except (PreflightError, LocalStackError) as exc:
        raise click.ClickException(str(exc)) from None
    chat = state.urls["chat"]
    click.echo(terminal_text(chat), nl=False)
    click.echo(f"chat page:  {chat}" + (f"   (listening on {host})" if host != "127.0.0.1" else ""))
    note = loopback_note(chat)
    if note:
        click.echo(note + " (qvllm local up --host 0.0.0.0)")
    click.echo(f"API:        {state.urls['gateway']}/v1  (model {state.model['served_model_name']!r}, "
               f"context {state.model['max_model_len']} tokens)")
    click.echo(f"S3:         {state.urls['s3']}  {state.model['uri']}")
    for name, url in state.engine_urls().items():
        click.echo(f"{name}:     {url}  (metrics {url}/metrics)")
    click.echo("dashboard:  qvllm dashboard")
    click.echo("time to ready (this run):")
    for name, engine in state.engines.items():
        click.echo(f"  {name}: {format_time_to_ready(engine)}")
    t = state.timings
    prepared = f"model folder {t['prepare_s']:.1f} s, " if "prepare_s" in t else ""
    click.echo(f"  {prepared}upload {t['upload_s']:.1f} s, whole stack {t['total_up_s']:.1f} s")
    click.echo(f"state and logs: {state.run_dir}   (stop: qvllm local down)")


def format_time_to_ready(engine: dict) -> str:
    """``71.2 s = process start 20.1 s + weight loading 4.5 s (streamed ...) + ...`` for one engine record."""
    from qvllm.local.phases import PHASE_ORDER

    phases = engine.get("phases") or {}
    parts = []
    for key in sorted(phases, key=lambda k: PHASE_ORDER.index(k) if k in PHASE_ORDER else len(PHASE_ORDER)):
        seconds = phases[key]
        text = f"{key[:-2].replace('_', ' ')} {seconds:.1f} s"
        stream = engine.get("weights_stream")
        if key == "weight_loading_s" and stream:
            text += f" (streamer: {stream['size']} in {stream['seconds']} s, {stream['rate_mib_s']} MiB/s)"
        parts.append(text)
    total = engine.get("time_to_ready_s")
    head = "not ready" if total is None else f"{total:.1f} s"
    return head + (" = " + " + ".join(parts) if parts else "")


@command.command()
@click.option("--run-dir", type=click.Path(file_okay=False), help=RUN_DIR_HELP)
def down(run_dir) -> None:  # type: ignore[no-untyped-def]
    """Stop everything `local up` started."""
    from qvllm.local.stack import down as stack_down
    from qvllm.local.state import run_dir as resolve

    folder = resolve(run_dir)
    result = stack_down(folder)
    if not result:
        click.echo(f"nothing to stop in {folder}")
    for name, stopped in result.items():
        click.echo(f"{name}: {'stopped' if stopped else 'STILL RUNNING'}")
    if not all(result.values()):
        raise SystemExit(1)


@command.command()
@click.option("--run-dir", type=click.Path(file_okay=False), help=RUN_DIR_HELP)
def status(run_dir) -> None:  # type: ignore[no-untyped-def]
    """Show what runs, with URLs, each engine's requests in flight, and timings."""
    from qvllm.local.stack import METRICS_SCRAPE_TIMEOUT_S, engine_load
    from qvllm.local.stack import status as stack_status
    from qvllm.local.state import read_state
    from qvllm.local.state import run_dir as resolve

    folder = resolve(run_dir)
    result = stack_status(folder)
    state = read_state(folder)
    if not result or state is None:
        click.echo(f"no local stack running (state folder {folder})")
        return
    for name, st in result.items():
        line = f"{name:9} {st:10} {state.urls.get(name, '')}"
        if name in state.engines and st == "ready":
            load = engine_load(state.urls[name])
            if load is not None:
                line += f"  in flight {load.in_flight:g} (running {load.running:g}, waiting {load.waiting:g})"
            else:
                line += f"  load n/a (no vLLM queue metrics from /metrics within {METRICS_SCRAPE_TIMEOUT_S:g} s)"
        if name == "gateway" and state.urls.get("chat"):
            line += f"  chat {state.urls['chat']}"
        click.echo(line)
    for name, engine in state.engines.items():
        click.echo(f"{name} time to ready: {format_time_to_ready(engine)}")
