"""The gateway process on SIGTERM (a rolling restart, a scale-in): requests that wait for an engine
(held) or for an admission slot (queued) are answered 503 with Retry-After at once, instead of
waiting out their own timeouts and being cut when the process exits; requests already at an engine
run to their end. Real processes and signals: ``python -m services.gateway`` (uvicorn, as in the
container) in front of a fake upstream on loopback.

An answer still streaming when the 30-s window is about to close ends with one OpenAI-style
``shutting_down`` error event and a complete HTTP response, ``STREAM_END_MARGIN_SECONDS`` before
uvicorn would cancel it, and the process ends without a traceback. Before, uvicorn cancelled the
request at the window's end and the client's stream broke mid-body (httpx: ``RemoteProtocolError:
incomplete chunked read``; the gateway log: "ASGI callable returned without completing response")."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from contextlib import ExitStack

import httpx
import pytest

from services.gateway.contract import UPSTREAM_HEADER
from services.gateway.settings import GRACEFUL_SHUTDOWN_SECONDS, STREAM_END_MARGIN_SECONDS
from tests.support.gateway_process import gateway_process

from .servers import FAKE_MODEL, FakeUpstream, ThreadedServer, assert_openai_error, sse_events, wait_until

CHAT = "/v1/chat/completions"
# Longer than the test may take: an answer that comes from these timeouts is the old behaviour.
LONG_WAIT_SECONDS = 15.0
ANSWERED_WITHIN_SECONDS = 3.0
PACE_SECONDS = 0.5  # between chunks of an answer twice as long as the graceful-shutdown window


def _chat(stream: bool, **fake: object) -> dict:
    return {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream, "fake": fake}


def _gauge(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return -1.0


class _Call(threading.Thread):
    """One request in a thread: its response (body read to the end) and when it ended."""

    def __init__(self, url: str, body: dict) -> None:
        super().__init__(daemon=True)
        self.url, self.body = url, body
        self.status = 0
        self.headers: httpx.Headers = httpx.Headers()
        self.text = ""
        self.error: BaseException | None = None
        self.ended = 0.0

    def run(self) -> None:
        try:
            with httpx.stream("POST", self.url + CHAT, json=self.body, timeout=60) as resp:
                self.status, self.headers = resp.status_code, resp.headers
                self.text = resp.read().decode()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        self.ended = time.monotonic()


def test_sigterm_answers_held_and_queued_requests_503_and_lets_running_streams_finish(tmp_path) -> None:
    empty = tmp_path / "none.json"
    empty.write_text("[]")
    with ExitStack() as stack:
        fake = FakeUpstream()
        upstream = stack.enter_context(ThreadedServer(fake)).url
        common = {"served_model_name": FAKE_MODEL, "heartbeat_interval_seconds": 0.2, "retry_after_seconds": 3,
                  "queue_timeout_seconds": LONG_WAIT_SECONDS, "hold_timeout_seconds": LONG_WAIT_SECONDS}
        # one slot: a long stream takes it, the next request queues for it
        busy = stack.enter_context(gateway_process(upstream_endpoints=upstream, max_in_flight=1, max_queue=4, **common))
        # no endpoint: requests are held (scale from zero)
        idle = stack.enter_context(gateway_process(upstream_endpoints_file=empty, **common))

        running = _Call(busy.url, _chat(True, chunks=40, interval=0.1))  # about 4 s
        running.start()
        assert wait_until(lambda: len(fake.requests) == 1)
        queued = _Call(busy.url, _chat(False))
        held_stream, held_plain = _Call(idle.url, _chat(True)), _Call(idle.url, _chat(False))
        for call in (queued, held_stream, held_plain):
            call.start()
        assert wait_until(lambda: _gauge(busy.url, "gateway_queued_requests") == 1)
        assert wait_until(lambda: _gauge(idle.url, "qvllm_gateway_held_requests") == 2)
        time.sleep(0.5)  # the held stream gets heartbeats (committed 200)

        signalled = time.monotonic()
        os.kill(busy.pid, signal.SIGTERM)
        os.kill(idle.pid, signal.SIGTERM)
        for call in (queued, held_stream, held_plain, running):
            call.join(timeout=LONG_WAIT_SECONDS + 10)

    for call in (queued, held_plain):
        assert call.error is None, call.error
        error = assert_openai_error(httpx.Response(call.status, text=call.text), 503)
        assert error["code"] == "shutting_down", error
        assert call.headers["retry-after"] == "3"
        assert call.ended - signalled < ANSWERED_WITHIN_SECONDS, call.ended - signalled
    # the held stream was committed (200, heartbeats) while it waited: its end is one error event
    assert held_stream.error is None and held_stream.status == 200, held_stream.error
    events = sse_events(held_stream.text.split("\n"))
    assert len(events) == 1 and json.loads(events[0])["error"]["code"] == "shutting_down", held_stream.text
    assert held_stream.ended - signalled < ANSWERED_WITHIN_SECONDS
    # the stream already at the engine ran to its end
    assert running.error is None and running.status == 200, running.error
    assert sse_events(running.text.split("\n"))[-1] == "[DONE]"
    assert running.headers[UPSTREAM_HEADER] == upstream.removeprefix("http://")
    assert len(fake.requests) == 1  # nothing else reached the engine


@pytest.mark.slow  # it waits out the 30-s window
@pytest.mark.timeout(120)
def test_a_stream_longer_than_the_window_ends_with_one_shutting_down_event() -> None:
    chunks = int(2 * GRACEFUL_SHUTDOWN_SECONDS / PACE_SECONDS)
    with ThreadedServer(FakeUpstream()) as upstream, \
            gateway_process(upstream_endpoints=upstream.url, served_model_name=FAKE_MODEL) as gw:
        call = _Call(gw.url, _chat(True, chunks=chunks, interval=PACE_SECONDS))
        call.start()
        assert wait_until(lambda: call.status == 200, timeout=20)
        signalled = time.monotonic()
        os.kill(gw.pid, signal.SIGTERM)
        call.join(timeout=GRACEFUL_SHUTDOWN_SECONDS + 10)
        exit_code = gw.process.wait(timeout=GRACEFUL_SHUTDOWN_SECONDS + 10)
        log = gw.log()

    assert call.error is None, f"the stream broke: {call.error!r}\n{log[-2000:]}"
    events = sse_events(call.text.splitlines())
    assert len(events) > GRACEFUL_SHUTDOWN_SECONDS / PACE_SECONDS / 2, events[-3:]  # it streamed through the window
    last = json.loads(events[-1])
    assert last["error"]["code"] == "shutting_down", last
    assert set(last["error"]) == {"message", "type", "param", "code"}, last
    assert all("error" not in json.loads(e) for e in events[:-1])
    ended_after = call.ended - signalled
    assert GRACEFUL_SHUTDOWN_SECONDS - STREAM_END_MARGIN_SECONDS - 1 <= ended_after < GRACEFUL_SHUTDOWN_SECONDS
    # It ended on its own, in the window: after its graceful shutdown uvicorn 0.54 raises the signal
    # it caught again with the default handler (uvicorn/server.py, Server.capture_signals), so the
    # process ends "killed by SIGTERM" (143 in a pod), as a process that had no handler would.
    assert exit_code == -signal.SIGTERM, log[-2000:]
    assert "Traceback" not in log and "without completing response" not in log, log[-2000:]
