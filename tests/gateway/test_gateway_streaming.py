"""Streaming behaviour against a fake upstream with controlled timing (cases B13, B14, B15)."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from .servers import FAKE_MODEL, sse_events, wait_until


def _chat(stream: bool = True, **fake: object) -> dict:
    return {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream, "fake": fake}


def test_b14_stream_passes_100_chunks_in_order_as_they_come(fake_upstream, start_gateway) -> None:
    """B14: 100 chunks 20 ms apart arrive in order plus [DONE], first long before last,
    the upstream response is released, and no request stays counted in flight."""
    fake, upstream_url = fake_upstream
    gw = start_gateway(upstream_url=upstream_url, served_model_name=FAKE_MODEL)
    arrivals: list[tuple[float, str]] = []
    with httpx.Client(timeout=30) as client:
        start = time.monotonic()
        with client.stream("POST", gw.url + "/v1/chat/completions", json=_chat(chunks=100, interval=0.02)) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert resp.headers["x-upstream"] == "fake"  # upstream headers passed through
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    arrivals.append((time.monotonic() - start, line[6:]))
    payloads = [p for _, p in arrivals]
    assert payloads[-1] == "[DONE]"
    contents = [httpx.Response(200, content=p).json()["choices"][0]["delta"]["content"] for p in payloads[:-1]]
    assert contents == [f"t{i} " for i in range(100)]
    first, last = arrivals[0][0], arrivals[-1][0]
    assert last - first > 1.5, "chunks were buffered instead of streamed"
    assert first < 0.5 * last
    record = fake.requests[-1]
    # The fake marks the record after its last send returns: the client may read [DONE] first.
    assert wait_until(lambda: record.ended_at is not None, timeout=2.0)
    assert record.finished and not record.disconnected and record.chunks_sent == 100
    assert wait_until(lambda: gw.app.state.admission.in_flight == 0, timeout=2.0)
    assert gw.app.state.upstream.open_responses == 0
    assert [s.in_flight for s in gw.app.state.router.states()] == [0]


def test_b13_client_disconnect_closes_upstream(fake_upstream, start_gateway) -> None:
    """B13: the client reads three events and closes; within 2 s the upstream sees the
    disconnect, the upstream response is closed and the in-flight gauges are back to 0."""
    fake, upstream_url = fake_upstream
    gw = start_gateway(upstream_url=upstream_url, served_model_name=FAKE_MODEL)
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", gw.url + "/v1/chat/completions", json=_chat(chunks=1000, interval=0.02)) as resp:
            # Hold the line iterator: a dropped one is finalised at once, and its GeneratorExit
            # makes httpcore close the connection before the in-flight check below.
            lines = resp.iter_lines()
            seen = 0
            for line in lines:
                if line.startswith("data: "):
                    seen += 1
                    if seen == 3:
                        break
            assert gw.app.state.admission.in_flight == 1
            assert not fake.requests[-1].disconnected
        closed_at = time.monotonic()
    record = fake.requests[-1]
    assert wait_until(lambda: record.ended_at is not None, timeout=2.0), "upstream still streaming"
    assert record.disconnected and not record.finished
    assert record.ended_at - closed_at < 2.0
    assert record.chunks_sent < 200
    # Counting the disconnect is the gateway's last step (after releasing the slot): wait for it.
    assert wait_until(lambda: gw.app.state.metrics.disconnects._value.get() == 1, timeout=2.0)
    assert gw.app.state.admission.in_flight == 0
    assert gw.app.state.metrics.in_flight._value.get() == 0
    assert gw.app.state.upstream.open_responses == 0
    assert [s.in_flight for s in gw.app.state.router.states()] == [0]


@pytest.mark.parametrize("where", ["before_headers", "after_headers"])
def test_b15_heartbeats_while_waiting_for_first_token(fake_upstream, start_gateway, where: str) -> None:
    """B15: with the first token 1.2 s late and a 0.2 s heartbeat, SSE comments arrive before
    the first data event, never inside an event; whether the upstream is slow to answer at all
    (before headers) or slow to send its first token (after headers)."""
    fake, upstream_url = fake_upstream
    gw = start_gateway(upstream_url=upstream_url, heartbeat_interval_seconds=0.2)
    knobs = {"header_delay": 1.2} if where == "before_headers" else {"first_delay": 1.2}
    raw = b""
    first_byte = None
    with httpx.Client(timeout=30) as client:
        start = time.monotonic()
        with client.stream("POST", gw.url + "/v1/chat/completions", json=_chat(chunks=3, **knobs)) as resp:
            assert resp.status_code == 200
            for chunk in resp.iter_raw():
                if first_byte is None:
                    first_byte = time.monotonic() - start
                raw += chunk
    assert first_byte is not None and first_byte < 0.8, "nothing sent while waiting"
    text = raw.decode()
    blocks = [b for b in text.split("\n\n") if b]
    first_data = next(i for i, b in enumerate(blocks) if b.startswith("data: "))
    heartbeats = [b for b in blocks[:first_data]]
    assert len(heartbeats) >= 3 and all(b.startswith(":") for b in heartbeats), blocks[:first_data]
    for block in blocks:  # every block is either one comment or one data event, never mixed
        lines = block.split("\n")
        assert all(line.startswith(":") for line in lines) or all(line.startswith("data: ") for line in lines), block
    assert sse_events(text.split("\n"))[-1] == "[DONE]"


class _TeeTransport(httpx.HTTPTransport):
    """A real HTTP transport that also keeps a copy of every response byte."""

    def __init__(self) -> None:
        super().__init__()
        self.raw = bytearray()

    def handle_request(self, request: httpx.Request) -> httpx.Response:  # noqa: D102
        response = super().handle_request(request)
        inner, tee = response.stream, self

        class Stream(httpx.SyncByteStream):
            def __iter__(self):  # type: ignore[no-untyped-def]
                for chunk in inner:  # type: ignore[union-attr]
                    tee.raw.extend(chunk)
                    yield chunk

            def close(self) -> None:
                inner.close()  # type: ignore[union-attr]

        response.stream = Stream()
        return response


def test_b15_openai_client_parses_stream_with_heartbeats(fake_upstream, start_gateway) -> None:
    """B15: the official OpenAI Python client reads a stream that carries heartbeats (checked
    in the bytes it received) and yields exactly the upstream's tokens."""
    fake, upstream_url = fake_upstream
    gw = start_gateway(upstream_url=upstream_url, heartbeat_interval_seconds=0.1)
    tee = _TeeTransport()
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, http_client=httpx.Client(transport=tee))
    stream = client.chat.completions.create(
        model=FAKE_MODEL,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_body={"fake": {"first_delay": 0.6, "chunks": 5, "interval": 0.25}},
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "t0 t1 t2 t3 t4 "
    assert bytes(tee.raw).count(b": keep-alive\n\n") >= 4  # before the first token and between tokens
    client.close()


def test_upstream_error_before_commit_passes_through(fake_upstream, start_gateway) -> None:
    """An upstream 5xx that answers before the first heartbeat keeps its status and message; the
    body is OpenAI-shaped (the fake's non-OpenAI type and int code are replaced)."""
    fake, upstream_url = fake_upstream
    gw = start_gateway(upstream_url=upstream_url, heartbeat_interval_seconds=5)
    with httpx.Client(timeout=30) as client:
        resp = client.post(gw.url + "/v1/chat/completions", json=_chat(status=500))
    assert resp.status_code == 500
    assert resp.json()["error"] == {"message": "fake failure", "type": "server_error", "param": None, "code": None}


def test_upstream_error_after_heartbeat_commit_becomes_error_event(fake_upstream, start_gateway) -> None:
    """An upstream that fails after the gateway committed 200 to send heartbeats yields
    heartbeats, then one OpenAI-style error event (the status can no longer change)."""
    fake, upstream_url = fake_upstream
    gw = start_gateway(upstream_url=upstream_url, heartbeat_interval_seconds=0.1)
    with httpx.Client(timeout=30) as client:
        resp = client.post(gw.url + "/v1/chat/completions", json=_chat(status=500, header_delay=0.5))
    assert resp.status_code == 200
    lines = resp.text.split("\n")
    assert lines[0].startswith(":")
    events = sse_events(lines)
    assert len(events) == 1
    error = httpx.Response(200, content=events[0]).json()["error"]
    assert error["message"] == "fake failure" and error["code"] == "500"
