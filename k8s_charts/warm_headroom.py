"""Warm GPU headroom: placeholder pods that keep ``scaling.warm_gpu_nodes`` spare GPU nodes up.

Each placeholder asks for exactly what one vLLM pod asks for (GPUs, CPU, memory) on the GPU
NodePool (same node selector and toleration), so Karpenter launches one vLLM-sized node for it and
counts it against the pool's limits. Its init container runs the vLLM image (``/bin/true``), so the
node pulls that image while it is still spare; the placeholder itself is the pause image. Both
images come through the same pull path as every other image (:class:`app_config.images.ImageSource`).

Why a new vLLM pod starts on that node at once (sources read at the pinned versions):

* Priority: the placeholders' PriorityClass is below 0, the priority of every pod without a class
  (vLLM's), and is not the global default. kube-scheduler's DefaultPreemption plugin picks victims
  only among pods of strictly lower priority than the pending pod (``SelectVictimsOnNode``), and a
  pod whose ``preemptionPolicy`` is ``Never`` preempts nothing (``PodEligibleToPreemptOthers``):
  https://github.com/kubernetes/kubernetes/blob/v1.35.0/pkg/scheduler/framework/plugins/defaultpreemption/default_preemption.go
  So vLLM preempts a placeholder; a placeholder never preempts anything (its class says ``Never``).
* Karpenter (v1.14.1) ignores a pending pod that has a nominated node, i.e. a preemptor waiting for
  its victims to go (``IsProvisionable`` / ``IsPreempting``,
  https://github.com/kubernetes-sigs/karpenter/blob/v1.14.1/pkg/utils/pod/scheduling.go), so the vLLM pod
  does not get a node of its own; the evicted placeholder, recreated by its Deployment and pending,
  does: that is the headroom being replaced in the background. Karpenter's provisioner does not
  look at pod priority, so a placeholder gets a node like any pod.
* A node holding a placeholder is not empty, so the pool's ``WhenEmpty`` consolidation keeps it.
* ``terminationGracePeriodSeconds: 0``: the evicted placeholder frees its GPU at once.

No PodDisruptionBudget: preemption tries to respect one, and nothing about a placeholder is worth
delaying a vLLM pod for. Rolling updates never surge (``maxSurge: 0``): a surged placeholder
would be one more GPU node.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdk8s_plus_35 import k8s
from constructs import Construct

from app_config.constants import (
    GPU_RESOURCE,
    INFERENCE_NAMESPACE,
    WARM_HEADROOM_NAME,
    WARM_HEADROOM_PRIORITY,
)
from app_config.model import VllmConfig
from k8s_charts.common import (
    QvllmChart,
    common_labels,
    deployment,
    object_meta,
    quantities,
    restricted_container_security_context,
    restricted_pod_security_context,
    selector_labels,
)
from k8s_charts.vllm import gpu_node_selector, gpu_tolerations, vllm_requests

PLACEHOLDER_CONTAINER = "placeholder"
PREPULL_CONTAINER = "pull-vllm-image"


@dataclass(frozen=True)
class WarmHeadroomProps:
    """Props of :class:`WarmHeadroomChart`.

    Attributes:
        vllm: the ``vllm`` config section with its image as the cluster pulls it (requests, GPUs).
        replicas: placeholder pods, one spare GPU node each (``scaling.warm_gpu_nodes``, > 0).
        pause_image: the placeholder's image as the cluster pulls it.
        namespace: namespace of the Deployment (the PriorityClass is cluster-scoped).
    """

    vllm: VllmConfig
    replicas: int
    pause_image: str
    namespace: str = INFERENCE_NAMESPACE


class WarmHeadroomChart(QvllmChart):
    """PriorityClass (lowest, never preempts) and a Deployment of ``replicas`` placeholder pods."""

    def __init__(self, scope: Construct, id: str, props: WarmHeadroomProps) -> None:
        super().__init__(scope, id)
        labels = common_labels(WARM_HEADROOM_NAME)
        k8s.KubePriorityClass(
            self,
            "priority-class",
            metadata=object_meta(WARM_HEADROOM_NAME, labels),
            value=WARM_HEADROOM_PRIORITY,
            global_default=False,
            preemption_policy="Never",
            description="Warm GPU headroom placeholders: any vLLM pod preempts them; they preempt nothing.",
        )
        vllm = props.vllm
        pod_spec = k8s.PodSpec(
            priority_class_name=WARM_HEADROOM_NAME,
            termination_grace_period_seconds=0,
            automount_service_account_token=False,
            node_selector=gpu_node_selector(),
            tolerations=gpu_tolerations(),
            security_context=restricted_pod_security_context(),
            init_containers=[
                k8s.Container(
                    name=PREPULL_CONTAINER,
                    image=vllm.image,
                    command=["/bin/true"],
                    security_context=restricted_container_security_context(),
                )
            ],
            containers=[
                k8s.Container(
                    name=PLACEHOLDER_CONTAINER,
                    image=props.pause_image,
                    resources=k8s.ResourceRequirements(
                        requests=quantities(vllm_requests(vllm)),
                        limits=quantities({GPU_RESOURCE: str(vllm.gpus_per_pod)}),
                    ),
                    security_context=restricted_container_security_context(),
                )
            ],
        )
        deployment(
            self,
            name=WARM_HEADROOM_NAME,
            namespace=props.namespace,
            labels=labels,
            selector=selector_labels(WARM_HEADROOM_NAME),
            pod_spec=pod_spec,
            replicas=props.replicas,
            strategy=k8s.DeploymentStrategy(
                type="RollingUpdate",
                rolling_update=k8s.RollingUpdateDeployment(
                    max_surge=k8s.IntOrString.from_number(0), max_unavailable=k8s.IntOrString.from_number(1)
                ),
            ),
        )
        self._check()
