"""Pod security of every pod we render: the namespace enforces the ``restricted`` Pod Security
Standard, and every pod template meets it (plus a read-only root filesystem whose writable paths
are emptyDir volumes).

The checks follow the standard's ``restricted`` profile, control by control
(https://kubernetes.io/docs/concepts/security/pod-security-standards/, version v1.35): the real
admission controller is Go code in the API server, which cannot run here.
"""

from __future__ import annotations

from typing import Any

import pytest

from app_config.constants import INFERENCE_NAMESPACE
from app_config.versions import KUBERNETES_VERSION
from tests.charts.conftest import find

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}
# "Volume Types" (restricted): only these volume sources.
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}
SECCOMP_ALLOWED = {"RuntimeDefault", "Localhost"}


def pod_templates(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(``kind/name``, pod spec) of every workload among ``objects``."""
    found = []
    for obj in objects:
        kind = obj["kind"]
        if kind not in WORKLOAD_KINDS:
            continue
        spec = obj["spec"]
        if kind == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        found.append((f"{kind}/{obj['metadata']['name']}", spec if kind == "Pod" else spec["template"]["spec"]))
    return found


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The ``restricted`` controls (baseline's included) that ``pod`` breaks, as short texts."""
    problems = []
    pod_ctx = pod.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            problems.append(f"{flag} is set")
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']} of type {sorted(kinds)}")
    containers = [*(pod.get("initContainers") or []), *pod["containers"], *(pod.get("ephemeralContainers") or [])]
    for c in containers:
        ctx, name = c.get("securityContext") or {}, c["name"]
        if ctx.get("privileged"):
            problems.append(f"{name}: privileged")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            problems.append(f"{name}: hostPort")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation not false")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities not dropping ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {caps['add']}")
        if not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot not true")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp not in SECCOMP_ALLOWED:
            problems.append(f"{name}: seccompProfile {seccomp!r}")
    return problems


def read_only_root_violations(pod: dict[str, Any]) -> list[str]:
    """Containers whose root filesystem is writable, or that write to a volume that is neither pod
    scratch (emptyDir) nor a claim (vLLM's shared compile cache on EFS)."""
    empty_dirs = {v["name"] for v in pod.get("volumes") or [] if "emptyDir" in v or "persistentVolumeClaim" in v}
    problems = []
    for c in pod["containers"]:
        if (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
            problems.append(f"{c['name']}: readOnlyRootFilesystem not true")
        for mount in c.get("volumeMounts") or []:
            if not mount.get("readOnly") and mount["name"] not in empty_dirs:
                problems.append(f"{c['name']}: writable mount {mount['name']} is neither an emptyDir nor a claim")
    return problems


def test_our_namespace_enforces_restricted(all_objects):
    labels = find(all_objects, "Namespace", INFERENCE_NAMESPACE)["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == f"v{KUBERNETES_VERSION}"


def test_every_pod_we_render_meets_restricted_with_a_read_only_root(all_objects):
    pods = pod_templates(all_objects)
    assert {name for name, _ in pods} >= {"Deployment/vllm", "Deployment/gateway", "Deployment/otel-collector"}
    problems = {name: restricted_violations(pod) + read_only_root_violations(pod) for name, pod in pods}
    assert {name: p for name, p in problems.items() if p} == {}


def test_the_checker_finds_each_violation():
    """The guard can fail: a pod as the charts rendered them before (root, no seccomp, writable root)."""
    pod = {
        "containers": [{"name": "c", "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "hostPath": {"path": "/var"}}],
        "hostNetwork": True,
    }
    assert restricted_violations(pod) == [
        "hostNetwork is set", "volume data of type ['hostPath']", "c: allowPrivilegeEscalation not false",
        "c: adds capabilities ['NET_ADMIN']", "c: runAsNonRoot not true", "c: seccompProfile None",
    ]
    assert read_only_root_violations(pod) == [
        "c: readOnlyRootFilesystem not true", "c: writable mount data is neither an emptyDir nor a claim",
    ]


@pytest.mark.parametrize("name", ["vllm", "gateway", "otel-collector"])
def test_runs_as_the_high_uid(all_objects, name):
    from k8s_charts.common import RUN_AS_USER

    ctx = find(all_objects, "Deployment", name)["spec"]["template"]["spec"]["securityContext"]
    assert ctx["runAsUser"] == RUN_AS_USER >= 10000 and ctx["runAsNonRoot"] is True
