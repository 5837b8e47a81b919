"""`qvllm qr`: the PNG and the terminal text decode back to the URL (zxing-cpp decoder)."""

from __future__ import annotations

import numpy as np
import pytest
import zxingcpp
from click.testing import CliRunner
from PIL import Image

from qvllm.cli import main
from qvllm.qr import is_loopback_url, loopback_note, save_png, terminal_text

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
    png.parent.mkdir()
    result = CliRunner().invoke(main, ["qr", URL, "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert "▀" in result.output and str(png) in result.output
    assert _decode(Image.open(png)) == [URL]


def test_cli_rejects_non_url():
    result = CliRunner().invoke(main, ["qr", "not a url"])
    assert result.exit_code == 2
    assert "must be absolute http" in result.output


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/", "http://127.1.2.3/chat", "http://localhost:8000/", "http://LOCALHOST./",
     "http://[::1]:8080/", "http://[::ffff:127.0.0.1]/", "http://app.localhost/"],
)
def test_loopback_urls_get_a_note(url):
    assert is_loopback_url(url)
    note = loopback_note(url)
    assert note and "phone cannot open" in note and "CloudFront" in note and "\n" not in note


@pytest.mark.parametrize("url", [URL, "http://192.168.1.20:8080/", "http://10.0.0.5/", "http://[2001:db8::1]/",
                                 "http://128.0.0.1/", "http://localhost.example.com/"])
def test_other_urls_get_no_note(url):
    assert not is_loopback_url(url) and loopback_note(url) is None


def test_cli_default_png_in_working_directory_and_loopback_note(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["qr", "http://127.0.0.1:8080/"])
    assert result.exit_code == 0, result.output
    png = tmp_path.resolve() / "qr.png"
    assert png.is_file() and f"PNG: {png}" in result.output  # the full path, not just "qr.png"
    assert _decode(Image.open(png)) == ["http://127.0.0.1:8080/"]
    assert result.output.strip().splitlines()[-1].startswith("note: 127.0.0.1 is this machine's loopback")


def test_cli_no_note_for_public_url(tmp_path):
    result = CliRunner().invoke(main, ["qr", URL, "--png", str(tmp_path / "q.png")])
    assert result.exit_code == 0 and "note:" not in result.output
