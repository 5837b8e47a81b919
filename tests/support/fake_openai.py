"""A tiny OpenAI-compatible streaming server (standard library), standing in for the gateway in
load-test tests: ``GET /v1/models`` lists ``tiny``; ``POST /v1/chat/completions`` streams
``max_tokens`` content chunks after a first-token delay, with a fixed gap between chunks.

Usage::

    server = fake_openai_server(first_token_delay_s=0.2, chunk_gap_s=0.02)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    ...
    server.shutdown()

``fail_status``: when set, every chat request is answered with that status (no stream).
``server.chat_requests`` counts the chat requests received.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.serving import serve_in_thread

MODEL = "tiny"


def fake_openai_server(fail_status: int = 0, *, first_token_delay_s: float = 0.2,
                       chunk_gap_s: float = 0.0) -> ThreadingHTTPServer:
    """Start the server on a free loopback port in a daemon thread; see the module docstring."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # silence
            pass

        def do_GET(self):
            body = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode()
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                server.chat_requests += 1
            if fail_status:
                body = b'{"error": "overloaded"}'
                self.send_response(fail_status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if request.get("model") != MODEL or not request.get("stream"):
                self.send_response(400)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b": keep-alive\n\n")
            self.wfile.flush()
            time.sleep(first_token_delay_s)  # a measurable time to first token
            for i in range(request["max_tokens"]):
                if i and chunk_gap_s:
                    time.sleep(chunk_gap_s)  # a measurable inter-token latency
                chunk = {"choices": [{"index": 0, "delta": {"content": f"t{i} "}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.chat_requests = 0
    serve_in_thread(server)
    return server
