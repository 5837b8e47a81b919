"""OpenAI-style error bodies: ``{"error": {"message", "type", "param", "code"}}``.

Shape and ``type`` values follow the OpenAI API reference (error codes page): client errors use
``invalid_request_error``, auth ``authentication_error``, overload ``rate_limit_error`` / server
``server_error``. ``code`` is a short machine-readable string or null.
"""

from __future__ import annotations

import json
import re
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
# One item of vLLM's pydantic dump: "  {'type': 'missing', 'loc': 'body.messages.0.X.role', 'msg': ...}"
_PYDANTIC_ITEM = re.compile(r"""'loc': '(?P<loc>[^']*)', 'msg': (?P<q>['"])(?P<msg>(?:\\.|(?!(?P=q)).)*)(?P=q)""")
_PYDANTIC_HEADER = re.compile(r"^\s*(\d+) validation errors?", re.IGNORECASE)
_PARAMETER_HINT = re.compile(r"\(parameter=([A-Za-z0-9_.\[\]]+)")


def error_type_for_status(status: int) -> str:
    """OpenAI error ``type`` for an HTTP status: 5xx -> server_error, listed 4xx, else invalid_request_error."""
    return "server_error" if status >= 500 else STATUS_ERROR_TYPES.get(status, "invalid_request_error")


def _clean_loc(loc: Any) -> str | None:
    """A pydantic ``loc`` ("body.messages.0.ChatCompletionUserMessageParam.role" or a list) as a
    request field path ("messages.0.role"): drops the leading ``body`` and union-member tags
    (class names, ``list[...]``-style segments), which are no request field."""
    parts = [str(p) for p in loc] if isinstance(loc, (list, tuple)) else str(loc).split(".")
    if parts and parts[0] == "body":
        parts = parts[1:]
    parts = [p for p in parts if p and not p[0].isupper() and not any(c in p for c in "[(-")]
    return ".".join(parts) or None


def _summarise_validation(items: list[tuple[Any, str]], total: int) -> tuple[str, str | None]:
    """(message, param) for pydantic problems ``[(loc, msg), ...]``: the distinct problems, most
    frequent first (a union reports one problem per member), at most ``MAX_VALIDATION_ITEMS``."""
    counts: dict[tuple[str | None, str], int] = {}
    for loc, msg in items:
        key = (_clean_loc(loc), msg)
        counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts, key=lambda k: -counts[k])  # stable: ties keep upstream order
    shown = [f"{loc}: {msg}" if loc else msg for loc, msg in ranked[:MAX_VALIDATION_ITEMS]]
    message = "; ".join(shown)
    if total > len(shown):
        message += f" ({total} validation errors in total)"
    return message, (ranked[0][0] if ranked else None)


def _bounded(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def normalise_upstream_error(status: int, raw: bytes) -> GatewayError:
    """An upstream (vLLM) 4xx/5xx body as an OpenAI-style :class:`GatewayError`, same status.

    Mapping:

    - ``type``: the upstream ``error.type`` if it is already an OpenAI type, else from the
      status: 400/422 -> ``invalid_request_error``, 401 -> ``authentication_error``,
      403 -> ``permission_error``, 404 -> ``not_found_error``, 429 -> ``rate_limit_error``,
      5xx -> ``server_error``, other 4xx -> ``invalid_request_error``. (vLLM sends
      ``"Bad Request"`` / ``"BadRequestError"``.)
    - ``code``: the upstream ``error.code`` if it is a string, else null (vLLM sends the status
      as an int).
    - ``message``: a pydantic dump ("15 validation errors:\\n  {'type': ..., 'loc': ...}") is
      summarised as ``"messages.0.role: Field required; ..."`` (distinct problems, most frequent
      first, at most 3, plus the total count); other messages are kept; all are cut at 500
      characters. FastAPI ``{"detail": ...}`` bodies are handled the same way. A non-JSON body
      becomes ``"The model server answered HTTP <status>: <start of body>"``.
    - ``param``: the first summarised problem's field (``loc`` without ``body.`` and union-member
      tags), else the upstream ``param`` without ``body.``, else ``(parameter=X`` in the message.
    """
    type_: str | None = None
    param: str | None = None
    code: str | None = None
    message: Any = None
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message, type_, param, code = (error.get(k) for k in ("message", "type", "param", "code"))
        elif isinstance(error, str):
            message = error
        elif "detail" in body:  # FastAPI/Starlette default error bodies
            message = body["detail"]
        else:
            message = body.get("message")
    if isinstance(message, list):  # FastAPI 422 detail: [{"loc": [...], "msg": ...}, ...]
        items = [(d.get("loc", ()), str(d.get("msg", ""))) for d in message if isinstance(d, dict)]
        message, param = _summarise_validation(items, len(message)) if items else (json.dumps(message), param)
    elif isinstance(message, str) and (header := _PYDANTIC_HEADER.match(message)):
        items = [(m["loc"], m["msg"].replace("\\'", "'")) for m in _PYDANTIC_ITEM.finditer(message)]
        if items:
            message, param = _summarise_validation(items, int(header.group(1)))
    if not isinstance(message, str) or not message.strip():
        text = " ".join(raw.decode(errors="replace").split())[:200]
        message = f"The model server answered HTTP {status}" + (f": {text}" if text else "")
    if not isinstance(param, str) or not param:
        hint = _PARAMETER_HINT.search(message)
        param = hint.group(1) if hint else None
    elif param.startswith("body."):
        param = _clean_loc(param)
    return GatewayError(
        status,
        _bounded(message),
        type_=type_ if type_ in OPENAI_ERROR_TYPES else error_type_for_status(status),
        param=param,
        code=code if isinstance(code, str) and code else None,
    )
