"""Admission control: at most ``max_in_flight`` requests proxied, at most ``max_queue`` waiting.

A request that finds all slots busy waits in a bounded queue for up to ``timeout`` seconds;
when the queue is full, or the wait times out, it is rejected (the caller answers 429 with
``Retry-After``). Waiters are served first come, first served (``asyncio.Semaphore`` keeps a
FIFO of waiters). When the gateway shuts down, :meth:`Admission.drain` rejects every waiter at
once (reason ``shutting_down``) rather than keep it until the process exits.
"""

from __future__ import annotations

import asyncio

from services.gateway.metrics import GatewayMetrics


class Rejected(Exception):
    """No slot: ``reason`` is ``queue_full``, ``queue_timeout`` or ``shutting_down``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Admission:
    """Semaphore plus bounded wait queue. Create one per event loop (in the app lifespan).

    Args:
        max_in_flight: slots (> 0).
        max_queue: waiters allowed beyond the slots (>= 0).
        timeout: seconds a waiter may wait for a slot.
        metrics: gauges ``in_flight``/``queued`` and counter ``rejected`` are kept up to date.
    """

    def __init__(self, max_in_flight: int, max_queue: int, timeout: float, metrics: GatewayMetrics) -> None:
        self._sem = asyncio.Semaphore(max_in_flight)
        self._max_queue = max_queue
        self._timeout = timeout
        self._metrics = metrics
        self.in_flight = 0
        self.queued = 0
        self.draining = False
        self._waiters: set[asyncio.Future[bool]] = set()

    async def acquire(self) -> None:
        """Take a slot, waiting in the queue if needed.

        Raises:
            Rejected: queue full, no slot within the timeout, or the gateway is shutting down.
        """
        if self._sem.locked():
            if self.draining:
                self._reject("shutting_down")
            if self.queued >= self._max_queue:
                self._reject("queue_full")
            self.queued += 1
            self._metrics.queued.set(self.queued)
            waiter = asyncio.ensure_future(self._sem.acquire())
            self._waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter, self._timeout)
            except TimeoutError:
                self._reject("queue_timeout")
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self.draining and waiter.cancelled() and not (task and task.cancelling()):
                    self._reject("shutting_down")  # drain() cancelled the wait, not our caller
                raise
            finally:
                self._waiters.discard(waiter)
                self.queued -= 1
                self._metrics.queued.set(self.queued)
        else:
            await self._sem.acquire()
        self.in_flight += 1
        self._metrics.in_flight.set(self.in_flight)

    def release(self) -> None:
        """Give a slot back (call exactly once per successful :meth:`acquire`)."""
        self.in_flight -= 1
        self._metrics.in_flight.set(self.in_flight)
        self._sem.release()

    def drain(self) -> None:
        """Reject every waiter now, and every later :meth:`acquire` that would have to wait, with
        ``shutting_down``; requests holding a slot keep it until they end. Idempotent."""
        self.draining = True
        for waiter in list(self._waiters):
            waiter.cancel()

    def _reject(self, reason: str) -> None:
        self._metrics.rejected.labels(reason=reason).inc()
        raise Rejected(reason)
