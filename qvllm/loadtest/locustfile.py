"""Locust file: streaming chat users, the stage shape, TTFT as a custom metric, and thresholds.

Run by ``qvllm loadtest`` as ``python -m locust -f <this file> --headless --host URL ...``.
Options added to Locust's command line (each also readable from the env var shown):

- ``--load-profile`` (``QVLLM_LOAD_PROFILE``): ``demo`` (30 min, 5 -> 150 users), ``short`` (2 min) or
  ``constant`` (``--constant-users`` for ``--constant-seconds``).
- ``--model`` (``QVLLM_MODEL``): served model name; empty = first id of ``GET /v1/models``.
- ``--max-tokens`` (50), ``--ignore-eos`` (generate all max tokens), ``--api-key``.
- ``--p95-s`` (20), ``--max-failure-ratio`` (0.15), ``--summary-json PATH``.

Each request is reported as ``POST /v1/chat/completions`` (end-to-end time, failure when the
status is not 200, the stream carries an error, or it ends without ``[DONE]``); the time
to the first content token is reported as a second entry, type ``TTFT``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from locust import HttpUser, LoadTestShape, events, task  # first: Locust monkey-patches on import
import requests  # noqa: E402 (after Locust, see above)

from qvllm.loadtest.profiles import PROFILES, Profile, constant
from qvllm.loadtest.thresholds import RunSummary, Thresholds, format_summary, judge

CHAT_PATH = "/v1/chat/completions"
REQUEST_NAME = CHAT_PATH
TTFT_TYPE = "TTFT"
TTFT_NAME = "time to first token"
PROMPTS = (
    "Explain in two sentences why queue depth is a better autoscaling signal than CPU.",
    "Write a haiku about GPUs waking up.",
    "What is time to first token?",
    "List three things Karpenter does.",
)


@events.init_command_line_parser.add_listener
def _options(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument("--load-profile", choices=[*PROFILES, "constant"], default="short", env_var="QVLLM_LOAD_PROFILE")
    parser.add_argument("--constant-users", type=int, default=4, env_var="QVLLM_CONSTANT_USERS")
    parser.add_argument("--constant-seconds", type=float, default=30, env_var="QVLLM_CONSTANT_SECONDS")
    parser.add_argument("--model", default="", env_var="QVLLM_MODEL")
    parser.add_argument("--max-tokens", type=int, default=50, env_var="QVLLM_MAX_TOKENS")
    parser.add_argument("--ignore-eos", action="store_true", default=False, env_var="QVLLM_IGNORE_EOS")
    parser.add_argument("--api-key", default="", env_var="QVLLM_API_KEY")
    parser.add_argument("--p95-s", type=float, default=Thresholds.p95_s, env_var="QVLLM_P95_S")
    parser.add_argument(
        "--max-failure-ratio", type=float, default=Thresholds.max_failure_ratio, env_var="QVLLM_MAX_FAILURE_RATIO"
    )
    parser.add_argument("--summary-json", default="", env_var="QVLLM_SUMMARY_JSON")


def profile_from_options(options) -> Profile:  # type: ignore[no-untyped-def]
    """The profile the options select."""
    if options.load_profile == "constant":
        return constant(options.constant_users, options.constant_seconds)
    return PROFILES[options.load_profile]


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
    """A user sending streaming chat completions back to back (no think time)."""

    model: str = ""

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}
        self.model = options.model or ChatUser.model
        if not self.model:
            with self.client.get("/v1/models", headers=self.headers, name="/v1/models", catch_response=True) as resp:
                data = resp.json().get("data") if resp.status_code == 200 else None
                if not data:
                    resp.failure(f"cannot learn the model name from /v1/models (HTTP {resp.status_code})")
                    return
                ChatUser.model = self.model = data[0]["id"]

    @task
    def chat(self) -> None:
        options = self.environment.parsed_options
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": PROMPTS[int(time.time()) % len(PROMPTS)]}],
            "max_tokens": options.max_tokens,
            "stream": True,
        }
        if options.ignore_eos:
            body["ignore_eos"] = True
        start = time.perf_counter()
        first_token: float | None = None
        error = ""
        length = 0
        # Locust's own timing stops when the response headers arrive; a streamed request is
        # timed here until its last chunk, so the session is used without Locust's hook.
        try:
            resp = requests.Session.request(
                self.client, "POST", self.host.rstrip("/") + CHAT_PATH, json=body, headers=self.headers,
                stream=True, timeout=(10, 900),
            )
            with resp:
                if resp.status_code != 200:
                    error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                else:
                    done = False
                    for raw in resp.iter_lines():
                        line = raw.decode() if isinstance(raw, bytes) else raw
                        length += len(line)
                        if not line.startswith("data:"):
                            continue  # blank separators and ': keep-alive' heartbeats
                        payload = line[5:].strip()
                        if payload == "[DONE]":
                            done = True
                            break
                        chunk = json.loads(payload)
                        if "error" in chunk:
                            error = str(chunk["error"])[:200]
                            break
                        if first_token is None and any(
                            (c.get("delta") or {}).get("content") for c in chunk.get("choices", [])
                        ):
                            first_token = time.perf_counter()
                    if not error and not done:
                        error = "stream ended without [DONE]"
        except Exception as exc:  # noqa: BLE001 - a broken connection or stream is a failed request
            error = f"request broke: {exc!r}"[:200]
        self.environment.events.request.fire(
            request_type="POST",
            name=REQUEST_NAME,
            response_time=(time.perf_counter() - start) * 1000.0,
            response_length=length,
            exception=RuntimeError(error) if error else None,
            context={},
        )
        if error:
            return
        if first_token is not None:
            self.environment.events.request.fire(
                request_type=TTFT_TYPE,
                name=TTFT_NAME,
                response_time=(first_token - start) * 1000.0,
                response_length=0,
                exception=None,
                context={},
            )


def summarize(environment) -> RunSummary:  # type: ignore[no-untyped-def]
    """Read the run's numbers from Locust's stats (times in ms there, seconds here)."""
    chat = environment.stats.get(REQUEST_NAME, "POST")
    ttft = environment.stats.get(TTFT_NAME, TTFT_TYPE)

    def pct(entry, q: float) -> float | None:  # type: ignore[no-untyped-def]
        return entry.get_response_time_percentile(q) / 1000.0 if entry.num_requests else None

    return RunSummary(
        requests=chat.num_requests,
        failures=chat.num_failures,
        p95_s=pct(chat, 0.95),
        ttft_p50_s=pct(ttft, 0.50),
        ttft_p95_s=pct(ttft, 0.95),
    )


@events.quitting.add_listener
def _verdict(environment, **_kwargs) -> None:  # type: ignore[no-untyped-def]
    options = environment.parsed_options
    summary = summarize(environment)
    verdict = judge(summary, Thresholds(options.p95_s, options.max_failure_ratio))
    print("\n=== qvllm load test ===\n" + format_summary(summary, verdict), flush=True)
    if options.summary_json:
        Path(options.summary_json).write_text(
            json.dumps({**summary.__dict__, "failure_ratio": summary.failure_ratio,
                        "passed": verdict.passed, "reasons": list(verdict.reasons)}, indent=2)
        )
    environment.process_exit_code = verdict.exit_code
