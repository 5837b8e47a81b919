"""`qvllm local up | down | status`: S3 (moto) -> vLLM (Run:ai streamer) -> gateway on one machine.

``up`` starts a moto S3 server on loopback, prepares the model folder (once, into the user's
cache, verified by sha256: :mod:`qvllm.local.model_cache`), uploads it with the product's own
upload command (``qvllm upload-model``), starts N vLLM engines from the engine venv with
``--load-format runai_streamer --model s3://<bucket>/models/<name>/``, then the gateway in
front of them (the engines' URLs in the gateway's endpoints file), waits for each, measures
every engine's time to ready and its phases from its log, and records pids, ports, URLs and
timings in ``<run dir>/state.json`` (logs beside it). ``down`` stops every process group it
started. Nothing needs AWS or Docker.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app_config.constants import (
    GATEWAY_READY_PATH,
    MODELS_PREFIX,
    VLLM_EXIT_MARGIN_SECONDS,
    VLLM_HEALTH_PATH,
    VLLM_SHUTDOWN_TIMEOUT_FLAG,
)
from qvllm.local.env import PreflightError, preflight, streamer_env
from qvllm.local.model_cache import Prepared, cache_root, ensure_prepared
from qvllm.local.models import DEFAULT_LOCAL_MODEL, LOCAL_MODELS, SMOLLM2, TINY
from qvllm.local.network import AddressError, check_host, local_url, public_url
from qvllm.local.phases import PhaseWatcher, phase_durations
from qvllm.local.processes import STOP_GRACE_S, alive, free_port, spawn, stop_group
from qvllm.local.state import RunState, read_state, run_dir
from services.gateway.settings import GRACEFUL_SHUTDOWN_SECONDS, settings_env

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VLLM_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
DEFAULT_BUCKET = "local-models"
ENDPOINTS_FILE = "endpoints.json"
ENGINE_PREFIX = "vllm-"


def engine_name(index: int) -> str:
    """Name of the ``index``-th engine (``vllm-0``, ``vllm-1``, ...): its key in the state and logs."""
    return f"{ENGINE_PREFIX}{index}"


@dataclass(frozen=True)
class LocalOptions:
    """Options of `local up`.

    Attributes:
        run_dir: run folder (logs, state.json, endpoints file).
        model: ``smollm2`` (default), ``tiny``, a local model folder, or a Hugging Face repo id
            (needs the network).
        served_model_name: name clients use (default: the known model's, else the folder's name).
        vllm_python: the engine venv's interpreter.
        replicas: vLLM engines behind the gateway.
        host: address the gateway listens on (``0.0.0.0`` or a LAN address for phones).
        max_num_seqs: vLLM ``--max-num-seqs`` per engine.
        max_model_len: vLLM ``--max-model-len``; None = the known model's (2048 for smollm2).
        dtype: vLLM ``--dtype``; None = the known model's.
        extra_vllm_args: appended to vLLM's argv.
        bucket: bucket on the loopback S3 server.
        ready_timeout_s: longest wait for all engines' /health.
        kv_cache_space_gib: ``VLLM_CPU_KVCACHE_SPACE`` per engine.
        cache_dir: where prepared models are kept (default :func:`~qvllm.local.model_cache.cache_root`).
        env_overrides: (variable, value or None to remove) applied to the engines' environment.
    """

    run_dir: Path
    model: str = DEFAULT_LOCAL_MODEL
    served_model_name: str | None = None
    vllm_python: Path = DEFAULT_VLLM_PYTHON
    replicas: int = 1
    host: str = "127.0.0.1"
    max_num_seqs: int = 4
    max_model_len: int | None = None
    dtype: str | None = None
    extra_vllm_args: tuple[str, ...] = ()
    bucket: str = DEFAULT_BUCKET
    ready_timeout_s: float = 900.0
    kv_cache_space_gib: int = 1
    cache_dir: Path | None = None
    env_overrides: tuple[tuple[str, str | None], ...] = field(default=())


class LocalStackError(RuntimeError):
    """A component did not start; the message names it and points at its log."""


def _tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


def _wait_http(url: str, *, timeout_s: float, pid: int, name: str, log: Path) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if not alive(pid):
            raise LocalStackError(f"{name} exited before it was ready; see {log}\n{_tail(log)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise LocalStackError(f"{name} not ready at {url} after {timeout_s:.0f} s; see {log}")


# The last line of a Python traceback: "package.module.SomeError: message".
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)\b.*$")


def last_exception(log: Path) -> str | None:
    """The final exception line of the last traceback in ``log`` (what the process died of), or None."""
    if not log.exists():
        return None
    for line in reversed(log.read_text(errors="replace").splitlines()[-2000:]):
        if _EXCEPTION_LINE.match(line.strip()):
            return line.strip()
    return None


def _s3_answers(s3_url: str) -> bool:
    try:
        return httpx.get(f"{s3_url}/moto-api/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def engine_exit_message(name: str, log: Path, s3_url: str | None) -> str:
    """Why an engine died before it was ready, in a few lines: the loopback S3 server's state
    when it no longer answers (the engine streams its weights from it), the engine's last
    exception line, and the log to read; no traceback."""
    lines = [f"vLLM engine {name} exited before it was ready."]
    if s3_url is not None and not _s3_answers(s3_url):
        lines.append(f"The S3 server (moto) at {s3_url} does not answer: the engine could not stream the model "
                     "from it. Start the stack again (qvllm local down, then qvllm local up).")
    error = last_exception(log)
    if error:
        lines.append(f"Engine error: {error}")
    lines.append(f"Full log: {log}")
    return "\n".join(lines)


@dataclass
class _Starting:
    """An engine between its start and its first healthy /health."""

    name: str
    pid: int
    url: str
    log: Path
    watcher: PhaseWatcher
    ready_s: float | None = None


def _wait_engines(engines: list[_Starting], timeout_s: float, s3_url: str | None = None) -> None:
    """Poll every engine's log and /health until all answer 200; sets ``ready_s`` on each.

    Raises:
        LocalStackError: an engine exited (:func:`engine_exit_message`, which checks ``s3_url``),
            or not all were ready after ``timeout_s``.
    """
    start = time.monotonic()
    with httpx.Client(timeout=2) as client:
        while any(e.ready_s is None for e in engines):
            for e in engines:
                if e.ready_s is not None:
                    continue
                e.watcher.poll()
                if not alive(e.pid):
                    raise LocalStackError(engine_exit_message(e.name, e.log, s3_url))
                try:
                    if client.get(e.url + VLLM_HEALTH_PATH).status_code == 200:
                        e.ready_s = round(time.monotonic() - e.watcher.start, 2)
                        e.watcher.poll()
                except httpx.HTTPError:
                    pass
            if time.monotonic() - start > timeout_s:
                late = ", ".join(e.name for e in engines if e.ready_s is None)
                raise LocalStackError(f"vLLM engine(s) {late} not ready after {timeout_s:.0f} s; see {engines[0].log.parent}")
            time.sleep(0.25)


@dataclass(frozen=True)
class ModelPlan:
    """Where the model comes from and how vLLM serves it.

    Attributes:
        name: the S3 folder name (``models/<name>/``) and default served name.
        served_model_name: the name clients send.
        local_dir: a folder to upload (prepared or given), or None for a hub repo.
        repo_id: a Hugging Face repo id to upload from, or None.
        max_model_len / dtype: vLLM arguments.
    """

    name: str
    served_model_name: str
    local_dir: Path | None
    repo_id: str | None
    max_model_len: int
    dtype: str


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]", "-", text.lower()) or "model"


def _prepare_smollm2(vllm_python: Path, log: Path) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        env.pop("VIRTUAL_ENV", None)
        with open(log, "wb") as fh:
            done = subprocess.run([str(vllm_python), "-m", "qvllm.local.gguf_convert", str(out)],
                                  stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT, check=False)
        if done.returncode != 0:
            raise LocalStackError(f"preparing {SMOLLM2.served_model_name} failed; see {log}\n{_tail(log)}")
    return build


def plan_model(opts: LocalOptions, logs: Path) -> tuple[ModelPlan, Prepared | None]:
    """Resolve ``opts.model``; a known model is prepared (or verified) in the cache first.

    Raises:
        LocalStackError: the model could not be prepared (log path in the message).
    """
    known = LOCAL_MODELS.get(opts.model)
    if known is not None:
        folder = (opts.cache_dir or cache_root()) / "models" / known.served_model_name
        if known is TINY:
            from qvllm.tinymodel import generate_tiny_model

            prepared = ensure_prepared(folder, generate_tiny_model)
        else:
            prepared = ensure_prepared(folder, _prepare_smollm2(opts.vllm_python, logs / "prepare.log"))
        served = opts.served_model_name or known.served_model_name
        return ModelPlan(known.served_model_name, served, prepared.path, None,
                         opts.max_model_len or known.max_model_len, opts.dtype or known.dtype), prepared
    path = Path(opts.model).expanduser()
    max_len, dtype = opts.max_model_len or TINY.max_model_len, opts.dtype or "auto"
    if path.is_dir():
        name = _slug(path.name)
        return ModelPlan(name, opts.served_model_name or name, path.resolve(), None, max_len, dtype), None
    name = _slug(opts.model.split("/")[-1])
    return ModelPlan(name, opts.served_model_name or name, None, opts.model, max_len, dtype), None


def _upload(plan: ModelPlan, *, endpoint: str, bucket: str, env: dict[str, str], log: Path) -> None:
    """``qvllm upload-model`` into the loopback bucket (the same command users run against AWS)."""
    argv = [sys.executable, "-m", "qvllm.cli", "upload-model", "--bucket", bucket, "--name", plan.name,
            "--endpoint-url", endpoint, "--region", env["AWS_DEFAULT_REGION"]]
    argv += ["--local-dir", str(plan.local_dir)] if plan.local_dir is not None else ["--repo-id", str(plan.repo_id)]
    with open(log, "wb") as fh:
        done = subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT, check=False)
    if done.returncode != 0:
        raise LocalStackError(f"model upload failed; see {log}\n{_tail(log)}")


def _engine_env(base: dict[str, str], opts: LocalOptions, index: int) -> dict[str, str]:
    env = dict(base)
    env["VLLM_CPU_KVCACHE_SPACE"] = str(opts.kv_cache_space_gib)
    # The streamer's Python logs (its "Overall time to stream ..." report) reach vLLM's log only
    # with this flag: vLLM configures its own logger namespace, not the streamer's.
    env["RUNAI_STREAMER_LOG_TO_STDERR"] = "1"
    if opts.replicas > 1:
        # vLLM-CPU binds each engine's compute threads to cores ("auto": the same first core for
        # every engine); one engine per core instead of all engines on one.
        env["VLLM_CPU_OMP_THREADS_BIND"] = str(index % (os.cpu_count() or 1))
    return env


def check_model_option(model: str) -> None:
    """``--model`` names a known model, an existing folder, or a Hugging Face repo id ``org/name``.

    A value written as a path (``/``, ``.`` or ``~`` first) must be a folder: otherwise it would be
    taken for a repo id and fail only after S3 started, with a message about repo ids.

    Raises:
        LocalStackError: the folder does not exist, or the value is neither a folder nor ``org/name``.
    """
    if model in LOCAL_MODELS:
        return
    path = Path(model).expanduser()
    if path.is_dir():
        return
    if model.startswith(("/", ".", "~")) or path.exists():
        raise LocalStackError(f"--model {model!r}: no such model folder")
    if model.count("/") != 1 or not all(model.split("/")):
        raise LocalStackError(f"--model {model!r}: expected {', '.join(sorted(LOCAL_MODELS))}, "
                              "a model folder, or a Hugging Face repo id like 'org/name'")


def _check_options(opts: LocalOptions, folder: Path) -> None:
    """Everything that can be refused before anything starts."""
    existing = read_state(folder)
    if existing and any(alive(pid) for pid in existing.pids.values()):
        raise LocalStackError(f"a local stack is already running from {folder} (qvllm local down first)")
    if opts.replicas < 1:
        raise LocalStackError(f"replicas must be at least 1, got {opts.replicas}")
    check_host(opts.host)
    public_url(opts.host, 1)  # fail now, not after the engines started, when there is no LAN address
    check_model_option(opts.model)


def _engine_base_env(opts: LocalOptions, base_env: dict[str, str], endpoint: str) -> dict[str, str]:
    """The engines' environment: the streamer's S3 settings for ``endpoint``, then the caller's
    overrides (None removes a variable); the streamer version the preflight found is filled in
    where no override names it.

    Raises:
        PreflightError: the engine venv or the streamer's S3 extra is missing.
    """
    vllm_env = {**base_env, **streamer_env(endpoint)}
    for key, value in opts.env_overrides:
        if value is None:
            vllm_env.pop(key, None)
        else:
            vllm_env[key] = value
    version = preflight(opts.vllm_python, vllm_env)
    vllm_env.update({k: v for k, v in streamer_env(endpoint, streamer_version=version).items()
                     if k not in dict(opts.env_overrides)})
    return vllm_env


def _start_s3(state: RunState, base_env: dict[str, str], port: int, endpoint: str, logs: Path,
              echo: Callable[[str], None]) -> None:
    """Step 1: S3 (moto's server) on loopback ``port``, answering at ``endpoint``."""
    state.pids["s3"] = spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                             log=logs / "s3.log", env=base_env)
    state.ports["s3"], state.urls["s3"] = port, endpoint
    state.save()
    _wait_http(f"{endpoint}/moto-api/", timeout_s=60, pid=state.pids["s3"], name="S3 server (moto)",
               log=logs / "s3.log")
    echo(f"S3 (moto) on {endpoint}")


def _publish_model(opts: LocalOptions, state: RunState, *, endpoint: str, vllm_env: dict[str, str],
                   upload_env: dict[str, str], logs: Path, echo: Callable[[str], None]) -> ModelPlan:
    """Steps 2 and 3: the model folder (prepared once, verified by sha256 on every start), then
    uploaded into the bucket with the product's own upload command; records it in ``state.model``."""
    if opts.model in LOCAL_MODELS:
        echo(f"model {opts.model}: checking the prepared folder (first time: prepared, about a minute) ...")
    plan, prepared = plan_model(opts, logs)
    if prepared is not None:
        state.timings["prepare_s"] = prepared.seconds
        echo(f"model folder {prepared.path}: " + (f"prepared in {prepared.seconds:.1f} s ({prepared.reason[0]})"
                                                   if prepared.built else f"verified ({prepared.seconds:.1f} s)"))
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=vllm_env["AWS_DEFAULT_REGION"],
                      aws_access_key_id=vllm_env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=vllm_env["AWS_SECRET_ACCESS_KEY"])
    s3.create_bucket(Bucket=opts.bucket)
    t_upload = time.monotonic()
    _upload(plan, endpoint=endpoint, bucket=opts.bucket, env=upload_env, log=logs / "upload.log")
    state.timings["upload_s"] = round(time.monotonic() - t_upload, 2)
    prefix = f"{MODELS_PREFIX}/{plan.name}/"
    size = sum(o["Size"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=opts.bucket, Prefix=prefix)
               for o in page.get("Contents", []))
    model_uri = f"s3://{opts.bucket}/{prefix}"
    state.model = {"served_model_name": plan.served_model_name, "uri": model_uri, "bytes": str(size),
                   "max_model_len": str(plan.max_model_len), "dtype": plan.dtype,
                   "source": str(plan.local_dir) if plan.local_dir is not None else str(plan.repo_id)}
    echo(f"model uploaded to {model_uri} ({size} bytes, {state.timings['upload_s']} s)")
    return plan


def _start_engines(opts: LocalOptions, state: RunState, plan: ModelPlan, *, endpoint: str,
                   vllm_env: dict[str, str], logs: Path, echo: Callable[[str], None]) -> list[_Starting]:
    """Step 4: ``opts.replicas`` vLLM engines streaming the model from S3, until all are ready;
    their time to ready and its phases go into ``state.engines``."""
    model_uri = state.model["uri"]
    starting: list[_Starting] = []
    for index in range(opts.replicas):
        name = engine_name(index)
        port = free_port()
        argv = [str(opts.vllm_python), "-m", "vllm.entrypoints.openai.api_server", "--model", model_uri,
                "--load-format", "runai_streamer", "--served-model-name", plan.served_model_name,
                "--max-num-seqs", str(opts.max_num_seqs), "--max-model-len", str(plan.max_model_len),
                "--dtype", plan.dtype, "--host", "127.0.0.1", "--port", str(port),
                VLLM_SHUTDOWN_TIMEOUT_FLAG, str(ENGINE_DRAIN_S), *opts.extra_vllm_args]
        log = logs / f"{name}.log"
        start = time.monotonic()
        state.pids[name] = spawn(argv, log=log, env=_engine_env(vllm_env, opts, index))
        state.ports[name], state.urls[name] = port, f"http://127.0.0.1:{port}"
        state.engines[name] = {"url": state.urls[name]}
        starting.append(_Starting(name, state.pids[name], state.urls[name], log, PhaseWatcher(log, start)))
        echo(f"vLLM {name} starting (log {log}) ...")
    state.save()
    _wait_engines(starting, opts.ready_timeout_s, endpoint)
    for e in starting:
        record = {"url": e.url, "time_to_ready_s": e.ready_s,
                  "phases": phase_durations(e.watcher.marks, e.ready_s or 0.0)}
        if e.watcher.stream:
            record["weights_stream"] = dict(e.watcher.stream)
        state.engines[e.name] = record
    return starting


def _start_gateway(opts: LocalOptions, state: RunState, plan: ModelPlan, engines: list[_Starting], *,
                   folder: Path, base_env: dict[str, str], logs: Path) -> None:
    """Step 5: the gateway in front of the engines, their URLs in the gateway's endpoints file."""
    endpoints_file = folder / ENDPOINTS_FILE
    endpoints_file.write_text(json.dumps([e.url for e in engines]))
    gw_port = free_port()
    gw_env = {**base_env, **settings_env(upstream_endpoints_file=endpoints_file,
                                         served_model_name=plan.served_model_name, port=gw_port)}
    gw_env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + gw_env["PYTHONPATH"] if gw_env.get("PYTHONPATH") else "")
    state.pids["gateway"] = spawn(
        [sys.executable, "-m", "services.gateway", "--host", opts.host],  # the container's entry point
        log=logs / "gateway.log", env=gw_env, cwd=REPO_ROOT,
    )
    state.ports["gateway"] = gw_port
    state.urls["gateway"] = local_url(opts.host, gw_port)
    state.urls["chat"] = public_url(opts.host, gw_port) + "/"
    state.save()
    _wait_http(f"{state.urls['gateway']}{GATEWAY_READY_PATH}", timeout_s=60, pid=state.pids["gateway"],
               name="gateway", log=logs / "gateway.log")


def up(opts: LocalOptions, echo: Callable[[str], None] = print) -> RunState:
    """Start the stack; returns the saved state. Stops what it started if a step fails.

    Raises:
        PreflightError: the engine venv, the streamer's S3 extra or a variable is missing.
        AddressError: ``opts.host`` is not usable (or no LAN address for ``0.0.0.0``).
        LocalStackError: a component failed to start (log path in the message).
    """
    folder = run_dir(opts.run_dir)
    _check_options(opts, folder)  # before anything starts
    folder.mkdir(parents=True, exist_ok=True)
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    state = RunState(run_dir=str(folder), host=opts.host)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUNAI_STREAMER_"))}
    try:
        s3_port = free_port()
        endpoint = f"http://127.0.0.1:{s3_port}"
        vllm_env = _engine_base_env(opts, base_env, endpoint)
        t0 = time.monotonic()
        _start_s3(state, base_env, s3_port, endpoint, logs, echo)
        upload_env = {**base_env, **streamer_env(endpoint), "PYTHONPATH": str(REPO_ROOT)}
        plan = _publish_model(opts, state, endpoint=endpoint, vllm_env=vllm_env, upload_env=upload_env, logs=logs,
                              echo=echo)
        engines = _start_engines(opts, state, plan, endpoint=endpoint, vllm_env=vllm_env, logs=logs, echo=echo)
        _start_gateway(opts, state, plan, engines, folder=folder, base_env=base_env, logs=logs)
        state.timings["total_up_s"] = round(time.monotonic() - t0, 2)
        state.save()
        return state
    except BaseException:
        stop_all(state)
        if state.pids:  # something had started: nothing of it is left, so `local status` says so
            state.pids = {}
            state.save()
        raise


# `local down` lets the gateway drain as the cluster's pods do: open streams get the gateway's graceful
# window, then it exits on its own; SIGKILL only after that.
GATEWAY_STOP_GRACE_S = GRACEFUL_SHUTDOWN_SECONDS + 5.0
# An engine drains its own in-flight requests at SIGTERM (as a pod's vLLM does, see
# VllmConfig.shutdown_timeout_seconds) for ENGINE_DRAIN_S and keeps the rest of its stop grace for
# its teardown. vLLM's drain timeout also bounds that teardown: an idle engine's workers took 3 s
# to exit here, and with a 5-s drain its engine core was force-killed at 5 s ("force killing
# remaining process EngineCore" in the log); 15 s lets it exit on its own.
ENGINE_STOP_GRACE_S = 30.0
ENGINE_DRAIN_S = int(ENGINE_STOP_GRACE_S) - VLLM_EXIT_MARGIN_SECONDS


def _stop_grace_s(name: str) -> float:
    """Seconds between SIGTERM and SIGKILL for the component ``name``."""
    if name == "gateway":
        return GATEWAY_STOP_GRACE_S
    return ENGINE_STOP_GRACE_S if name.startswith(ENGINE_PREFIX) else STOP_GRACE_S


def stop_all(state: RunState) -> dict[str, bool]:
    """Stop every process group in ``state``: gateway, engines, then S3; ``{name: stopped}``."""
    order = ["gateway", *[n for n in state.pids if n.startswith(ENGINE_PREFIX)], "s3"]
    order += [n for n in state.pids if n not in order]
    return {name: stop_group(state.pids[name], grace_s=_stop_grace_s(name)) for name in order if name in state.pids}


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
    (Path(state.run_dir) / "last_pids.json").write_text(json.dumps(stopped))
    return result


@dataclass(frozen=True)
class EngineLoad:
    """Requests at one engine now (from its /metrics): running, waiting, and their sum in flight."""

    running: float
    waiting: float

    @property
    def in_flight(self) -> float:
        """Requests the engine holds: running + waiting."""
        return self.running + self.waiting


# An engine busy decoding on a shared CPU answers /metrics slowly: `local status` during the queue
# profile (two CPU engines, 16 users, 2 cores) once got no answer from one engine within 3 s.
METRICS_SCRAPE_TIMEOUT_S = 10.0


def engine_load(url: str, client: httpx.Client | None = None,
                timeout_s: float = METRICS_SCRAPE_TIMEOUT_S) -> EngineLoad | None:
    """Scrape ``url``/metrics for ``vllm:num_requests_running`` and ``..._waiting``; None when
    unreachable, not answering within ``timeout_s`` seconds, or without those metrics."""
    from qvllm.dashboard.data.prom import ParsedMetrics
    from app_config.constants import METRIC_RUNNING, METRIC_WAITING

    try:
        text = (client or httpx).get(url.rstrip("/") + "/metrics", timeout=timeout_s).text
        parsed = ParsedMetrics.from_text(text)
    except (httpx.HTTPError, ValueError):
        return None
    running, waiting = parsed.total(METRIC_RUNNING), parsed.total(METRIC_WAITING)
    if running is None or waiting is None:
        return None
    return EngineLoad(running, waiting)


def status(folder: Path | None = None) -> dict[str, str]:
    """``{component: "running" | "stopped" | "ready" | ...}`` with a health probe of engines and gateway."""
    state = read_state(folder)
    if state is None:
        return {}
    out = {name: ("running" if alive(pid) else "stopped") for name, pid in state.pids.items()}
    probes = [(name, VLLM_HEALTH_PATH) for name in state.engines] + [("gateway", GATEWAY_READY_PATH)]
    for name, path in probes:
        if out.get(name) == "running":
            try:
                code = httpx.get(state.urls[name] + path, timeout=3).status_code
                out[name] = "ready" if code == 200 else f"running (HTTP {code})"
            except httpx.HTTPError as exc:
                out[name] = f"running (no answer: {type(exc).__name__})"
    return out


__all__ = ["AddressError", "LocalOptions", "LocalStackError", "PreflightError", "down", "engine_load",
           "status", "up"]
