"""Retries of hub requests and stream resumes: exponential backoff with jitter, bounded in time.

The n-th wait (n = 0, 1, ...) is drawn uniformly from ``[b/2, b]`` with
``b = min(cap_s, base_s * 2**n)`` ("equal jitter", AWS Architecture Blog, "Exponential Backoff
And Jitter", https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/): clients
that failed together spread out, and each wait is at least as long as the previous one's lower
bound, so waits grow. A server's ``Retry-After`` (seconds) is a minimum: the wait is the larger
of the two. Retrying stops when ``max_attempts`` requests were made or the next wait would end
past ``budget_s`` seconds after the first failure; the final error says how many attempts were
made and over how long.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Retry policy (seconds).

    Attributes:
        base_s: first wait's upper bound.
        cap_s: largest wait.
        max_attempts: requests made in all (the first one included).
        budget_s: no wait ends later than this after the first failure.
    """

    base_s: float = 0.5
    cap_s: float = 30.0
    max_attempts: int = 10
    budget_s: float = 300.0

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s < self.base_s or self.max_attempts < 1 or self.budget_s < 0:
            raise ValueError(f"invalid backoff {self}")

    def start(self, clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> "Attempts":
        """A fresh attempt counter for one request (or one stream)."""
        return Attempts(self, clock, sleep, started=clock())


@dataclass
class Attempts:
    """Counts failures of one request; :meth:`wait` sleeps before the next try or says stop."""

    policy: Backoff
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    started: float = 0.0  # when the first attempt of this streak began
    failures: int = 0
    first_failure: float | None = None
    waits: list[float] = field(default_factory=list)

    def wait(self, retry_after: float | None = None) -> bool:
        """Record a failure; sleep and return True if another attempt is allowed, else False."""
        now = self.clock()
        if self.first_failure is None:
            self.first_failure = now
        self.failures += 1
        if self.failures >= self.policy.max_attempts:
            return False
        bound = min(self.policy.cap_s, self.policy.base_s * 2 ** (self.failures - 1))
        delay = random.uniform(bound / 2, bound)  # noqa: S311 - jitter, not cryptography
        if retry_after is not None:
            delay = max(delay, retry_after)
        if now + delay - self.first_failure > self.policy.budget_s:
            return False
        self.waits.append(delay)
        self.sleep(delay)
        return True

    def progressed(self) -> None:
        """The request made progress (bytes arrived): later failures start a new count."""
        self.failures = 0
        self.first_failure = None
        self.started = self.clock()

    def summary(self) -> str:
        """``N attempts over T s`` for the final error."""
        return f"{self.failures} attempts over {self.clock() - self.started:.1f} s"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form); ``None`` if absent or a date."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # HTTP-date form: the backoff's own wait applies
    return max(0.0, seconds)
