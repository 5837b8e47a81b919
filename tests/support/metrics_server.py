"""A Prometheus text page served on loopback (``GET /metrics``), as a vLLM engine or the gateway
would serve it: the dashboard's and `local status`'s scrapes run against it over real HTTP."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.serving import serve_in_thread

DATA = Path(__file__).resolve().parents[1] / "cli" / "data"  # recorded vLLM metrics pages


def metrics_server(page: str | bytes, delay_s: float = 0.0) -> ThreadingHTTPServer:
    """Serve ``page`` (a file name under tests/cli/data, or the bytes themselves) at ``/metrics``,
    each answer after ``delay_s`` seconds (a busy engine); other paths get 404. Call ``shutdown()``."""
    body = page if isinstance(page, bytes) else (DATA / page).read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # silence
            pass

        def do_GET(self):
            time.sleep(delay_s)
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    serve_in_thread(server)
    return server
