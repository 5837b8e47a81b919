"""The vLLM pod's security settings work with the real engine: the CPU engine (same vLLM release as
the image) runs as the rendered ``runAsUser``, with no capabilities, ``no_new_privs``, a read-only
root filesystem and only the rendered writable mounts, with the rendered environment; it streams
the model from S3 (moto) with the Run:ai streamer as the pod does, and serves a completion
(tests/support/pod_confinement.py sets that up in a mount namespace)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from app_config.constants import VLLM_CACHE_ROOT
from k8s_charts.vllm import COMPILE_CACHE_PATH, WRITABLE_PATHS, writable_env
from tests.charts.conftest import find
from tests.support.pod_confinement import PodConfinement, process_identity, venv_readable
from tests.support.vllm_server import REPO_ROOT, VLLM_PYTHON, running_vllm


def _vllm_pod(all_objects: list[dict[str, Any]]) -> dict[str, Any]:
    return find(all_objects, "Deployment", "vllm")["spec"]["template"]["spec"]


def _confinement(all_objects: list[dict[str, Any]], root: Path) -> tuple[PodConfinement, dict[str, str]]:
    """The rendered pod's UID, writable mounts and environment."""
    pod = _vllm_pod(all_objects)
    (container,) = pod["containers"]
    writable = tuple(m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly"))
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    root.mkdir(exist_ok=True)
    return PodConfinement(root, pod["securityContext"]["runAsUser"], writable, venv_readable(REPO_ROOT / ".venv-vllm")), env


def _descendants(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [int(c) for c in children.read_text().split()] if children.exists() else []
    return found + [d for c in found for d in _descendants(c)]


def test_rendered_writable_paths_and_env_are_the_chart_owners(all_objects):
    (container,) = _vllm_pod(all_objects)["containers"]
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    # Then, with the compile cache on (the default): VLLM_CACHE_ROOT's scratch and the EFS claim inside it.
    assert mounts == [*WRITABLE_PATHS.values(), VLLM_CACHE_ROOT, COMPILE_CACHE_PATH]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert writable_env().items() <= env.items()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_confinement_denies_writes_outside_the_writable_paths(all_objects, tmp_path):
    """The harness itself can fail a write: only the pod's writable paths take one."""
    confinement, env = _confinement(all_objects, tmp_path / "root")
    model = tmp_path / "model"
    model.mkdir()
    probe = (
        "import os\n"
        "for p in ['/etc/qvllm', '/srv/model/x', '/home/x', '/opt/x', '/tmp/ok', '/home/vllm/ok', '/dev/shm/ok']:\n"
        "    try:\n        open(p, 'w').close(); print('wrote', p)\n"
        "    except OSError as e:\n        print('denied', p)\n"
        "print('uid', os.getuid(), os.getgid(), os.environ['HOME'])\n"
    )
    import subprocess

    out = subprocess.run(
        confinement.wrap([str(VLLM_PYTHON), "-c", probe], model, env | {"PATH": "/usr/bin:/bin"}),
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == [
        "denied /etc/qvllm", "denied /srv/model/x", "denied /home/x", "denied /opt/x",
        "wrote /tmp/ok", "wrote /home/vllm/ok", "wrote /dev/shm/ok", "uid 10001 10001 /home/vllm",
    ]


@pytest.mark.engine
def test_engine_serves_as_the_pods_user_with_only_its_writable_paths(all_objects, tmp_path):
    import boto3

    from qvllm.local.env import streamer_env
    from qvllm.tinymodel import generate_tiny_model
    from tests.support.moto_server import MOTO_CLIENT_KWARGS, running_moto

    confinement, env = _confinement(all_objects, tmp_path / "root")
    model = generate_tiny_model(tmp_path / "model")
    with running_moto() as url:
        s3 = boto3.client("s3", endpoint_url=url, **MOTO_CLIENT_KWARGS)
        s3.create_bucket(Bucket="models")
        for path in model.iterdir():
            s3.upload_file(str(path), "models", f"tiny/{path.name}")
        with running_vllm(
            tmp_path, confinement=confinement, env=env | streamer_env(url), model_dir=model, max_model_len=256,
            model_uri="s3://models/tiny/", extra_args=("--load-format", "runai_streamer"),
        ) as server:
            identities = _serve_one(server)
    assert len(identities) >= 2  # the API server and its engine core process
    for pid, ident in identities.items():
        assert ident["Uid"] == ident["Gid"] == "10001", (pid, ident)
        assert int(ident["CapEff"], 16) == 0 and int(ident["CapBnd"], 16) == 0, (pid, ident)
        assert ident["NoNewPrivs"] == "1", (pid, ident)


def _serve_one(server) -> dict[int, dict[str, str]]:  # type: ignore[no-untyped-def]
    """One completion through the engine; then the identity of its processes."""
    body = json.dumps({"model": server.served_model_name, "prompt": "Hello", "max_tokens": 4}).encode()
    request = urllib.request.Request(server.base_url + "/v1/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as resp:  # noqa: S310 - loopback
        answer = json.load(resp)
    assert answer["choices"][0]["text"] is not None and answer["usage"]["completion_tokens"] >= 1
    return {pid: dict(process_identity(pid)) for pid in [server.pid, *_descendants(server.pid)]}
