"""`qvllm dashboard --once`: the panels as plain text for a script or a terminal without a live UI,
from a served, recorded vLLM metrics page; exit code 1 with the scrape's error when nothing answers."""

from __future__ import annotations

from click.testing import CliRunner

from qvllm.cli import main
from tests.support.metrics_server import metrics_server


def test_once_prints_the_panels_as_plain_text_and_exits_0():
    server = metrics_server("vllm_metrics_queue.txt")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        result = CliRunner().invoke(main, ["dashboard", "--metrics-url", url, "--once", "--interval", "0.2"])
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    out = result.output
    for title in ("Throughput", "Latency (from buckets)", "Queue", "Replicas"):
        assert title in out
    assert "running 2   waiting 10" in out  # the recorded page: 2 running, 10 waiting
    assert "desired " in out and "requests/s 0.00" in out  # the same page twice: no requests between
    assert "[b]" not in out and "[dim]" not in out  # no markup leaks into plain text


def test_once_with_nothing_answering_says_so_and_exits_1():
    result = CliRunner().invoke(main, ["dashboard", "--metrics-url", "http://127.0.0.1:9/metrics", "--once",
                                       "--interval", "0.2"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: ")
    assert "127.0.0.1:9" in result.output
    assert "Traceback" not in result.output
