"""Pure ASGI middleware: request id, request metrics and one JSON access-log line per request.

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed bodies pass through untouched and unbuffered.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.logs import LOGGER_NAME
from services.gateway.metrics import GatewayMetrics

log = logging.getLogger(LOGGER_NAME)

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def route_label(path: str, routes: frozenset[str]) -> str:
    """Metric label for ``path``: the path itself if it is a known route, else a fixed bucket."""
    if path in routes:
        return path
    if path.startswith("/static/"):
        return "/static"
    return "other"


class RequestContextMiddleware:
    """Sets ``scope["state"]["request_id"]`` and ``["start"]``, echoes ``X-Request-ID``, records
    ``gateway_requests_total`` / ``gateway_request_duration_seconds`` and logs the request.

    An incoming ``X-Request-ID`` is honoured when it matches ``[A-Za-z0-9._:-]{1,128}``;
    otherwise a random hex id is generated. Headers are never logged.
    """

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics, routes: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: D102
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        incoming = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if incoming and _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["start"] = start
        status = 500
        path = scope["path"]

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = route_label(path, self.routes)
            self.metrics.requests.labels(route=route, method=scope["method"], status=str(status)).inc()
            self.metrics.duration.labels(route=route).observe(elapsed)
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
