"""`cdk deploy --all` creates every chart or manifest after what it needs, on the app's real
dependency graph (tests/support/cfn_graph.py): custom resources need their CRDs (and the
controller serving their webhooks), namespaced objects their namespace, a ScaledObject its
scale target and its external scaler, Pods with a Pod Identity association that association,
Pods the PersistentVolumeClaims they mount, a statically bound claim its PersistentVolume, and a
CSI volume the EKS add-on running its driver.

The needs are read from the rendered objects in the template (``apiVersion``, ``namespace``,
``scaleTargetRef``, ``scalerAddress``, ``serviceAccountName``, ``claimName``, ``volumeName``,
``csi.driver``), not from the edges the stack
meant to add; an object whose need is served by nothing in the app fails too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.cfn_graph import AppGraph, ResourceId

HELM_CHART = "Custom::AWSCDK-EKS-HelmChart"
MANIFEST = "Custom::AWSCDK-EKS-KubernetesResource"
POD_IDENTITY = "AWS::EKS::PodIdentityAssociation"

# API group -> the Helm chart (its ``Chart`` property) that installs the group's CRDs and runs
# the controller answering its admission webhooks. Sources: karpenter-crd chart templates
# (karpenter.sh_nodepools / karpenter.k8s.aws_ec2nodeclasses, no webhooks since v1); keda chart
# crds/ and its admission-webhooks Deployment; aws-load-balancer-controller chart crds/crds.yaml
# and its webhook for TargetGroupBindings.
CRD_PROVIDERS = {
    "karpenter.sh": "karpenter-crd",
    "karpenter.k8s.aws": "karpenter-crd",
    "keda.sh": "keda",
    "elbv2.k8s.aws": "aws-load-balancer-controller",
}
BUILT_IN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
POD_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job"})


@dataclass(frozen=True)
class Applied:
    """One Kubernetes object as a manifest resource applies it."""

    manifest: ResourceId
    obj: dict[str, Any]

    @property
    def group(self) -> str:
        api_version = self.obj["apiVersion"]
        return api_version.split("/")[0] if "/" in api_version else ""

    @property
    def namespace(self) -> str | None:
        return self.obj["metadata"].get("namespace")

    @property
    def name(self) -> str:
        return f"{self.obj['kind']} {self.namespace or ''}/{self.obj['metadata']['name']}"


def _manifest_text(value: Any) -> str:
    """The manifest JSON of a KubernetesResource, with deploy-time tokens as placeholder text."""
    if isinstance(value, str):
        return value
    parts = value["Fn::Join"][1]
    return "".join(part if isinstance(part, str) else "TOKEN" for part in parts)


@pytest.fixture(scope="module")
def graph(default_app) -> AppGraph:
    return AppGraph.from_assembly(default_app.assembly)


@pytest.fixture(scope="module")
def applied(graph) -> list[Applied]:
    found = []
    for rid in graph.of_type(MANIFEST):
        for obj in json.loads(_manifest_text(graph.resources[rid]["Properties"]["Manifest"])):
            found.append(Applied(rid, obj))
    assert {a.obj["kind"] for a in found} >= {"NodePool", "EC2NodeClass", "ScaledObject", "TargetGroupBinding"}
    return found


@pytest.fixture(scope="module")
def charts(graph) -> dict[ResourceId, dict[str, Any]]:
    return {rid: graph.resources[rid]["Properties"] for rid in graph.of_type(HELM_CHART)}


def _unmet(graph: AppGraph, need: dict[str, tuple[ResourceId, set[ResourceId]]]) -> dict[str, str]:
    """``{object: why}`` for every object whose manifest does not depend on one of its providers."""
    out = {}
    for what, (dependent, providers) in need.items():
        if not providers:
            out[what] = "nothing in the app provides it"
        elif not any(graph.depends_on(dependent, provider) for provider in providers):
            out[what] = f"{dependent} is not created after any of {sorted(map(str, providers))}"
    return out


def test_custom_resources_are_created_after_their_crds_and_webhooks(graph, applied, charts):
    need = {}
    for item in applied:
        if item.group in CRD_PROVIDERS or "." in item.group and not item.group.endswith("k8s.io"):
            chart = CRD_PROVIDERS.get(item.group)
            need[item.name] = (item.manifest, {rid for rid, props in charts.items() if props["Chart"] == chart})
    assert len(need) >= 6  # 2 NodePools, 2 EC2NodeClasses, the ScaledObject, the TargetGroupBinding
    assert _unmet(graph, need) == {}


def test_karpenter_controller_chart_is_created_after_its_crd_chart(graph, charts):
    (controller,) = [rid for rid, props in charts.items() if props["Chart"] == "karpenter"]
    # No SkipCrds: the kubectl handler never passes it to Helm (test_deploy_rehearsal.py); Helm
    # skips the chart's crds/ because the karpenter-crd release created them first.
    assert _unmet(graph, {"karpenter chart": (controller, {
        rid for rid, props in charts.items() if props["Chart"] == "karpenter-crd"
    })}) == {}


def test_namespaced_objects_are_created_after_their_namespace(graph, applied, charts):
    creators: dict[str, set[ResourceId]] = {}
    for item in applied:
        if item.obj["kind"] == "Namespace":
            creators.setdefault(item.obj["metadata"]["name"], set()).add(item.manifest)
    for rid, props in charts.items():
        if props.get("CreateNamespace"):
            creators.setdefault(props["Namespace"], set()).add(rid)
    need = {
        item.name: (item.manifest, creators.get(item.namespace, set()))
        for item in applied
        if item.namespace and item.namespace not in BUILT_IN_NAMESPACES
    }
    assert need
    assert _unmet(graph, need) == {}


def test_scaled_object_is_created_after_its_scale_target_and_its_external_scaler(graph, applied, charts):
    need = {}
    for item in applied:
        if item.obj["kind"] != "ScaledObject":
            continue
        target = item.obj["spec"]["scaleTargetRef"]
        need[f"{item.name} -> {target['kind']} {target['name']}"] = (item.manifest, {
            other.manifest for other in applied
            if other.obj["kind"] == target["kind"] and other.obj["metadata"]["name"] == target["name"]
            and other.namespace == item.namespace
        })
        for trigger in item.obj["spec"]["triggers"]:
            address = trigger.get("metadata", {}).get("scalerAddress")
            if not address:
                continue
            service, namespace = address.split(":")[0].split(".")[:2]
            # A Helm release's Service is named after the release (the OTel add-on chart's default).
            need[f"{item.name} -> scaler {address}"] = (item.manifest, {
                rid for rid, props in charts.items() if props["Release"] == service and props["Namespace"] == namespace
            } | {
                other.manifest for other in applied
                if other.obj["kind"] == "Service" and other.obj["metadata"]["name"] == service
                and other.namespace == namespace
            })
    assert len(need) >= 2
    assert _unmet(graph, need) == {}


def test_pods_are_created_after_their_pod_identity_association(graph, applied):
    """EKS Pod Identity gives credentials to Pods created after the association exists."""
    associations = {
        (props["Namespace"], props["ServiceAccount"]): rid
        for rid in graph.of_type(POD_IDENTITY)
        for props in [graph.resources[rid]["Properties"]]
        if isinstance(props["Namespace"], str) and isinstance(props["ServiceAccount"], str)
    }
    need = {}
    for item in applied:
        if item.obj["kind"] not in POD_TEMPLATE_KINDS:
            continue
        account = item.obj["spec"]["template"]["spec"].get("serviceAccountName")
        association = associations.get((item.namespace, account))
        if association is not None:
            need[f"{item.name} (ServiceAccount {account})"] = (item.manifest, {association})
    assert need, "the vLLM Deployment runs under a Pod Identity association"
    assert _unmet(graph, need) == {}


CSI_ADDONS = {"efs.csi.aws.com": "aws-efs-csi-driver"}  # CSI driver name -> the EKS add-on that runs it


def test_pods_are_created_after_the_claims_they_mount_and_claims_after_their_volume_and_driver(graph, applied):
    """A Pod whose claim does not exist yet stays Pending; a statically bound claim needs its
    PersistentVolume, and mounting needs the CSI driver's add-on."""
    addons = {graph.resources[rid]["Properties"]["AddonName"]: rid for rid in graph.of_type("AWS::EKS::Addon")}
    need = {}
    for item in applied:
        if item.obj["kind"] in POD_TEMPLATE_KINDS:
            for volume in item.obj["spec"]["template"]["spec"].get("volumes", []):
                claim = volume.get("persistentVolumeClaim", {}).get("claimName")
                if claim:
                    need[f"{item.name} -> claim {claim}"] = (item.manifest, {
                        other.manifest for other in applied
                        if other.obj["kind"] == "PersistentVolumeClaim" and other.obj["metadata"]["name"] == claim
                        and other.namespace == item.namespace
                    })
        if item.obj["kind"] == "PersistentVolumeClaim" and item.obj["spec"].get("volumeName"):
            volume_name = item.obj["spec"]["volumeName"]
            volumes = [o for o in applied if o.obj["kind"] == "PersistentVolume" and o.obj["metadata"]["name"] == volume_name]
            assert volumes, f"{item.name} names volume {volume_name}, which nothing applies"
            # kubectl applies one manifest's objects together; the binder binds them in any order
            if any(v.manifest != item.manifest for v in volumes):
                need[f"{item.name} -> volume {volume_name}"] = (item.manifest, {v.manifest for v in volumes})
            for volume in volumes:
                driver = volume.obj["spec"]["csi"]["driver"]
                addon = addons.get(CSI_ADDONS.get(driver, ""))
                need[f"{volume.name} -> CSI driver {driver}"] = (volume.manifest, {addon} if addon else set())
    assert len(need) >= 2, "the default vLLM Deployment mounts the compile cache claim"
    assert _unmet(graph, need) == {}
