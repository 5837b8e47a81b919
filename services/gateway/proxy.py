"""The upstream call as an ASGI response: streaming pass-through, heartbeats, disconnect handling.

Why a custom response instead of ``StreamingResponse(upstream.aiter_raw())`` (cases B13, B14):

- The upstream request is sent from *inside* the response's ``__call__`` and its response is
  closed in ``finally`` there, so closing is tied to the end of the response (never to an
  ``async with`` that exits before Starlette iterates: B14), and happens on every path: normal
  end, upstream error, client disconnect, cancellation (B13).
- A watcher task reads ``receive()`` for ``http.disconnect`` during the whole call, so a client
  that goes away is noticed at once (not at the next write), the upstream stream is closed and
  vLLM aborts the request.
- Upstream status and headers are read before the response is committed: an upstream 4xx/5xx
  keeps its status, and its body (read up to 64 KiB) is rewritten into the OpenAI error shape by
  :func:`~services.gateway.errors.normalise_upstream_error` (vLLM sends pydantic dumps, an int
  ``code`` and types like ``"Bad Request"``; that function's docstring has the mapping). Only
  ``Retry-After`` of the upstream headers is kept for it. Successful answers (plain and SSE) are
  relayed byte for byte, unbuffered. One exception (B15): a stream whose upstream has not answered
  within ``heartbeat_interval`` is committed as 200 ``text/event-stream`` so heartbeat comments
  can flow; a later upstream error is then sent as one ``data: {"error": ...}`` event (same
  normalisation, but ``code`` falls back to the status as a string).
- While a stream waits for bytes and the bytes sent so far end on an event boundary, an SSE
  comment line (``: keep-alive``) is sent every ``heartbeat_interval`` seconds (never inside an
  event), so the ALB and CloudFront idle timeouts do not cut a queued request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from services.gateway.errors import (
    MAX_UPSTREAM_ERROR_BYTES,
    GatewayError,
    normalise_upstream_error,
    upstream_timeout,
    upstream_unavailable,
)
from services.gateway.logs import LOGGER_NAME
from services.gateway.metrics import GatewayMetrics

log = logging.getLogger(LOGGER_NAME)

HEARTBEAT = b": keep-alive\n\n"
# RFC 9110 section 7.6.1 hop-by-hop headers, plus the ones the ASGI server sets itself.
DROP_RESPONSE_HEADERS = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "trailers", "transfer-encoding", "upgrade", "content-length", "date", "server",
    }
)  # fmt: skip
SSE_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)


def response_headers(upstream: httpx.Response, stream: bool) -> list[tuple[bytes, bytes]]:
    """Upstream headers minus hop-by-hop ones; for streams add no-cache / no-buffering."""
    headers = [(k.lower(), v) for k, v in upstream.headers.raw if k.lower().decode() not in DROP_RESPONSE_HEADERS]
    if stream:
        present = {k for k, _ in headers}
        headers += [(k, v) for k, v in SSE_HEADERS if k not in present]
    else:
        # content-length is recomputed: the body is passed through byte for byte.
        if "content-length" in upstream.headers:
            headers.append((b"content-length", upstream.headers["content-length"].encode()))
    return headers


CONNECT_RETRY_BACKOFF_SECONDS = 0.25


async def send_with_connect_retry(
    client: httpx.AsyncClient, request: httpx.Request, *, retries: int
) -> httpx.Response:
    """``client.send(request, stream=True)``, retried up to ``retries`` times on a failed connect.

    Only ``ConnectError``/``ConnectTimeout`` are retried: the request has not been sent then,
    so a retry cannot duplicate work. Backoff doubles from 0.25 s. Pool timeouts are not retried
    (the pool is full: retrying would only queue more).

    Raises:
        httpx.HTTPError: the last error once attempts are used up, or any other error at once.
    """
    for attempt in range(retries + 1):
        try:
            return await client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            if attempt == retries:
                raise
            log.info("upstream connect failed, retrying", extra={"attempt": attempt + 1, "upstream": str(request.url)})
            await asyncio.sleep(CONNECT_RETRY_BACKOFF_SECONDS * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def map_upstream_error(exc: httpx.HTTPError) -> tuple[GatewayError, str]:
    """Map an httpx error to (GatewayError, metric kind): connect -> 503, timeout -> 504, else 502."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return upstream_unavailable(type(exc).__name__), "connect"
    if isinstance(exc, httpx.TimeoutException):
        return upstream_timeout(type(exc).__name__), "timeout"
    return (
        GatewayError(502, f"Bad answer from the model server: {type(exc).__name__}", type_="server_error", code="bad_gateway"),
        "protocol",
    )


class _ClientGone(Exception):
    """The client disconnected (a send failed)."""


class ProxyResponse(Response):
    """Send ``request`` upstream when called and relay the answer (see module docstring).

    Args:
        client: the app's shared ``httpx.AsyncClient``.
        request: the upstream request (built with ``client.build_request``).
        stream: the caller asked for SSE (heartbeats, TTFT).
        heartbeat_interval: seconds between heartbeat comments while waiting.
        metrics: the app's metrics.
        route: metric label.
        start: ``time.perf_counter()`` at request arrival (TTFT origin).
        on_done: called exactly once when the response has finished, on every path (releases
            the admission slot).
        connect_retries: retries of a failed connect (see :func:`send_with_connect_retry`).
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        request: httpx.Request,
        stream: bool,
        heartbeat_interval: float,
        metrics: GatewayMetrics,
        route: str,
        start: float,
        on_done: Callable[[], None] | None = None,
        connect_retries: int = 0,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.body = b""
        self.raw_headers = []
        self._client = client
        self._request = request
        self._stream = stream
        self._hb = heartbeat_interval
        self._metrics = metrics
        self._route = route
        self._start = start
        self._on_done = on_done
        self._connect_retries = connect_retries
        self._upstream: httpx.Response | None = None
        self._committed = False
        self._at_boundary = True
        self._send: Send | None = None
        self._send_lock = asyncio.Lock()
        self._last_sent = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: D102
        self._send = send
        main = asyncio.ensure_future(self._run())
        watcher = asyncio.ensure_future(self._watch_disconnect(receive))
        try:
            await asyncio.wait({main, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            main.cancel()
            watcher.cancel()
            results = await asyncio.gather(main, watcher, return_exceptions=True)
            await self._cleanup()
        error = results[0]
        if isinstance(error, _ClientGone) or (watcher.done() and not watcher.cancelled() and main.cancelled()):
            self._metrics.disconnects.inc()
            log.info("client disconnected", extra={"request_id": self._request.headers.get("x-request-id")})
        elif isinstance(error, BaseException) and not isinstance(error, asyncio.CancelledError):
            raise error

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    async def _out(self, message: Message) -> None:
        assert self._send is not None
        try:
            await self._send(message)
        except OSError as exc:  # uvicorn's ClientDisconnected is an OSError (ASGI spec 2.4)
            raise _ClientGone() from exc

    async def _start_response(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status
        self._committed = True
        await self._out({"type": "http.response.start", "status": status, "headers": headers})

    async def _body(self, chunk: bytes, more: bool = True) -> None:
        await self._out({"type": "http.response.body", "body": chunk, "more_body": more})

    async def _heartbeat(self) -> None:
        if not self._committed:
            await self._start_response(200, list(SSE_HEADERS))
        if self._at_boundary:
            await self._body(HEARTBEAT)

    async def _run(self) -> None:
        try:
            upstream = await self._open()
            if upstream.status_code != 200 and self._committed:
                await self._error_event(upstream)
            elif self._stream and upstream.status_code == 200:
                await self._relay_stream(upstream)
            elif upstream.status_code >= 400:
                await self._relay_error(upstream)
            else:
                await self._relay_plain(upstream)
        except httpx.HTTPError as exc:
            error, kind = map_upstream_error(exc)
            self._metrics.upstream_errors.labels(kind=kind).inc()
            log.warning("upstream error", extra={"error": type(exc).__name__, "upstream": str(self._request.url)})
            await self._send_error(error)

    async def _open(self) -> httpx.Response:
        """Send the request; for streams, heartbeat while the upstream has not answered."""
        task = asyncio.ensure_future(
            send_with_connect_retry(self._client, self._request, retries=self._connect_retries)
        )
        try:
            while self._stream:
                done, _ = await asyncio.wait({task}, timeout=self._hb)
                if done:
                    break
                await self._heartbeat()
            self._upstream = await task
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        return self._upstream

    async def _relay_plain(self, upstream: httpx.Response) -> None:
        await self._start_response(upstream.status_code, response_headers(upstream, stream=False))
        async for chunk in upstream.aiter_raw():
            await self._body(chunk)
        await self._body(b"", more=False)

    async def _relay_stream(self, upstream: httpx.Response) -> None:
        """Forward chunks as they come. Heartbeats come from a side task that wakes once per
        interval, so the per-chunk path has no timer or task (cheap at hundreds of tokens/s)."""
        if not self._committed:
            await self._start_response(200, response_headers(upstream, stream=True))
        loop = asyncio.get_running_loop()
        self._last_sent = loop.time()
        beat = asyncio.ensure_future(self._beat_when_idle(loop))
        first = True
        try:
            async for chunk in upstream.aiter_raw():
                if not chunk:
                    continue
                if first:
                    first = False
                    self._metrics.ttft.labels(route=self._route).observe(time.perf_counter() - self._start)
                self._at_boundary = chunk.endswith((b"\n\n", b"\r\n\r\n"))
                self._last_sent = loop.time()
                async with self._send_lock:
                    await self._body(chunk)
        finally:
            beat.cancel()
            with contextlib.suppress(BaseException):
                await beat
        await self._body(b"", more=False)

    async def _beat_when_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        """Send a heartbeat whenever nothing was sent for ``heartbeat_interval`` seconds."""
        while True:
            idle = loop.time() - self._last_sent
            if idle < self._hb:
                await asyncio.sleep(self._hb - idle)
                continue
            async with self._send_lock:
                await self._heartbeat()
            self._last_sent = loop.time()

    async def _read_error(self, upstream: httpx.Response) -> GatewayError:
        """Read at most ``MAX_UPSTREAM_ERROR_BYTES`` of an upstream error body and normalise it."""
        raw = b""
        async for chunk in upstream.aiter_bytes():
            raw += chunk
            if len(raw) >= MAX_UPSTREAM_ERROR_BYTES:
                raw = raw[:MAX_UPSTREAM_ERROR_BYTES]
                break
        return normalise_upstream_error(upstream.status_code, raw)

    async def _relay_error(self, upstream: httpx.Response) -> None:
        """Upstream 4xx/5xx before commit: same status, OpenAI-shaped body."""
        error = await self._read_error(upstream)
        if "retry-after" in upstream.headers:
            error.headers["Retry-After"] = upstream.headers["retry-after"]
        await self._send_error(error)

    async def _error_event(self, upstream: httpx.Response) -> None:
        """Upstream failed after we committed 200 for heartbeats: relay its error as one event."""
        error = await self._read_error(upstream)
        error.code = error.code or str(upstream.status_code)
        await self._send_error(error)

    async def _send_error(self, error: GatewayError) -> None:
        if not self._committed:
            response = error.response()
            await self._start_response(error.status, response.raw_headers)
            await self._body(response.body, more=False)
            return
        if self._at_boundary:
            await self._body(error.sse_event())
        await self._body(b"", more=False)

    async def _cleanup(self) -> None:
        """Close the upstream response (aborts vLLM's request if unfinished), then on_done."""
        try:
            if self._upstream is not None:
                await asyncio.shield(self._upstream.aclose())
        except Exception:  # noqa: BLE001 - closing must not mask the real outcome
            log.debug("upstream close failed", exc_info=True)
        finally:
            if self._on_done is not None:
                callback, self._on_done = self._on_done, None
                callback()


def build_upstream_request(
    client: httpx.AsyncClient, method: str, url: str, body: bytes | None, request_id: str, accept: str | None
) -> httpx.Request:
    """Build the upstream request: only content-type, accept and X-Request-ID are forwarded.

    The client's ``Authorization`` is not forwarded (the gateway key is not vLLM's).
    """
    headers: dict[str, Any] = {"x-request-id": request_id}
    if body is not None:
        headers["content-type"] = "application/json"
    if accept:
        headers["accept"] = accept
    return client.build_request(method, url, content=body, headers=headers)
