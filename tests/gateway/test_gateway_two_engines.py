"""Two real CPU vLLM engines (tiny model) behind one gateway: both serve, and prefix affinity
raises vLLM's own prefix-cache hit rate (``vllm:prefix_cache_hits/queries``)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from services.gateway.contract import UPSTREAM_HEADER

from .test_gateway_engine import engine_value

pytestmark = pytest.mark.engine

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from tests.support.vllm_server import running_vllms

    with running_vllms(tmp_path_factory.mktemp("two-engines"), 2, max_model_len=2048,
                       extra_args=("--enable-prefix-caching",)) as servers:
        yield servers


def test_two_engines_both_serve_through_one_gateway(engines, start_gateway) -> None:  # type: ignore[no-untyped-def]
    """8 concurrent streams through the gateway: both engines answer (the header names each
    one's host:port), and each engine's own request counter grew by what the gateway says."""
    model = engines[0].served_model_name
    gw = start_gateway(upstream_endpoints=[e.base_url for e in engines], served_model_name=model)
    before = [engine_value(e.base_url, "vllm:request_success_total") for e in engines]
    body = {"model": model, "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 16,
            "ignore_eos": True, "stream": True}

    async def load() -> list[tuple[int, str]]:
        async with httpx.AsyncClient(timeout=300) as client:
            async def one() -> tuple[int, str]:
                async with client.stream("POST", gw.url + CHAT, json=body) as resp:
                    await resp.aread()
                    return resp.status_code, resp.headers.get(UPSTREAM_HEADER, "")
            return await asyncio.gather(*(one() for _ in range(8)))

    results = asyncio.run(load())
    assert all(status == 200 for status, _ in results), results
    names = Counter(name for _, name in results)
    assert set(names) == {e.base_url.removeprefix("http://") for e in engines}, names
    for engine, count in zip(engines, before):
        served = engine_value(engine.base_url, "vllm:request_success_total") - count
        assert served == names[engine.base_url.removeprefix("http://")]


def _hit_rate(engines, send) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(hits, queries) in prompt tokens over both engines while ``send()`` runs."""
    def totals() -> tuple[float, float]:
        return (sum(engine_value(e.base_url, "vllm:prefix_cache_hits_total") for e in engines),
                sum(engine_value(e.base_url, "vllm:prefix_cache_queries_total") for e in engines))
    hits0, queries0 = totals()
    send()
    hits1, queries1 = totals()
    return hits1 - hits0, queries1 - queries0


def test_prefix_affinity_raises_the_prefix_cache_hit_rate(engines, start_gateway) -> None:  # type: ignore[no-untyped-def]
    """Six long system prompts, each sent five times (different questions), one request at a
    time: with prefix affinity each prompt stays on one engine and vLLM's prefix-cache hit rate
    is higher than with least-outstanding routing alone (fresh prompts for each run, so no
    run finds the other's cache)."""
    model = engines[0].served_model_name
    urls = [e.base_url for e in engines]
    plain = start_gateway(upstream_endpoints=urls, served_model_name=model)
    affine = start_gateway(upstream_endpoints=urls, served_model_name=model, prefix_affinity=True, prefix_affinity_chars=256)

    def run(gateway_url: str, tag: str) -> dict[int, set[str]]:
        where: dict[int, set[str]] = {}
        with httpx.Client(timeout=300) as client:
            for question in range(5):
                for prompt in range(6):
                    system = f"[{tag} {prompt}] You are a helpful assistant for the quick brown fox. " * 8
                    resp = client.post(gateway_url + CHAT, json={
                        "model": model, "max_tokens": 1,
                        "messages": [{"role": "system", "content": system},
                                     {"role": "user", "content": f"Question number {question}?"}]})
                    assert resp.status_code == 200, resp.text
                    where.setdefault(prompt, set()).add(resp.headers[UPSTREAM_HEADER])
        return where

    placement: dict[str, dict[int, set[str]]] = {}
    plain_hits, plain_queries = _hit_rate(engines, lambda: placement.setdefault("plain", run(plain.url, "plain")))
    affine_hits, affine_queries = _hit_rate(engines, lambda: placement.setdefault("affine", run(affine.url, "affine")))
    plain_rate, affine_rate = plain_hits / plain_queries, affine_hits / affine_queries
    print(f"\nprefix-cache hit rate over 2 engines: least outstanding {plain_rate:.3f} "
          f"({plain_hits:.0f}/{plain_queries:.0f} tokens), prefix affinity {affine_rate:.3f} "
          f"({affine_hits:.0f}/{affine_queries:.0f} tokens); prompts on one engine: plain "
          f"{sum(len(v) == 1 for v in placement['plain'].values())}/6, affine "
          f"{sum(len(v) == 1 for v in placement['affine'].values())}/6")
    assert all(len(v) == 1 for v in placement["affine"].values()), placement["affine"]
    assert affine_rate > plain_rate, (affine_rate, plain_rate)
