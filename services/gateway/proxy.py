"""One proxied request as an ASGI response: hold, admission, endpoint pick, relay, cleanup.

Why a custom response instead of ``StreamingResponse(...)``:

- Everything that can wait happens *inside* the response, so a stream that waits (held while
  no endpoint is ready, queued for an in-flight slot, or waiting for the engine's first token)
  can carry SSE heartbeats: the ALB and CloudFront idle timeouts would otherwise cut it.
- The upstream request is sent from inside ``__call__`` and its response is closed in
  ``finally`` there, so closing is tied to the end of the response (never to a context that
  exits before the server iterates the body) and happens on every path: normal end, upstream
  error, client disconnect, cancellation. An unfinished upstream response is closed, not
  returned to the pool, so vLLM sees the disconnect and aborts the generation.
- A watcher task reads ``receive()`` for ``http.disconnect`` during the whole call, so a client
  that goes away is noticed at once (not at the next write).
- Upstream status and headers are read before the response is committed: an upstream 4xx/5xx
  keeps its status and its body is rewritten into the OpenAI error shape
  (:func:`~services.gateway.errors.normalise_upstream_error`); of its headers only
  ``Retry-After`` is kept. Successful answers (plain and SSE) are relayed byte for byte,
  unbuffered: each read hands over whatever bytes have arrived, in one write.
- A stream that has not started within ``heartbeat_interval`` is committed as 200
  ``text/event-stream`` so heartbeat comments can flow; a later error is then sent as one
  ``data: {"error": ...}`` event. Heartbeats (``: keep-alive``) are only sent while the bytes
  sent so far end on an event boundary, never inside an event.
- A non-streaming request is answered 504, naming the limit, shortly before the edge's origin
  read timeout would cut it with an error page of its own.
- The answering endpoint is named in the ``x-qvllm-upstream`` header, also on a stream committed
  early while it waited for the engine's first token; a stream committed before an endpoint
  was picked (held or queued) names it in one SSE comment instead, before the first event.
- An engine that dies mid-answer (its connection closes) ends each of its streams with one
  OpenAI-style error event, and the endpoint counts as failed until it accepts a connect again.
- An answer still open when the gateway ends its open answers (``Upstream.end_open_answers``,
  shortly before the graceful-shutdown window closes) or when the server cancels the request gets one
  last answer: a 503 with ``Retry-After`` if nothing was sent, else an error event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import aiohttp
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from services.gateway.admission import Rejected
from services.gateway.contract import UPSTREAM_HEADER
from services.gateway.errors import (
    MAX_UPSTREAM_ERROR_BYTES,
    GatewayError,
    no_endpoint_ready,
    non_streaming_timeout,
    normalise_upstream_error,
    over_capacity,
    shutting_down,
)
from services.gateway.logs import LOGGER_NAME
from services.gateway.routing import EndpointState, NoEndpoint
from services.gateway.upstream import ENDPOINT_DOWN_KINDS, NoReadyEndpoint, Upstream, map_upstream_error, send

log = logging.getLogger(LOGGER_NAME)

HEARTBEAT = b": keep-alive\n\n"
# RFC 9110 section 7.6.1 hop-by-hop headers, plus the ones the ASGI server sets itself.
DROP_RESPONSE_HEADERS = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
        b"trailers", b"transfer-encoding", b"upgrade", b"content-length", b"date", b"server",
    }
)  # fmt: skip
SSE_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)
# Answer a non-streaming request this long before the edge would cut it (network and ALB time).
EDGE_TIMEOUT_MARGIN_SECONDS = 2.0
# Longest wait for the last words to a client when the server cancels the request at shutdown.
GOODBYE_TIMEOUT_SECONDS = 1.0


def response_headers(upstream: aiohttp.ClientResponse, stream: bool, endpoint: str) -> list[tuple[bytes, bytes]]:
    """Upstream headers minus hop-by-hop ones, plus the answering endpoint's name; streams get
    no-cache / no-buffering, plain answers keep their ``content-length``."""
    headers = [(k.lower(), v) for k, v in upstream.raw_headers if k.lower() not in DROP_RESPONSE_HEADERS]
    if stream:
        present = {k for k, _ in headers}
        headers += [(k, v) for k, v in SSE_HEADERS if k not in present]
    elif upstream.content_length is not None:
        # the body is passed through byte for byte, so its length stands
        headers.append((b"content-length", str(upstream.content_length).encode()))
    headers.append((UPSTREAM_HEADER.encode(), endpoint.encode()))
    return headers


@dataclass(frozen=True)
class UpstreamCall:
    """What to send, and how to treat it.

    Attributes:
        method: HTTP method.
        path: path and query string (``/v1/chat/completions``).
        body: request body, or None.
        headers: headers for the engine (never the client's ``Authorization``).
        stream: the caller asked for SSE (heartbeats, TTFT; no edge deadline).
        route: metric label.
        start: ``time.perf_counter()`` at request arrival (TTFT and edge-deadline origin).
        admit: take an admission slot (completions) or not (``/v1/models``).
        affinity: prefix-affinity ring position, or None.
    """

    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    stream: bool
    route: str
    start: float
    admit: bool = True
    affinity: int | None = None


class _ClientGone(Exception):
    """The client disconnected (a send failed)."""


class ProxyResponse(Response):
    """Send ``call`` to a vLLM endpoint when called and relay the answer (see module docstring).

    Args:
        upstream: the app's :class:`~services.gateway.upstream.Upstream`.
        call: the request to send.
    """

    def __init__(self, upstream: Upstream, call: UpstreamCall) -> None:
        self.status_code = 200
        self.background = None
        self.body = b""
        self.raw_headers = []
        self._up = upstream
        self._call = call
        self._hb = upstream.settings.heartbeat_interval_seconds
        self._metrics = upstream.metrics
        self._admitted = False
        self._endpoint: EndpointState | None = None
        self._response: aiohttp.ClientResponse | None = None
        self._committed = False
        self._ended = False
        self._named = False  # the upstream header (or its SSE comment) was sent
        self._at_boundary = True
        self._send: Send | None = None
        self._send_lock = asyncio.Lock()
        self._last_sent = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: D102
        self._send = send
        main = asyncio.ensure_future(self._run())
        watcher = asyncio.ensure_future(self._watch_disconnect(receive))
        closing = self._up.answer_opened()
        cancelled = False
        try:
            await asyncio.wait({main, watcher, closing}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            cancelled = True  # the server gave up on this request (graceful-shutdown timeout)
            raise
        finally:
            # Decided before the cancels below: a cancelled task counts as done.
            ending = (cancelled or (closing.done() and not main.done())) and not watcher.done()
            self._up.answer_over(closing)
            main.cancel()
            watcher.cancel()
            results = await asyncio.gather(main, watcher, return_exceptions=True)
            try:
                if ending:
                    await self._goodbye()
            finally:
                self._cleanup()
        error = results[0]
        if isinstance(error, _ClientGone) or (watcher.done() and not watcher.cancelled() and main.cancelled()):
            self._metrics.disconnects.inc()
            log.info("client disconnected", extra={"request_id": self._call.headers.get("x-request-id")})
        elif isinstance(error, BaseException) and not isinstance(error, asyncio.CancelledError):
            raise error

    async def _goodbye(self) -> None:
        """Best effort, bounded: end the answer with a shutting-down error rather than cut it."""
        if self._ended:
            return
        error = shutting_down(self._up.settings.retry_after_seconds)
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(self._send_error(error), GOODBYE_TIMEOUT_SECONDS)

    async def _watch_disconnect(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    # --- sending to the client ------------------------------------------------------------------

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
        if not more:
            self._ended = True
        await self._out({"type": "http.response.body", "body": chunk, "more_body": more})

    async def _heartbeat(self) -> None:
        if not self._committed:
            headers = list(SSE_HEADERS)
            if self._endpoint is not None:  # sent, waiting for the first token: name the endpoint now
                headers.append((UPSTREAM_HEADER.encode(), self._endpoint.name.encode()))
                self._named = True
            await self._start_response(200, headers)
        if self._at_boundary:
            await self._body(HEARTBEAT)

    # --- the request --------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            upstream = await self._open()
            if upstream.status != 200 and self._committed:
                await self._error_event(upstream)
            elif self._call.stream and upstream.status == 200:
                await self._relay_stream(upstream)
            elif upstream.status >= 400:
                await self._relay_error(upstream)
            else:
                await self._relay_plain(upstream)
        except GatewayError as error:
            await self._send_error(error)
        except (aiohttp.ClientError, TimeoutError) as exc:
            error, kind = map_upstream_error(exc)
            self._metrics.upstream_errors.labels(kind=kind).inc()
            if kind in ENDPOINT_DOWN_KINDS and self._endpoint is not None:
                self._up.router.connect_failed(self._endpoint)  # /readyz probes it until it answers
            endpoint = self._endpoint.name if self._endpoint else None
            log.warning("upstream error", extra={"error": type(exc).__name__, "endpoint": endpoint,
                                                 "request_id": self._call.headers.get("x-request-id")})
            await self._send_error(error)

    async def _open(self) -> aiohttp.ClientResponse:
        """Dispatch; streams heartbeat while waiting, plain requests stop at the edge deadline."""
        task = asyncio.ensure_future(self._dispatch())
        limit = self._up.settings.edge_read_timeout_seconds
        try:
            if self._call.stream:
                while True:
                    done, _ = await asyncio.wait({task}, timeout=self._hb)
                    if done:
                        break
                    await self._heartbeat()
            elif limit is not None:
                deadline = self._call.start + max(1.0, limit - EDGE_TIMEOUT_MARGIN_SECONDS)
                done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.perf_counter()))
                if not done:
                    self._metrics.upstream_errors.labels(kind="edge_timeout").inc()
                    raise non_streaming_timeout(limit)
            return await task
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _dispatch(self) -> aiohttp.ClientResponse:
        """Hold until an endpoint is ready, take an admission slot, send (with failover)."""
        settings = self._up.settings
        router = self._up.router
        hold_until = time.monotonic() + router.hold_timeout
        while True:
            try:
                await router.wait_ready(max(0.0, hold_until - time.monotonic()))
            except NoEndpoint as exc:
                self._metrics.rejected.labels(reason=exc.reason).inc()
                log.warning("request not held", extra={"reason": exc.reason, "held": router.held,
                                                       "request_id": self._call.headers.get("x-request-id")})
                if exc.reason == "shutting_down":
                    raise shutting_down(settings.retry_after_seconds) from None
                raise no_endpoint_ready(exc.reason, settings.retry_after_seconds, router.hold_timeout) from None
            if self._call.admit and not self._admitted:
                try:
                    await self._up.admission.acquire()
                except Rejected as exc:
                    if exc.reason == "shutting_down":
                        raise shutting_down(settings.retry_after_seconds) from None
                    raise over_capacity(exc.reason, settings.retry_after_seconds) from None
                self._admitted = True
            try:
                self._endpoint, self._response = await send(
                    self._up, self._call.method, self._call.path, self._call.body, self._call.headers,
                    self._call.affinity, self._picked,
                )
            except NoReadyEndpoint:
                continue  # the endpoints went away after the hold: hold again
            self._up.open_responses += 1
            return self._response

    def _picked(self, state: EndpointState | None) -> None:
        self._endpoint = state

    async def _relay_plain(self, upstream: aiohttp.ClientResponse) -> None:
        await self._start_response(upstream.status, response_headers(upstream, False, self._endpoint_name()))
        async for chunk in upstream.content.iter_any():
            await self._body(chunk)
        await self._body(b"", more=False)

    async def _relay_stream(self, upstream: aiohttp.ClientResponse) -> None:
        """Forward whatever bytes have arrived, as they arrive. Heartbeats come from a side task
        that wakes once per interval, so the per-read path has no timer or task of its own."""
        if not self._committed:
            await self._start_response(200, response_headers(upstream, True, self._endpoint_name()))
            self._named = True
        elif not self._named:  # committed while held or queued: the header went out without it
            await self._body(b": " + UPSTREAM_HEADER.encode() + b": " + self._endpoint_name().encode() + b"\n\n")
            self._named = True
        loop = asyncio.get_running_loop()
        self._last_sent = loop.time()
        beat = asyncio.ensure_future(self._beat_when_idle(loop))
        first = True
        lock = self._send_lock
        try:
            async for chunk in upstream.content.iter_any():
                if first:
                    first = False
                    self._metrics.ttft.labels(route=self._call.route).observe(time.perf_counter() - self._call.start)
                self._at_boundary = chunk.endswith((b"\n\n", b"\r\n\r\n"))
                self._last_sent = loop.time()
                async with lock:
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

    async def _read_error(self, upstream: aiohttp.ClientResponse) -> GatewayError:
        """Read at most ``MAX_UPSTREAM_ERROR_BYTES`` of an upstream error body and normalise it."""
        raw = b""
        while len(raw) < MAX_UPSTREAM_ERROR_BYTES:
            chunk = await upstream.content.read(MAX_UPSTREAM_ERROR_BYTES - len(raw))
            if not chunk:
                break
            raw += chunk
        return normalise_upstream_error(upstream.status, raw)

    async def _relay_error(self, upstream: aiohttp.ClientResponse) -> None:
        """Upstream 4xx/5xx before commit: same status, OpenAI-shaped body."""
        error = await self._read_error(upstream)
        if "retry-after" in upstream.headers:
            error.headers["Retry-After"] = upstream.headers["retry-after"]
        error.headers[UPSTREAM_HEADER] = self._endpoint_name()
        await self._send_error(error)

    async def _error_event(self, upstream: aiohttp.ClientResponse) -> None:
        """Upstream failed after we committed 200 for heartbeats: relay its error as one event."""
        error = await self._read_error(upstream)
        error.code = error.code or str(upstream.status)
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

    def _endpoint_name(self) -> str:
        return self._endpoint.name if self._endpoint is not None else ""

    def _cleanup(self) -> None:
        """Close or release the upstream response, end the endpoint's in-flight count, give
        the admission slot back: each exactly once, whatever happened."""
        response, self._response = self._response, None
        if response is not None:
            self._up.open_responses -= 1
            if response.content.is_eof():
                response.release()  # fully read: the connection goes back to the pool
            else:
                response.close()  # unfinished: close the connection, vLLM aborts the request
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            self._up.router.finish(endpoint)
        if self._admitted:
            self._admitted = False
            self._up.admission.release()


def upstream_headers(request_id: str, has_body: bool, accept: str | None) -> dict[str, str]:
    """Headers for the engine: only content-type, accept and X-Request-ID are forwarded.

    The client's ``Authorization`` is not forwarded (the gateway key is not vLLM's).
    """
    headers = {"x-request-id": request_id}
    if has_body:
        headers["content-type"] = "application/json"
    if accept:
        headers["accept"] = accept
    return headers
