"""The gateway pod's security settings work with the real gateway process: it starts and answers
``/healthz`` as the rendered ``runAsUser``, with no capabilities, ``no_new_privs``, a read-only root
filesystem and only its rendered writable mount (``/tmp``), with the rendered environment
(tests/support/pod_confinement.py). Only the port is moved off 8000 (a shared loopback)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from services.gateway.settings import settings_env
from tests.charts.conftest import REPO_ROOT, find
from tests.support.pod_confinement import PodConfinement, process_identity, venv_readable
from tests.support.vllm_server import free_port


def test_gateway_serves_as_the_pods_user_on_a_read_only_root(all_objects, tmp_path):
    pod = find(all_objects, "Deployment", "gateway")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    writable = tuple(m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly"))
    assert writable == ("/tmp",)
    port = free_port()
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e} | settings_env(port=port)
    env |= {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)}  # the image's WORKDIR holds the code
    (tmp_path / "root").mkdir()
    venv = Path(sys.prefix)
    confinement = PodConfinement(tmp_path / "root", pod["securityContext"]["runAsUser"], writable,
                                 (*venv_readable(venv), REPO_ROOT))  # the code, as the image's WORKDIR holds it
    empty = tmp_path / "no-model"
    empty.mkdir()
    cmd = confinement.wrap([str(venv / "bin" / "python"), "-m", "services.gateway"], empty, env)
    log = tmp_path / "gateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603 - fixed argv
    try:
        status = None
        deadline = time.monotonic() + 60
        while status is None and proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:  # noqa: S310
                    status = resp.status
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        assert status == 200, log.read_text()[-3000:]
        ident = process_identity(proc.pid)
        assert ident["Uid"] == ident["Gid"] == str(pod["securityContext"]["runAsUser"]) == "10001", ident
        assert int(ident["CapEff"], 16) == 0 and ident["NoNewPrivs"] == "1", ident
    finally:
        proc.terminate()
        proc.wait(timeout=30)
