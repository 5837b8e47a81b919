"""Probes and metrics: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``."""

from __future__ import annotations

import aiohttp
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from services.gateway.contract import HEALTH_PATH, METRICS_PATH, READY_PATH
from services.gateway.upstream import Upstream

UPSTREAM_HEALTH_PATH = "/health"  # vLLM's health route
PATHS = frozenset({HEALTH_PATH, READY_PATH, METRICS_PATH})

router = APIRouter(include_in_schema=False)


@router.get(HEALTH_PATH)
async def healthz() -> dict[str, str]:
    """Liveness: the process answers; never depends on vLLM."""
    return {"status": "ok"}


async def _probe_failed_endpoints(upstream: Upstream) -> bool:
    """Every ready endpoint has failed lately: probe their ``/health``; a 200 clears the failure
    (so traffic resumes after an engine restart even when no request arrives). True if one answered."""
    timeout = aiohttp.ClientTimeout(total=upstream.settings.connect_timeout_seconds)
    answered = False
    for state in list(upstream.router.ready):
        try:
            async with upstream.session.get(state.url + UPSTREAM_HEALTH_PATH, timeout=timeout) as resp:
                ok = resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if ok:
            upstream.router.connect_ok(state)
            answered = True
    return answered


@router.get(READY_PATH)
async def readyz(request: Request) -> JSONResponse:
    """Readiness: not while shutting down. With an endpoint source, once it has reported (zero
    endpoints is ready: such requests are held while vLLM scales from zero) and unless every
    listed endpoint failed lately and none answers its ``/health`` now; with only the Service URL
    (no source, or discovery failed), when its ``/health`` answers 200."""
    upstream: Upstream = request.app.state.upstream
    router = upstream.router
    if router.draining:
        return JSONResponse({"status": "not ready", "detail": "shutting down"}, status_code=503)
    if router.source != "service" and not router.fallback:
        if router.synced and not router.reachable() and not await _probe_failed_endpoints(upstream):
            return JSONResponse({"status": "not ready", "detail": f"none of the {len(router.ready)} vLLM endpoint(s) "
                                 "answers (connect failed or connection closed mid-answer)"}, status_code=503)
        if router.synced:
            return JSONResponse({"status": "ready", "source": router.source, "endpoints": len(router.ready),
                                 "held": router.held})
        return JSONResponse({"status": "not ready", "detail": f"{router.source or 'endpoint'} discovery has not "
                             "reported yet"}, status_code=503)
    url = upstream.settings.upstream_url + UPSTREAM_HEALTH_PATH
    try:
        timeout = aiohttp.ClientTimeout(total=upstream.settings.connect_timeout_seconds)
        async with upstream.session.get(url, timeout=timeout) as resp:
            ok, detail = resp.status == 200, f"upstream /health returned {resp.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        ok, detail = False, f"upstream unreachable: {type(exc).__name__}"
    if ok:
        return JSONResponse({"status": "ready", "source": router.source, "fallback": router.fallback})
    return JSONResponse({"status": "not ready", "detail": detail}, status_code=503)


@router.get(METRICS_PATH)
async def prometheus(request: Request) -> Response:
    """Prometheus text of this gateway process."""
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)
