"""Start a real ``moto_server`` process (S3, Secrets Manager, ... on loopback) for tests and benches.

Usage::

    from tests.support.moto_server import running_moto

    @pytest.fixture(scope="session")
    def moto_url():
        with running_moto() as url:      # "http://127.0.0.1:<port>"
            yield url

    s3 = boto3.client("s3", endpoint_url=url, **MOTO_CLIENT_KWARGS)

What it does: picks a free loopback port (bind to port 0), starts ``<venv>/bin/moto_server -H
127.0.0.1 -p PORT`` in its own process group, polls ``/moto-api/`` until it answers, yields the
endpoint URL, and on exit terminates the process group (SIGTERM, SIGKILL after 5 s).
:func:`moto_env` gives the environment variables a child process (or boto3 defaults) needs to
talk to it with dummy credentials and no metadata lookups.

Errors: :class:`MotoStartError` if the process exits or does not answer within ``start_timeout``
seconds (message carries the tail of its log).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

MOTO_REGION = "us-east-1"
MOTO_CLIENT_KWARGS = {
    "region_name": MOTO_REGION,
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}


class MotoStartError(RuntimeError):
    """moto_server did not come up."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def moto_env(url: str) -> dict[str, str]:
    """Environment for boto3 / the Run:ai streamer to use the server at ``url`` with dummy keys."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": MOTO_REGION,
        "AWS_REGION": MOTO_REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@contextlib.contextmanager
def running_moto(start_timeout: float = 30.0) -> Iterator[str]:
    """Run ``moto_server`` on a free loopback port; yield ``http://127.0.0.1:<port>``."""
    exe = Path(sys.executable).with_name("moto_server")
    port = _free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise MotoStartError(f"moto_server exited with {proc.returncode}: {log.read()[-2000:]!r}")
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    log.seek(0)
                    raise MotoStartError(f"moto_server not answering on {url}: {log.read()[-2000:]!r}") from None
                time.sleep(0.1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
