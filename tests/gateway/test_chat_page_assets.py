"""The chat page's vendored Markdown renderer: the file is the recorded markdown-it release, its
licences travel with it, and the gateway serves it where the page loads it from."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from fastapi.testclient import TestClient

from services.gateway.app import create_app
from services.gateway.routes.page import STATIC_DIR
from services.gateway.settings import GatewaySettings

VENDOR = STATIC_DIR / "vendor" / "markdown-it"
# markdown-it 15.0.3, dist/browser/markdown-it.umd.min.js of the npm tarball (vendor README.md)
VENDORED = {"markdown-it.min.js": "391f2aa638e75e6c7859d0a5c5650ef0956722a45998f17e05b83bc655778e1e"}


def test_vendored_file_is_the_recorded_release():
    for name, digest in VENDORED.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    readme = (VENDOR / "README.md").read_text()
    assert "markdown-it 15.0.3" in readme and VENDORED["markdown-it.min.js"] in readme
    assert "MIT License" in (VENDOR / "LICENSE").read_text() or "Permission is hereby granted" in (VENDOR / "LICENSE").read_text()
    bundled = (VENDOR / "LICENSES-BUNDLED").read_text()
    for package in ("entities", "linkify-it", "mdurl", "punycode.js", "uc.micro"):
        assert re.search(rf"^{re.escape(package)} \d+\.\d+\.\d+ \(", bundled, re.M), package


def test_page_loads_the_renderer_before_its_script_and_the_gateway_serves_both():
    html = (STATIC_DIR / "index.html").read_text()
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts == ["/static/vendor/markdown-it/markdown-it.min.js", "/static/chat.js"]
    with TestClient(create_app(GatewaySettings())) as client:
        for path in scripts:
            resp = client.get(path)
            assert resp.status_code == 200, path
            assert resp.content == (STATIC_DIR / Path(path).relative_to("/static")).read_bytes()
