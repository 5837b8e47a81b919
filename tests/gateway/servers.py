"""Real loopback servers for the gateway tests: the gateway under uvicorn, and a fake upstream.

The fake upstream is a raw ASGI app served by uvicorn on 127.0.0.1 (real HTTP, real sockets),
used where a case needs controlled timing (B14: 100 chunks 20 ms apart; B15: a delayed first
token; B13: a long stream the client abandons). Its behaviour is driven by a ``fake`` object in
the request body, which the gateway passes through untouched::

    {"fake": {"chunks": 100, "interval": 0.02, "header_delay": 0, "first_delay": 0}}

``{"fake": {"status": 500}}`` answers a vLLM-like error (``"code": 500``, a non-OpenAI ``type``);
adding ``"raw_error": "<text>"`` (and ``"content_type"``) sends that literal body instead.

Every request is recorded in ``FakeUpstream.requests`` (``chunks_sent``, ``finished``,
``disconnected`` flags) so tests can see what the upstream saw.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from tests.support.vllm_server import free_port

FAKE_MODEL = "fake-model"


class ThreadedServer:
    """Run an ASGI app with uvicorn in a background thread on a free loopback port."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ThreadedServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@dataclass
class UpstreamRecord:
    """What the fake upstream saw for one request."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    chunks_sent: int = 0
    finished: bool = False
    disconnected: bool = False
    ended_at: float | None = None


@dataclass
class FakeUpstream:
    """A raw-ASGI OpenAI-like upstream; see the module docstring."""

    requests: list[UpstreamRecord] = field(default_factory=list)
    active: int = 0  # streams being sent right now

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        if path == "/health":
            await self._json(send, 200, {})
            return
        if path == "/v1/models":
            await self._json(send, 200, {"object": "list", "data": [{"id": FAKE_MODEL, "object": "model"}]})
            return
        raw = b""
        while True:
            msg = await receive()
            raw += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        body = json.loads(raw or b"{}")
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        record = UpstreamRecord(path=path, body=body, headers=headers)
        self.requests.append(record)
        knobs = body.get("fake", {})
        await asyncio.sleep(knobs.get("header_delay", 0))
        if knobs.get("status"):
            if "raw_error" in knobs:  # a literal body, e.g. a proxy's HTML page or an OpenAI error
                raw_error = knobs["raw_error"].encode()
                await send({"type": "http.response.start", "status": knobs["status"],
                            "headers": [(b"content-type", knobs.get("content_type", "text/plain").encode())]})
                await send({"type": "http.response.body", "body": raw_error})
            else:
                await self._json(send, knobs["status"], {"error": {"message": "fake failure", "type": "x", "param": None, "code": knobs["status"]}})
            record.finished = True
            return
        if not body.get("stream"):
            await self._json(send, 200, {"id": "cmpl-1", "object": "chat.completion", "model": body.get("model"),
                                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}]})
            record.finished = True
            return
        await self._stream(scope, receive, send, record, knobs)

    async def _stream(self, scope: dict, receive: Any, send: Any, record: UpstreamRecord, knobs: dict) -> None:
        disconnected = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        watcher = asyncio.ensure_future(watch())
        self.active += 1
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream; charset=utf-8"), (b"x-upstream", b"fake")]})
            if await _wait(disconnected, knobs.get("first_delay", 0)):
                return
            for i in range(knobs.get("chunks", 3)):
                if i and await _wait(disconnected, knobs.get("interval", 0.0)):
                    return
                chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": record.body.get("model"),
                         "created": 0, "choices": [{"index": 0, "delta": {"content": f"t{i} "}, "finish_reason": None}]}
                await send({"type": "http.response.body", "body": b"data: " + json.dumps(chunk).encode() + b"\n\n", "more_body": True})
                record.chunks_sent += 1
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
            record.finished = True
        except OSError:
            disconnected.set()
        finally:
            record.disconnected = disconnected.is_set()
            record.ended_at = time.monotonic()
            self.active -= 1
            watcher.cancel()

    @staticmethod
    async def _json(send: Any, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``event`` fires first; True if it fired."""
    if seconds <= 0:
        return event.is_set()
    try:
        await asyncio.wait_for(event.wait(), seconds)
        return True
    except TimeoutError:
        return False


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    """Poll ``predicate()`` every 20 ms until it is true or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def sse_events(lines: list[str]) -> list[str]:
    """``data:`` payloads from SSE lines (comments and blank lines dropped)."""
    return [line[len("data: "):] for line in lines if line.startswith("data: ")]


def assert_openai_error(response: httpx.Response, status: int, param: str | None = None) -> dict[str, Any]:
    """Assert status and the exact OpenAI error shape; return the ``error`` object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    if param is not None:
        assert error["param"] == param, error
    return error
