"""`qvllm local up | down | status`: the serving path (S3 -> vLLM -> gateway) on this machine."""

from __future__ import annotations

from pathlib import Path

import click


@click.group(name="local")
def command() -> None:
    """Run the serving path locally: moto S3, vLLM streaming from it, the gateway in front."""


@command.command()
@click.option("--run-dir", type=click.Path(file_okay=False), help="Run folder (default .run/local).")
@click.option("--model", help="Local model folder or Hugging Face repo id (default: the generated tiny model).")
@click.option("--served-model-name", help="Model name clients send (default: the model folder's name).")
@click.option("--vllm-python", type=click.Path(dir_okay=False), help="Engine interpreter (default .venv-vllm/bin/python).")
@click.option("--max-num-seqs", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--max-model-len", type=click.IntRange(min=16), default=512, show_default=True)
@click.option("--ready-timeout", type=float, default=600, show_default=True, help="Seconds to wait for vLLM.")
@click.option("--vllm-arg", "vllm_args", multiple=True, help="Extra vLLM argument (repeatable).")
def up(run_dir, model, served_model_name, vllm_python, max_num_seqs, max_model_len, ready_timeout, vllm_args) -> None:  # type: ignore[no-untyped-def]
    """Start S3, upload the model, start vLLM and the gateway; print URLs, QR code and timings."""
    from qvllm.local.env import PreflightError
    from qvllm.local.stack import DEFAULT_VLLM_PYTHON, LocalOptions, LocalStackError
    from qvllm.local.stack import up as stack_up
    from qvllm.local.state import run_dir as resolve
    from qvllm.qr import loopback_note, terminal_text

    opts = LocalOptions(
        run_dir=resolve(run_dir), model=model, served_model_name=served_model_name,
        vllm_python=Path(vllm_python) if vllm_python else DEFAULT_VLLM_PYTHON,
        max_num_seqs=max_num_seqs, max_model_len=max_model_len, ready_timeout_s=ready_timeout,
        extra_vllm_args=tuple(vllm_args),
    )
    try:
        state = stack_up(opts, echo=click.echo)
    except (PreflightError, LocalStackError) as exc:
        raise click.ClickException(str(exc)) from None
    t = state.timings
    click.echo(terminal_text(state.urls["chat"]), nl=False)
    click.echo(f"chat page:  {state.urls['chat']}")
    note = loopback_note(state.urls["chat"])
    if note:
        click.echo(note)
    click.echo(f"API:        {state.urls['gateway']}/v1  (model {state.model['served_model_name']!r})")
    click.echo(f"metrics:    {state.urls['metrics']}   (qvllm dashboard --metrics-url {state.urls['metrics']})")
    click.echo(f"S3:         {state.urls['s3']}  {state.model['uri']}")
    phases = ", ".join(f"{k[5:-2]} {v:.1f} s" for k, v in t.items() if k.startswith("vllm_") and k.endswith("_s")
                       and k != "vllm_ready_s")
    click.echo(f"vLLM time to ready: {t['vllm_ready_s']:.1f} s ({phases}); upload {t['upload_s']:.1f} s")
    click.echo(f"state and logs: {state.run_dir}")


@command.command()
@click.option("--run-dir", type=click.Path(file_okay=False))
def down(run_dir) -> None:  # type: ignore[no-untyped-def]
    """Stop everything `local up` started."""
    from qvllm.local.stack import down as stack_down
    from qvllm.local.state import run_dir as resolve

    result = stack_down(resolve(run_dir))
    if not result:
        click.echo("nothing to stop")
    for name, stopped in result.items():
        click.echo(f"{name}: {'stopped' if stopped else 'STILL RUNNING'}")
    if not all(result.values()):
        raise SystemExit(1)


@command.command()
@click.option("--run-dir", type=click.Path(file_okay=False))
def status(run_dir) -> None:  # type: ignore[no-untyped-def]
    """Show what runs, with URLs and timings."""
    from qvllm.local.stack import status as stack_status
    from qvllm.local.state import read_state
    from qvllm.local.state import run_dir as resolve

    folder = resolve(run_dir)
    result = stack_status(folder)
    if not result:
        click.echo(f"no local stack in {folder}")
        return
    state = read_state(folder)
    for name, st in result.items():
        click.echo(f"{name:8} {st:10} {state.urls.get(name, '') if state else ''}")
    if state:
        click.echo(f"timings: {state.timings}")
