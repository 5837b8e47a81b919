"""Routing benchmark (``make bench-routing``): the gateway vs vllm-router vs direct, same upstreams.

Fake streaming upstreams on loopback (bench/fake_upstreams.py, a fixed token pace, so the
engine is never the bottleneck) are reached in one run through:

- ``direct``: the client spreads its own requests over the upstreams (no proxy);
- ``gateway``: ``python -m services.gateway`` with the endpoints file (as the local stack uses);
- ``vllm-router``: PyPI ``vllm-router`` 0.1.17 (Rust), installed by this script into its own
  venv under ``.bench/`` (git-ignored), default policy;
- ``pinned``: the gateway sending to one address behind which a balancer picks a random
  upstream per TCP connection (a ClusterIP Service through kube-proxy): the gateway's
  behaviour before it learned the endpoints.

Figures (medians over interleaved rounds, with ranges):

- added TTFT p50/p99 vs direct at low load (one request at a time, first token event);
- proxy CPU-seconds per 10,000 relayed SSE events, from ``/proc/<pid>/stat`` of the proxy;
- balance: max/min over 3 upstreams of their mean open streams under 32 concurrent streams;
- time from a 4th upstream being announced (endpoints file written / ``add_worker`` / added
  to the balancer) to its first request.

``--baseline DIR`` adds the gateway of another checkout (e.g. ``git worktree add /tmp/base main``)
as a fourth target, interleaved with the others, for a before/after of a gateway change in one run.

The upstreams run on CPU 0, proxies and the client on CPU 1 (``taskset``), so a proxy never
competes with the upstreams for a core; the output says so. The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.gateway_process import gateway_process  # noqa: E402
from tests.support.vllm_server import free_port  # noqa: E402

ROUTER_VERSION = "0.1.17"
ROUTER_VENV = ROOT / ".bench" / f"vllm-router-{ROUTER_VERSION}"
UPSTREAM_CPUS, PROXY_CPUS = "0", "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5))) - 1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / CLK_TCK  # utime stime cutime cstime


def fmt_range(values: list[float], digits: int = 2) -> str:
    """``median [min-max]``."""
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


# --- processes --------------------------------------------------------------------------------


def ensure_router() -> Path:
    """vllm-router's binary, installed into its own venv on first use."""
    binary = ROUTER_VENV / "bin" / "vllm-router"
    if not binary.exists():
        print(f"installing vllm-router=={ROUTER_VERSION} into {ROUTER_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(ROUTER_VENV)], check=True)
        subprocess.run([str(ROUTER_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                        f"vllm-router=={ROUTER_VERSION}"], check=True, stderr=subprocess.DEVNULL)
    return binary


def wait_http(url: str, proc: subprocess.Popen | None, timeout: float = 60) -> None:
    """Poll ``url`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


@contextlib.contextmanager
def process(argv: list[str], ready_url: str, log: Path) -> Iterator[subprocess.Popen]:
    """Run ``argv`` (output to ``log``) until the block ends; wait for ``ready_url`` first."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603
    try:
        wait_http(ready_url, proc)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def taskset(cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus] if cpus else []


class Fakes:
    """The fake upstreams process and its control port."""

    def __init__(self, ports: list[int], lb_port: int, control_port: int) -> None:
        self.ports, self.lb_port, self.control = ports, lb_port, f"http://127.0.0.1:{control_port}"
        self.urls = [f"http://127.0.0.1:{p}" for p in ports]

    async def stats(self, session: aiohttp.ClientSession) -> dict[str, dict]:
        async with session.get(self.control + "/stats") as resp:
            return await resp.json()

    async def post(self, session: aiohttp.ClientSession, path: str) -> None:
        async with session.post(self.control + path) as resp:
            resp.raise_for_status()


# --- load ---------------------------------------------------------------------------------------


async def one_stream(session: aiohttp.ClientSession, url: str, tokens: int) -> tuple[float, int]:
    """One streaming chat request read to the end: (TTFT seconds, token events received)."""
    body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": tokens}
    start = time.perf_counter()
    ttft, events = float("nan"), 0
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status}: {(await resp.read())[:200]!r}")
        buffer = b""
        async for chunk in resp.content.iter_any():
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"data: ") and b'"content":"tok ' in line:
                    events += 1
                    if events == 1:
                        ttft = time.perf_counter() - start
    return ttft, events


async def closed_loop(targets: list[str], concurrency: int, seconds: float, tokens: int, pace: float) -> int:
    """``concurrency`` workers send streams back to back for ``seconds``; returns token events.
    With several targets (direct), worker i uses target i mod n. Worker starts are spread over
    one stream's duration, so requests arrive evenly rather than in synchronised bursts."""
    connector = aiohttp.TCPConnector(limit=0)
    events = 0
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        stop = time.monotonic() + seconds

        async def worker(i: int) -> None:
            nonlocal events
            await asyncio.sleep(i / concurrency * tokens * pace)
            while time.monotonic() < stop:
                _, got = await one_stream(session, targets[i % len(targets)], tokens)
                events += got

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return events


async def idle_ttft(paths: dict[str, list[str]], probes: int) -> dict[str, list[float]]:
    """TTFT of single requests (2 tokens), the paths interleaved probe by probe."""
    out: dict[str, list[float]] = {name: [] for name in paths}
    async with aiohttp.ClientSession() as session:
        for i in range(probes):
            names = list(paths) if i % 2 == 0 else list(reversed(paths))
            for name in names:
                targets = paths[name]
                ttft, _ = await one_stream(session, targets[i % len(targets)], 2)
                out[name].append(ttft)
    return out


async def balance_and_join(fakes: Fakes, target: str, announce, args) -> tuple[float, float | None]:  # type: ignore[no-untyped-def]
    """32 streams through ``target`` over 3 upstreams: max/min of their mean open streams in the
    steady window; then the 4th upstream is announced and the time to its first request taken."""
    fourth = str(fakes.ports[3])
    async with aiohttp.ClientSession() as session:
        await fakes.post(session, "/reset")
        ramp = args.tokens * args.pace + 0.5  # every worker has started
        load = asyncio.create_task(
            closed_loop([target], args.streams, ramp + args.balance_seconds + args.join_seconds, args.tokens, args.pace))
        await asyncio.sleep(ramp)
        samples: list[list[int]] = []
        end = time.monotonic() + args.balance_seconds
        while time.monotonic() < end:
            stats = await fakes.stats(session)
            samples.append([stats[str(p)]["active"] for p in fakes.ports[:3]])
            await asyncio.sleep(0.05)
        if (await fakes.stats(session))[fourth]["first_at"] is not None:  # refuse a meaningless figure
            raise RuntimeError("the 4th upstream got requests before it was announced")
        announced = time.time()
        await announce(session)
        first = None
        while time.time() - announced < args.join_seconds:
            stats = await fakes.stats(session)
            if stats[fourth]["first_at"] is not None:
                first = stats[fourth]["first_at"] - announced
                break
            await asyncio.sleep(0.01)
        await load
    means = [statistics.mean(s[i] for s in samples) for i in range(3)]
    return (max(means) / min(means) if min(means) > 0 else float("inf")), first


async def cpu_per_10k(pid: int, target: str, args) -> float:  # type: ignore[no-untyped-def]
    """Proxy CPU seconds per 10,000 relayed token events under the CPU load."""
    before = cpu_seconds(pid)
    events = await closed_loop([target], args.streams, args.cpu_seconds, args.cpu_tokens, args.pace)
    return (cpu_seconds(pid) - before) / events * 10_000


async def reset(fakes: Fakes) -> None:
    """Counters to zero, the TCP balancer back to the first three upstreams."""
    async with aiohttp.ClientSession() as session:
        await fakes.post(session, "/reset")


# --- the run ------------------------------------------------------------------------------------


def main() -> None:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per target")
    parser.add_argument("--streams", type=int, default=32, help="concurrent streams")
    parser.add_argument("--tokens", type=int, default=100, help="token events per stream (balance runs)")
    parser.add_argument("--pace", type=float, default=0.02, help="seconds between two token events")
    parser.add_argument("--cpu-tokens", type=int, default=200, help="token events per stream (CPU runs)")
    parser.add_argument("--cpu-seconds", type=float, default=6.0)
    parser.add_argument("--balance-seconds", type=float, default=6.0)
    parser.add_argument("--join-seconds", type=float, default=4.0)
    parser.add_argument("--probes", type=int, default=60, help="idle TTFT probes per target")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another checkout whose gateway is measured too (before/after of a change)")
    args = parser.parse_args()

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    pinned = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    upstream_cpus, proxy_cpus = (UPSTREAM_CPUS, PROXY_CPUS) if pinned else (None, None)
    if pinned:
        os.sched_setaffinity(0, {int(PROXY_CPUS)})
        print(f"pinning (taskset): fake upstreams on CPU {UPSTREAM_CPUS}; proxies and this client on CPU {PROXY_CPUS}")
    else:
        print("pinning: not possible here (needs 2 CPUs and taskset): everything shares the CPUs")
    print("note: timings depend on what else runs on this machine; figures are medians [ranges] over rounds")
    router_bin = ensure_router()
    ports = [free_port() for _ in range(4)]
    lb_port, control_port = free_port(), free_port()
    fakes = Fakes(ports, lb_port, control_port)
    work = Path(tempfile.mkdtemp(prefix="bench-routing-"))
    endpoints_file = work / "endpoints.json"

    def write_endpoints(urls: list[str]) -> None:
        tmp = endpoints_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(urls))
        os.replace(tmp, endpoints_file)

    results: dict[str, list[float]] = {k: [] for k in (
        "gw_balance", "router_balance", "pinned_balance", "gw_join", "router_join", "pinned_join",
        "gw_cpu", "router_cpu", "pinned_cpu", "base_balance", "base_join", "base_cpu")}
    gw_settings = {"served_model_name": "fake", "log_level": "WARNING", "max_in_flight": 256, "cpus": proxy_cpus}
    with contextlib.ExitStack() as stack:
        stack.enter_context(process(
            [*taskset(upstream_cpus), sys.executable, str(ROOT / "bench" / "fake_upstreams.py"),
             "--ports", ",".join(map(str, ports)), "--lb-ports", ",".join(map(str, ports[:3])),
             "--lb-port", str(lb_port), "--control-port", str(control_port), "--pace", str(args.pace)],
            fakes.control + "/stats", work / "fakes.log"))

        @contextlib.contextmanager
        def gateway() -> Iterator:
            write_endpoints(fakes.urls[:3])
            with gateway_process(upstream_endpoints_file=endpoints_file, **gw_settings) as gw:
                yield gw

        @contextlib.contextmanager
        def baseline_gateway() -> Iterator:
            write_endpoints(fakes.urls[:3])
            with gateway_process(upstream_endpoints_file=endpoints_file, root=args.baseline.resolve(), **gw_settings) as gw:
                yield gw

        @contextlib.contextmanager
        def pinned_gateway() -> Iterator:
            with gateway_process(upstream_url=f"http://127.0.0.1:{lb_port}", **gw_settings) as gw:
                yield gw

        @contextlib.contextmanager
        def router() -> Iterator:
            port = free_port()
            argv = [*taskset(proxy_cpus), str(router_bin), "--host", "127.0.0.1", "--port", str(port),
                    "--worker-urls", *fakes.urls[:3], "--log-level", "warning"]
            with process(argv, f"http://127.0.0.1:{port}/health", work / "router.log") as proc:
                yield type("R", (), {"url": f"http://127.0.0.1:{port}", "pid": proc.pid})

        async def announce_gateway(session: aiohttp.ClientSession) -> None:
            write_endpoints(fakes.urls)

        def announce_router(url: str):  # type: ignore[no-untyped-def]
            async def add(session: aiohttp.ClientSession) -> None:
                async with session.post(f"{url}/add_worker", params={"url": fakes.urls[3]}) as resp:
                    if resp.status >= 300:
                        print(f"vllm-router add_worker: HTTP {resp.status} {(await resp.text())[:200]}")
            return add

        async def announce_pinned(session: aiohttp.ClientSession) -> None:
            await fakes.post(session, f"/lb?port={ports[3]}")

        print("idle TTFT probes ...", flush=True)
        with contextlib.ExitStack() as probes:
            gw, rt = probes.enter_context(gateway()), probes.enter_context(router())
            paths = {"direct": fakes.urls[:3], "gateway": [gw.url], "vllm-router": [rt.url]}
            if args.baseline:
                paths["baseline"] = [probes.enter_context(gateway_process(
                    upstream_endpoints_file=endpoints_file, root=args.baseline.resolve(), **gw_settings)).url]
            idle = asyncio.run(idle_ttft(paths, args.probes))
        for i in range(args.rounds):
            order = [("gateway", gateway, announce_gateway), ("vllm-router", router, None), ("pinned", pinned_gateway, announce_pinned)]
            if args.baseline:
                order.insert(1, ("baseline", baseline_gateway, announce_gateway))
            if i % 2:
                order.reverse()
            for name, start, announce in order:
                # a fresh balancer pool and counters before each target: kept-alive connections
                # of an earlier run must not reach the 4th upstream through it
                asyncio.run(reset(fakes))
                with start() as proxy:
                    key = {"gateway": "gw", "vllm-router": "router", "pinned": "pinned", "baseline": "base"}[name]
                    cpu = asyncio.run(cpu_per_10k(proxy.pid, proxy.url, args))
                    balance, join = asyncio.run(balance_and_join(fakes, proxy.url, announce or announce_router(proxy.url), args))
                results[f"{key}_cpu"].append(cpu)
                results[f"{key}_balance"].append(balance)
                results[f"{key}_join"].append(join if join is not None else float("inf"))
                join_text = f"{join:.2f} s" if join is not None else f"none in {args.join_seconds:g} s"
                print(f"round {i + 1} {name:11s} cpu/10k events {cpu:6.3f} s   balance {balance:5.2f}   4th upstream first request: {join_text}", flush=True)
        direct_events = asyncio.run(closed_loop(fakes.urls[:3], args.streams, args.cpu_seconds, args.cpu_tokens, args.pace))

    p50 = {k: percentile(v, 50) * 1000 for k, v in idle.items()}
    p99 = {k: percentile(v, 99) * 1000 for k, v in idle.items()}
    print()
    print(f"load: {args.streams} concurrent streams; balance runs {args.tokens} tokens/stream, CPU runs "
          f"{args.cpu_tokens} tokens/stream, token pace {args.pace * 1000:g} ms; {args.rounds} rounds; "
          f"direct relayed {direct_events / args.cpu_seconds:.0f} events/s in the CPU run")
    print(f"{'':26s} {'gateway':>22s} {'vllm-router':>22s} {'pinned pool (before)':>22s}")
    print(f"{'CPU s per 10k events':26s} {fmt_range(results['gw_cpu'], 3):>22s} {fmt_range(results['router_cpu'], 3):>22s} {fmt_range(results['pinned_cpu'], 3):>22s}")
    print(f"{'balance max/min (3 up)':26s} {fmt_range(results['gw_balance']):>22s} {fmt_range(results['router_balance']):>22s} {fmt_range(results['pinned_balance']):>22s}")
    print(f"{'4th upstream 1st req, s':26s} {fmt_range(results['gw_join']):>22s} {fmt_range(results['router_join']):>22s} {fmt_range(results['pinned_join']):>22s}")
    print(f"idle TTFT p50/p99 ms: direct {p50['direct']:.2f}/{p99['direct']:.2f}, gateway {p50['gateway']:.2f}/{p99['gateway']:.2f}, "
          f"vllm-router {p50['vllm-router']:.2f}/{p99['vllm-router']:.2f}")
    added50, added99 = p50["gateway"] - p50["direct"], p99["gateway"] - p99["direct"]
    print(f"added TTFT vs direct: gateway p50 {added50:+.2f} ms p99 {added99:+.2f} ms; vllm-router p50 "
          f"{p50['vllm-router'] - p50['direct']:+.2f} ms p99 {p99['vllm-router'] - p99['direct']:+.2f} ms")
    if args.baseline:
        print(f"baseline gateway ({args.baseline}): CPU s per 10k events {fmt_range(results['base_cpu'], 3)}, balance "
              f"{fmt_range(results['base_balance'])}, added TTFT p50 {p50['baseline'] - p50['direct']:+.2f} ms "
              f"p99 {p99['baseline'] - p99['direct']:+.2f} ms")
    gw_cpu, rt_cpu = statistics.median(results["gw_cpu"]), statistics.median(results["router_cpu"])
    print(f"gateway CPU per event / vllm-router's: {gw_cpu / rt_cpu:.2f}x (aim <= 1.5x); balance aim <= 1.25; "
          "new endpoint aim <= 1 s; added p50 TTFT aim <= 1 ms")
    print(f"balance_max_over_min={statistics.median(results['gw_balance']):.3f} "
          f"new_endpoint_first_request_s={statistics.median(results['gw_join']):.3f} "
          f"added_ttft_p50_ms={added50:.3f} cpu_per_10k_events_s={gw_cpu:.3f} "
          f"vllm_router_cpu_per_10k_events_s={rt_cpu:.3f}"
          + (f" baseline_cpu_per_10k_events_s={statistics.median(results['base_cpu']):.3f} "
             f"baseline_added_ttft_p50_ms={p50['baseline'] - p50['direct']:.3f}" if args.baseline else ""))


if __name__ == "__main__":
    main()
