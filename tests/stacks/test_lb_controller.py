"""The AWS Load Balancer Controller's Service webhook cannot fail the other charts' releases.

Chart 3.5.0 registers ``mservice.elbv2.k8s.aws`` for every Service CREATE with ``failurePolicy:
Fail`` unless ``enableServiceMutatorWebhook`` is false (helm/aws-load-balancer-controller/
templates/webhook.yaml and values.yaml at v3.5.0); while the controller's pods are not ready, any
release that creates a Service fails.
"""

from __future__ import annotations

import json

from tests.stacks.conftest import app_graph, release_values
from tests.support.cfn_graph import ResourceId
from tests.support.kubectl_handler import HELM_CHART_TYPE, MANIFEST_TYPE

LB_RELEASE = "aws-load-balancer-controller"


def test_b10_service_webhook_is_off_in_the_values_helm_merges(rehearsal) -> None:
    values = release_values(rehearsal, LB_RELEASE)
    assert values["enableServiceMutatorWebhook"] is False, values


def test_b10_every_release_and_service_manifest_waits_for_the_lb_controller(default_app, cluster_template) -> None:
    resources = cluster_template["Resources"]
    graph, stack = app_graph(default_app), default_app.stacks.cluster.stack_name
    (lb,) = [lid for lid, r in resources.items()
             if r["Type"] == HELM_CHART_TYPE and r["Properties"]["Release"] == LB_RELEASE]
    racing = []
    for lid, resource in resources.items():
        if lid == lb:
            continue
        if resource["Type"] == HELM_CHART_TYPE or (
            resource["Type"] == MANIFEST_TYPE and '\\"kind\\":\\"Service\\"' in json.dumps(resource["Properties"]["Manifest"])
        ):
            if not graph.depends_on(ResourceId(stack, lid), ResourceId(stack, lb)):
                racing.append(lid)
    assert not racing, f"created without waiting for the load balancer controller: {racing}"
