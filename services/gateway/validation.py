"""Request checks before anything goes upstream: body size (413), JSON and fields (400)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from services.gateway.errors import GatewayError

# Field required per route (OpenAI API reference): chat needs `messages`, completions `prompt`.
REQUIRED_FIELD = {"/v1/chat/completions": "messages", "/v1/completions": "prompt"}


async def read_body(request: Request, max_bytes: int) -> bytes:
    """Read the request body, refusing more than ``max_bytes``.

    Raises:
        GatewayError: 413 if ``Content-Length`` or the bytes received exceed the limit;
            400 if ``Content-Length`` is not an integer.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise GatewayError(400, "Content-Length header is not an integer", param="Content-Length") from None
        if size > max_bytes:
            raise _too_large(size, max_bytes)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise _too_large(total, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> GatewayError:
    return GatewayError(
        413,
        f"Request body is {size} bytes or more; the limit is {limit} bytes",
        code="request_too_large",
    )


def parse_completion_request(body: bytes, path: str) -> dict[str, Any]:
    """Parse and check a chat/completions request body.

    Checks only what the gateway needs (JSON object, ``model`` string, the route's required
    field, ``stream`` boolean); vLLM validates the rest and its 400s pass through.

    Raises:
        GatewayError: 400 naming the bad part (``body``, ``model``, ``messages``/``prompt``,
            ``stream``).
    """
    if not body:
        raise GatewayError(400, "Request body is empty; expected a JSON object", param="body")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GatewayError(400, f"Request body is not valid JSON: {exc}", param="body", code="invalid_json") from None
    if not isinstance(data, dict):
        raise GatewayError(400, "Request body must be a JSON object", param="body")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError(400, "Missing required field 'model' (a non-empty string)", param="model")
    field = REQUIRED_FIELD[path]
    if field not in data:
        raise GatewayError(400, f"Missing required field '{field}'", param=field)
    if field == "messages" and (not isinstance(data[field], list) or not data[field]):
        raise GatewayError(400, "Field 'messages' must be a non-empty list", param="messages")
    if "stream" in data and not isinstance(data["stream"], bool) and data["stream"] is not None:
        raise GatewayError(400, "Field 'stream' must be a boolean", param="stream")
    return data


def prompt_prefix(data: dict[str, Any], chars: int) -> str:
    """The first ``chars`` characters of the prompt as the engine will see it, roughly: each
    chat message as ``role: text`` (text parts of multi-part content), or the completion prompt.

    Requests that share a system prompt, or a conversation's earlier turns, share this prefix
    once it is shorter than what they have in common; prefix affinity routes on it.
    """
    out: list[str] = []
    size = 0
    messages = data.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if size >= chars:
                break
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            piece = f"{message.get('role')}: {content if isinstance(content, str) else ''}\n"
            out.append(piece)
            size += len(piece)
    else:
        prompt = data.get("prompt")
        if isinstance(prompt, list) and prompt:
            prompt = prompt[0]
        out.append(prompt if isinstance(prompt, str) else str(prompt))
    return "".join(out)[:chars]
