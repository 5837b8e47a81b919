"""`qvllm qr URL`: show a QR code in the terminal and write it as a PNG."""

from __future__ import annotations

import click


@click.command(name="qr")
@click.argument("url")
@click.option("--png", "png_path", default="qr.png", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the PNG (default: qr.png in the working directory; the full path is printed).")
@click.option("--invert", is_flag=True, help="Invert the terminal rendering (light on dark).")
def command(url: str, png_path: str, invert: bool) -> None:
    """Print a QR code for URL and save it as a PNG (for the audience's phones)."""
    from qvllm.qr import loopback_note, save_png, terminal_text

    try:
        text = terminal_text(url, invert=invert)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="URL") from None
    try:
        path = save_png(url, png_path).resolve()
    except FileNotFoundError as exc:
        raise click.BadParameter(f"{exc} (create it first)", param_hint="--png") from None
    click.echo(text, nl=False)
    click.echo(f"{url}\nPNG: {path}")
    note = loopback_note(url)
    if note:
        click.echo(note)
