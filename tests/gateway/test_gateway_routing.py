"""Routing across several fake vLLM endpoints on loopback: balance, endpoints joining and
leaving, connect failover, the scale-from-zero hold, prefix affinity, the upstream header."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.gateway.contract import HELD_REQUESTS_METRIC, UPSTREAM_HEADER
from tests.support.vllm_server import free_port

from .servers import FAKE_MODEL, FakeUpstream, ThreadedServer, assert_openai_error, sse_events, wait_until

CHAT = "/v1/chat/completions"


def _chat(stream: bool = True, content: str = "hi", **fake: object) -> dict:
    return {"model": FAKE_MODEL, "messages": [{"role": "user", "content": content}], "stream": stream, "fake": fake}


@pytest.fixture
def fakes():  # type: ignore[no-untyped-def]
    """Factory: ``fakes(n)`` -> [(FakeUpstream, url), ...], each on its own loopback port."""
    with ExitStack() as stack:

        def start(n: int) -> list[tuple[FakeUpstream, str]]:
            out = []
            for _ in range(n):
                fake = FakeUpstream()
                out.append((fake, stack.enter_context(ThreadedServer(fake)).url))
            return out

        yield start


def write_endpoints(path: Path, urls: list[str]) -> None:
    """Write the endpoints file atomically, as the contract asks."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(urls))
    os.replace(tmp, path)


def metric_samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The gateway's /metrics as {(sample, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(httpx.get(url + "/metrics").text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def _stream(client: httpx.AsyncClient, url: str, body: dict) -> tuple[int, str, str]:
    """(status, x-qvllm-upstream, body text) of one request read to the end."""
    async with client.stream("POST", url + CHAT, json=body) as resp:
        text = (await resp.aread()).decode()
        return resp.status_code, resp.headers.get(UPSTREAM_HEADER, ""), text


def test_balance_across_three_endpoints_and_per_endpoint_metrics(fakes, start_gateway) -> None:
    """30 concurrent 2-second streams over 3 endpoints: each endpoint carries about a third at
    every moment (mean concurrent streams within 1.5x of each other), the header names the
    endpoint that answered, and /metrics counts requests per endpoint."""
    upstreams = fakes(3)
    gw = start_gateway(upstream_endpoints=[u for _, u in upstreams], served_model_name=FAKE_MODEL)
    samples: list[list[int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            counts = [f.active for f, _ in upstreams]
            if sum(counts) >= 24:  # steady state: (nearly) all streams open
                samples.append(counts)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    async def load() -> list[tuple[int, str, str]]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as client:
            return await asyncio.gather(*(_stream(client, gw.url, _chat(chunks=40, interval=0.05)) for _ in range(30)))

    results = asyncio.run(load())
    stop.set()
    sampler.join()
    assert all(status == 200 for status, _, _ in results)
    names = Counter(name for _, name, _ in results)
    expected = {u.removeprefix("http://") for _, u in upstreams}
    assert set(names) == expected, names
    served = {u.removeprefix("http://"): len(f.requests) for f, u in upstreams}
    assert names == served  # the header names the endpoint that really answered
    assert len(samples) >= 10, "too few steady-state samples"
    means = [statistics.mean(s[i] for s in samples) for i in range(3)]
    assert max(means) / min(means) <= 1.5, means
    m = metric_samples(gw.url)
    for name, count in served.items():
        assert m[("gateway_endpoint_requests_total", (("endpoint", name),))] == count
        assert m[("gateway_endpoint_in_flight_requests", (("endpoint", name),))] == 0
    assert m[("gateway_ready_endpoints", ())] == 3


def test_new_endpoint_gets_requests_at_once_and_removed_one_finishes_its_streams(fakes, start_gateway, tmp_path) -> None:
    """Endpoints from the file source. A stream runs on each of two endpoints; the file then
    lists only the second and a new third one: the first one's stream still ends with [DONE]
    (no new request goes there), and the new endpoint serves requests within 3 s."""
    (a, url_a), (b, url_b), (c, url_c) = fakes(3)
    path = tmp_path / "endpoints.json"
    write_endpoints(path, [url_a, url_b])
    gw = start_gateway(upstream_endpoints_file=path, served_model_name=FAKE_MODEL)
    long_body = _chat(chunks=30, interval=0.1)
    results: list[tuple[int, str, str]] = []

    async def scenario() -> float:
        async with httpx.AsyncClient(timeout=60) as client:
            # with two endpoints, two choices always compare both: the second stream goes to the idle one
            first = asyncio.create_task(_stream(client, gw.url, long_body))
            assert await _until(lambda: a.active + b.active == 1)
            second = asyncio.create_task(_stream(client, gw.url, long_body))
            assert await _until(lambda: a.active == 1 and b.active == 1)
            write_endpoints(path, [url_b, url_c])
            changed = time.monotonic()
            router = gw.app.state.router
            assert await _until(lambda: [s.url for s in router.ready] == [url_b, url_c])  # polled every 0.25 s
            seen_c = None
            while time.monotonic() - changed < 5:
                status, name, _ = await _stream(client, gw.url, _chat(chunks=1))
                assert status == 200 and name != url_a.removeprefix("http://")
                if name == url_c.removeprefix("http://"):
                    seen_c = time.monotonic() - changed
                    break
            results.extend(await asyncio.gather(first, second))
            assert seen_c is not None, "the new endpoint got no request in 5 s"
            return seen_c

    first_request_s = asyncio.run(scenario())
    assert first_request_s < 3.0, first_request_s
    a_record = a.requests[0]
    assert len(a.requests) == 1, "the removed endpoint got a new request"
    assert a_record.finished and not a_record.disconnected and a_record.chunks_sent == 30
    assert all(status == 200 and sse_events(text.split("\n"))[-1] == "[DONE]" for status, _, text in results)
    assert wait_until(lambda: [s.url for s in gw.app.state.router.states()] == [url_b, url_c]), "drained endpoint kept"


async def _until(condition, seconds: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def test_failed_connect_tries_another_endpoint(fakes, start_gateway, caplog) -> None:
    """One listed endpoint refuses connections: with no retries configured, every request is
    still answered by the live one (the dead one is tried at most once, then avoided)."""
    ((live, live_url),) = fakes(1)
    dead_url = f"http://127.0.0.1:{free_port()}"
    caplog.set_level("INFO", logger="gateway")
    gw = start_gateway(upstream_endpoints=[dead_url, live_url], served_model_name=FAKE_MODEL, connect_retries=0)
    with httpx.Client(timeout=30) as client:
        for _ in range(6):
            resp = client.post(gw.url + CHAT, json=_chat(stream=False))
            assert resp.status_code == 200, resp.text
            assert resp.headers[UPSTREAM_HEADER] == live_url.removeprefix("http://")
    assert len(live.requests) == 6
    failures = [r for r in caplog.records if r.getMessage() == "upstream connect failed, retrying"]
    assert 1 <= len(failures) <= 2, [r.__dict__.get("endpoint") for r in failures]
    assert 'gateway_upstream_errors_total{kind="connect"}' not in httpx.get(gw.url + "/metrics").text


def test_held_requests_complete_when_an_endpoint_appears(fakes, start_gateway, tmp_path) -> None:
    """Scale from zero: no endpoint is listed; two streams and one plain request are held (the
    held gauge says 3, the streams get heartbeats meanwhile); once an endpoint is listed, all
    three complete through it and the gauge is 0."""
    ((fake, url),) = fakes(1)
    path = tmp_path / "endpoints.json"
    write_endpoints(path, [])
    gw = start_gateway(upstream_endpoints_file=path, served_model_name=FAKE_MODEL, heartbeat_interval_seconds=0.2)
    assert httpx.get(gw.url + "/readyz").status_code == 200  # ready with zero endpoints: it holds

    async def scenario() -> tuple[list[tuple[int, str, str]], float]:
        async with httpx.AsyncClient(timeout=60) as client:
            tasks = [asyncio.create_task(_stream(client, gw.url, _chat(stream=s, chunks=3))) for s in (True, True, False)]
            assert await _until(lambda: gw.app.state.router.held == 3), gw.app.state.router.held
            held_metric = metric_samples(gw.url)[(HELD_REQUESTS_METRIC, ())]
            await asyncio.sleep(0.5)  # heartbeats flow to the held streams
            write_endpoints(path, [url])
            return await asyncio.gather(*tasks), held_metric

    results, held_metric = asyncio.run(scenario())
    assert held_metric == 3
    for status, name, text in results:
        assert status == 200 and name in ("", url.removeprefix("http://")), (status, text)
    streams = [text for (_, _, text) in results[:2]]
    for text in streams:
        assert text.startswith(": keep-alive\n\n"), text[:40]
        assert sse_events(text.split("\n"))[-1] == "[DONE]"
    assert json.loads(results[2][2])["choices"][0]["message"]["content"] == "hello"
    assert results[2][1] == url.removeprefix("http://")  # the plain answer names its endpoint
    assert len(fake.requests) == 3
    assert metric_samples(gw.url)[(HELD_REQUESTS_METRIC, ())] == 0


def test_hold_bound_answers_503_with_retry_after(start_gateway, tmp_path) -> None:
    """With no endpoint: beyond ``max_held_requests`` a request is answered 503 with
    Retry-After at once (hold_full); a held one gets 503 after ``hold_timeout_seconds``
    (hold_timeout). Both are counted; nothing waits forever."""
    path = tmp_path / "endpoints.json"
    write_endpoints(path, [])
    gw = start_gateway(upstream_endpoints_file=path, served_model_name=FAKE_MODEL, max_held_requests=1,
                       hold_timeout_seconds=2.0, retry_after_seconds=7)
    results: dict[str, httpx.Response] = {}
    holder = threading.Thread(
        target=lambda: results.setdefault("held", httpx.post(gw.url + CHAT, json=_chat(stream=False), timeout=30)))
    holder.start()
    assert wait_until(lambda: gw.app.state.router.held == 1)
    full = httpx.post(gw.url + CHAT, json=_chat(stream=False), timeout=30)
    error = assert_openai_error(full, 503)
    assert error["code"] == "hold_full" and full.headers["retry-after"] == "7"
    holder.join(timeout=10)
    error = assert_openai_error(results["held"], 503)
    assert error["code"] == "hold_timeout" and "2 s" in error["message"]
    assert results["held"].headers["retry-after"] == "7"
    m = metric_samples(gw.url)
    assert m[("gateway_rejected_requests_total", (("reason", "hold_full"),))] == 1
    assert m[("gateway_rejected_requests_total", (("reason", "hold_timeout"),))] == 1
    assert m[(HELD_REQUESTS_METRIC, ())] == 0


def test_non_streaming_request_cut_before_the_edge_says_the_limit(fake_upstream, start_gateway) -> None:
    """With the edge's read timeout set to 3 s, a non-streaming request whose answer takes 5 s
    gets a 504 that names the 3 s limit and suggests ``"stream": true``; the same request
    streamed is not cut."""
    fake, upstream_url = fake_upstream
    gw = start_gateway(upstream_url=upstream_url, served_model_name=FAKE_MODEL, edge_read_timeout_seconds=3)
    started = time.monotonic()
    resp = httpx.post(gw.url + CHAT, json=_chat(stream=False, header_delay=5), timeout=30)
    error = assert_openai_error(resp, 504, param="stream")
    assert time.monotonic() - started < 4.5
    assert error["code"] == "non_streaming_timeout"
    assert "3 s" in error["message"] and '"stream": true' in error["message"]
    streamed = httpx.post(gw.url + CHAT, json=_chat(stream=True, header_delay=5, chunks=2), timeout=30)
    assert streamed.status_code == 200 and sse_events(streamed.text.split("\n"))[-1] == "[DONE]"


def test_prefix_affinity_keeps_a_prefix_on_one_endpoint_within_the_load_bound(fakes, start_gateway) -> None:
    """Prefix affinity: sequential requests with 12 different long system prompts each land
    on one endpoint per prompt (and not all on one endpoint); 12 concurrent streams with one
    shared prompt spread once an endpoint holds more than 1.25x the average."""
    upstreams = fakes(3)
    gw = start_gateway(upstream_endpoints=[u for _, u in upstreams], served_model_name=FAKE_MODEL,
                       prefix_affinity=True, prefix_affinity_chars=64)

    def body(system: str, question: str, stream: bool = False, **fake: object) -> dict:
        return {"model": FAKE_MODEL, "stream": stream, "fake": fake,
                "messages": [{"role": "system", "content": system * 10}, {"role": "user", "content": question}]}

    where: dict[str, set[str]] = {}
    with httpx.Client(timeout=30) as client:
        for round_ in range(3):
            for i in range(12):
                resp = client.post(gw.url + CHAT, json=body(f"You are assistant {i}. ", f"question {round_}"))
                where.setdefault(str(i), set()).add(resp.headers[UPSTREAM_HEADER])
    assert all(len(v) == 1 for v in where.values()), where
    assert len(set().union(*where.values())) >= 2, where

    async def shared() -> list[tuple[int, str, str]]:
        async with httpx.AsyncClient(timeout=60) as client:
            tasks = []
            for i in range(12):
                tasks.append(asyncio.create_task(_stream(client, gw.url, body("Shared. ", f"q{i}", True, chunks=20, interval=0.05))))
                await asyncio.sleep(0.02)
            return await asyncio.gather(*tasks)

    names = Counter(name for _, name, _ in asyncio.run(shared()))
    # bound = ceil(1.25 * (in flight + 1) / 3) <= ceil(1.25 * 12 / 3) = 5
    assert max(names.values()) <= 5 and len(names) >= 2, names


def test_stream_committed_early_still_names_its_endpoint(fakes, start_gateway, tmp_path) -> None:
    """A stream committed for heartbeats while the engine had not answered yet carries the
    x-qvllm-upstream header (the endpoint was already picked); one committed while it was held
    (no endpoint yet) names the endpoint in an SSE comment before its first event."""
    ((fake, url),) = fakes(1)
    name = url.removeprefix("http://")
    path = tmp_path / "endpoints.json"
    write_endpoints(path, [url])
    gw = start_gateway(upstream_endpoints_file=path, served_model_name=FAKE_MODEL, heartbeat_interval_seconds=0.1)
    with httpx.stream("POST", gw.url + CHAT, json=_chat(chunks=2, header_delay=0.5), timeout=30) as resp:
        text = resp.read().decode()
        assert resp.headers[UPSTREAM_HEADER] == name, dict(resp.headers)
    assert text.startswith(": keep-alive\n\n") and sse_events(text.split("\n"))[-1] == "[DONE]"

    write_endpoints(path, [])
    assert wait_until(lambda: not gw.app.state.router.ready)

    async def held() -> tuple[int, str, str]:
        async with httpx.AsyncClient(timeout=30) as client:
            task = asyncio.create_task(_stream(client, gw.url, _chat(chunks=2)))
            assert await _until(lambda: gw.app.state.router.held == 1)
            await asyncio.sleep(0.3)  # committed with heartbeats
            write_endpoints(path, [url])
            return await task

    status, header, text = asyncio.run(held())
    assert status == 200 and header == ""
    comment = f": {UPSTREAM_HEADER}: {name}\n\n"
    assert comment in text and text.index(comment) < text.index("data: "), text[:300]
