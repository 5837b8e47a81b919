"""Cross-object consistency of the rendered manifests, one rule per test."""

from __future__ import annotations

import re

import yaml

from app_config import constants as c
from tests.charts.conftest import find
from tests.support.eks_allocatable import allocatable

DEFAULT_MAX_PODS = 110
# EKS DaemonSets on every node (aws-node, kube-proxy, eks-pod-identity-agent): a generous allowance.
DAEMONSET_CPU_M = 250
DAEMONSET_MEMORY_MIB = 256


def _pod_spec(deployment):
    return deployment["spec"]["template"]["spec"]


def _quantity(value: str) -> float:
    """CPU in millicores or memory in MiB from a Kubernetes quantity (subset we use)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Mi|Gi|Ki)?", str(value))
    assert match, f"unsupported quantity {value!r}"
    number, unit = float(match.group(1)), match.group(2)
    return {None: number, "m": number, "Mi": number, "Gi": number * 1024, "Ki": number / 1024}[unit]


def _cpu_m(value: str) -> float:
    return _quantity(value) if str(value).endswith("m") else float(value) * 1000


def test_selectors_match_pod_labels(all_objects):
    for deployment in (o for o in all_objects if o["kind"] == "Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), deployment["metadata"]["name"]
        ns = deployment["metadata"]["namespace"]
        for kind in ("Service", "PodDisruptionBudget"):
            for obj in (o for o in all_objects if o["kind"] == kind and o["metadata"]["namespace"] == ns):
                sel = obj["spec"]["selector"]
                sel = sel.get("matchLabels", sel) if kind == "PodDisruptionBudget" else sel
                if sel.get("app") == labels["app"]:
                    assert sel.items() <= labels.items()
    # every Service and PDB selects some Deployment's pods
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in all_objects if d["kind"] == "Deployment"]
    for obj in (o for o in all_objects if o["kind"] in ("Service", "PodDisruptionBudget")):
        sel = obj["spec"]["selector"]
        sel = sel.get("matchLabels", sel) if obj["kind"] == "PodDisruptionBudget" else sel
        assert any(sel.items() <= labels.items() for labels in pod_labels), obj["metadata"]["name"]


def test_service_target_port_is_a_container_port(all_objects):
    for service in (o for o in all_objects if o["kind"] == "Service"):
        ns = service["metadata"]["namespace"]
        pods = [
            _pod_spec(d)
            for d in all_objects
            if d["kind"] == "Deployment"
            and d["metadata"]["namespace"] == ns
            and service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert pods, service["metadata"]["name"]
        ports = {(p["containerPort"], p.get("name")) for pod in pods for ctr in pod["containers"] for p in ctr["ports"]}
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            assert any(target in (num, name) for num, name in ports), f"{service['metadata']['name']}: {target}"


def test_vllm_service_and_probes_use_the_vllm_port(all_objects):
    service = find(all_objects, "Service", c.VLLM_NAME)
    assert service["spec"]["ports"][0]["port"] == c.VLLM_PORT
    container = _pod_spec(find(all_objects, "Deployment", c.VLLM_NAME))["containers"][0]
    assert container["ports"] == [{"name": "http", "containerPort": c.VLLM_PORT, "protocol": "TCP"}]
    assert "--port" in container["args"] and container["args"][container["args"].index("--port") + 1] == str(c.VLLM_PORT)


def test_collector_scrapes_the_port_and_label_vllm_serves(all_objects):
    config = yaml.safe_load(find(all_objects, "ConfigMap", c.OTEL_COLLECTOR_NAME)["data"][c.OTEL_COLLECTOR_CONFIG_KEY])
    job = config["receivers"]["prometheus"]["config"]["scrape_configs"][0]
    vllm = find(all_objects, "Deployment", c.VLLM_NAME)
    pod_labels = vllm["spec"]["template"]["metadata"]["labels"]
    container_ports = {p["containerPort"] for p in _pod_spec(vllm)["containers"][0]["ports"]}
    keeps = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert pod_labels["app"] == keeps["__meta_kubernetes_pod_label_app"]
    assert int(keeps["__meta_kubernetes_pod_container_port_number"]) in container_ports
    assert job["metrics_path"] == c.VLLM_METRICS_PATH
    assert job["scrape_interval"] == f"{c.OTEL_SCRAPE_INTERVAL_SECONDS}s"
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": [vllm["metadata"]["namespace"]]}}]


def test_collector_lives_in_the_namespace_its_rbac_names(all_objects):
    deployment = find(all_objects, "Deployment", c.OTEL_COLLECTOR_NAME)
    sa_name = _pod_spec(deployment)["serviceAccountName"]
    sa = find(all_objects, "ServiceAccount", sa_name)
    binding = find(all_objects, "RoleBinding", c.OTEL_COLLECTOR_NAME)
    role = find(all_objects, "Role", binding["roleRef"]["name"])
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa_name, "namespace": deployment["metadata"]["namespace"]}]
    assert sa["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    # the Role grants pod discovery in the namespace the vLLM pods live in
    vllm_ns = find(all_objects, "Deployment", c.VLLM_NAME)["metadata"]["namespace"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == vllm_ns
    assert {"get", "list", "watch"} <= set(role["rules"][0]["verbs"]) and role["rules"][0]["resources"] == ["pods"]


def test_scaled_object_targets_the_vllm_deployment(all_objects):
    scaled = find(all_objects, "ScaledObject")
    vllm = find(all_objects, "Deployment", c.VLLM_NAME)
    ref = scaled["spec"]["scaleTargetRef"]
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == ("apps/v1", "Deployment", vllm["metadata"]["name"])
    assert scaled["metadata"]["namespace"] == vllm["metadata"]["namespace"]
    assert "replicas" not in vllm["spec"], "KEDA owns the vLLM replica count"


def test_every_formula_name_is_a_trigger_name(all_objects):
    from app_config.formula import formula_identifiers

    spec = find(all_objects, "ScaledObject")["spec"]
    names = {t["name"] for t in spec["triggers"]}
    used = formula_identifiers(spec["advanced"]["scalingModifiers"]["formula"])
    assert used == ["running", "waiting", "held"]
    assert set(used) <= names


def test_addon_address_matches_the_addon_service(all_objects):
    expected = f"{c.OTEL_ADDON_NAME}.{c.KEDA_NAMESPACE}.svc.cluster.local:{c.OTEL_ADDON_SCALER_PORT}"
    for trigger in find(all_objects, "ScaledObject")["spec"]["triggers"]:
        assert trigger["metadata"]["scalerAddress"] == expected
    config = yaml.safe_load(find(all_objects, "ConfigMap", c.OTEL_COLLECTOR_NAME)["data"][c.OTEL_COLLECTOR_CONFIG_KEY])
    assert config["exporters"]["otlp_grpc"]["endpoint"] == (
        f"{c.OTEL_ADDON_NAME}.{c.KEDA_NAMESPACE}.svc.cluster.local:{c.OTEL_ADDON_OTLP_GRPC_PORT}"
    )


def test_vllm_tolerations_match_gpu_nodepool_taints(all_objects):
    pool = find(all_objects, "NodePool", c.GPU_NODEPOOL_NAME)
    taints = pool["spec"]["template"]["spec"]["taints"]
    pod = _pod_spec(find(all_objects, "Deployment", c.VLLM_NAME))
    for taint in taints:
        assert any(
            t["key"] == taint["key"]
            and t.get("effect") in (None, taint["effect"])
            and (t["operator"] == "Exists" or t.get("value") == taint.get("value"))
            for t in pod["tolerations"]
        ), taint
    assert pod["nodeSelector"] == {"karpenter.sh/nodepool": pool["metadata"]["name"]}


def test_gateway_lands_on_the_untainted_cpu_pool(all_objects):
    pool = find(all_objects, "NodePool", c.CPU_NODEPOOL_NAME)
    assert "taints" not in pool["spec"]["template"]["spec"]
    pod = _pod_spec(find(all_objects, "Deployment", c.GATEWAY_NAME))
    assert pod["nodeSelector"] == {"karpenter.sh/nodepool": c.CPU_NODEPOOL_NAME}
    arch = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    pool_arch = next(r for r in pool["spec"]["template"]["spec"]["requirements"] if r["key"] == "kubernetes.io/arch")
    assert set(arch["matchExpressions"][0]["values"]) <= set(pool_arch["values"])


def test_target_group_binding_points_at_the_gateway_service(all_objects):
    tgb = find(all_objects, "TargetGroupBinding")
    service = find(all_objects, "Service", tgb["spec"]["serviceRef"]["name"])
    assert tgb["spec"]["serviceRef"]["port"] in {p["port"] for p in service["spec"]["ports"]}
    assert tgb["spec"]["targetType"] == "ip" and tgb["spec"]["targetGroupARN"].startswith("arn:")
    assert tgb["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert re.fullmatch(r"vpc-([0-9a-f]{8}|[0-9a-f]{17}|[0-9a-f]{32})", tgb["spec"]["vpcID"])


def test_gateway_env_points_at_the_vllm_service(all_objects):
    env = {e["name"]: e["value"] for e in _pod_spec(find(all_objects, "Deployment", c.GATEWAY_NAME))["containers"][0]["env"]}
    vllm_service = find(all_objects, "Service", c.VLLM_NAME)
    assert env["GATEWAY_UPSTREAM_URL"] == (
        f"http://{vllm_service['metadata']['name']}.{vllm_service['metadata']['namespace']}.svc.cluster.local:"
        f"{vllm_service['spec']['ports'][0]['port']}"
    )
    from services.gateway.settings import load_settings

    settings = load_settings(env)  # the gateway itself accepts the env
    assert settings.served_model_name == "mistral-7b-awq"


def _admitted(requirements, row):
    labels = {
        "karpenter.k8s.aws/instance-category": row["category"],
        "karpenter.k8s.aws/instance-family": row["family"],
        "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
        "karpenter.k8s.aws/instance-size": row["name"].split(".")[1],
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
    }
    for req in requirements:
        value = labels.get(req["key"])
        if value is None:
            continue  # capacity type: every row is offered as spot and on-demand
        if req["operator"] == "In" and value not in req["values"]:
            return False
        if req["operator"] == "NotIn" and value in req["values"]:
            return False
    return True


def _allocatable(row):
    """(cpu millicores, memory MiB) left for our pod on an empty node of this type."""
    cpu_m, memory = allocatable(row["vcpu"], row["memory_gib"], row.get("max_pods", DEFAULT_MAX_PODS))
    return cpu_m - DAEMONSET_CPU_M, memory - DAEMONSET_MEMORY_MIB


def test_vllm_requests_fit_the_smallest_admitted_gpu_instance(all_objects, gpu_instances):
    pool = find(all_objects, "NodePool", c.GPU_NODEPOOL_NAME)
    requirements = pool["spec"]["template"]["spec"]["requirements"]
    requests = _pod_spec(find(all_objects, "Deployment", c.VLLM_NAME))["containers"][0]["resources"]["requests"]
    rows = [{"name": name, **row} for name, row in gpu_instances.items()]
    admitted = [r for r in rows if _admitted(requirements, r) and r["gpus"] >= int(requests[c.GPU_RESOURCE])]
    assert admitted, "the GPU NodePool admits no instance type in the table"
    assert all(r["family"] != "g4dn" for r in admitted), "T4 cannot run awq_marlin (needs compute capability 8.0)"
    assert all(r["compute_capability"] >= 8.0 for r in admitted)
    smallest_size = min((r["vcpu"], r["memory_gib"]) for r in admitted)
    smallest = [r for r in admitted if (r["vcpu"], r["memory_gib"]) == smallest_size]
    assert {r["name"] for r in smallest} == {"g5.xlarge", "g6.xlarge"}
    for row in smallest:
        cpu_m, memory_mib = _allocatable(row)
        assert _cpu_m(requests["cpu"]) <= cpu_m, f"cpu {requests['cpu']} > {cpu_m:.0f}m on {row['name']}"
        assert _quantity(requests["memory"]) <= memory_mib, (
            f"memory {requests['memory']} > {memory_mib:.0f}Mi allocatable on {row['name']}"
        )


def test_the_old_14gi_default_would_not_fit(gpu_instances):
    """Why VllmConfig.memory_request is 12Gi: 14Gi exceeds a 16 GiB node's allocatable."""
    _, memory_mib = _allocatable({"name": "g5.xlarge", **gpu_instances["g5.xlarge"]})
    assert _quantity("14Gi") > memory_mib >= _quantity("12Gi")


def test_gateway_pod_grace_outlasts_its_drain(all_objects, monkeypatch):
    """SIGKILL comes after the preStop sleep plus the graceful window the container's entry point
    gives uvicorn (read from the real ``python -m services.gateway`` code, uvicorn.run replaced)."""
    import uvicorn

    from services.gateway.__main__ import ALL_INTERFACES
    from services.gateway.__main__ import main as gateway_main

    given: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: given.update(kwargs))
    monkeypatch.setenv("GATEWAY_UPSTREAM_URL", "http://vllm:8000")
    gateway_main([])
    pod = _pod_spec(find(all_objects, "Deployment", c.GATEWAY_NAME))
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert given["host"] == ALL_INTERFACES and given["timeout_graceful_shutdown"] > 0
    assert pre_stop + given["timeout_graceful_shutdown"] < pod["terminationGracePeriodSeconds"]


def test_vllm_pod_drains_in_flight_requests(all_objects):
    pod = _pod_spec(find(all_objects, "Deployment", c.VLLM_NAME))
    container = pod["containers"][0]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < pre_stop < pod["terminationGracePeriodSeconds"]
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == c.VLLM_HEALTH_PATH
    assert 320 <= startup["periodSeconds"] * startup["failureThreshold"] <= 340  # ~330 s
    shm = next(v for v in pod["volumes"] if v["name"] == container["volumeMounts"][0]["name"])
    assert shm["emptyDir"]["medium"] == "Memory" and container["volumeMounts"][0]["mountPath"] == "/dev/shm"


def test_vllm_pdb_never_blocks_evicting_the_only_pod(all_objects):
    pdb = find(all_objects, "PodDisruptionBudget", c.VLLM_NAME)["spec"]
    assert "minAvailable" not in pdb and pdb["maxUnavailable"] >= 1


def test_gateway_has_no_auth_unless_a_secret_is_named(all_objects):
    deployment = find(all_objects, "Deployment", c.GATEWAY_NAME)
    env = {e["name"] for e in _pod_spec(deployment)["containers"][0]["env"]}
    volumes = _pod_spec(deployment)["volumes"]
    assert "GATEWAY_API_KEYS_FILE" not in env and not [v for v in volumes if "secret" in v]


def test_gateway_api_keys_secret_is_mounted_where_the_gateway_reads_it(tmp_path):
    """gateway.api_keys_secret: the Secret's `api-keys` item is mounted read-only and
    GATEWAY_API_KEYS_FILE names that very file, which the gateway's own settings then read."""
    from app_config import config_from_dict
    from k8s_charts import render_all
    from services.gateway.settings import load_settings

    objects = [o for objs in render_all(config_from_dict({"gateway": {"api_keys_secret": "gateway-keys"}})).values() for o in objs]
    deployment = find(objects, "Deployment", c.GATEWAY_NAME)
    from tests.support.k8s_schemas import validate_builtin

    validate_builtin(deployment)  # Kubernetes 1.35 schema, strict
    spec = _pod_spec(deployment)
    (volume,) = [v for v in spec["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "gateway-keys"
    (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["name"] == volume["name"] and mount["readOnly"] is True
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    (item,) = volume["secret"]["items"]
    assert env["GATEWAY_API_KEYS_FILE"] == f"{mount['mountPath']}/{item['path']}"

    # The gateway reads the mounted file (simulated at a temp path with the same file name).
    key_file = tmp_path / item["path"]
    key_file.write_text("key-one\n# comment\nkey-two\n")
    settings = load_settings({**env, "GATEWAY_API_KEYS_FILE": str(key_file)})
    assert settings.all_api_keys() == {"key-one", "key-two"}


def test_karpenter_instances_carry_the_configured_project_tag():
    """The stacks tag everything with config.project_name; Karpenter's instances must match it."""
    from app_config import config_from_dict
    from k8s_charts import render_all

    objects = [o for objs in render_all(config_from_dict({"project_name": "llm-team"})).values() for o in objs]
    for node_class in (o for o in objects if o["kind"] == "EC2NodeClass"):
        assert node_class["spec"]["tags"][c.PROJECT_TAG_KEY] == "llm-team"
