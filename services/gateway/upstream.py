"""The gateway's HTTP client towards vLLM: one aiohttp session, a connection pool per endpoint.

aiohttp rather than httpx: its response parser is C (llhttp), and ``content.iter_any()``
hands over whatever bytes arrived since the last read, so several buffered SSE events leave
in one write without any token being held back. Profiled under SSE load, httpx spent most of
the gateway's CPU in its pure-Python read path with a timeout scope per read; aiohttp's read
timeout is one timer per connection, moved when data arrives.

aiohttp's connector keeps its idle connections per (host, port): every endpoint has its own
keep-alive pool, so a new endpoint is used from its first request (one shared pool behind a
Service address keeps reusing connections to the pods that existed when they opened).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from services.gateway.admission import Admission
from services.gateway.errors import GatewayError, upstream_disconnected, upstream_timeout, upstream_unavailable
from services.gateway.logs import LOGGER_NAME
from services.gateway.metrics import GatewayMetrics
from services.gateway.routing import EndpointState, Router
from services.gateway.settings import GatewaySettings

log = logging.getLogger(LOGGER_NAME)

# Below uvicorn's 5 s keep-alive timeout (vLLM's server), so the gateway never reuses a
# connection the engine is closing.
KEEPALIVE_SECONDS = 4.0
CONNECT_RETRY_BACKOFF_SECONDS = 0.25
# Nothing was sent when these are raised, so trying again (here or elsewhere) cannot duplicate work.
CONNECT_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# The engine closed the connection mid-answer (its process died or restarted).
DISCONNECT_ERRORS = (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)
# Error kinds (``map_upstream_error``) after which the endpoint counts as down until a connect works.
ENDPOINT_DOWN_KINDS = frozenset({"connect", "disconnected"})


def new_session(settings: GatewaySettings) -> aiohttp.ClientSession:
    """The shared session: pooled keep-alive connections per endpoint, explicit timeouts.

    ``connect`` bounds waiting for a pool slot plus the TCP connect; ``sock_read`` bounds the
    silence between two reads (the answer's start, then between chunks); no total limit, since
    a long generation is legitimate.
    """
    connector = aiohttp.TCPConnector(
        limit=settings.max_connections,
        limit_per_host=0,
        keepalive_timeout=KEEPALIVE_SECONDS,
        use_dns_cache=True,
        ttl_dns_cache=10,
    )
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=settings.connect_timeout_seconds,
        sock_connect=settings.connect_timeout_seconds,
        sock_read=settings.read_timeout_seconds,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,  # relay bytes as the engine sent them
        skip_auto_headers=("Accept-Encoding", "User-Agent"),
        raise_for_status=False,
    )


@dataclass
class Upstream:
    """Everything a proxied request needs, created once per app in the lifespan.

    Attributes:
        session: the shared aiohttp session.
        router: endpoint set, policy and hold.
        admission: in-flight slots and their queue.
        settings: the gateway settings.
        metrics: the app's metrics.
        open_responses: upstream responses opened and not yet closed or released (tests and
            debugging: 0 when the gateway is idle).
        open_answers: one future per answer being relayed (from :meth:`answer_opened` until
            :meth:`answer_over`); done when the answer must end now (:meth:`end_open_answers`).
        closing: :meth:`end_open_answers` was called; an answer opened later ends at once.
    """

    session: aiohttp.ClientSession
    router: Router
    admission: Admission
    settings: GatewaySettings
    metrics: GatewayMetrics
    open_responses: int = field(default=0)
    open_answers: set[asyncio.Future[None]] = field(default_factory=set)
    closing: bool = False

    def answer_opened(self) -> asyncio.Future[None]:
        """A future that is done when this answer must end; the caller hands it to
        :meth:`answer_over` when the answer is over. A future, not a task waiting on an event:
        nothing is scheduled per request until the end comes."""
        ending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.closing:
            ending.set_result(None)
        self.open_answers.add(ending)
        return ending

    def answer_over(self, ending: asyncio.Future[None]) -> None:
        """Forget an answer's future from :meth:`answer_opened` (its answer is over)."""
        self.open_answers.discard(ending)

    def end_open_answers(self) -> None:
        """Every answer still open ends now, each with a "shutting_down" error (the end of the
        graceful-shutdown window is near)."""
        self.closing = True
        for ending in self.open_answers:
            if not ending.done():
                ending.set_result(None)


class NoReadyEndpoint(Exception):
    """Every endpoint went away between the hold and the pick (the caller holds again)."""


async def send(
    upstream: Upstream,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    key: int | None,
    on_pick: Callable[[EndpointState | None], None],
) -> tuple[EndpointState, aiohttp.ClientResponse]:
    """Send to the endpoint the router picks; a failed connect moves on to another endpoint.

    A failed connect tries each other ready endpoint once, at once; when all have failed, it
    waits (0.25 s, doubling) and starts again, up to ``connect_retries`` times. The picked
    endpoint is counted in flight from before the connect (``router.start``); ``on_pick`` is
    told so the caller can undo that when the request ends, and on every failure here it is
    undone before moving on.

    Raises:
        NoReadyEndpoint: no endpoint is ready any more.
        aiohttp.ClientError: the last connect error once retries are used up.
    """
    router = upstream.router
    tried: set[str] = set()
    last_error: BaseException | None = None
    retries_left = upstream.settings.connect_retries
    backoff = CONNECT_RETRY_BACKOFF_SECONDS
    while True:
        state = router.pick(key, frozenset(tried))
        if state is None:
            if not tried:
                raise NoReadyEndpoint
            if retries_left == 0:
                assert last_error is not None  # tried is non-empty: a connect failed
                raise last_error
            retries_left -= 1
            await asyncio.sleep(backoff)
            backoff *= 2
            tried.clear()
            continue
        router.start(state)
        on_pick(state)
        try:
            response = await upstream.session.request(method, state.url + path, data=body, headers=headers)
        except CONNECT_ERRORS as exc:
            on_pick(None)
            router.finish(state)
            router.connect_failed(state)
            tried.add(state.url)
            last_error = exc
            log.info("upstream connect failed, retrying",
                     extra={"endpoint": state.name, "error": type(exc).__name__, "request_id": headers.get("x-request-id")})
            continue
        router.connect_ok(state)
        return state, response


def map_upstream_error(exc: BaseException) -> tuple[GatewayError, str]:
    """An aiohttp failure as (GatewayError, metric kind): connect -> 503, timeout -> 504,
    connection closed mid-answer -> 502 ``upstream_disconnected``, else 502."""
    if isinstance(exc, CONNECT_ERRORS):
        return upstream_unavailable(type(exc).__name__), "connect"
    if isinstance(exc, DISCONNECT_ERRORS):
        return upstream_disconnected(type(exc).__name__), "disconnected"
    if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError)):
        return upstream_timeout(type(exc).__name__), "timeout"
    return (
        GatewayError(502, f"Bad answer from the model server: {type(exc).__name__}", type_="server_error", code="bad_gateway"),
        "protocol",
    )
