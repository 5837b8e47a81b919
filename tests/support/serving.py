"""Loopback test servers (``socketserver`` / ``http.server``) served from a daemon thread."""

from __future__ import annotations

import socketserver
import threading

# serve_forever checks for shutdown() once per interval; the library's 0.5 s default made every
# test that stops a server wait up to half a second per server in its teardown.
SHUTDOWN_POLL_SECONDS = 0.05


def serve_in_thread(server: socketserver.BaseServer, name: str | None = None) -> threading.Thread:
    """Start ``server.serve_forever`` in a daemon thread and return the (started) thread.

    ``server.shutdown()`` then returns within about ``SHUTDOWN_POLL_SECONDS`` (seconds).
    """
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
                              name=name, daemon=True)
    thread.start()
    return thread
