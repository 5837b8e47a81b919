"""Which vLLM endpoint serves a request, and holding requests while none is ready.

Policy:

- **Least outstanding requests, two random choices** (default): pick two distinct ready
  endpoints at random and send to the one with fewer requests in flight from this gateway
  (Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing", IEEE TPDS 2001).
  A new endpoint has none in flight, so it wins every pair it is drawn into: with n endpoints
  it gets about 2/n of the requests from its first moment until it has caught up.
- **Prefix affinity** (optional): requests whose prompts start alike go to the same endpoint,
  so vLLM's prefix cache hits, as long as that endpoint's in-flight count stays within
  ``load_factor`` times the average (consistent hashing with bounded loads: Mirrokni, Thorup
  and Zadimoghaddam, arXiv:1608.01350); otherwise the next endpoint on the ring takes it.
- An endpoint whose connect just failed is avoided for a short, growing pause (1 s, 2 s, ...
  up to 30 s) while others are ready: a dead address in a static list or a pod that stopped
  accepting does not cost every request a failed connect.

Holding: while no endpoint is ready (vLLM scaled to zero, or all pods restarting), requests
wait in a bounded hold (``max_held`` requests, ``hold_timeout`` seconds each); the count is
the ``qvllm_gateway_held_requests`` gauge, which the autoscaler reads to start the first pod.
When the gateway shuts down (SIGTERM), :meth:`Router.drain` answers every held request at once
(503 with ``Retry-After``, so the client retries against a replica that stays) instead of
leaving it to be cut when the process exits.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import logging
import math
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass

from services.gateway.endpoints import Endpoint
from services.gateway.logs import LOGGER_NAME
from services.gateway.metrics import GatewayMetrics

log = logging.getLogger(LOGGER_NAME)

RING_POINTS_PER_ENDPOINT = 64  # virtual nodes: keeps each endpoint's share of keys within ~15 %
CONNECT_COOLDOWN_SECONDS = 1.0  # first pause after a failed connect; doubles per failure
MAX_CONNECT_COOLDOWN_SECONDS = 30.0
# The load bound never goes below this many requests in flight: at a handful of requests the
# bound would otherwise move affine requests away whenever the previous one has not finished,
# and an engine batches far more than that at no cost.
MIN_AFFINITY_BOUND = 4


class NoEndpoint(Exception):
    """No endpoint became ready: ``reason`` is ``hold_full``, ``hold_timeout`` or ``shutting_down``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(eq=False)
class EndpointState:
    """The router's view of one endpoint: its address and this gateway's traffic to it.

    Attributes:
        endpoint: the latest :class:`Endpoint` the source reported.
        in_flight: requests sent and not finished (streams count until their last byte).
        requests: requests sent since the endpoint appeared.
        listed: still reported by the source (an unlisted one is kept until it drains).
        failures: consecutive failed connects; ``avoid_until`` is monotonic seconds.
    """

    endpoint: Endpoint
    in_flight: int = 0
    requests: int = 0
    listed: bool = True
    failures: int = 0
    avoid_until: float = 0.0

    @property
    def name(self) -> str:
        """The endpoint's name (pod name or host:port)."""
        return self.endpoint.name

    @property
    def url(self) -> str:
        """The endpoint's base URL."""
        return self.endpoint.url


def _hash64(data: bytes) -> int:
    # The same on every gateway replica and run (unlike hash()), so replicas agree on the ring.
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def affinity_key(prompt_prefix: str) -> int:
    """The ring position of a prompt prefix (64-bit BLAKE2b)."""
    return _hash64(prompt_prefix.encode("utf-8", "surrogatepass"))


class Router:
    """Endpoint set, picking policy, in-flight accounting and the hold. One per event loop.

    Args:
        metrics: the app's metrics (per-endpoint gauges and counters, held gauge).
        max_held: requests that may wait for a ready endpoint at once (>= 0).
        hold_timeout: seconds one request may wait for a ready endpoint.
        load_factor: enables prefix affinity with this bound (>= 1), or None for none.
        rng: random source (tests pass a seeded one).
    """

    def __init__(
        self,
        metrics: GatewayMetrics,
        *,
        max_held: int,
        hold_timeout: float,
        load_factor: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._metrics = metrics
        self._max_held = max_held
        self.hold_timeout = hold_timeout
        self._load_factor = load_factor
        self._rng = rng or random.Random()
        self._states: dict[str, EndpointState] = {}
        self._ready: list[EndpointState] = []
        self._ring_keys: list[int] = []
        self._ring: list[EndpointState] = []
        self._ready_event = asyncio.Event()
        self.held = 0
        self.synced = False  # the source reported at least once
        self.source = ""
        self.fallback = False
        self.draining = False  # the gateway is shutting down: nothing is held any more

    # --- the endpoint set ---------------------------------------------------------------------

    def update(self, endpoints: Iterable[Endpoint], *, source: str, fallback: bool = False) -> None:
        """Replace the endpoint set. Endpoints no longer listed (or not ready) get no new
        requests; their requests in flight finish, and they are forgotten once drained.

        Args:
            endpoints: the source's full current list.
            source: the source's name (logs, ``/readyz``).
            fallback: the list is the Service URL because discovery failed.
        """
        before = {s.name for s in self._ready}
        self._apply({e.url: e for e in endpoints})
        if self._ready:
            self._ready_event.set()
        else:
            self._ready_event.clear()
        self.synced, self.source = True, source
        if fallback != self.fallback:
            self.fallback = fallback
            self._metrics.discovery_fallback.set(1 if fallback else 0)
        self._metrics.ready_endpoints.set(len(self._ready))
        after = {s.name for s in self._ready}
        if after != before:
            log.info(
                "endpoints changed",
                extra={"source": source, "ready": sorted(after), "added": sorted(after - before),
                       "removed": sorted(before - after), "fallback": fallback},
            )

    def _apply(self, new: dict[str, Endpoint]) -> None:
        """Mark, add and drop endpoint states for the new set; rebuild the ready list and ring."""
        for url, state in list(self._states.items()):
            if url not in new:
                state.listed = False
                if state.in_flight == 0:
                    self._forget(state)
        for url, endpoint in new.items():
            state = self._states.get(url)
            if state is None:
                self._states[url] = EndpointState(endpoint)
            else:
                state.endpoint, state.listed = endpoint, True
        self._ready = [s for s in self._states.values() if s.listed and s.endpoint.ready]
        self._build_ring()

    def count_discovery_error(self) -> None:
        """An endpoint source failed to list or watch (``gateway_endpoint_discovery_errors_total``)."""
        self._metrics.discovery_errors.inc()

    def _forget(self, state: EndpointState) -> None:
        self._states.pop(state.url, None)
        self._metrics.forget_endpoint(state.name)

    def _build_ring(self) -> None:
        if self._load_factor is None:
            return
        points = sorted(
            (_hash64(f"{s.url}#{i}".encode()), s) for s in self._ready for i in range(RING_POINTS_PER_ENDPOINT)
        )  # fmt: skip
        self._ring_keys = [p for p, _ in points]
        self._ring = [s for _, s in points]

    @property
    def ready(self) -> list[EndpointState]:
        """Endpoints that take new requests (do not modify)."""
        return self._ready

    def states(self) -> list[EndpointState]:
        """Every known endpoint, including unlisted ones still draining."""
        return list(self._states.values())

    # --- picking ------------------------------------------------------------------------------

    def pick(self, key: int | None = None, exclude: frozenset[str] = frozenset()) -> EndpointState | None:
        """The endpoint for the next request, or None if none is ready (after ``exclude``,
        base URLs this request already failed to connect to).

        Endpoints in their pause after a failed connect are used only if nothing else is ready.
        """
        candidates = self._candidates(exclude)
        if not candidates:
            return None
        if key is not None and self._load_factor is not None:
            chosen = self._pick_affine(key, candidates)
            if chosen is not None:
                return chosen
        n = len(candidates)
        if n == 1:
            return candidates[0]
        i = self._rng.randrange(n)
        j = self._rng.randrange(n - 1)
        if j >= i:
            j += 1
        a, b = candidates[i], candidates[j]
        return a if a.in_flight <= b.in_flight else b

    def _candidates(self, exclude: frozenset[str]) -> list[EndpointState]:
        """Ready endpoints minus ``exclude``; those pausing after a failed connect only if no other."""
        now = time.monotonic()
        if not exclude and all(s.avoid_until <= now for s in self._ready):
            return self._ready
        usable = [s for s in self._ready if s.url not in exclude]
        return [s for s in usable if s.avoid_until <= now] or usable

    def _pick_affine(self, key: int, candidates: list[EndpointState]) -> EndpointState | None:
        """Walk the ring from ``key`` to the first candidate within the load bound."""
        allowed = set(candidates) if candidates is not self._ready else None
        total = sum(s.in_flight for s in candidates)
        bound = max(MIN_AFFINITY_BOUND, math.ceil(self._load_factor * (total + 1) / len(candidates)))  # type: ignore[operator]
        size = len(self._ring)
        start = bisect.bisect_left(self._ring_keys, key)
        for step in range(size):
            state = self._ring[(start + step) % size]
            if (allowed is None or state in allowed) and state.in_flight + 1 <= bound:
                return state
        return None

    # --- accounting ---------------------------------------------------------------------------

    def start(self, state: EndpointState) -> None:
        """Count a request sent to ``state`` (call :meth:`finish` exactly once later)."""
        state.in_flight += 1
        state.requests += 1
        self._metrics.endpoint_in_flight.labels(endpoint=state.name).set(state.in_flight)
        self._metrics.endpoint_requests.labels(endpoint=state.name).inc()

    def finish(self, state: EndpointState) -> None:
        """A request to ``state`` ended (answered, failed or abandoned)."""
        state.in_flight -= 1
        if not state.listed and state.in_flight == 0:
            self._forget(state)
        else:
            self._metrics.endpoint_in_flight.labels(endpoint=state.name).set(state.in_flight)

    def connect_failed(self, state: EndpointState) -> None:
        """Avoid ``state`` for a pause that doubles with each consecutive failure."""
        state.failures += 1
        pause = min(MAX_CONNECT_COOLDOWN_SECONDS, CONNECT_COOLDOWN_SECONDS * 2 ** (state.failures - 1))
        state.avoid_until = time.monotonic() + pause

    @staticmethod
    def connect_ok(state: EndpointState) -> None:
        """A connect to ``state`` worked: no pause."""
        state.failures, state.avoid_until = 0, 0.0

    def reachable(self) -> bool:
        """Whether some ready endpoint is not known to be down (no connect or stream failure
        since its last good connect). True with no endpoint at all: requests are then held."""
        return not self._ready or any(s.failures == 0 for s in self._ready)

    # --- shutting down ------------------------------------------------------------------------

    def drain(self) -> None:
        """Stop holding: every held request (and any later one that would be held) gets
        ``NoEndpoint("shutting_down")`` at once; requests that find an endpoint ready still go
        through. Idempotent."""
        self.draining = True
        self._ready_event.set()  # wakes every waiter; they see ``draining``

    # --- holding ------------------------------------------------------------------------------

    async def wait_ready(self, timeout: float) -> None:
        """Return once an endpoint is ready, holding the caller up to ``timeout`` seconds.

        Raises:
            NoEndpoint: ``hold_full`` (``max_held`` requests already wait) at once,
                ``hold_timeout`` after ``timeout`` seconds, ``shutting_down`` once :meth:`drain`
                was called.
        """
        if self._ready:
            return
        if self.draining:
            raise NoEndpoint("shutting_down")
        if self.held >= self._max_held:
            raise NoEndpoint("hold_full")
        self.held += 1
        self._metrics.held.set(self.held)
        try:
            await asyncio.wait_for(self._ready_event.wait(), timeout)
        except TimeoutError:
            raise NoEndpoint("hold_timeout") from None
        finally:
            self.held -= 1
            self._metrics.held.set(self.held)
        if self.draining:
            raise NoEndpoint("shutting_down")
