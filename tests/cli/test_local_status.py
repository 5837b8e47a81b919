"""`qvllm local status` reads each engine's requests in flight from its /metrics, and an engine busy
decoding on a shared CPU answers slowly: a recorded vLLM metrics page served after a 4 s delay
(the old 3 s timeout gave up on it and `local status` printed no load for that engine)."""

from __future__ import annotations

from qvllm.local.stack import METRICS_SCRAPE_TIMEOUT_S, engine_load
from tests.support.metrics_server import metrics_server

DELAY_S = 4.0


def test_a_slow_metrics_page_still_gives_the_engines_load():
    assert METRICS_SCRAPE_TIMEOUT_S > DELAY_S
    server = metrics_server("vllm_metrics_queue.txt", delay_s=DELAY_S)
    try:
        load = engine_load(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
    assert load is not None
    assert (load.running, load.waiting, load.in_flight) == (2, 10, 12)  # the recorded page


def test_no_answer_within_the_timeout_is_none_not_an_error():
    server = metrics_server("vllm_metrics_queue.txt", delay_s=2.0)
    try:
        assert engine_load(f"http://127.0.0.1:{server.server_address[1]}", timeout_s=0.5) is None
    finally:
        server.shutdown()
