"""The EndpointSlice source against replayed Kubernetes API answers (data/endpointslices/):
list, watch events (ready, terminating, a second slice, bookmark, delete), the resync list when
the server ends a watch, 410 Gone, and the fallback to the Service URL when listing is refused.

The real client (kubernetes_asyncio) talks HTTP to a loopback server that answers each request
with the next recorded response, so the request parameters it sends are checked too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from kubernetes_asyncio import client

from services.gateway.endpointslices import EndpointSliceSource
from services.gateway.metrics import GatewayMetrics
from services.gateway.routing import Router

DATA = Path(__file__).parent / "data" / "endpointslices"
SLICES_PATH = "/apis/discovery.k8s.io/v1/namespaces/inference/endpointslices"
POD_X, POD_P, POD_R = "vllm-6c9f7d8b5-x2k4q", "vllm-6c9f7d8b5-p8m2z", "vllm-6c9f7d8b5-r7d9w"


class ReplayApiServer:
    """Answers each EndpointSlice request with the next scripted response.

    Steps: ``("json", file, status)`` or ``("watch", file)``; a watch sends its events, then
    keeps the stream open until :meth:`end_watch` (the server's ``timeoutSeconds`` ending it).
    """

    def __init__(self, steps: list[tuple[Any, ...]]) -> None:
        self.steps = list(steps)
        self.requests: list[dict[str, str]] = []
        self._end = asyncio.Event()
        app = web.Application()
        app.router.add_get(SLICES_PATH, self._handle)
        self._runner = web.AppRunner(app)
        self.url = ""

    async def __aenter__(self) -> ReplayApiServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._end.set()
        await self._runner.cleanup()

    def end_watch(self) -> None:
        """End the watch now being served (as the server does at ``timeoutSeconds``)."""
        self._end.set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.query))
        if not self.steps:  # script done: answer nothing new until the test ends
            await asyncio.Event().wait()
        kind, *rest = self.steps.pop(0)
        if kind == "json":
            name, status = rest
            return web.Response(text=(DATA / name).read_text(), status=status, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for line in (DATA / rest[0]).read_text().splitlines(keepends=True):
            await response.write(line.encode())
        if json.loads(line)["type"] != "ERROR":
            self._end.clear()
            await self._end.wait()
        with contextlib.suppress(ConnectionError):  # the client may have gone first
            await response.write_eof()
        return response


async def until(condition, seconds: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Wait for ``condition()``; fail the test after ``seconds``."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def slice_source(configuration: client.Configuration | None) -> EndpointSliceSource:
    """The source as the gateway chart configures it (Service vllm, namespace inference)."""
    return EndpointSliceSource(service="vllm", namespace="inference", port_name="http", resync_seconds=300,
                               fallback_url="http://vllm.inference.svc.cluster.local:8000", configuration=configuration)


def ready_names(router: Router) -> list[str]:
    return sorted(s.name for s in router.ready)


def known(router: Router) -> dict[str, bool]:
    return {s.name: s.endpoint.ready for s in router.states() if s.listed}


async def test_list_watch_resync_and_410(tmp_path) -> None:  # type: ignore[no-untyped-def]
    metrics = GatewayMetrics()
    router = Router(metrics, max_held=1, hold_timeout=1)
    steps = [("json", "list-48120.json", 200), ("watch", "watch-48120.jsonl"), ("json", "list-48190.json", 200),
             ("watch", "watch-48190-gone.jsonl"), ("json", "list-48510.json", 200), ("watch", "watch-48510.jsonl")]
    async with ReplayApiServer(steps) as server:
        source = slice_source(client.Configuration(host=server.url))
        task = asyncio.create_task(source.run(router))
        try:
            # list: x2k4q ready; p8m2z listed but starting (not ready), addressed by pod IP and port
            await until(lambda: router.synced)
            assert known(router) == {POD_X: True, POD_P: False}
            assert [s.url for s in router.ready] == ["http://10.0.3.7:8000"]
            # the watch: p8m2z ready, r7d9w joins, x2k4q terminating, bookmark, r7d9w's slice deleted
            await until(lambda: known(router) == {POD_X: False, POD_P: True})
            assert ready_names(router) == [POD_P]
            # the watch started where the list ended, scoped to the Service, and asks to end for the resync
            listing, watch = server.requests[:2]
            assert listing == {"labelSelector": "kubernetes.io/service-name=vllm"}
            # (the client sends Python's "True"; the API server reads any value but false/0 as true:
            # Convert_Slice_string_To_bool in k8s.io/apimachinery/pkg/runtime/conversion.go)
            assert watch["watch"].lower() == "true" and watch["resourceVersion"] == "48120"
            assert watch["labelSelector"] == "kubernetes.io/service-name=vllm"
            assert watch["timeoutSeconds"] == "300" and watch["allowWatchBookmarks"].lower() == "true"
            # a stream to x2k4q started before it was terminating keeps counting (it finishes) ...
            terminating = next(s for s in router.states() if s.name == POD_X)
            assert router.pick() is not terminating
            # server ends the watch -> resync list (x2k4q gone) -> watch 410 -> list again
            server.end_watch()
            await until(lambda: len(server.requests) >= 6)
            assert [r.get("resourceVersion") for r in server.requests[2:6]] == [None, "48190", None, "48510"]
            await until(lambda: ready_names(router) == [POD_P, POD_R])
            assert not router.fallback
            samples = metrics.render()[0].decode()
            assert "gateway_endpoint_discovery_errors_total 0.0" in samples
            assert "gateway_ready_endpoints 2.0" in samples
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_refused_list_falls_back_to_the_service_url_and_recovers(caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """RBAC refuses the list (403): the Service URL is used, a warning names the error, the
    fallback gauge is 1 and the error counted; the next list that works ends the fallback."""
    import services.gateway.endpointslices as es

    monkeypatch.setattr(es, "RETRY_SECONDS", 0.05)
    caplog.set_level("WARNING", logger="gateway")
    metrics = GatewayMetrics()
    router = Router(metrics, max_held=1, hold_timeout=1)
    steps = [("json", "list-forbidden.json", 403), ("json", "list-48510.json", 200), ("watch", "watch-48190-gone.jsonl")]
    async with ReplayApiServer(steps) as server:
        source = slice_source(client.Configuration(host=server.url))
        task = asyncio.create_task(source.run(router))
        try:
            await until(lambda: router.fallback)
            assert [s.url for s in router.ready] == ["http://vllm.inference.svc.cluster.local:8000"]
            text = metrics.render()[0].decode()
            assert "gateway_endpoint_discovery_fallback 1.0" in text
            assert "gateway_endpoint_discovery_errors_total 1.0" in text
            (warning,) = [r for r in caplog.records if "Service URL" in r.getMessage()]
            assert warning.__dict__["error"].startswith("403 Forbidden")
            await until(lambda: not router.fallback)
            assert ready_names(router) == [POD_P, POD_R]
            assert "gateway_endpoint_discovery_fallback 0.0" in metrics.render()[0].decode()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_outside_a_cluster_it_falls_back_at_once(monkeypatch) -> None:
    """No in-cluster credentials (no KUBERNETES_SERVICE_HOST): the Service URL, not a crash."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    router = Router(GatewayMetrics(), max_held=1, hold_timeout=1)
    source = slice_source(None)
    task = asyncio.create_task(source.run(router))
    try:
        await until(lambda: router.fallback)
        assert [s.name for s in router.ready] == ["vllm.inference.svc.cluster.local:8000"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("port_name", ["http", "other"])
async def test_slices_to_endpoints_port_and_address_rules(port_name: str) -> None:
    """Only the named port; an FQDN slice is skipped; IPv6 addresses get brackets."""
    from kubernetes_asyncio.client import ApiClient

    from services.gateway.endpointslices import endpoints_from_slices

    raw = json.loads((DATA / "list-48510.json").read_text())
    v6 = json.loads(json.dumps(raw["items"][0]))
    v6["addressType"], v6["endpoints"] = "IPv6", [{"addresses": ["fd00::7"], "conditions": {"ready": True}}]
    fqdn = json.loads(json.dumps(raw["items"][0]))
    fqdn["addressType"] = "FQDN"
    from types import SimpleNamespace

    async with ApiClient() as api:  # the client's own deserializer, as the watch uses it
        slices = [api.deserialize(SimpleNamespace(data=json.dumps(s)), "V1EndpointSlice") for s in (raw["items"][0], v6, fqdn)]
    found = endpoints_from_slices(slices, port_name)
    if port_name == "other":
        assert found == []
    else:
        assert [(e.url, e.name, e.ready) for e in found] == [
            ("http://10.0.4.9:8000", POD_P, True), ("http://10.0.5.2:8000", POD_R, True),
            ("http://[fd00::7]:8000", "[fd00::7]:8000", True),
        ]
