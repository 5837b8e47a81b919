"""`qvllm loadtest`: inter-token latency beside TTFT and end-to-end time (summary, CSV, thresholds),
an "Aggregated" row that counts requests only, and bad input stopped before any load starts.

Every run is a real headless Locust in a subprocess against the fake gateway of
:mod:`tests.support.fake_openai`, which spaces its chunks by a known gap.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fake_openai import fake_openai_server

REPO = Path(__file__).resolve().parents[2]
FIRST_TOKEN_DELAY_S = 0.1
CHUNK_GAP_S = 0.03
LOAD_STARTED = "=== qvllm load test ==="


def _loadtest(*args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qvllm.cli", "loadtest", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture
def gapped_server():
    server = fake_openai_server(first_token_delay_s=FIRST_TOKEN_DELAY_S, chunk_gap_s=CHUNK_GAP_S)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.timeout(180)
def test_itl_is_reported_in_summary_csv_and_stdout(gapped_server, tmp_path):
    summary_path, prefix = tmp_path / "summary.json", tmp_path / "run"
    result = _loadtest(gapped_server, "--profile", "constant", "--users", "2", "--seconds", "4", "--max-tokens", "10",
                       "--model", "tiny", "--summary-json", str(summary_path), "--csv", str(prefix))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads(summary_path.read_text())
    # the gaps between chunks are CHUNK_GAP_S (sleep) plus a little: ITL near it, far below TTFT
    assert CHUNK_GAP_S * 0.8 <= summary["itl_p50_s"] <= summary["itl_p95_s"] < FIRST_TOKEN_DELAY_S, summary
    assert summary["ttft_p50_s"] >= FIRST_TOKEN_DELAY_S * 0.8
    assert summary["p50_s"] >= FIRST_TOKEN_DELAY_S + 9 * CHUNK_GAP_S * 0.8
    assert "ITL p50" in result.stdout and "TTFT p50" in result.stdout and "end-to-end p50" in result.stdout
    rows = {row[0]: row[1:] for row in csv.reader((tmp_path / "run_latency.csv").open())}
    assert rows["metric"] == ["p50_s", "p95_s"]
    assert float(rows["itl"][0]) == pytest.approx(summary["itl_p50_s"], abs=1e-4)
    assert float(rows["ttft"][1]) == pytest.approx(summary["ttft_p95_s"], abs=1e-4)
    assert float(rows["end_to_end"][1]) == pytest.approx(summary["p95_s"], abs=1e-4)


@pytest.mark.timeout(180)
def test_aggregated_row_counts_requests_only(gapped_server, tmp_path):
    """Locust's Aggregated row = the chat requests (the model is given: no /v1/models lookups);
    TTFT and ITL entries are not requests."""
    prefix = tmp_path / "run"
    result = _loadtest(gapped_server, "--profile", "constant", "--users", "2", "--seconds", "3", "--max-tokens", "5",
                       "--model", "tiny", "--csv", str(prefix))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "run_stats.csv").open()))
    by_name = {row["Name"]: row for row in rows}
    chat = int(by_name["/v1/chat/completions"]["Request Count"])
    assert chat > 0
    assert int(by_name["Aggregated"]["Request Count"]) == chat, rows
    assert set(by_name) == {"/v1/chat/completions", "Aggregated"}, sorted(by_name)


@pytest.mark.timeout(180)
def test_itl_threshold_decides_the_exit_code(gapped_server, tmp_path):
    summary_path = tmp_path / "summary.json"
    result = _loadtest(gapped_server, "--profile", "constant", "--users", "1", "--seconds", "3", "--max-tokens", "5",
                       "--model", "tiny", "--itl-p95", str(CHUNK_GAP_S / 3), "--summary-json", str(summary_path))
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "FAIL: ITL p95" in result.stdout
    assert json.loads(summary_path.read_text())["reasons"][0].startswith("ITL p95")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["localhost:8000"], 2, "Invalid value for URL: URL 'localhost:8000' must be absolute http:// or https://"),
        (["ftp://example.com/"], 2, "must be absolute http:// or https://"),
        ([f"http://127.0.0.1:{_closed_port()}"], 1, "cannot connect to http://127.0.0.1:"),
        (["http://127.0.0.1:9/", "--users", "3"], 2, "--users and --seconds apply to --profile constant only"),
        (["http://127.0.0.1:9/", "--max-failures", "2"], 2, "Invalid value for '--max-failures'"),
        (["http://127.0.0.1:9/", "--p95", "-1"], 2, "Invalid value for '--p95'"),
        (["http://127.0.0.1:9/", "--no-such-flag"], 2, "No such option '--no-such-flag'"),
        (["http://127.0.0.1:9/", "--csv", "{tmp}/no-such-folder/run"], 2, "folder {tmp}/no-such-folder does not exist"),
    ],
    ids=["no-scheme", "ftp", "refused", "users-without-constant", "failure-ratio", "negative-p95", "unknown-flag",
         "csv-folder"],
)
def test_bad_input_is_one_error_line_before_any_load(args, code, message, tmp_path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    message = message.replace("{tmp}", str(tmp_path))
    result = _loadtest(*args, timeout=50)
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], output
    assert "Traceback" not in output and LOAD_STARTED not in output


@pytest.mark.timeout(60)
def test_a_server_that_is_not_openai_compatible_is_refused_before_load(tmp_path):
    """A web server without /v1/models (here: a static file server) is not a target."""
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1", "-d", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port NNNN ..."
        port = int(line.split(" port ")[1].split()[0])
        result = _loadtest(f"http://127.0.0.1:{port}", timeout=50)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert result.returncode == 1
    assert f"http://127.0.0.1:{port}/v1/models answered HTTP 404" in result.stderr
    assert LOAD_STARTED not in result.stdout


def test_help_states_the_constant_profiles_defaults():
    """A newcomer reads in --help what `--profile constant` does without --users or --seconds."""
    from click.testing import CliRunner

    from qvllm.cli import main
    from qvllm.loadtest.profiles import CONSTANT_SECONDS, CONSTANT_USERS

    result = CliRunner().invoke(main, ["loadtest", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip().startswith("--")}
    assert f"(default: {CONSTANT_USERS})" in lines["--users"]
    assert f"(default: {CONSTANT_SECONDS:g})" in lines["--seconds"]


@pytest.mark.timeout(180)
def test_verdict_is_printed_after_locusts_tables(gapped_server):
    """On a terminal (stdout and stderr on one screen) the verdict comes last, under Locust's tables."""
    result = subprocess.run([sys.executable, "-m", "qvllm.cli", "loadtest", gapped_server, "--profile", "constant",
                             "--users", "1", "--seconds", "2", "--max-tokens", "3", "--model", "tiny"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=150,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout[-3000:]
    screen = result.stdout
    assert screen.rindex("Aggregated") < screen.index(LOAD_STARTED), screen[-3000:]
