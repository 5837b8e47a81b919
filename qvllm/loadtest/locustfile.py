"""Locust file: streaming chat users, the stage shape, TTFT as a custom metric, and thresholds.

Run by ``qvllm loadtest`` as ``python -m locust -f <this file> --headless --host URL ...``.
Options added to Locust's command line (each also readable from the env var shown):

- ``--load-profile`` (``QVLLM_LOAD_PROFILE``): ``demo`` (30 min, 5 -> 150 users), ``short`` (2 min) or
  ``constant`` (``--constant-users`` for ``--constant-seconds``).
- ``--model`` (``QVLLM_MODEL``): served model name; empty = first id of ``GET /v1/models``.
- ``--max-tokens`` and ``--p95-s`` (default: the profile's, 50 and 20 s for the reference
  profiles), ``--ignore-eos`` (generate all max tokens; also on when the profile says so), ``--api-key``.
- ``--max-failure-ratio`` (0.15), ``--ttft-p95-s`` and ``--itl-p95-s`` (no limit by default),
  ``--summary-json PATH``.
- ``--failure-wait-s`` (1): pause of a user after a failed request (none after a success).

Each request goes through Locust's ``HttpSession`` (``self.client.post(..., stream=True,
catch_response=True)``) and is reported as ``POST /v1/chat/completions`` with its end-to-end
time (until the last chunk); it fails when the status is not 200, the stream carries an error,
or it ends without ``[DONE]``. For each successful request the time to the first content token
(TTFT) and the gaps between consecutive content chunks (inter-token latency, ITL, as vLLM's
serving benchmark measures it) go into a separate statistics table (``environment.token_stats``),
not Locust's request statistics: they are not requests, and Locust's "Aggregated" row would
count them as such. They reach the summary, the thresholds and ``<--csv prefix>_latency.csv``.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

from locust import HttpUser, LoadTestShape, events, task  # first: Locust monkey-patches on import
from locust.stats import RequestStats

from qvllm.loadtest.profiles import CONSTANT_SECONDS, CONSTANT_USERS, PROFILES, Profile, constant
from qvllm.loadtest.thresholds import LATENCY_CSV_SUFFIX, RunSummary, Thresholds, format_summary, judge, latency_rows

CHAT_PATH = "/v1/chat/completions"
REQUEST_NAME = CHAT_PATH
TTFT_TYPE = "TTFT"
TTFT_NAME = "time to first token"
ITL_TYPE = "ITL"
ITL_NAME = "inter-token latency"
PROMPTS = (
    "Explain in two sentences why queue depth is a better autoscaling signal than CPU.",
    "Write a haiku about GPUs waking up.",
    "What is time to first token?",
    "List three things Karpenter does.",
)


@events.init_command_line_parser.add_listener
def _options(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument("--load-profile", choices=[*PROFILES, "constant"], default="short", env_var="QVLLM_LOAD_PROFILE")
    parser.add_argument("--constant-users", type=int, default=CONSTANT_USERS, env_var="QVLLM_CONSTANT_USERS")
    parser.add_argument("--constant-seconds", type=float, default=CONSTANT_SECONDS, env_var="QVLLM_CONSTANT_SECONDS")
    parser.add_argument("--model", default="", env_var="QVLLM_MODEL")
    parser.add_argument("--max-tokens", type=int, default=0, env_var="QVLLM_MAX_TOKENS",
                        help="0: the profile's")
    parser.add_argument("--ignore-eos", action="store_true", default=False, env_var="QVLLM_IGNORE_EOS")
    parser.add_argument("--api-key", default="", env_var="QVLLM_API_KEY")
    parser.add_argument("--p95-s", type=float, default=0.0, env_var="QVLLM_P95_S", help="0: the profile's")
    parser.add_argument(
        "--max-failure-ratio", type=float, default=Thresholds.max_failure_ratio, env_var="QVLLM_MAX_FAILURE_RATIO"
    )
    parser.add_argument("--ttft-p95-s", type=float, default=0.0, env_var="QVLLM_TTFT_P95_S", help="0: no limit")
    parser.add_argument("--itl-p95-s", type=float, default=0.0, env_var="QVLLM_ITL_P95_S", help="0: no limit")
    parser.add_argument("--summary-json", default="", env_var="QVLLM_SUMMARY_JSON")
    parser.add_argument("--failure-wait-s", type=float, default=1.0, env_var="QVLLM_FAILURE_WAIT_S")


def profile_from_options(options) -> Profile:  # type: ignore[no-untyped-def]
    """The profile the options select."""
    if options.load_profile == "constant":
        return constant(options.constant_users, options.constant_seconds)
    return PROFILES[options.load_profile]


def thresholds_from_options(options) -> Thresholds:  # type: ignore[no-untyped-def]
    """The limits: the command line's, else the profile's end-to-end p95."""
    return Thresholds(
        p95_s=options.p95_s or profile_from_options(options).p95_s,
        max_failure_ratio=options.max_failure_ratio,
        ttft_p95_s=options.ttft_p95_s or None,
        itl_p95_s=options.itl_p95_s or None,
    )


@events.init.add_listener
def _token_stats(environment, **_kwargs) -> None:  # type: ignore[no-untyped-def]
    """A statistics table for TTFT and ITL beside Locust's request table (see the module docstring)."""
    environment.token_stats = RequestStats(use_response_times_cache=False)


class StageShape(LoadTestShape):
    """Locust load shape following the selected :class:`~qvllm.loadtest.profiles.Profile`."""

    profile: Profile | None = None

    def tick(self):  # type: ignore[no-untyped-def]
        """``(users, spawn_rate)`` for the current run time, None to stop."""
        profile = self.profile
        if profile is None:
            profile = profile_from_options(self.runner.environment.parsed_options)
        return profile.tick(self.get_run_time())


class ChatUser(HttpUser):
    """A user sending streaming chat completions back to back (no think time after a success).

    After a failed request (or a failed model lookup) the user waits ``--failure-wait-s``
    seconds before the next one: a broken target gets a bounded request rate, not a busy loop.
    """

    model: str = ""  # learned once from /v1/models, shared by all users of the process

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}
        self.model = options.model or ChatUser.model
        self.last_failed = False
        if not self.model:
            self.last_failed = not self._learn_model()

    def wait_time(self) -> float:  # type: ignore[override]
        """Locust's pause between tasks: none after a success, ``--failure-wait-s`` after a failure."""
        return float(self.environment.parsed_options.failure_wait_s) if self.last_failed else 0.0

    def _learn_model(self) -> bool:
        """Set ``self.model`` from ``GET /v1/models`` (reported as ``/v1/models``); False when it fails."""
        with self.client.get("/v1/models", headers=self.headers, name="/v1/models", catch_response=True,
                             timeout=(10, 30)) as resp:
            try:
                data = resp.json().get("data") if resp.status_code == 200 else None
                model = data[0]["id"] if data else ""
            except (ValueError, KeyError, TypeError, AttributeError, IndexError):
                model = ""
            if not model:
                resp.failure(f"cannot learn the model name from /v1/models (HTTP {resp.status_code})")
                return False
            resp.success()
        ChatUser.model = self.model = model
        return True

    @task
    def chat(self) -> None:
        if not self.model and not self._learn_model():
            self.last_failed = True
            return
        options = self.environment.parsed_options
        profile = profile_from_options(options)
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": PROMPTS[int(time.time()) % len(PROMPTS)]}],
            "max_tokens": options.max_tokens or profile.max_tokens,
            "stream": True,
        }
        if options.ignore_eos or profile.ignore_eos:
            body["ignore_eos"] = True
        start = time.perf_counter()
        token_times: list[float] = []
        # Locust's HttpSession stops its clock when the response headers arrive (stream=True);
        # the request is timed here until its last chunk and the end-to-end time is written
        # into the response's request_meta before the with-block reports it.
        with self.client.post(CHAT_PATH, json=body, headers=self.headers, stream=True, catch_response=True,
                              name=REQUEST_NAME, timeout=(10, 900)) as resp:
            error, length = "", 0
            try:
                if resp.error is not None:  # connection refused, timeout before the headers, ...
                    error = f"request broke: {resp.error!r}"
                elif resp.status_code != 200:
                    error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                else:
                    token_times, length, error = _read_stream(resp)
            except Exception as exc:  # noqa: BLE001 - a broken stream or bad JSON is a failed request
                error = f"stream broke: {exc!r}"
            finally:
                if resp.raw is not None:  # None when the request never got a response
                    resp.close()
            resp.request_meta["response_time"] = (time.perf_counter() - start) * 1000.0
            resp.request_meta["response_length"] = length
            if error:
                resp.failure(error[:300])
            else:
                resp.success()
        self.last_failed = bool(error)
        if not error and token_times:
            record_token_times(self.environment.token_stats, start, token_times)


def record_token_times(stats: RequestStats, start: float, token_times: list[float]) -> None:
    """Log one request's TTFT (``start`` -> first content chunk) and each gap between consecutive
    content chunks (ITL) into ``stats``, in milliseconds (``time.perf_counter`` seconds in)."""
    stats.log_request(TTFT_TYPE, TTFT_NAME, (token_times[0] - start) * 1000.0, 0)
    for before, after in zip(token_times, token_times[1:]):
        stats.log_request(ITL_TYPE, ITL_NAME, (after - before) * 1000.0, 0)


def _lines_as_they_arrive(resp, block: int = 65536):  # type: ignore[no-untyped-def]
    """The response body's lines, each yielded as soon as its bytes arrived.

    ``requests``' ``iter_lines()`` reads 512-byte blocks: on a body without chunked transfer
    encoding (an HTTP/1.0-style stream that ends when the connection closes) it waits until 512
    bytes have arrived, holding back the first tokens and hiding the gaps between them.
    ``read1`` returns whatever has arrived (urllib3 2 decodes chunked encoding and gzip).
    """
    pending = b""
    while True:
        data = resp.raw.read1(block, decode_content=True)
        if not data:
            break
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r")
    if pending:
        yield pending


def _read_stream(resp) -> tuple[list[float], int, str]:  # type: ignore[no-untyped-def]
    """Read an OpenAI SSE stream: ``(arrival time of each content chunk, bytes read, error or "")``.

    Blank separators and SSE comments (``: keep-alive`` heartbeats) are skipped; a chunk with
    ``error`` or a stream that ends without ``data: [DONE]`` is an error.
    """
    token_times: list[float] = []
    length = 0
    for raw in _lines_as_they_arrive(resp):
        line = raw.decode()
        length += len(raw) + 1
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return token_times, length, ""
        chunk = json.loads(payload)
        if "error" in chunk:
            return token_times, length, str(chunk["error"])[:200]
        if any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or ()):
            token_times.append(time.perf_counter())
    return token_times, length, "stream ended without [DONE]"


def summarize(environment) -> RunSummary:  # type: ignore[no-untyped-def]
    """Read the run's numbers from Locust's stats (times in ms there, seconds here)."""
    chat = environment.stats.get(REQUEST_NAME, "POST")
    ttft = environment.token_stats.get(TTFT_NAME, TTFT_TYPE)
    itl = environment.token_stats.get(ITL_NAME, ITL_TYPE)

    def pct(entry, q: float) -> float | None:  # type: ignore[no-untyped-def]
        return entry.get_response_time_percentile(q) / 1000.0 if entry.num_requests else None

    # Locust's percentiles include failed requests: with no success they measure only failures.
    succeeded = chat.num_requests - chat.num_failures > 0
    return RunSummary(
        requests=chat.num_requests,
        failures=chat.num_failures,
        p50_s=pct(chat, 0.50) if succeeded else None,
        p95_s=pct(chat, 0.95) if succeeded else None,
        ttft_p50_s=pct(ttft, 0.50),
        ttft_p95_s=pct(ttft, 0.95),
        itl_p50_s=pct(itl, 0.50),
        itl_p95_s=pct(itl, 0.95),
    )


# The verdict text, from `quitting` (which decides the exit code) to `quit` (which prints it): Locust
# prints its own tables between the two (locust/main.py, shutdown()), and the verdict belongs last.
_VERDICT: list[str] = []


@events.quitting.add_listener
def _verdict(environment, **_kwargs) -> None:  # type: ignore[no-untyped-def]
    options = environment.parsed_options
    summary = summarize(environment)
    verdict = judge(summary, thresholds_from_options(options))
    _VERDICT.append("\n=== qvllm load test ===\n" + format_summary(summary, verdict))
    if options.summary_json:
        Path(options.summary_json).write_text(
            json.dumps({**summary.__dict__, "successes": summary.successes, "failure_ratio": summary.failure_ratio,
                        "passed": verdict.passed, "reasons": list(verdict.reasons)}, indent=2)
        )
    if options.csv_prefix:
        with open(f"{options.csv_prefix}{LATENCY_CSV_SUFFIX}", "w", newline="") as fh:
            csv.writer(fh).writerows(latency_rows(summary))
    environment.process_exit_code = verdict.exit_code


@events.quit.add_listener
def _print_verdict(**_kwargs) -> None:  # type: ignore[no-untyped-def]
    sys.stderr.flush()  # Locust's tables went to stderr just before
    print(*_VERDICT, sep="\n", flush=True)
