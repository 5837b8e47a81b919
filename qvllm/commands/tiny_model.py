"""`qvllm tiny-model DIR`: write the tiny, servable Llama the local stack and tests use (offline)."""

from __future__ import annotations

import click


@click.command(name="tiny-model")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--seed", type=int, default=0, show_default=True)
def command(out_dir: str, seed: int) -> None:
    """Generate the tiny model into OUT_DIR (config, tokenizer, bf16 safetensors)."""
    from qvllm.tinymodel import generate_tiny_model

    path = generate_tiny_model(out_dir, seed=seed)
    click.echo(f"tiny model written to {path}")
