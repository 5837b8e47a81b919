"""QR codes for an audience: a URL as terminal text and as a PNG file (library: ``qrcode``)."""

from __future__ import annotations

import io
import ipaddress
from pathlib import Path
from urllib.parse import urlparse

import qrcode
from qrcode.constants import ERROR_CORRECT_M


def check_url(url: str) -> str:
    """Return ``url`` if it is an absolute http(s) URL.

    Raises:
        ValueError: the URL has no http/https scheme or no host.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"URL {url!r} must be absolute http:// or https:// with a host")
    return url


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is this machine only: ``localhost`` (and ``*.localhost``),
    ``127.0.0.0/8`` or ``::1`` (also as an IPv4-mapped IPv6 address)."""
    host = (urlparse(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def loopback_note(url: str) -> str | None:
    """A one-line warning when ``url`` points at loopback (a phone scanning it cannot open it), else None."""
    if not is_loopback_url(url):
        return None
    host = urlparse(url).hostname
    return (f"note: {host} is this machine's loopback address, a phone cannot open this URL; "
            "use the machine's LAN address (with the server listening on it) or the CloudFront URL")


def make_qr(url: str) -> qrcode.QRCode:
    """A QR code (error correction M, 4-module quiet zone) encoding ``url``."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4)
    code.add_data(check_url(url))
    code.make(fit=True)
    return code


def terminal_text(url: str, *, invert: bool = False) -> str:
    """The QR code as Unicode half-block text (two modules per character row).

    ``invert=True`` suits light-on-dark terminals.
    """
    out = io.StringIO()
    make_qr(url).print_ascii(out=out, invert=invert)
    return out.getvalue()


def save_png(url: str, path: str | Path, *, box_size: int = 10) -> Path:
    """Write the QR code for ``url`` as a PNG (``box_size`` pixels per module); returns the path.

    Raises:
        FileNotFoundError: the folder of ``path`` does not exist (it is not created: a typo in a
            path would otherwise leave a PNG in a new folder nobody looks in).
    """
    code = make_qr(url)
    code.box_size = box_size
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} does not exist")
    code.make_image().save(str(path))
    return path
