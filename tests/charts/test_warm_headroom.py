"""Warm GPU headroom (``scaling.warm_gpu_nodes``): the placeholder pods render, validate, and have the
scheduling properties the headroom relies on, checked by the rules of the components that act on them.

A Kubernetes scheduler cannot run here, so the two rules that decide a preemption are replayed from
kube-scheduler's source (DefaultPreemption, Kubernetes 1.35:
https://github.com/kubernetes/kubernetes/blob/v1.35.0/pkg/scheduler/framework/plugins/defaultpreemption/default_preemption.go):
a pending pod may preempt only when its ``preemptionPolicy`` is not ``Never``
(``PodEligibleToPreemptOthers``), and only pods of strictly lower priority are victims
(``SelectVictimsOnNode``). A pod's priority and preemption policy come from its PriorityClass, else
from the one ``globalDefault`` class, else 0 and ``PreemptLowerPriority`` (the Priority admission
plugin: https://github.com/kubernetes/kubernetes/blob/v1.35.0/plugin/pkg/admission/priority/admission.go).
"""

from __future__ import annotations

import pytest

from app_config import ConfigError, config_from_dict
from app_config import constants as c
from app_config.versions import PAUSE_IMAGE, VLLM_IMAGE
from k8s_charts import DeployValues, render_all
from tests.charts.conftest import find
from tests.support.k8s_schemas import validate_any

NODEPOOL_LABEL = "karpenter.sh/nodepool"
DEFAULT_PREEMPTION_POLICY = "PreemptLowerPriority"


@pytest.fixture(scope="module")
def rendered_headroom():
    return render_all(config_from_dict({"scaling": {"warm_gpu_nodes": 2}}))


@pytest.fixture(scope="module")
def objects(rendered_headroom):
    return [obj for objs in rendered_headroom.values() for obj in objs]


def _pod(objects, name):
    return find(objects, "Deployment", name)["spec"]["template"]["spec"]


def _priority_classes(objects):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "PriorityClass"}


def admitted_priority(pod: dict, classes: dict[str, dict]) -> tuple[int, str]:
    """(priority, preemptionPolicy) the Priority admission plugin gives ``pod``."""
    name = pod.get("priorityClassName")
    if name is None:
        defaults = [pc for pc in classes.values() if pc.get("globalDefault")]
        if not defaults:
            return 0, DEFAULT_PREEMPTION_POLICY
        name = defaults[0]["metadata"]["name"]
    pc = classes[name]  # a pod naming a class that does not exist is refused at admission
    return pc["value"], pc.get("preemptionPolicy", DEFAULT_PREEMPTION_POLICY)


def may_preempt(preemptor: dict, victim: dict, classes: dict[str, dict]) -> bool:
    """kube-scheduler's DefaultPreemption: ``preemptor`` may evict ``victim`` to get its node."""
    priority, policy = admitted_priority(preemptor, classes)
    return policy != "Never" and admitted_priority(victim, classes)[0] < priority


def test_headroom_renders_only_when_asked_for(rendered, rendered_headroom):
    assert "warm_headroom" not in rendered  # default: 0 warm nodes
    assert not any(o["kind"] == "PriorityClass" for objs in rendered.values() for o in objs)
    deployment = find(rendered_headroom["warm_headroom"], "Deployment", c.WARM_HEADROOM_NAME)
    assert deployment["spec"]["replicas"] == 2


def test_headroom_objects_validate(rendered_headroom):
    for obj in rendered_headroom["warm_headroom"]:
        validate_any(obj)


def test_vllm_preempts_a_placeholder_and_a_placeholder_preempts_nothing(objects):
    classes = _priority_classes(objects)
    placeholder, vllm = _pod(objects, c.WARM_HEADROOM_NAME), _pod(objects, c.VLLM_NAME)
    assert may_preempt(vllm, placeholder, classes)
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] == "Deployment"]
    assert len(pods) >= 4
    for other in pods:
        assert not may_preempt(placeholder, other, classes), "a placeholder must never evict anything"
        if other is not placeholder:
            # below every other pod of ours: none of them waits behind a placeholder
            assert admitted_priority(placeholder, classes)[0] < admitted_priority(other, classes)[0]
    assert not any(pc.get("globalDefault") for pc in classes.values()), "no class may change every pod's priority"


def test_the_rules_replayed_can_fail():
    """The replayed rules refuse what the scheduler refuses: equal priority, or a Never preemptor."""
    classes = {"low": {"metadata": {"name": "low"}, "value": -100, "preemptionPolicy": "Never"}}
    assert not may_preempt({}, {}, classes)  # equal priority (0): no victim
    assert not may_preempt({"priorityClassName": "low"}, {"priorityClassName": "low"}, classes)
    assert may_preempt({}, {"priorityClassName": "low"}, classes)
    assert not may_preempt({"priorityClassName": "low"}, {}, classes)


def test_placeholder_asks_for_exactly_one_vllm_pod(objects):
    """Same requests: Karpenter launches a node one vLLM pod fits on, and evicting one placeholder
    frees exactly what one vLLM pod needs (the GPUs above all)."""
    vllm = _pod(objects, c.VLLM_NAME)["containers"][0]["resources"]
    placeholder_pod = _pod(objects, c.WARM_HEADROOM_NAME)
    (container,) = placeholder_pod["containers"]
    assert container["resources"]["requests"] == vllm["requests"]
    assert container["resources"]["limits"] == {c.GPU_RESOURCE: vllm["limits"][c.GPU_RESOURCE]}
    for init in placeholder_pod["initContainers"]:
        assert "resources" not in init  # an init container's requests would count instead if larger


def test_placeholder_lands_where_vllm_does(objects):
    """Node selector and tolerations are vLLM's, and they admit the GPU NodePool's nodes: the label
    Karpenter puts on them and every taint of the pool's template."""
    placeholder, vllm = _pod(objects, c.WARM_HEADROOM_NAME), _pod(objects, c.VLLM_NAME)
    assert placeholder["nodeSelector"] == vllm["nodeSelector"]
    assert placeholder["tolerations"] == vllm["tolerations"]
    pool = find(objects, "NodePool", c.GPU_NODEPOOL_NAME)
    node_labels = {NODEPOOL_LABEL: pool["metadata"]["name"]}
    assert placeholder["nodeSelector"].items() <= node_labels.items()
    for taint in pool["spec"]["template"]["spec"]["taints"]:
        assert any(
            t["key"] == taint["key"] and t.get("effect") in (None, taint["effect"]) and t["operator"] == "Exists"
            for t in placeholder["tolerations"]
        ), taint


def test_placeholder_pulls_the_vllm_image_through_the_cache(objects):
    """The init container runs the vLLM pod's own image, so the spare node already holds it; both
    images come through the ECR pull-through cache."""
    registry = DeployValues.placeholders().image_registry
    pod = _pod(objects, c.WARM_HEADROOM_NAME)
    vllm_image = _pod(objects, c.VLLM_NAME)["containers"][0]["image"]
    (init,) = pod["initContainers"]
    assert init["image"] == vllm_image and init["command"] == ["/bin/true"]
    (container,) = pod["containers"]
    assert container["image"] == f"{registry}/qvllm/k8s/{PAUSE_IMAGE.split('/', 1)[1]}"
    direct = render_all(config_from_dict({"scaling": {"warm_gpu_nodes": 1}, "images": {"pull_through_cache": False}}))
    direct_pod = find(direct["warm_headroom"], "Deployment")["spec"]["template"]["spec"]
    assert [direct_pod["initContainers"][0]["image"], direct_pod["containers"][0]["image"]] == [VLLM_IMAGE, PAUSE_IMAGE]


def test_placeholder_frees_its_node_at_once_and_never_surges(objects):
    deployment = find(objects, "Deployment", c.WARM_HEADROOM_NAME)
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 0
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0  # a surged placeholder = one more GPU node
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert not any(
        o["kind"] == "PodDisruptionBudget" and selector.items() <= o["spec"]["selector"]["matchLabels"].items()
        for o in objects
    ), "a PDB would make preemption try to spare a placeholder"


def test_placeholder_meets_the_restricted_pod_security_standard(objects):
    pod = _pod(objects, c.WARM_HEADROOM_NAME)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in [*pod["initContainers"], *pod["containers"]]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize(
    "data, expected",
    [
        # default limits: 40 GPUs, 400 vCPU; 10 vLLM nodes + 31 warm g5.xlarge need 41 GPUs
        ({"scaling": {"warm_gpu_nodes": 31}},
         "karpenter.gpu.limit_gpus: 40 cannot hold scaling.max_replicas (10) + scaling.warm_gpu_nodes (31) = 41 nodes"),
        ({"scaling": {"warm_gpu_nodes": 2}, "karpenter": {"gpu": {"limit_cpu": "44"}}},
         "karpenter.gpu.limit_cpu: 44 cannot hold scaling.max_replicas (10) + scaling.warm_gpu_nodes (2) = 12 nodes "
         "of the smallest allowed GPU instance g5.xlarge (4 vCPU each)"),
    ],
)
def test_nodepool_limits_must_hold_the_headroom_too(data, expected):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert expected in str(info.value), str(info.value)
    config_from_dict({"scaling": {"warm_gpu_nodes": 30}})  # 10 + 30 = 40 GPUs: fits exactly


def test_negative_headroom_is_refused_naming_the_field():
    with pytest.raises(ConfigError, match=r"scaling\.warm_gpu_nodes"):
        config_from_dict({"scaling": {"warm_gpu_nodes": -1}})
