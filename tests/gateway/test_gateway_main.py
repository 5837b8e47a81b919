"""``python -m services.gateway --host``: the container listens on all interfaces, ``qvllm local up``
runs the same entry point on a loopback address only. Real processes; the listening sockets are
read from the kernel (/proc/net/tcp, /proc/net/tcp6)."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
from pathlib import Path

from tests.support.gateway_process import gateway_process

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTEN = "0A"  # TCP_LISTEN in the kernel's st column


def _listening(port: int) -> set[str]:
    """Addresses with a listening TCP socket on ``port`` (IPv4 and IPv6)."""
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state != LISTEN or int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(address)
            words = struct.unpack(f"<{len(raw) // 4}I", raw)  # the kernel prints 32-bit words in host order
            found.add(socket.inet_ntop(family, struct.pack(f">{len(words)}I", *words)))
    return found


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_host_chooses_the_listen_address():
    with gateway_process(host="127.0.0.1", upstream_url="http://127.0.0.1:9") as gateway:
        assert _listening(_port(gateway.url)) == {"127.0.0.1"}
    with gateway_process(upstream_url="http://127.0.0.1:9") as gateway:
        assert _listening(_port(gateway.url)) == {"0.0.0.0"}


def test_a_bad_argument_is_one_line_and_exit_2():
    out = subprocess.run([sys.executable, "-m", "services.gateway", "--hots", "x"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "unrecognized arguments: --hots" in out.stderr and "Traceback" not in out.stderr
