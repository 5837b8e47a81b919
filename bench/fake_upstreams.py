"""Fake vLLM upstreams for ``make bench-routing``: SSE at a fixed token pace, on loopback.

One process serves, with aiohttp:

- N OpenAI-like upstreams (``POST /v1/chat/completions``; ``/health``, ``/v1/models``), each on
  its own port. A streaming request gets a role event, ``max_tokens`` token events ``--pace``
  seconds apart, a usage event and ``[DONE]``: the engine is never the bottleneck, so what
  differs between targets is the proxy.
- a TCP balancer port that picks a random upstream per *connection*, as kube-proxy does for a
  ClusterIP Service (the "single address" that today's gateway sends to).
- a control port: ``GET /stats`` (per upstream: streams open now, requests so far, wall time
  of the first request), ``POST /lb?port=P`` (add an upstream to the TCP balancer).

Usage: ``python bench/fake_upstreams.py --ports 9001,9002 --lb-port 9100 --control-port 9200
--pace 0.01`` (prints ``ready`` once listening).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

from aiohttp import web


class Upstream:
    """One fake engine: counts its open streams and requests."""

    def __init__(self, port: int, pace: float) -> None:
        self.port = port
        self.pace = pace
        self.active = 0
        self.total = 0
        self.first_at: float | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", lambda r: web.json_response({}))
        app.router.add_get("/v1/models", lambda r: web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]}))
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.total += 1
        if self.first_at is None:
            self.first_at = time.time()
        tokens = int(body.get("max_tokens", 16))
        if not body.get("stream"):
            await asyncio.sleep(self.pace * tokens)
            return web.json_response({"id": "x", "object": "chat.completion", "model": "fake",
                                      "choices": [{"index": 0, "message": {"role": "assistant", "content": "t " * tokens}}],
                                      "usage": {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1}})
        self.active += 1
        try:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
            await response.prepare(request)
            head = '{"id":"chatcmpl-x","object":"chat.completion.chunk","created":0,"model":"fake","choices":[{"index":0,"delta":'
            await response.write(f'data: {head}{{"role":"assistant","content":""}},"finish_reason":null}}]}}\n\n'.encode())
            event = f'data: {head}{{"content":"tok "}},"finish_reason":null}}]}}\n\n'.encode()
            for _ in range(tokens):
                await asyncio.sleep(self.pace)
                await response.write(event)
            usage = {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1}
            await response.write(f'data: {{"id":"chatcmpl-x","object":"chat.completion.chunk","created":0,"model":"fake","choices":[],"usage":{json.dumps(usage)}}}\n\ndata: [DONE]\n\n'.encode())
            await response.write_eof()
            return response
        finally:
            self.active -= 1


class RandomPerConnection:
    """A TCP balancer choosing a random backend per connection (kube-proxy's ClusterIP rule)."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = list(ports)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = random.choice(self.ports)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", required=True, help="comma-separated upstream ports")
    parser.add_argument("--lb-ports", required=True, help="comma-separated upstream ports the TCP balancer starts with")
    parser.add_argument("--lb-port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--pace", type=float, default=0.01, help="seconds between two token events")
    args = parser.parse_args()
    upstreams = {int(p): Upstream(int(p), args.pace) for p in args.ports.split(",")}
    runners = []
    for port, upstream in upstreams.items():
        runner = web.AppRunner(upstream.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        runners.append(runner)
    balancer = RandomPerConnection([int(p) for p in args.lb_ports.split(",")])
    await asyncio.start_server(balancer.handle, "127.0.0.1", args.lb_port, backlog=1024)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({str(p): {"active": u.active, "total": u.total, "first_at": u.first_at}
                                  for p, u in upstreams.items()})

    async def add_to_lb(request: web.Request) -> web.Response:
        balancer.ports.append(int(request.query["port"]))
        return web.json_response({"ports": balancer.ports})

    async def reset(request: web.Request) -> web.Response:
        for u in upstreams.values():
            u.total, u.first_at = 0, None
        balancer.ports[:] = [int(p) for p in args.lb_ports.split(",")]
        return web.json_response({})

    control = web.Application()
    control.router.add_get("/stats", stats)
    control.router.add_post("/lb", add_to_lb)
    control.router.add_post("/reset", reset)
    runner = web.AppRunner(control, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.control_port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    asyncio.run(main())
