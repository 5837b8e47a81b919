"""The OpenAI-compatible routes, proxied to vLLM: chat completions, completions, models."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.gateway.auth import check_api_key
from services.gateway.catalog import MODELS_PATH
from services.gateway.proxy import ProxyResponse, UpstreamCall, upstream_headers
from services.gateway.routing import affinity_key
from services.gateway.upstream import Upstream
from services.gateway.validation import parse_completion_request, prompt_prefix, read_body

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
PATHS = frozenset({CHAT_PATH, COMPLETIONS_PATH, MODELS_PATH})

router = APIRouter()


def _path_and_query(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


@router.get(MODELS_PATH)
async def models(request: Request) -> Response:
    """The engines' model list (no admission slot: it is cheap)."""
    check_api_key(request, request.app.state.api_keys)
    state = request.scope["state"]
    call = UpstreamCall(
        method="GET", path=_path_and_query(request), body=None,
        headers=upstream_headers(state["request_id"], False, request.headers.get("accept")),
        stream=False, route=request.url.path, start=state["start"], admit=False,
    )  # fmt: skip
    return ProxyResponse(request.app.state.upstream, call)


@router.post(CHAT_PATH)
@router.post(COMPLETIONS_PATH)
async def completion(request: Request) -> Response:
    """Check key, body and model here; hold, admission, routing and relay happen in the response."""
    check_api_key(request, request.app.state.api_keys)
    upstream: Upstream = request.app.state.upstream
    settings = upstream.settings
    body = await read_body(request, settings.max_body_bytes)
    data = parse_completion_request(body, request.url.path)
    await request.app.state.catalog.check(data["model"])
    state = request.scope["state"]
    call = UpstreamCall(
        method="POST", path=_path_and_query(request), body=body,
        headers=upstream_headers(state["request_id"], True, request.headers.get("accept")),
        stream=bool(data.get("stream")), route=request.url.path, start=state["start"],
        affinity=affinity_key(prompt_prefix(data, settings.prefix_affinity_chars)) if settings.prefix_affinity else None,
    )  # fmt: skip
    return ProxyResponse(upstream, call)
