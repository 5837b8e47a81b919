"""OpenAI-style error bodies: ``{"error": {"message", "type", "param", "code"}}``.

Shape and ``type`` values follow the OpenAI API reference (error codes page): client errors use
``invalid_request_error``, auth ``authentication_error``, overload ``rate_limit_error`` / server
``server_error``. ``code`` is a short machine-readable string or null.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse


class GatewayError(Exception):
    """An error answered with an OpenAI-style JSON body.

    Args:
        status: HTTP status code.
        message: human-readable reason (names the bad field or request part).
        type_: OpenAI error ``type``.
        param: the request field at fault, or None.
        code: short machine-readable code, or None.
        headers: extra response headers (e.g. ``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body as a dict."""
        return error_body(self.message, self.type, self.param, self.code)

    def response(self) -> JSONResponse:
        """A JSONResponse carrying this error."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)

    def sse_event(self) -> bytes:
        """This error as one SSE ``data:`` event (for a stream that was already committed)."""
        return b"data: " + json.dumps(self.body()).encode() + b"\n\n"


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """Return ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def upstream_unavailable(reason: str) -> GatewayError:
    """503: the vLLM upstream cannot be reached (connect error, pool timeout)."""
    return GatewayError(
        503,
        f"The model server is unavailable: {reason}. Retry later.",
        type_="server_error",
        code="upstream_unavailable",
        headers={"Retry-After": "5"},
    )


def upstream_timeout(reason: str) -> GatewayError:
    """504: the vLLM upstream accepted the connection but did not answer in time."""
    return GatewayError(504, f"The model server did not answer in time: {reason}.", type_="server_error", code="upstream_timeout")
