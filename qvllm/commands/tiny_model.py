"""`qvllm tiny-model DIR`: write the tiny, servable Llama the local stack and tests use (offline)."""

from __future__ import annotations

import click


@click.command(name="tiny-model")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the random weights (0 or more).")
def command(out_dir: str, seed: int) -> None:
    """Generate the tiny model into OUT_DIR (config, tokenizer, bf16 safetensors)."""
    from qvllm.tinymodel import generate_tiny_model

    path = generate_tiny_model(out_dir, seed=seed)
    click.echo(f"tiny model written to {path}")
