"""Every rendered manifest validates: built-in kinds against the Kubernetes 1.35 schemas
(kubernetes-validate, strict), custom resources against the upstream CRD openAPIV3Schemas."""

from __future__ import annotations

import copy

import jsonschema
import kubernetes_validate
import pytest

from tests.support.k8s_schemas import CRD_DIR, is_custom, validate_any, validate_builtin, validate_custom

CHART_KEYS = ["namespaces", "network_policies", "karpenter_nodepools", "otel_collector", "compile_cache", "vllm", "gateway", "scaled_object"]
EXPECTED_CUSTOM_KINDS = {"NodePool", "EC2NodeClass", "TargetGroupBinding", "ScaledObject"}


def test_chart_keys_cover_every_chart(rendered):
    assert list(rendered) == CHART_KEYS


def test_kubernetes_validate_ships_the_cluster_version():
    """kubernetes-validate 1.37.0 carries schemas up to 1.37; the cluster runs 1.35."""
    from app_config.versions import KUBERNETES_VERSION

    assert KUBERNETES_VERSION == "1.35"
    validate_builtin({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}, KUBERNETES_VERSION)


def test_crd_schemas_are_in_the_repo():
    assert CRD_DIR.is_dir() and (CRD_DIR / "SOURCES.md").is_file(), CRD_DIR
    assert list(CRD_DIR.glob("*.yaml")), f"no CRD schema in {CRD_DIR}"


@pytest.mark.parametrize("chart", CHART_KEYS)
def test_every_manifest_validates(rendered, chart):
    assert rendered[chart], f"chart {chart} rendered nothing"
    for obj in rendered[chart]:
        validate_any(obj)


def test_custom_resources_are_checked_against_crds(all_objects):
    kinds = {o["kind"] for o in all_objects if is_custom(o)}
    assert kinds == EXPECTED_CUSTOM_KINDS


def test_builtin_validation_rejects_unknown_field(all_objects):
    """The strict check can fail: a misspelt Deployment field is refused."""
    deployment = copy.deepcopy(next(o for o in all_objects if o["kind"] == "Deployment"))
    deployment["spec"]["replica"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_builtin(deployment)


def test_crd_validation_rejects_unknown_and_bad_fields(all_objects):
    nodepool = copy.deepcopy(next(o for o in all_objects if o["kind"] == "NodePool"))
    nodepool["spec"]["disruption"]["consolidateafter"] = "30s"
    with pytest.raises(jsonschema.ValidationError, match="consolidateafter"):
        validate_custom(nodepool)
    scaled = copy.deepcopy(next(o for o in all_objects if o["kind"] == "ScaledObject"))
    scaled["spec"]["triggers"][0]["metadata"]["targetValue"] = 25  # metadata values must be strings
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(scaled)


def test_cel_rules_we_rely_on(all_objects):
    """CEL rules are not run by jsonschema; check the ones the CRDs declare for our objects."""
    for node_class in (o for o in all_objects if o["kind"] == "EC2NodeClass"):
        spec = node_class["spec"]
        assert ("role" in spec) != ("instanceProfile" in spec), "exactly one of role / instanceProfile"
        assert any("alias" in term for term in spec["amiSelectorTerms"]) or "amiFamily" in spec
    scaled = next(o for o in all_objects if o["kind"] == "ScaledObject")["spec"]
    assert scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
    for pool in (o for o in all_objects if o["kind"] == "NodePool"):
        assert "replicas" not in pool["spec"], "a static NodePool forbids weight/limits other than nodes"
