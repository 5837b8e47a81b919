"""``python -m services.gateway --host``: the container listens on all interfaces, ``qvllm local up``
runs the same entry point on a loopback address only. Real processes, reached over this machine's
LAN address (:func:`~qvllm.local.network.lan_address`) or not."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from qvllm.local.network import lan_address
from tests.support.gateway_process import gateway_process

REPO_ROOT = Path(__file__).resolve().parents[2]


def _reachable(address: str, url: str) -> bool:
    try:
        socket.create_connection((address, int(url.rsplit(":", 1)[1])), timeout=2).close()
    except OSError:
        return False
    return True


def test_host_chooses_the_listen_address():
    lan = lan_address()
    with gateway_process(host="127.0.0.1", upstream_url="http://127.0.0.1:9") as gateway:
        assert _reachable("127.0.0.1", gateway.url) and not _reachable(lan, gateway.url)
    with gateway_process(upstream_url="http://127.0.0.1:9") as gateway:  # no --host: as in the container
        assert _reachable(lan, gateway.url)


def test_a_bad_argument_is_one_line_and_exit_2():
    out = subprocess.run([sys.executable, "-m", "services.gateway", "--hots", "x"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "unrecognized arguments: --hots" in out.stderr and "Traceback" not in out.stderr


def test_help_points_to_the_environment_settings():
    out = subprocess.run([sys.executable, "-m", "services.gateway", "--help"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "GATEWAY_PORT (default 8000)" in text and "GATEWAY_UPSTREAM_URL" in text and "--host" in text
