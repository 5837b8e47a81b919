"""The local stack's engines for the dashboard: each engine's requests in flight (from its own
``/metrics``), its measured time to ready and phases (from the stack's ``state.json``), and the
engines' metrics added up as the cluster's collector adds up the pods'."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app_config.constants import METRIC_RUNNING, METRIC_WAITING
from qvllm.dashboard.data.prom import ParsedMetrics


@dataclass(frozen=True)
class EngineRow:
    """One local vLLM engine at one moment.

    Attributes:
        name: ``vllm-0``, ...
        url: its base URL.
        up: its ``/metrics`` answered.
        running / waiting: its requests now (None when it did not answer).
        time_to_ready_s: measured at ``local up`` (seconds).
        phases: the time-to-ready phases (durations in seconds), in start order.
        stream_rate_mib_s: the Run:ai streamer's reported rate, when it streamed.
    """

    name: str
    url: str
    up: bool
    running: float | None
    waiting: float | None
    time_to_ready_s: float | None
    phases: Mapping[str, float] = field(default_factory=dict)
    stream_rate_mib_s: float | None = None

    @property
    def in_flight(self) -> float | None:
        """running + waiting (None when the engine did not answer)."""
        return None if self.running is None or self.waiting is None else self.running + self.waiting


def merge(parsed: list[ParsedMetrics]) -> ParsedMetrics:
    """All samples of several scrapes in one: totals and buckets then sum over the engines."""
    out = ParsedMetrics()
    for one in parsed:
        for name, samples in one.samples.items():
            out.samples.setdefault(name, []).extend(samples)
    return out


def engine_rows(engines: Mapping[str, Mapping[str, Any]], scrapes: Mapping[str, ParsedMetrics | None]) -> list[EngineRow]:
    """Rows from the state's engine records and each engine's scrape (None: it did not answer)."""
    rows = []
    for name, record in engines.items():
        parsed = scrapes.get(name)
        stream = record.get("weights_stream") or {}
        rows.append(EngineRow(
            name=name, url=str(record.get("url", "")), up=parsed is not None,
            running=parsed.total(METRIC_RUNNING) if parsed is not None else None,
            waiting=parsed.total(METRIC_WAITING) if parsed is not None else None,
            time_to_ready_s=record.get("time_to_ready_s"), phases=dict(record.get("phases") or {}),
            stream_rate_mib_s=stream.get("rate_mib_s"),
        ))
    return rows


class LocalEngines:
    """Reads the local stack's state and scrapes each engine on every :meth:`poll`.

    Args:
        run_dir: the stack's run folder (default: the well-known one).
        client: HTTP client (timeouts: a few seconds).
    """

    def __init__(self, run_dir: Path | None = None, client: httpx.Client | None = None) -> None:
        self.run_dir = run_dir
        self.client = client or httpx.Client(timeout=3)

    def poll(self) -> tuple[list[EngineRow], ParsedMetrics | None, str | None]:
        """``(rows, the engines' metrics merged or None, error or None)``."""
        from qvllm.local.state import read_state

        state = read_state(self.run_dir)
        if state is None or not state.pids:
            return [], None, "no local stack running (qvllm local up)"
        scrapes = {name: self._scrape(url) for name, url in state.engine_urls().items()}
        rows = engine_rows(state.engines, scrapes)
        answered = [p for p in scrapes.values() if p is not None]
        if not answered:
            return rows, None, "no local engine answers /metrics"
        gateway = self._scrape(state.urls.get("gateway"))
        # The gateway's held-requests gauge feeds the activation trigger, as the collector's
        # scrape of the gateway does in the cluster.
        return rows, merge(answered + ([gateway] if gateway is not None else [])), None

    def _scrape(self, url: str | None) -> ParsedMetrics | None:
        """``url``/metrics parsed, or None when there is no URL or it does not answer."""
        if not url:
            return None
        try:
            return ParsedMetrics.from_text(self.client.get(url + "/metrics").text)
        except (httpx.HTTPError, ValueError):
            return None
