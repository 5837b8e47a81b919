"""Bad input, auth, admission and upstream failures, with OpenAI-style error bodies."""

from __future__ import annotations

import json
import logging
import threading
import time

import httpx
import pytest

from services.gateway.logs import LOGGER_NAME, JsonFormatter

from .servers import FAKE_MODEL, assert_openai_error, wait_until

CHAT = "/v1/chat/completions"


def _chat(**extra: object) -> dict:
    return {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.fixture(scope="module")
def gw(fake_upstream, request):  # type: ignore[no-untyped-def]
    """One gateway (model learned from the upstream's /v1/models, 1 KB body limit)."""
    from contextlib import ExitStack

    from services.gateway.app import create_app
    from services.gateway.settings import GatewaySettings

    from .servers import ThreadedServer

    _, upstream_url = fake_upstream
    with ExitStack() as stack:
        app = create_app(GatewaySettings(upstream_url=upstream_url, max_body_bytes=1000))
        server = stack.enter_context(ThreadedServer(app))
        yield server.url


def test_413_body_over_limit_with_content_length(gw: str) -> None:
    resp = httpx.post(gw + CHAT, json=_chat(padding="x" * 2000))
    error = assert_openai_error(resp, 413)
    assert "1000 bytes" in error["message"] and error["code"] == "request_too_large"


def test_413_chunked_body_over_limit(gw: str) -> None:
    """No Content-Length (chunked upload): the limit is enforced while reading."""

    def body():  # type: ignore[no-untyped-def]
        for _ in range(30):
            yield b"x" * 100

    resp = httpx.post(gw + CHAT, content=body(), headers={"content-type": "application/json"})
    assert "content-length" not in resp.request.headers
    assert_openai_error(resp, 413)


@pytest.mark.parametrize(
    ("content", "param", "needle"),
    [
        (b"{not json", "body", "not valid JSON"),
        (b"", "body", "empty"),
        (b"[1, 2]", "body", "JSON object"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model", "'model'"),
        (b'{"model": 3, "messages": []}', "model", "'model'"),
        (b'{"model": "fake-model"}', "messages", "'messages'"),
        (b'{"model": "fake-model", "messages": []}', "messages", "non-empty"),
        (b'{"model": "fake-model", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream", "boolean"),
    ],
)
def test_400_names_the_bad_part(gw: str, content: bytes, param: str, needle: str) -> None:
    resp = httpx.post(gw + CHAT, content=content, headers={"content-type": "application/json"})
    error = assert_openai_error(resp, 400, param=param)
    assert needle in error["message"]


def test_400_completions_needs_prompt(gw: str) -> None:
    resp = httpx.post(gw + "/v1/completions", json={"model": FAKE_MODEL})
    assert_openai_error(resp, 400, param="prompt")


def test_404_unknown_model_learned_from_upstream(gw: str) -> None:
    resp = httpx.post(gw + CHAT, json=_chat(model="gpt-4"))
    error = assert_openai_error(resp, 404, param="model")
    assert "gpt-4" in error["message"] and FAKE_MODEL in error["message"]
    assert error["code"] == "model_not_found"


def test_404_unknown_route_and_405(gw: str) -> None:
    assert_openai_error(httpx.get(gw + "/v1/nothing"), 404)
    assert_openai_error(httpx.get(gw + CHAT), 405)


def test_request_id_honoured_or_generated(gw: str, fake_upstream) -> None:  # type: ignore[no-untyped-def]
    fake, _ = fake_upstream
    resp = httpx.post(gw + CHAT, json=_chat(), headers={"x-request-id": "abc-123"})
    assert resp.status_code == 200 and resp.headers["x-request-id"] == "abc-123"
    assert fake.requests[-1].headers["x-request-id"] == "abc-123"
    resp = httpx.post(gw + CHAT, json=_chat(), headers={"x-request-id": "bad id\twith spaces"})
    assert resp.headers["x-request-id"] != "bad id\twith spaces" and len(resp.headers["x-request-id"]) == 32


def test_401_api_keys_from_env_list_and_file(fake_upstream, start_gateway, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fake, upstream_url = fake_upstream
    key_file = tmp_path / "keys"
    key_file.write_text("# mounted secret\nfile-key\n")
    gw = start_gateway(upstream_url=upstream_url, api_keys="k1, k2", api_keys_file=key_file)
    lines: list[str] = []
    formatter = JsonFormatter()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    collector = Collect(level=logging.DEBUG)
    logging.getLogger(LOGGER_NAME).addHandler(collector)
    missing = assert_openai_error(httpx.post(gw.url + CHAT, json=_chat()), 401)
    assert "Bearer" in missing["message"] and missing["code"] == "invalid_api_key"
    wrong = httpx.post(gw.url + CHAT, json=_chat(), headers={"authorization": "Bearer nope"})
    assert_openai_error(wrong, 401)
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert_openai_error(httpx.get(gw.url + "/v1/models"), 401)
    for key in ("k1", "k2", "file-key"):
        ok = httpx.post(gw.url + CHAT, json=_chat(), headers={"authorization": f"Bearer {key}"})
        assert ok.status_code == 200, ok.text
    # the client's key is not forwarded upstream
    assert "authorization" not in fake.requests[-1].headers
    # health and metrics stay open for probes and scrapers
    assert httpx.get(gw.url + "/healthz").status_code == 200
    assert httpx.get(gw.url + "/metrics").status_code == 200
    logging.getLogger(LOGGER_NAME).removeHandler(collector)
    # structured JSON logs with request ids, and never the Authorization header or a key
    records = [json.loads(line) for line in lines]
    assert sum(1 for r in records if r["msg"] == "request" and r["status"] == 401) == 3
    assert all(r.get("request_id") for r in records if r["msg"] == "request")
    assert not any(secret in line for line in lines for secret in ("Bearer", "k1", "k2", "file-key", "nope"))


def test_429_queue_full_and_queue_timeout(fake_upstream, start_gateway) -> None:
    """1 slot, 1 queue place: a third request is rejected at once (queue_full) with
    Retry-After; the queued one gives up after the queue timeout (queue_timeout).

    The queue timeout (2 s) is also the window for the third request to find the queue full, so
    it is wide enough for a slow test thread; the holder keeps the slot for longer (4 s)."""
    _, upstream_url = fake_upstream
    gw = start_gateway(upstream_url=upstream_url, served_model_name=FAKE_MODEL, max_in_flight=1, max_queue=1,
                       queue_timeout_seconds=2.0, retry_after_seconds=2)
    admission = gw.app.state.admission
    holder_done = threading.Event()

    def hold() -> None:
        httpx.post(gw.url + CHAT, json=_chat(stream=True, fake={"first_delay": 4.0, "chunks": 1}), timeout=30)
        holder_done.set()

    threading.Thread(target=hold, daemon=True).start()
    deadline = time.monotonic() + 5
    while admission.in_flight != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert admission.in_flight == 1
    results: dict[str, httpx.Response] = {}
    queued = threading.Thread(target=lambda: results.setdefault("queued", httpx.post(gw.url + CHAT, json=_chat(), timeout=30)))
    queued.start()
    while admission.queued != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert admission.queued == 1
    full = httpx.post(gw.url + CHAT, json=_chat(), timeout=30)
    error = assert_openai_error(full, 429)
    assert error["code"] == "queue_full" and error["type"] == "rate_limit_error"
    assert full.headers["retry-after"] == "2"
    queued.join(timeout=5)
    error = assert_openai_error(results["queued"], 429)
    assert error["code"] == "queue_timeout"
    assert holder_done.wait(timeout=10)
    assert wait_until(lambda: admission.in_flight == 0)  # the slot is freed just after the answer is sent
    metrics = httpx.get(gw.url + "/metrics").text
    assert 'gateway_rejected_requests_total{reason="queue_full"} 1.0' in metrics
    assert 'gateway_rejected_requests_total{reason="queue_timeout"} 1.0' in metrics
    assert "gateway_in_flight_requests 0.0" in metrics and "gateway_queued_requests 0.0" in metrics


def test_503_when_upstream_is_down(start_gateway) -> None:
    from tests.support.vllm_server import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    gw = start_gateway(upstream_url=dead, served_model_name="m")
    error = assert_openai_error(httpx.post(gw.url + CHAT, json=_chat(model="m")), 503)
    assert error["code"] == "upstream_unavailable"
    streamed = httpx.post(gw.url + CHAT, json=_chat(model="m", stream=True))
    assert_openai_error(streamed, 503)
    ready = httpx.get(gw.url + "/readyz")
    assert ready.status_code == 503 and "unreachable" in ready.json()["detail"]
    assert httpx.get(gw.url + "/healthz").status_code == 200  # liveness does not depend on vLLM
    assert gw.app.state.admission.in_flight == 0
    assert 'gateway_upstream_errors_total{kind="connect"} 2.0' in httpx.get(gw.url + "/metrics").text


def test_a_failed_connect_is_retried_before_503(start_gateway, caplog, monkeypatch) -> None:
    """vLLM not yet accepting (a pod restarting, a loaded node): the gateway retries the connect
    (nothing was sent, so it is safe) and the caller gets the answer, not a 503.

    The upstream starts only once the first retry is logged (so a retry surely happened), and
    the backoff is stretched to 1 s, 2 s, 4 s so that its start fits in on a slow machine."""
    from services.gateway import upstream as proxy
    from tests.support.vllm_server import free_port

    from .servers import FakeUpstream, ThreadedServer

    monkeypatch.setattr(proxy, "CONNECT_RETRY_BACKOFF_SECONDS", 1.0)
    caplog.set_level("INFO", logger="gateway")
    port = free_port()
    gw = start_gateway(upstream_url=f"http://127.0.0.1:{port}", served_model_name=FAKE_MODEL, connect_retries=3)
    result: dict[str, httpx.Response] = {}
    caller = threading.Thread(target=lambda: result.setdefault("resp", httpx.post(gw.url + CHAT, json=_chat(), timeout=30)))
    caller.start()
    assert wait_until(lambda: any("retrying" in r.getMessage() for r in list(caplog.records))), "no connect retry logged"
    with ThreadedServer(FakeUpstream(), port=port):
        caller.join(timeout=30)
    assert result["resp"].status_code == 200, result["resp"].text
    assert 'gateway_upstream_errors_total{kind="connect"}' not in httpx.get(gw.url + "/metrics").text


def test_connect_retries_zero_fails_at_once(start_gateway, monkeypatch) -> None:
    """With retries off, no backoff is slept: the backoff is stretched to 10 s so that the bound
    tells "none" from "one" on any machine, however slow the request itself is."""
    from services.gateway import upstream as proxy
    from tests.support.vllm_server import free_port

    monkeypatch.setattr(proxy, "CONNECT_RETRY_BACKOFF_SECONDS", 10.0)
    gw = start_gateway(upstream_url=f"http://127.0.0.1:{free_port()}", served_model_name="m", connect_retries=0)
    started = time.monotonic()
    assert_openai_error(httpx.post(gw.url + CHAT, json=_chat(model="m")), 503)
    assert time.monotonic() - started < 5.0


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_upstream_non_json_error_becomes_openai_error_with_status(gw: str, stream: bool) -> None:
    """A non-JSON upstream 502 (a proxy's HTML page) keeps its status; the body is OpenAI-style
    and names the status."""
    page = "<html><body><h1>502 Bad Gateway</h1>" + "x" * 400 + "</body></html>"
    resp = httpx.post(gw + CHAT, json=_chat(stream=stream, fake={"status": 502, "raw_error": page, "content_type": "text/html"}), timeout=30)
    error = assert_openai_error(resp, 502)
    assert resp.headers["content-type"] == "application/json"
    assert error["type"] == "server_error" and error["code"] is None and error["param"] is None
    assert "HTTP 502" in error["message"] and "Bad Gateway" in error["message"]
    assert len(error["message"]) <= 500


def test_upstream_openai_shaped_error_passes_through(gw: str) -> None:
    """An upstream error already in OpenAI shape keeps message, type, param and code."""
    upstream_error = {"message": "This model's maximum context length is 2048 tokens.",
                      "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}
    raw = json.dumps({"error": upstream_error})
    resp = httpx.post(gw + CHAT, json=_chat(fake={"status": 400, "raw_error": raw, "content_type": "application/json"}), timeout=30)
    assert assert_openai_error(resp, 400) == upstream_error


def test_upstream_429_maps_to_rate_limit_error(gw: str) -> None:
    """A vLLM-style 429 (int code, non-OpenAI type) becomes rate_limit_error, code null."""
    resp = httpx.post(gw + CHAT, json=_chat(fake={"status": 429}), timeout=30)
    error = assert_openai_error(resp, 429)
    assert error == {"message": "fake failure", "type": "rate_limit_error", "param": None, "code": None}
