"""Load profiles as stages: how many virtual users at each moment of a run (no Locust import).

The demo profile is the reference demo's ramp: 5 -> 10 -> 15 -> 50 ->
150 virtual users over 30 minutes. The short profile is a 2-minute check of the same shape.
The queue profile holds more users than the local stack's engines run at once, with long
answers, so requests wait (``vllm:num_requests_waiting`` > 0) and the scaling math asks for
more replicas: the scaling signal made visible on a laptop.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """Hold ``users`` virtual users until ``until_s`` seconds after the start.

    ``spawn_rate`` is users started (or stopped) per second while moving to ``users``.
    """

    until_s: float
    users: int
    spawn_rate: float


DEFAULT_MAX_TOKENS = 50  # the reference demo's max_tokens
DEFAULT_P95_S = 20.0  # the reference demo's end-to-end p95 limit


@dataclass(frozen=True)
class Profile:
    """A named, ordered list of stages; the run ends after the last stage.

    Attributes:
        name: the ``--profile`` value.
        stages: the stages, ``until_s`` increasing.
        max_tokens: ``max_tokens`` of each request unless the command line gives one.
        ignore_eos: ask vLLM to generate all ``max_tokens`` (steady, long answers).
        p95_s: end-to-end p95 limit (seconds) unless the command line gives one.
    """

    name: str
    stages: tuple[Stage, ...]
    max_tokens: int = DEFAULT_MAX_TOKENS
    ignore_eos: bool = False
    p95_s: float = DEFAULT_P95_S

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError(f"profile {self.name!r} has no stages")
        last = 0.0
        for i, stage in enumerate(self.stages):
            if stage.until_s <= last:
                raise ValueError(f"profile {self.name!r} stage {i}: until_s must increase ({stage.until_s} <= {last})")
            if stage.users < 0 or stage.spawn_rate <= 0:
                raise ValueError(f"profile {self.name!r} stage {i}: users >= 0 and spawn_rate > 0 required")
            last = stage.until_s

    @property
    def duration_s(self) -> float:
        """Total run time in seconds."""
        return self.stages[-1].until_s

    @property
    def peak_users(self) -> int:
        """The most users any stage holds."""
        return max(s.users for s in self.stages)

    def tick(self, run_time_s: float) -> tuple[int, float] | None:
        """``(users, spawn_rate)`` at ``run_time_s``, or None when the run is over (LoadTestShape.tick)."""
        for stage in self.stages:
            if run_time_s < stage.until_s:
                return stage.users, stage.spawn_rate
        return None


MINUTE = 60.0

DEMO = Profile(
    "demo",
    (
        Stage(3 * MINUTE, 5, 1),
        Stage(6 * MINUTE, 10, 1),
        Stage(10 * MINUTE, 15, 1),
        Stage(18 * MINUTE, 50, 2),
        Stage(30 * MINUTE, 150, 5),
    ),
)

SHORT = Profile(
    "short",
    (
        Stage(20, 2, 1),
        Stage(40, 5, 1),
        Stage(70, 10, 2),
        Stage(120, 20, 5),
    ),
)

# 16 users at once, 256-token answers, against the local stack's 4 sequences per engine: 12 requests
# wait with one engine, 8 with two, for most of the 90 s; the default ScaledObject's composite
# (running + 10 x waiting = 124 or 88, target 25) asks for 5 or 4 replicas. Waiting is the point
# here, so the end-to-end limit is loose: such a run fails on errors, not on queueing.
QUEUE = Profile("queue", (Stage(90, 16, 8),), max_tokens=256, ignore_eos=True, p95_s=300.0)

PROFILES: dict[str, Profile] = {p.name: p for p in (DEMO, SHORT, QUEUE)}


CONSTANT_USERS = 4  # the constant profile's users when --users is not given
CONSTANT_SECONDS = 30.0  # and its duration when --seconds is not given


def constant(users: int, run_time_s: float, spawn_rate: float | None = None) -> Profile:
    """A one-stage profile: ``users`` for ``run_time_s`` seconds (all started at once by default)."""
    return Profile("constant", (Stage(run_time_s, users, spawn_rate or float(max(users, 1))),))
