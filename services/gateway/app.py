"""FastAPI app factory of the gateway: routes, lifespan (shared httpx client), error handlers.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models`` (proxied to
vLLM), ``/healthz``, ``/readyz``, ``/metrics``, the chat page at ``/`` and its assets under
``/static``. Run with ``python -m services.gateway`` or
``python -m uvicorn services.gateway.app:app`` (settings from ``GATEWAY_*`` env variables).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway.admission import Admission, Rejected
from services.gateway.errors import GatewayError, error_body
from services.gateway.logs import configure_logging
from services.gateway.metrics import GatewayMetrics
from services.gateway.middleware import RequestContextMiddleware
from services.gateway.proxy import ProxyResponse, build_upstream_request
from services.gateway.settings import HEALTH_PATH, METRICS_PATH, READY_PATH, GatewaySettings, load_settings
from services.gateway.validation import parse_completion_request, read_body

STATIC_DIR = Path(__file__).resolve().parent / "static"
CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
MODELS_PATH = "/v1/models"
UPSTREAM_HEALTH_PATH = "/health"  # vLLM's health route (app_config.constants.VLLM_HEALTH_PATH)
ROUTES = frozenset({"/", CHAT_PATH, COMPLETIONS_PATH, MODELS_PATH, HEALTH_PATH, READY_PATH, METRICS_PATH})
MODEL_CACHE_SECONDS = 30.0
KEEPALIVE_EXPIRY_SECONDS = 4.0  # below uvicorn's 5 s keep-alive timeout (vLLM's server)
WRITE_TIMEOUT_SECONDS = 30.0


class ModelCatalog:
    """Which ``model`` values are accepted: the configured served model name, or (if empty)
    the ids listed by the upstream's ``/v1/models`` (cached ``MODEL_CACHE_SECONDS``)."""

    def __init__(self, settings: GatewaySettings, client: httpx.AsyncClient) -> None:
        self._fixed = settings.served_model_name
        self._client = client
        self._url = settings.upstream_url + MODELS_PATH
        self._ids: frozenset[str] = frozenset()
        self._fetched = float("-inf")

    async def names(self) -> frozenset[str] | None:
        """Accepted names, or None if unknown (upstream unreachable): then the upstream decides."""
        if self._fixed:
            return frozenset({self._fixed})
        if time.monotonic() - self._fetched > MODEL_CACHE_SECONDS:
            try:
                resp = await self._client.get(self._url)
                resp.raise_for_status()
                self._ids = frozenset(m["id"] for m in resp.json()["data"])
                self._fetched = time.monotonic()
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                return None
        return self._ids

    async def check(self, model: str) -> None:
        """Raises GatewayError 404 if ``model`` is not served here."""
        names = await self.names()
        if names is not None and model not in names:
            if not self._fixed:  # maybe the upstream changed: refresh once on a miss
                self._fetched = float("-inf")
                names = await self.names()
                if names is None or model in names:
                    return
            served = ", ".join(sorted(names)) or "(none)"
            raise GatewayError(
                404,
                f"The model '{model}' does not exist; this gateway serves: {served}",
                param="model",
                code="model_not_found",
            )


def _check_auth(request: Request, keys: frozenset[str]) -> None:
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise GatewayError(
            401,
            "Missing API key: send 'Authorization: Bearer <key>'",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = token.strip()
    if not any(hmac.compare_digest(token.encode(), key.encode()) for key in keys):
        raise GatewayError(401, "Incorrect API key provided", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def create_app(settings: GatewaySettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """Build the gateway app.

    Args:
        settings: defaults to :func:`load_settings` (``GATEWAY_*`` environment).
        transport: optional httpx transport for the upstream client (tests wrap the real one).

    Returns:
        The FastAPI app. The shared ``httpx.AsyncClient``, the admission controller and the
        model catalog are created in the lifespan and kept on ``app.state``.

    Raises:
        SettingsError: invalid environment. OSError: ``GATEWAY_API_KEYS_FILE`` unreadable.
    """
    cfg = settings if settings is not None else load_settings()
    api_keys = cfg.all_api_keys()
    metrics = GatewayMetrics()
    logger = configure_logging(cfg.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(
                connect=cfg.connect_timeout_seconds,
                read=cfg.read_timeout_seconds,
                write=WRITE_TIMEOUT_SECONDS,
                pool=cfg.connect_timeout_seconds,
            ),
            limits=httpx.Limits(
                max_connections=cfg.max_connections,
                max_keepalive_connections=cfg.max_connections,
                keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
            ),
        )
        app.state.client = client
        app.state.admission = Admission(cfg.max_in_flight, cfg.max_queue, cfg.queue_timeout_seconds, metrics)
        app.state.catalog = ModelCatalog(cfg, client)
        logger.info("gateway started", extra={"upstream": cfg.upstream_url, "auth": bool(api_keys)})
        try:
            yield
        finally:
            await client.aclose()

    app = FastAPI(title="qvllm gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = cfg
    app.state.metrics = metrics
    app.add_middleware(RequestContextMiddleware, metrics=metrics, routes=ROUTES)

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {exc.detail}"
        kind = "not_found" if exc.status_code == 404 else None
        return JSONResponse(
            error_body(message, "invalid_request_error", None, kind), status_code=exc.status_code, headers=exc.headers
        )

    @app.get(HEALTH_PATH, include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(READY_PATH, include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        try:
            resp = await request.app.state.client.get(cfg.upstream_url + UPSTREAM_HEALTH_PATH, timeout=cfg.connect_timeout_seconds)
            ok = resp.status_code == 200
            detail = f"upstream /health returned {resp.status_code}"
        except httpx.HTTPError as exc:
            ok, detail = False, f"upstream unreachable: {type(exc).__name__}"
        if ok:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "detail": detail}, status_code=503)

    @app.get(METRICS_PATH, include_in_schema=False)
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def _proxy(request: Request, method: str, body: bytes | None, stream: bool, on_done=None) -> ProxyResponse:  # type: ignore[no-untyped-def]
        state = request.scope["state"]
        url = cfg.upstream_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        upstream_request = build_upstream_request(
            request.app.state.client, method, url, body, state["request_id"], request.headers.get("accept")
        )
        return ProxyResponse(
            client=request.app.state.client,
            request=upstream_request,
            stream=stream,
            heartbeat_interval=cfg.heartbeat_interval_seconds,
            metrics=metrics,
            route=request.url.path,
            start=state["start"],
            on_done=on_done,
            connect_retries=cfg.connect_retries,
        )

    @app.get(MODELS_PATH)
    async def models(request: Request) -> ProxyResponse:
        _check_auth(request, api_keys)
        return _proxy(request, "GET", None, stream=False)

    async def completion(request: Request) -> Response:
        _check_auth(request, api_keys)
        body = await read_body(request, cfg.max_body_bytes)
        data = parse_completion_request(body, request.url.path)
        await request.app.state.catalog.check(data["model"])
        admission: Admission = request.app.state.admission
        try:
            await admission.acquire()
        except Rejected as exc:
            raise GatewayError(
                429,
                f"The gateway is at capacity ({exc.reason.replace('_', ' ')}); retry after "
                f"{cfg.retry_after_seconds} s",
                type_="rate_limit_error",
                code=exc.reason,
                headers={"Retry-After": str(cfg.retry_after_seconds)},
            ) from None
        try:
            return _proxy(request, "POST", body, stream=bool(data.get("stream")), on_done=admission.release)
        except BaseException:
            admission.release()
            raise

    app.add_api_route(CHAT_PATH, completion, methods=["POST"])
    app.add_api_route(COMPLETIONS_PATH, completion, methods=["POST"])
    return app


app = create_app()
