"""The in-cluster load-test Job chart: rendered with cdk8s, validated against Kubernetes 1.35 schemas."""

from __future__ import annotations

import cdk8s
import kubernetes_validate
import pytest

from k8s_charts.loadtest_job import LoadTestJobChart, LoadTestJobProps
from qvllm.loadtest.sources import loadtest_sources

URL = "https://d111111abcdef8.cloudfront.net"


@pytest.fixture(scope="module")
def manifests():
    chart = LoadTestJobChart(cdk8s.Testing.app(), "loadtest", LoadTestJobProps(target_url=URL, sources=loadtest_sources()))
    return cdk8s.Testing.synth(chart)


def test_valid_for_kubernetes_1_35(manifests):
    assert [m["kind"] for m in manifests] == ["ConfigMap", "Job"]
    for obj in manifests:
        kubernetes_validate.validate(obj, "1.35", strict=True)


def test_job_runs_locust_headless_against_the_public_url(manifests):
    configmap, job = manifests
    pod = job["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--host") + 1] == URL
    assert "--headless" in args and args[args.index("--load-profile") + 1] == "demo"
    assert job["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    # every mounted file comes from the ConfigMap, the locustfile included
    items = pod["volumes"][0]["configMap"]["items"]
    assert {i["key"] for i in items} == set(configmap["data"])
    assert "qvllm/loadtest/locustfile.py" in {i["path"] for i in items}
    assert "class StageShape" in configmap["data"]["qvllm.loadtest.locustfile.py"]


def test_props_refuse_a_non_url():
    with pytest.raises(ValueError, match="target_url"):
        LoadTestJobProps(target_url="vllm.inference:8000", sources=loadtest_sources())
