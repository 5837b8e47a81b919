"""A Kubernetes Job running the Locust load test headless, in the cluster (not deployed by default).

It aims at the public URL (CloudFront), never at vLLM or the gateway Service directly, so the
test covers the edge, WAF and gateway like real users (a defect of the reference demo). The
locustfile and its two helper modules ship in a ConfigMap mounted as a Python package; the
Job's exit code is the threshold verdict (p95 < 20 s, failures < 15 %).

Render it with ``cdk8s.Testing.synth`` or an ``App``; apply by hand when wanted::

    kubectl apply -f loadtest-job.yaml && kubectl logs -f job/qvllm-loadtest -n inference
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cdk8s
from constructs import Construct

from app_config.constants import INFERENCE_NAMESPACE
from app_config.versions import LOCUST_IMAGE
from k8s_charts.common import QvllmChart, common_labels, k8s_object
from qvllm.loadtest.profiles import PROFILES  # plain data, no Locust import

LOADTEST_NAME = "qvllm-loadtest"
MOUNT_PATH = "/opt/qvllm"


def _key(path: str) -> str:
    """ConfigMap keys may not contain '/': ``qvllm/loadtest/x.py`` -> ``qvllm.loadtest.x.py``."""
    return path.replace("/", ".")


@dataclass(frozen=True)
class LoadTestJobProps:
    """Props of :class:`LoadTestJobChart`.

    Attributes:
        target_url: the public URL (``https://dxxxx.cloudfront.net``), required.
        sources: ``((relative path, text), ...)`` of the load-test package
            (:func:`qvllm.loadtest.sources.loadtest_sources`).
        load_profile: ``demo`` (30 min, 5 -> 150 users) or ``short`` (2 min).
        max_tokens: tokens per request (the reference demo uses 50).
        model: served model name; empty = learned from ``/v1/models``.
        namespace, name, image: where and what runs.
        cpu_request, memory_request: the Locust pod's requests.
        ttl_seconds_after_finished: how long the finished Job stays for its logs.
    """

    target_url: str
    sources: tuple[tuple[str, str], ...] = field(repr=False)
    load_profile: Literal["demo", "short"] = "demo"
    max_tokens: int = 50
    model: str = ""
    namespace: str = INFERENCE_NAMESPACE
    name: str = LOADTEST_NAME
    image: str = LOCUST_IMAGE
    cpu_request: str = "1"
    memory_request: str = "1Gi"
    ttl_seconds_after_finished: int = 86400

    def __post_init__(self) -> None:
        if not self.target_url.startswith(("https://", "http://")):
            raise ValueError(f"LoadTestJobProps.target_url {self.target_url!r} must be the public http(s) URL")
        if not any(path.endswith("locustfile.py") for path, _ in self.sources):
            raise ValueError("LoadTestJobProps.sources must include qvllm/loadtest/locustfile.py")


class LoadTestJobChart(QvllmChart):
    """ConfigMap (the load-test package) + Job (``locust --headless`` against the public URL)."""

    def __init__(self, scope: Construct, id: str, props: LoadTestJobProps) -> None:
        super().__init__(scope, id)
        labels = common_labels(props.name)
        k8s_object(
            self, "sources", api_version="v1", kind="ConfigMap",
            metadata=cdk8s.ApiObjectMetadata(name=props.name, namespace=props.namespace, labels=labels),
            data={_key(path): text for path, text in props.sources},
        )
        locustfile = next(path for path, _ in props.sources if path.endswith("locustfile.py"))
        args = ["-f", f"{MOUNT_PATH}/{locustfile}", "--headless", "--only-summary", "--host", props.target_url.rstrip("/"),
                "--load-profile", props.load_profile, "--max-tokens", str(props.max_tokens)]
        if props.model:
            args += ["--model", props.model]
        container = {
            "name": "locust",
            "image": props.image,
            "command": ["locust"],
            "args": args,
            "env": [{"name": "PYTHONPATH", "value": MOUNT_PATH}],
            "resources": {"requests": {"cpu": props.cpu_request, "memory": props.memory_request},
                          "limits": {"memory": props.memory_request}},
            "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "loadtest", "mountPath": MOUNT_PATH, "readOnly": True}],
        }
        k8s_object(
            self, "job", api_version="batch/v1", kind="Job",
            metadata=cdk8s.ApiObjectMetadata(name=props.name, namespace=props.namespace, labels=labels),
            spec={
                "backoffLimit": 0,
                "activeDeadlineSeconds": int(PROFILES[props.load_profile].duration_s) + 600,
                "ttlSecondsAfterFinished": props.ttl_seconds_after_finished,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [container],
                        "volumes": [{"name": "loadtest", "configMap": {
                            "name": props.name,
                            "items": [{"key": _key(path), "path": path} for path, _ in props.sources],
                        }}],
                    },
                },
            },
        )
        self._check()
