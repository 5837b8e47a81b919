"""`qvllm local status` reads each engine's requests in flight from its /metrics, and an engine busy
decoding on a shared CPU answers slowly: a recorded vLLM metrics page served after a 4 s delay
(the old 3 s timeout gave up on it and `local status` printed no load for that engine)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from qvllm.local.stack import METRICS_SCRAPE_TIMEOUT_S, engine_load

PAGE = (Path(__file__).resolve().parent / "data" / "vllm_metrics_queue.txt").read_bytes()
DELAY_S = 4.0


def _slow_metrics_server(delay_s: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # silence
            pass

        def do_GET(self):
            time.sleep(delay_s)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_slow_metrics_page_still_gives_the_engines_load():
    assert METRICS_SCRAPE_TIMEOUT_S > DELAY_S
    server = _slow_metrics_server(DELAY_S)
    try:
        load = engine_load(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
    assert load is not None
    assert (load.running, load.waiting, load.in_flight) == (2, 10, 12)  # the recorded page


def test_no_answer_within_the_timeout_is_none_not_an_error():
    server = _slow_metrics_server(2.0)
    try:
        assert engine_load(f"http://127.0.0.1:{server.server_address[1]}", timeout_s=0.5) is None
    finally:
        server.shutdown()
