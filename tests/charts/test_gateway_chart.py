"""The gateway chart's EndpointSlice access and discovery env: the RBAC is exactly what the
gateway's watch needs, and the env the gateway reads points its watch at the vLLM Service."""

from __future__ import annotations

from app_config import constants as c
from tests.charts.conftest import find


def _env(objects) -> dict[str, str]:  # type: ignore[no-untyped-def]
    spec = find(objects, "Deployment", c.GATEWAY_NAME)["spec"]["template"]["spec"]
    return {e["name"]: e["value"] for e in spec["containers"][0]["env"]}


def test_gateway_may_only_list_and_watch_endpointslices_of_the_vllm_namespace(all_objects):
    deployment = find(all_objects, "Deployment", c.GATEWAY_NAME)
    pod = deployment["spec"]["template"]["spec"]
    account = find(all_objects, "ServiceAccount", pod["serviceAccountName"])
    assert account["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert pod["automountServiceAccountToken"] is True
    bindings = [o for o in all_objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")
                and any(s["kind"] == "ServiceAccount" and s["name"] == account["metadata"]["name"]
                        and s["namespace"] == account["metadata"]["namespace"] for s in o["subjects"])]
    (binding,) = bindings  # no ClusterRoleBinding, no second grant
    assert binding["kind"] == "RoleBinding"
    role = next(o for o in all_objects if o["kind"] == binding["roleRef"]["kind"]
                and o["metadata"]["name"] == binding["roleRef"]["name"]
                and o["metadata"]["namespace"] == binding["metadata"]["namespace"])
    assert role["rules"] == [{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]
    vllm_service = find(all_objects, "Service", c.VLLM_NAME)
    assert role["metadata"]["namespace"] == vllm_service["metadata"]["namespace"]


def test_gateway_env_watches_the_vllm_service_port_and_knows_the_edge_limit(all_objects):
    from services.gateway.settings import load_settings

    settings = load_settings(_env(all_objects))
    vllm_service = find(all_objects, "Service", c.VLLM_NAME)
    assert settings.upstream_service == vllm_service["metadata"]["name"]
    assert settings.upstream_namespace == vllm_service["metadata"]["namespace"]
    assert settings.upstream_port_name in [p["name"] for p in vllm_service["spec"]["ports"]]
    # the vLLM container serves that Service port
    vllm_pod = find(all_objects, "Deployment", c.VLLM_NAME)["spec"]["template"]["spec"]
    assert settings.upstream_port_name in [p["name"] for p in vllm_pod["containers"][0]["ports"]]
    from app_config.model import AppConfig

    assert settings.edge_read_timeout_seconds == AppConfig().edge.origin_read_timeout_seconds
    assert settings.max_held_requests == AppConfig().gateway.max_held_requests
