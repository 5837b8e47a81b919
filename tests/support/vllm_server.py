"""Start ONE real vLLM OpenAI server (CPU, tiny model) for a test package or a benchmark.

Usage as a pytest fixture (package or session scope)::

    from tests.support.vllm_server import running_vllm

    @pytest.fixture(scope="package")
    def vllm_url(tmp_path_factory):
        with running_vllm(tmp_path_factory.mktemp("tiny-model")) as server:
            yield server.base_url

What it does: generates the tiny Llama of :mod:`qvllm.tinymodel` into a folder, starts
``.venv-vllm/bin/python -m vllm.entrypoints.openai.api_server`` on a free loopback port with the
the CPU engine's arguments (``--max-num-seqs 4 --max-model-len 512 --dtype
bfloat16``, env ``VLLM_CPU_KVCACHE_SPACE=1``), polls ``/health`` until it answers 200, yields a
:class:`VllmServer`, and on exit terminates the whole process group (SIGTERM, then SIGKILL after
``stop_timeout`` seconds). Start-up takes about 60 s on 2 CPU cores.

Errors: :class:`VllmStartError` if the process exits or ``/health`` is not 200 within
``start_timeout`` seconds; the message carries the tail of the server log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.pod_confinement import MODEL_MOUNT, PodConfinement

REPO_ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
DEFAULT_SERVED_MODEL_NAME = "tiny-llama"
DEFAULT_START_TIMEOUT_SECONDS = 240.0


class VllmStartError(RuntimeError):
    """vLLM did not become healthy (process exited, or timeout). Message holds the log tail."""


@dataclass(frozen=True)
class VllmServer:
    """A running vLLM server.

    Attributes:
        base_url: ``http://127.0.0.1:<port>`` (no trailing slash, no ``/v1``).
        served_model_name: the ``--served-model-name`` (use it as ``model`` in requests).
        model_dir: folder holding the generated tiny model.
        log_path: file receiving the server's stdout and stderr.
        pid: process id (also the process-group id).
    """

    base_url: str
    served_model_name: str
    model_dir: Path
    log_path: Path
    pid: int


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback only
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:  # a confined engine started through sudo runs as other users
        subprocess.run(["sudo", "-n", "kill", f"-{sig.name}", "--", f"-{pgid}"], capture_output=True, timeout=30)


def _stop(proc: subprocess.Popen[bytes], stop_timeout: float) -> None:
    if proc.poll() is not None:
        return
    _killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=stop_timeout)
    except subprocess.TimeoutExpired:
        _killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def running_vllm(
    work_dir: str | Path,
    *,
    served_model_name: str = DEFAULT_SERVED_MODEL_NAME,
    max_num_seqs: int = 4,
    max_model_len: int = 512,
    model_dir: Path | None = None,
    dtype: str = "bfloat16",
    extra_args: tuple[str, ...] = (),
    start_timeout: float = DEFAULT_START_TIMEOUT_SECONDS,
    stop_timeout: float = 15.0,
    cpus: str | None = None,
    port: int | None = None,
    confinement: PodConfinement | None = None,
    env: Mapping[str, str] | None = None,
    model_uri: str | None = None,
) -> Iterator[VllmServer]:
    """Generate the tiny model under ``work_dir`` and run one vLLM server until the block exits.

    Args:
        work_dir: a writable folder (e.g. from ``tmp_path_factory``); gets ``model/`` and
            ``vllm.log``.
        served_model_name: value of ``--served-model-name``.
        max_num_seqs: value of ``--max-num-seqs`` (concurrent sequences in the engine).
        max_model_len: value of ``--max-model-len`` (tokens).
        model_dir: serve this model folder instead of generating the tiny model.
        dtype: value of ``--dtype``.
        extra_args: more command-line arguments for the api_server.
        start_timeout: seconds to wait for ``/health`` = 200.
        stop_timeout: seconds between SIGTERM and SIGKILL at exit.
        cpus: a CPU list for ``taskset -c`` (benchmarks keep the engine off the proxy's core;
            vLLM's CPU backend binds its threads within the allowed CPUs).
        port: listen on this port (a restart test brings an engine back at the same address);
            default a free one.
        confinement: run the engine as the pod runs it (non-root UID, read-only root, only the
            pod's writable paths; :mod:`tests.support.pod_confinement`); the model folder is then
            served from its read-only mount and the environment is only ``env`` plus the
            engine's settings here (a pod has none of the host's variables).
        env: more environment variables for the engine.
        model_uri: serve this ``--model`` instead of the model folder (e.g. ``s3://...`` with
            ``--load-format runai_streamer`` in ``extra_args``).

    Yields:
        The running :class:`VllmServer`.

    Raises:
        VllmStartError: the engine venv is missing, the process exited, or it timed out.
    """
    from qvllm.tinymodel import generate_tiny_model

    if not VLLM_PYTHON.exists():
        raise VllmStartError(f"{VLLM_PYTHON} not found: run `make deps-engine` first")
    work = Path(work_dir)
    model_dir = Path(model_dir) if model_dir is not None else generate_tiny_model(work / "model")
    log_path = work / "vllm.log"
    fixed_port = port is not None
    # A free port can be taken between our check and vLLM's bind (by another engine starting at
    # the same time: vLLM opens ports of its own while it starts): then start again on a new one.
    for attempt in range(1 if fixed_port else 3):
        port = port if fixed_port else free_port()
        proc, base_url = _start_engine(
            port, work, model_dir, log_path, served_model_name=served_model_name, max_num_seqs=max_num_seqs,
            max_model_len=max_model_len, dtype=dtype, extra_args=extra_args, cpus=cpus,
            confinement=confinement, env=env, model_uri=model_uri,
        )
        try:
            _wait_healthy(proc, base_url, log_path, start_timeout)
            break
        except VllmStartError as exc:
            _stop(proc, stop_timeout)
            if fixed_port or attempt == 2 or "address already in use" not in str(exc).lower():
                raise
        except BaseException:
            _stop(proc, stop_timeout)
            raise
    try:
        yield VllmServer(
            base_url=base_url,
            served_model_name=served_model_name,
            model_dir=model_dir,
            log_path=log_path,
            pid=proc.pid,
        )
    finally:
        _stop(proc, stop_timeout)


def _start_engine(port: int, work: Path, model_dir: Path, log_path: Path, *, served_model_name: str,
                  max_num_seqs: int, max_model_len: int, dtype: str, extra_args: tuple[str, ...],
                  cpus: str | None, confinement: PodConfinement | None, env: Mapping[str, str] | None,
                  model_uri: str | None) -> tuple[subprocess.Popen, str]:
    """Spawn the api_server on ``port`` (log to ``log_path``); return the process and its base URL."""
    cmd = [
        *(["taskset", "-c", cpus] if cpus else []),
        str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
        "--model", model_uri or (MODEL_MOUNT if confinement else str(model_dir)),
        "--served-model-name", served_model_name,
        "--max-num-seqs", str(max_num_seqs),
        "--max-model-len", str(max_model_len),
        "--dtype", dtype,
        "--host", "127.0.0.1",
        "--port", str(port),
        *extra_args,
    ]  # fmt: skip
    engine_env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "INFO", **(env or {})}
    if confinement:
        cmd = confinement.wrap(cmd, model_dir, engine_env | {"PATH": "/usr/local/bin:/usr/bin:/bin"})
        engine_env = dict(os.environ)
    else:
        engine_env = {**os.environ, **engine_env}
        engine_env.pop("VIRTUAL_ENV", None)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv
            cmd, stdout=log, stderr=subprocess.STDOUT, env=engine_env, cwd=work, start_new_session=True
        )
    return proc, f"http://127.0.0.1:{port}"


def _wait_healthy(proc: subprocess.Popen, base_url: str, log_path: Path, start_timeout: float) -> None:
    """Poll ``/health`` until 200.

    Raises:
        VllmStartError: the process exited first (its log tail in the message), or it timed out.
    """
    deadline = time.monotonic() + start_timeout
    while True:
        if proc.poll() is not None:
            raise VllmStartError(
                f"vLLM exited with code {proc.returncode} before becoming healthy:\n" + _log_tail(log_path)
            )
        if _healthy(base_url + "/health"):
            return
        if time.monotonic() > deadline:
            raise VllmStartError(f"vLLM not healthy after {start_timeout:.0f} s:\n" + _log_tail(log_path))
        time.sleep(1.0)


@contextlib.contextmanager
def running_vllms(work_dir: str | Path, count: int, **kwargs: object) -> Iterator[list[VllmServer]]:
    """``count`` engines (same arguments as :func:`running_vllm`), started at the same time.

    Each gets its own folder ``work_dir/engine-<i>``; all are stopped when the block exits.

    Raises:
        VllmStartError: any engine failed to start (the others are stopped).
    """
    import threading

    stack = contextlib.ExitStack()
    servers: list[VllmServer | None] = [None] * count
    errors: list[BaseException] = []
    lock = threading.Lock()

    def start(i: int) -> None:
        try:
            server = stack.enter_context(running_vllm(Path(work_dir) / f"engine-{i}", **kwargs))  # type: ignore[arg-type]
            with lock:
                servers[i] = server
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with stack:
        threads = [threading.Thread(target=start, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        yield [s for s in servers if s is not None]


if __name__ == "__main__":  # manual use: python -m tests.support.vllm_server DIR
    import sys
    import tempfile

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops vLLM too (runs the finally)
    target = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="qvllm-vllm-")
    with running_vllm(target) as server:
        print(server.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
