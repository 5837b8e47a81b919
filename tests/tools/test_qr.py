"""`qvllm qr`: the PNG and the terminal text decode back to the URL (zxing-cpp decoder)."""

from __future__ import annotations

import numpy as np
import pytest
import zxingcpp
from click.testing import CliRunner
from PIL import Image

from qvllm.cli import main
from qvllm.qr import save_png, terminal_text

URL = "https://d111111abcdef8.cloudfront.net/chat?model=mistral-7b-awq"


def _decode(image: Image.Image) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(image)]


def test_png_decodes_to_url(tmp_path):
    path = save_png(URL, tmp_path / "qr.png")
    assert _decode(Image.open(path)) == [URL]


def _text_to_image(text: str, invert: bool) -> Image.Image:
    """Rasterise print_ascii half-blocks: each char = upper and lower module."""
    upper = {"█": (1, 1), "▀": (1, 0), "▄": (0, 1), "\xa0": (0, 0)}
    rows = [line for line in text.splitlines() if line]
    pixels = []
    for line in rows:
        top, bottom = [], []
        for ch in line:
            t, b = upper[ch]
            top.append(t)
            bottom.append(b)
        pixels += [top, bottom]
    arr = np.array(pixels, dtype=np.uint8)
    dark = arr == (0 if invert else 1)  # blocks are dark modules unless inverted
    img = np.where(dark, 0, 255).astype(np.uint8)
    return Image.fromarray(img).resize((img.shape[1] * 8, img.shape[0] * 8), Image.NEAREST)


@pytest.mark.parametrize("invert", [False, True])
def test_terminal_text_decodes_to_url(invert):
    text = terminal_text(URL, invert=invert)
    assert set(text) <= set("█▀▄\xa0\n")
    assert _decode(_text_to_image(text, invert)) == [URL]


def test_cli_prints_and_writes_png(tmp_path):
    png = tmp_path / "out" / "audience.png"
    result = CliRunner().invoke(main, ["qr", URL, "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert "▀" in result.output and str(png) in result.output
    assert _decode(Image.open(png)) == [URL]


def test_cli_rejects_non_url():
    result = CliRunner().invoke(main, ["qr", "not a url"])
    assert result.exit_code == 2
    assert "must be absolute http" in result.output
