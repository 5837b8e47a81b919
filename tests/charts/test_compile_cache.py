"""The compile cache volume (``vllm.compile_cache``): what the vLLM pod mounts, where, and that the
volume is statically bound, so the EFS CSI driver never creates anything in AWS."""

from __future__ import annotations

import pytest

from app_config import config_from_dict
from app_config import constants as c
from k8s_charts import DeployValues, render_all
from tests.charts.conftest import find
from tests.support.k8s_schemas import validate_any


def _vllm_pod(objects):
    return find(objects, "Deployment", c.VLLM_NAME)["spec"]["template"]["spec"]


def _cache_mount(pod) -> tuple[str, str]:
    """(VLLM_CACHE_ROOT, mount path of the compile cache claim) of the vLLM container."""
    (container,) = pod["containers"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    (mount,) = [m for m in container["volumeMounts"] if claims.get(m["name"]) == c.COMPILE_CACHE_NAME]
    env = {e["name"]: e.get("value") for e in container["env"]}
    return env["VLLM_CACHE_ROOT"], mount["mountPath"]


def test_vllm_mounts_the_claim_at_its_torch_compile_cache(all_objects):
    """vLLM 0.32 writes torch.compile artifacts under <VLLM_CACHE_ROOT>/torch_compile_cache (the engine
    test in tests/charts/test_compile_cache_engine.py runs vLLM to prove it)."""
    root, path = _cache_mount(_vllm_pod(all_objects))
    assert path == f"{root}/torch_compile_cache"
    claim = find(all_objects, "PersistentVolumeClaim", c.COMPILE_CACHE_NAME)
    assert claim["metadata"]["namespace"] == find(all_objects, "Deployment", c.VLLM_NAME)["metadata"]["namespace"]


def test_claim_is_bound_to_the_one_static_volume(all_objects):
    claim = find(all_objects, "PersistentVolumeClaim", c.COMPILE_CACHE_NAME)
    volume = find(all_objects, "PersistentVolume", c.COMPILE_CACHE_NAME)
    storage_class = find(all_objects, "StorageClass", c.COMPILE_CACHE_NAME)
    # Named on both sides: the external provisioner skips a claim with volumeName (no CreateVolume).
    assert claim["spec"]["volumeName"] == volume["metadata"]["name"]
    assert volume["spec"]["claimRef"] == {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "namespace": claim["metadata"]["namespace"], "name": claim["metadata"]["name"],
    }
    assert claim["spec"]["storageClassName"] == volume["spec"]["storageClassName"] == storage_class["metadata"]["name"]
    assert claim["spec"]["accessModes"] == volume["spec"]["accessModes"] == ["ReadWriteMany"]  # every vLLM pod at once
    # Retain: the provisioner never calls DeleteVolume, which would delete the access point itself.
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert storage_class["reclaimPolicy"] == "Retain"
    # No provisioningMode: the driver's CreateVolume refuses to create an access point for this class.
    assert storage_class["provisioner"] == volume["spec"]["csi"]["driver"] == c.EFS_CSI_DRIVER
    assert "parameters" not in storage_class


def test_volume_is_the_access_point_of_the_file_system_mounted_with_iam(all_objects):
    values = DeployValues.placeholders()
    csi = find(all_objects, "PersistentVolume", c.COMPILE_CACHE_NAME)["spec"]["csi"]
    assert csi["volumeHandle"] == f"{values.compile_cache_file_system_id}::{values.compile_cache_access_point_id}"
    assert find(all_objects, "PersistentVolume", c.COMPILE_CACHE_NAME)["spec"]["mountOptions"] == ["iam"]


def test_compile_cache_objects_validate(rendered):
    assert {o["kind"] for o in rendered["compile_cache"]} == {"StorageClass", "PersistentVolume", "PersistentVolumeClaim"}
    for obj in rendered["compile_cache"]:
        validate_any(obj)


def test_compile_cache_off_leaves_vllm_on_its_own_disk():
    rendered = render_all(config_from_dict({"vllm": {"compile_cache": {"enabled": False}}}))
    assert "compile_cache" not in rendered
    pod = _vllm_pod([o for objs in rendered.values() for o in objs])
    assert not any("persistentVolumeClaim" in v for v in pod["volumes"])
    assert "VLLM_CACHE_ROOT" not in {e["name"] for e in pod["containers"][0]["env"]}


def test_compile_cache_on_needs_its_deploy_values():
    import dataclasses

    from k8s_charts import chart_props

    values = dataclasses.replace(DeployValues.placeholders(), compile_cache_access_point_id=None)
    with pytest.raises(ValueError, match="vllm.compile_cache is on"):
        chart_props(config_from_dict({}), values)
