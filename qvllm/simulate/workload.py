"""What `qvllm simulate` replays: a request trace (open loop) or users who send back to back (closed loop).

- :func:`read_trace` reads a CSV trace: header ``arrival_s,prompt_tokens,output_tokens``, one
  request per row, arrival times in seconds from the start (any order; sorted on read).
- :func:`profile` builds a named, deterministic workload from a seed:

  ``demo``
      The load test's demo ramp (:data:`qvllm.loadtest.profiles.DEMO`: 5 -> 150 users over
      30 min), users as the locustfile runs them: each sends its next request as soon as the last
      one ends (after a failure it waits ``FAILURE_WAIT_S``).
  ``short``
      The load test's 2-minute ramp, the same way.
  ``diurnal``
      One day of open-loop Poisson arrivals: a rate between 0.1 and 2 requests/s following the
      day (lowest at 04:00, highest at 16:00) plus six bursts of 2-5 minutes at 4x the rate, at
      times drawn from the seed. Prompt and answer lengths are drawn too (prompt 50-800 tokens,
      answer 20-400). These figures are an illustration of a day, not a measurement.

Errors: :class:`WorkloadError`, one line naming the file, line and field (or the profile).
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from qvllm.loadtest.profiles import PROFILES, Profile, Stage

TRACE_FIELDS = ("arrival_s", "prompt_tokens", "output_tokens")
FAILURE_WAIT_S = 1.0  # the locustfile's --failure-wait-s default: a user's pause after a failed request
USER_PROMPT_TOKENS = 40  # the locustfile's short prompts with the chat template, about
DEFAULT_MAX_TOKENS = 50  # the load test's --max-tokens default (a profile may carry its own)
GENERATED = ("demo", "short", "diurnal")


class WorkloadError(ValueError):
    """Bad trace or profile; the message names the file, line and field, or the profile."""


@dataclass(frozen=True)
class RequestSpec:
    """One request: arrival time (s from the start), prompt and answer length (tokens)."""

    arrival_s: float
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Trace:
    """Open-loop arrivals (a CSV trace or a generated day)."""

    name: str
    requests: tuple[RequestSpec, ...]

    @property
    def duration_s(self) -> float:
        """Time of the last arrival."""
        return self.requests[-1].arrival_s if self.requests else 0.0


@dataclass(frozen=True)
class Users:
    """Closed-loop users following ``stages`` (the load test's shape), each sending its next request when
    the last one ends; ``failure_wait_s`` after a failed one."""

    name: str
    stages: tuple[Stage, ...]
    prompt_tokens: int
    output_tokens: int
    failure_wait_s: float = FAILURE_WAIT_S

    @property
    def duration_s(self) -> float:
        """End of the last stage."""
        return self.stages[-1].until_s


Workload = Trace | Users


def _positive_int(text: str, where: str, name: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise WorkloadError(f"{where}: {name} {text!r} is not an integer") from None
    if value < 1:
        raise WorkloadError(f"{where}: {name} {value} must be >= 1")
    return value


def parse_trace(lines: Iterable[str], name: str) -> Trace:
    """Parse CSV text (``arrival_s,prompt_tokens,output_tokens``) into a :class:`Trace`.

    Raises:
        WorkloadError: a missing column, an empty trace, or a bad value (``NAME line N: field ...``).
    """
    reader = csv.DictReader(lines)
    missing = [f for f in TRACE_FIELDS if f not in (reader.fieldnames or [])]
    if missing:
        raise WorkloadError(f"{name}: header must name {', '.join(TRACE_FIELDS)}; missing {', '.join(missing)}")
    out = []
    for row in reader:
        where = f"{name} line {reader.line_num}"
        text = row.get("arrival_s")
        try:
            arrival = float(text)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise WorkloadError(f"{where}: arrival_s {text!r} is not a number") from None
        if not math.isfinite(arrival) or arrival < 0:
            raise WorkloadError(f"{where}: arrival_s {arrival} must be a finite number >= 0")
        out.append(RequestSpec(arrival, _positive_int(row.get("prompt_tokens"), where, "prompt_tokens"),  # type: ignore[arg-type]
                               _positive_int(row.get("output_tokens"), where, "output_tokens")))  # type: ignore[arg-type]
    if not out:
        raise WorkloadError(f"{name}: no requests")
    return Trace(name, tuple(sorted(out, key=lambda r: r.arrival_s)))


def read_trace(path: str | Path) -> Trace:
    """Read a CSV trace file (see :func:`parse_trace`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise WorkloadError(f"{path}: {exc.strerror or exc}") from None
    return parse_trace(text.splitlines(), str(path))


def users_from(load_profile: Profile) -> Users:
    """A load-test :class:`~qvllm.loadtest.profiles.Profile` as closed-loop users (its own max_tokens if it has one)."""
    return Users(load_profile.name, load_profile.stages, USER_PROMPT_TOKENS,
                 int(getattr(load_profile, "max_tokens", DEFAULT_MAX_TOKENS)))


def diurnal(seed: int) -> Trace:
    """One day of open-loop arrivals with bursts (see the module docstring), deterministic for ``seed``."""
    rng = random.Random(seed)
    day, low, high = 86_400.0, 0.1, 2.0
    bursts = sorted((rng.uniform(0, day - 300), rng.uniform(120, 300)) for _ in range(6))

    def rate(t: float) -> float:
        base = low + (high - low) * (1 - math.cos(2 * math.pi * (t - 4 * 3600) / day)) / 2
        return base * (4 if any(start <= t < start + length for start, length in bursts) else 1)

    peak = high * 4
    out, t = [], 0.0
    while True:  # thinning (Lewis & Shedler): a Poisson process at the peak rate, kept with rate(t)/peak
        t += rng.expovariate(peak)
        if t >= day:
            break
        if rng.random() * peak <= rate(t):
            out.append(RequestSpec(round(t, 3), rng.randint(50, 800), rng.randint(20, 400)))
    return Trace("diurnal", tuple(out))


def profile(name: str, seed: int) -> Workload:
    """The named generated workload (``demo``, ``short``, ``diurnal``).

    Raises:
        WorkloadError: an unknown name (the message lists the known ones).
    """
    if name == "diurnal":
        return diurnal(seed)
    if name in ("demo", "short") and name in PROFILES:
        return users_from(PROFILES[name])
    raise WorkloadError(f"--profile {name!r} is not one of {', '.join(GENERATED)}")
