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


def over_capacity(reason: str, retry_after: int) -> GatewayError:
    """429: no in-flight slot (``reason`` ``queue_full`` or ``queue_timeout``)."""
    return GatewayError(
        429,
        f"The gateway is at capacity ({reason.replace('_', ' ')}); retry after {retry_after} s",
        type_="rate_limit_error",
        code=reason,
        headers={"Retry-After": str(retry_after)},
    )


def no_endpoint_ready(reason: str, retry_after: int, hold_timeout: float) -> GatewayError:
    """503: no model server became ready while the request was held (scale from zero), or the
    hold is full (``reason`` ``hold_full`` or ``hold_timeout``)."""
    why = (
        "too many requests are already waiting for one to start"
        if reason == "hold_full"
        else f"none became ready within {hold_timeout:g} s"
    )
    return GatewayError(
        503,
        f"No model server is ready ({why}); retry after {retry_after} s",
        type_="server_error",
        code=reason,
        headers={"Retry-After": str(retry_after)},
    )


def shutting_down(retry_after: int) -> GatewayError:
    """503: this gateway process is shutting down (SIGTERM); another replica, or this one
    restarted, takes the retry."""
    return GatewayError(
        503,
        f"The gateway is shutting down; retry after {retry_after} s",
        type_="server_error",
        code="shutting_down",
        headers={"Retry-After": str(retry_after)},
    )


def upstream_disconnected(reason: str) -> GatewayError:
    """502: the model server closed the connection before its answer was complete (the engine
    process died or restarted mid-answer)."""
    return GatewayError(
        502,
        f"The model server closed the connection before the answer was complete ({reason}); retry the request",
        type_="server_error",
        code="upstream_disconnected",
    )


def non_streaming_timeout(limit_seconds: float) -> GatewayError:
    """504: a non-streaming request reached the edge's origin read timeout (CloudFront would
    otherwise cut it with its own error page, which says nothing of the limit)."""
    return GatewayError(
        504,
        f"Requests without \"stream\": true must be answered within {limit_seconds:g} s here (the CDN's "
        f"origin read timeout) and this one was not; send \"stream\": true to receive the answer as it "
        "is generated, which this limit does not cut.",
        type_="server_error",
        param="stream",
        code="non_streaming_timeout",
    )


# --- upstream (vLLM) error bodies -------------------------------------------------------------

OPENAI_ERROR_TYPES = frozenset(
    {"invalid_request_error", "authentication_error", "permission_error", "not_found_error",
     "rate_limit_error", "server_error", "insufficient_quota"}
)  # fmt: skip
STATUS_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 422: "invalid_request_error", 429: "rate_limit_error",
}  # fmt: skip
MAX_UPSTREAM_ERROR_BYTES = 64 * 1024  # read at most this much of an upstream error body
MAX_MESSAGE_CHARS = 500
MAX_VALIDATION_ITEMS = 3


def error_type_for_status(status: int) -> str:
    """OpenAI error ``type`` for an HTTP status: 5xx -> server_error, listed 4xx, else invalid_request_error."""
    return "server_error" if status >= 500 else STATUS_ERROR_TYPES.get(status, "invalid_request_error")


def request_field(loc: Any) -> str | None:
    """A validation ``loc`` (``"body.messages.0.ChatCompletionUserMessageParam.role"`` or a
    list) as the request field it names (``"messages.0.role"``): drops the leading ``body``
    and the union-member tags (class names, ``list[...]``-style segments), which name no field."""
    parts = [str(p) for p in loc] if isinstance(loc, (list, tuple)) else str(loc).split(".")
    if parts and parts[0] == "body":
        parts = parts[1:]
    parts = [p for p in parts if p and not p[0].isupper() and not any(c in p for c in "[(-")]
    return ".".join(parts) or None


def _summarise_detail(items: list[dict[str, Any]]) -> tuple[str, str | None]:
    """(message, param) for FastAPI's structured 422 ``detail`` list: the distinct problems,
    most frequent first (a union reports one problem per member), at most ``MAX_VALIDATION_ITEMS``."""
    counts: dict[tuple[str | None, str], int] = {}
    for item in items:
        key = (request_field(item.get("loc", ())), str(item.get("msg", "")))
        counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts, key=lambda k: -counts[k])  # stable: ties keep upstream order
    shown = [f"{loc}: {msg}" if loc else msg for loc, msg in ranked[:MAX_VALIDATION_ITEMS]]
    message = "; ".join(shown)
    if len(items) > len(shown):
        message += f" ({len(items)} validation errors in total)"
    return message, (ranked[0][0] if ranked else None)


def _bounded(text: str) -> str:
    text = " ".join(text.split())  # one line: the engine's dumps are indented multi-line text
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def _fields(body: Any) -> tuple[Any, Any, Any, Any]:
    """(message, type, param, code) of an upstream JSON error body, whatever its shape."""
    if not isinstance(body, dict):
        return None, None, None, None
    error = body.get("error")
    if isinstance(error, dict):
        return error.get("message"), error.get("type"), error.get("param"), error.get("code")
    if isinstance(error, str):
        return error, None, None, None
    if "detail" in body:  # FastAPI/Starlette default error bodies
        return body["detail"], None, None, None
    return body.get("message"), None, None, None


def _param(param: Any) -> str | None:
    """The upstream ``param`` as a request field; a validation path (``body.``...) is cleaned."""
    if not isinstance(param, str) or not param:
        return None
    return request_field(param) if param.startswith("body.") else param


def normalise_upstream_error(status: int, raw: bytes) -> GatewayError:
    """An upstream (vLLM) 4xx/5xx body as an OpenAI-style :class:`GatewayError`, same status.

    Only the body's JSON fields are used, never the wording of its message, so a change in
    the engine's text cannot break it:

    - ``type``: the upstream ``error.type`` if it is already an OpenAI type, else from the
      status: 400/422 -> ``invalid_request_error``, 401 -> ``authentication_error``,
      403 -> ``permission_error``, 404 -> ``not_found_error``, 429 -> ``rate_limit_error``,
      5xx -> ``server_error``, other 4xx -> ``invalid_request_error``. (vLLM sends
      ``"Bad Request"`` / ``"BadRequestError"``.)
    - ``code``: the upstream ``error.code`` if it is a non-empty string, else null (vLLM sends
      the status as an int).
    - ``param``: the upstream ``param`` as a request field (:func:`request_field`: vLLM sends
      ``body.messages.0.<union member>.role``).
    - ``message``: the upstream message on one line, cut at 500 characters. FastAPI's
      structured ``detail`` list becomes ``"messages.0.role: Field required; ..."``. A
      non-JSON body becomes ``"The model server answered HTTP <status>: <start of body>"``.
    """
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    message, type_, param, code = _fields(body)
    if isinstance(message, list):  # FastAPI 422 detail: [{"loc": [...], "msg": ...}, ...]
        items = [d for d in message if isinstance(d, dict)]
        message, param = _summarise_detail(items) if items else (json.dumps(message), param)
    if not isinstance(message, str) or not message.strip():
        text = " ".join(raw.decode(errors="replace").split())[:200]
        message = f"The model server answered HTTP {status}" + (f": {text}" if text else "")
    return GatewayError(
        status,
        _bounded(message),
        type_=type_ if type_ in OPENAI_ERROR_TYPES else error_type_for_status(status),
        param=_param(param),
        code=code if isinstance(code, str) and code else None,
    )
