"""The gateway app factory: routers, error handlers, and the lifespan that owns the upstream.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models`` (proxied to
vLLM, :mod:`~services.gateway.routes.api`), ``/healthz``, ``/readyz``, ``/metrics``
(:mod:`~services.gateway.routes.ops`), the chat page at ``/`` and its assets under ``/static``.

There is no module-level app: run ``python -m services.gateway``, or uvicorn in factory mode
(``uvicorn --factory services.gateway.app:create_app``); settings come from ``GATEWAY_*``
environment variables when the app is created.

Shutdown: on SIGTERM or SIGINT the server stops accepting connections and waits for the running
requests. Those still waiting for an engine (held: none ready) or for an admission slot would
wait until their own timeouts and then be cut when the process exits, so the signal also drains
the router and admission at once: each of them is answered 503 with ``Retry-After``, and
``/readyz`` turns unready. Requests already at an engine run to their end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway.admission import Admission
from services.gateway.catalog import ModelCatalog
from services.gateway.endpoints import endpoint_source
from services.gateway.errors import GatewayError, error_body
from services.gateway.logs import configure_logging
from services.gateway.metrics import GatewayMetrics
from services.gateway.middleware import RequestContextMiddleware
from services.gateway.routes import api, ops, page
from services.gateway.routing import Router
from services.gateway.settings import (
    GRACEFUL_SHUTDOWN_SECONDS,
    STREAM_END_MARGIN_SECONDS,
    GatewaySettings,
    load_settings,
)
from services.gateway.upstream import Upstream, new_session

ROUTES = api.PATHS | ops.PATHS | page.PATHS
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_shutdown_signal(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> Callable[[], None]:
    """Run ``callback`` on ``loop`` when SIGTERM or SIGINT arrives, then the handler that was
    installed before (the ASGI server's own, which starts its graceful shutdown).

    The server offers no hook between the signal and the end of its connections (the app's
    lifespan shutdown runs only after them), so the handler is chained. Only possible in the
    main thread (a server run in a thread, as in tests, gets no signals): elsewhere nothing is
    installed.

    Returns:
        A function that puts the previous handlers back.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    installed: dict[signal.Signals, Callable] = {}
    previous: dict[signal.Signals, object] = {}
    for sig in SHUTDOWN_SIGNALS:
        before = signal.getsignal(sig)

        def handler(signum: int, frame: object, before: object = before) -> None:
            loop.call_soon_threadsafe(callback)
            if callable(before):
                before(signum, frame)
            elif before == signal.SIG_DFL:  # no server handler: terminate as the default would
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)

        previous[sig], installed[sig] = before, handler
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, handler in installed.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous[sig])  # type: ignore[arg-type]

    return restore


def _lifespan(settings: GatewaySettings, metrics: GatewayMetrics, logger: logging.Logger) -> Callable:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Create the session, router, admission and catalog; run the endpoint source."""
        session = new_session(settings)
        router = Router(
            metrics,
            max_held=settings.max_held_requests,
            hold_timeout=settings.hold_timeout_seconds,
            load_factor=settings.prefix_affinity_load_factor if settings.prefix_affinity else None,
        )
        admission = Admission(settings.max_in_flight, settings.max_queue, settings.queue_timeout_seconds, metrics)
        app.state.upstream = Upstream(session, router, admission, settings, metrics)
        app.state.router = router
        app.state.admission = admission
        app.state.catalog = ModelCatalog(settings.served_model_name, session, router)
        source = endpoint_source(settings)
        discovery = asyncio.create_task(source.run(router), name=f"endpoint-source-{source.name}")

        loop = asyncio.get_running_loop()

        def end_open_answers() -> None:
            logger.info("graceful shutdown window ends soon: ending the answers still open",
                        extra={"margin_s": STREAM_END_MARGIN_SECONDS})
            app.state.upstream.end_open_answers()

        def drain() -> None:
            if not router.draining:
                logger.info("shutting down: answering held and queued requests 503",
                            extra={"held": router.held, "queued": admission.queued})
                loop.call_later(GRACEFUL_SHUTDOWN_SECONDS - STREAM_END_MARGIN_SECONDS, end_open_answers)
            router.drain()
            admission.drain()

        restore_signals = on_shutdown_signal(loop, drain)
        # The Service URL is named only where it is used: as the upstream, or the EndpointSlices'
        # fallback; a static list or a file (local mode) never sends to it.
        where = {"upstream": settings.upstream_url} if source.uses_upstream_url else {}
        logger.info("gateway started", extra={"source": source.name, **where, "auth": bool(app.state.api_keys)})
        try:
            yield
        finally:
            restore_signals()
            discovery.cancel()
            with contextlib.suppress(BaseException):
                await discovery
            await session.close()

    return lifespan


def _add_error_handlers(app: FastAPI) -> None:
    """Every error leaves in the OpenAI shape ``{"error": {message, type, param, code}}``."""

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


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """Build the gateway app.

    Args:
        settings: defaults to :func:`load_settings` (``GATEWAY_*`` environment).

    Returns:
        The FastAPI app. The upstream session, router, admission and model catalog are created
        in its lifespan and kept on ``app.state``.

    Raises:
        SettingsError: invalid environment. OSError: ``GATEWAY_API_KEYS_FILE`` unreadable.
    """
    cfg = settings if settings is not None else load_settings()
    metrics = GatewayMetrics()
    logger = configure_logging(cfg.log_level)
    app = FastAPI(
        title="qvllm gateway", lifespan=_lifespan(cfg, metrics, logger), docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.settings = cfg
    app.state.metrics = metrics
    app.state.api_keys = cfg.all_api_keys()
    app.add_middleware(RequestContextMiddleware, metrics=metrics, routes=ROUTES)
    _add_error_handlers(app)
    app.include_router(ops.router)
    app.include_router(api.router)
    app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=page.STATIC_DIR), name="static")
    return app
