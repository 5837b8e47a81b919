"""Environment for the Run:ai model streamer against a loopback S3-compatible server.

The streamer fails with opaque errors on non-AWS S3 unless all of the settings below are made
(https://github.com/run-ai/runai-model-streamer/issues/34).

A non-AWS endpoint needs: the endpoint URL (``AWS_ENDPOINT_URL``), path-style addressing
(``RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING=0``), the EC2 metadata lookup off
(``AWS_EC2_METADATA_DISABLED=true``), credentials (dummy ones do for moto) and a region.
Sources: run-ai/runai-model-streamer#34, #46, #154. ``RUNAI_STREAMER_S3_ENDPOINT`` (deprecated
in favour of ``AWS_ENDPOINT_URL``) is set only for streamer versions older than
:data:`STREAMER_ENDPOINT_VAR_UNTIL`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

DUMMY_KEY_ID = "qvllm-local"
DUMMY_SECRET = "qvllm-local-secret"
LOCAL_REGION = "us-east-1"
STREAMER_ENDPOINT_VAR_UNTIL = (0, 12)  # streamer versions below this also read RUNAI_STREAMER_S3_ENDPOINT

#: variable -> (required value or None for "any non-empty value", why it is needed)
REQUIRED: dict[str, tuple[str | None, str]] = {
    "AWS_ENDPOINT_URL": (None, "the loopback S3 endpoint; without it the streamer goes to AWS"),
    "RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING": ("0", "path-style addressing for a non-AWS endpoint"),
    "AWS_EC2_METADATA_DISABLED": ("true", "no EC2 instance-metadata lookup for credentials or region"),
    "AWS_ACCESS_KEY_ID": (None, "credentials (dummy ones are fine for the loopback server)"),
    "AWS_SECRET_ACCESS_KEY": (None, "credentials (dummy ones are fine for the loopback server)"),
    "AWS_DEFAULT_REGION": (None, "a region for request signing"),
}


class PreflightError(RuntimeError):
    """Something the local stack needs is missing; the message names each missing item."""


def streamer_env(endpoint_url: str, *, streamer_version: tuple[int, ...] | None = None) -> dict[str, str]:
    """The variables vLLM's process needs to stream weights from ``endpoint_url``."""
    env = {
        "AWS_ENDPOINT_URL": endpoint_url,
        "RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING": "0",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": DUMMY_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_REGION": LOCAL_REGION,
    }
    if streamer_version is not None and streamer_version < STREAMER_ENDPOINT_VAR_UNTIL:
        env["RUNAI_STREAMER_S3_ENDPOINT"] = endpoint_url
    return env


def missing_env(env: Mapping[str, str]) -> list[str]:
    """Problems with ``env`` for streaming from a loopback endpoint, one message per variable."""
    problems = []
    for name, (required, why) in REQUIRED.items():
        value = env.get(name, "")
        if not value:
            problems.append(f"{name} is not set ({why})")
        elif required is not None and value.lower() != required:
            problems.append(f"{name}={value!r}, expected {required!r} ({why})")
    return problems


def streamer_version(vllm_python: str | Path) -> tuple[int, ...] | None:
    """Version of ``runai-model-streamer-s3`` in the engine's Python, or None when it is not installed."""
    code = (
        "import importlib.metadata as m, importlib.util as u\n"
        "assert u.find_spec('runai_model_streamer_s3')\n"
        "print(m.version('runai-model-streamer-s3'))"
    )
    try:
        out = subprocess.run([str(vllm_python), "-c", code], capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    if out.returncode != 0:
        return None
    return tuple(int(p) for p in out.stdout.strip().split(".")[:3] if p.isdigit())


def preflight(vllm_python: str | Path, env: Mapping[str, str]) -> tuple[int, ...]:
    """Check the engine's Python, the streamer's S3 extra and the streamer env before starting.

    Returns the streamer version.

    Raises:
        PreflightError: naming every missing item (interpreter, ``runai-model-streamer[s3]``,
            each variable of :data:`REQUIRED`).
    """
    problems = []
    python = Path(vllm_python)
    version = None
    if not python.exists():
        problems.append(
            f"vLLM Python {str(python)!r} does not exist (make deps-engine, or pass --vllm-python)"
        )
    else:
        version = streamer_version(python)
        if version is None:
            problems.append(
                f"runai-model-streamer[s3] is not installed in {str(python)!r} "
                "(the S3 extra provides runai_model_streamer_s3)"
            )
    problems += missing_env(env)
    if problems:
        raise PreflightError("local stack preflight failed:\n  - " + "\n  - ".join(problems))
    assert version is not None
    return version
