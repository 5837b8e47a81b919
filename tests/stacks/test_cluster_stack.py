"""Property assertions on the synthesized cluster stack (its resources, add-ons and teardown ordering)."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from app_config import versions
from app_config.constants import (
    INFERENCE_NAMESPACE,
    KARPENTER_NAMESPACE,
    OTEL_ADDON_NAME,
    SYSTEM_TAINT_KEY,
    SYSTEM_TAINT_VALUE,
    VLLM_NAME,
)
from cdk_constructs.karpenter import INTERRUPTION_EVENTS


def of_type(resources: dict, cfn_type: str) -> dict:
    return {k: r for k, r in resources.items() if r["Type"] == cfn_type}


def helm_charts(resources: dict) -> dict[str, tuple[str, dict]]:
    """chart name -> (logical id, resource)."""
    return {r["Properties"]["Chart"]: (k, r) for k, r in of_type(resources, "Custom::AWSCDK-EKS-HelmChart").items()}


def manifest_kinds(resource: dict) -> set[str]:
    text = json.dumps(resource["Properties"]["Manifest"])
    return {kind for kind in ("NodePool", "EC2NodeClass", "ScaledObject", "TargetGroupBinding", "Deployment", "Namespace") if f'\\"kind\\":\\"{kind}\\"' in text}


def manifests_with(resources: dict, kind: str) -> dict:
    return {k: r for k, r in of_type(resources, "Custom::AWSCDK-EKS-KubernetesResource").items() if kind in manifest_kinds(r)}


def depends_on(resource: dict) -> set[str]:
    return set(resource.get("DependsOn", []))


def policy_statements(resources: dict, role_logical_id: str) -> list[dict]:
    out = []
    for r in resources.values():
        if r["Type"] in ("AWS::IAM::Policy",) and {"Ref": role_logical_id} in r["Properties"].get("Roles", []):
            out += r["Properties"]["PolicyDocument"]["Statement"]
    return out


# --- cluster -------------------------------------------------------------------------
def test_eks_version_logging_encryption_and_endpoint(template) -> None:
    template.has_resource_properties(
        "AWS::EKS::Cluster",
        {
            "Version": "1.35",
            "Logging": {
                "ClusterLogging": {
                    "EnabledTypes": [
                        {"Type": t} for t in ("api", "audit", "authenticator", "controllerManager", "scheduler")
                    ]
                }
            },
            "EncryptionConfig": [{"Provider": {"KeyArn": Match.any_value()}, "Resources": ["secrets"]}],
            "ResourcesVpcConfig": Match.object_like(
                {"EndpointPublicAccess": True, "EndpointPrivateAccess": True, "PublicAccessCidrs": ["0.0.0.0/0"]}
            ),
            "AccessConfig": Match.object_like({"AuthenticationMode": "API"}),
        },
    )
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_endpoint_cidrs_come_from_config(tmp_path) -> None:
    from aws_cdk.assertions import Template

    from app_config import config_from_dict
    from stacks.app_builder import build_app
    from tests.support.cdk_app import new_app

    app = new_app(tmp_path)
    stacks = build_app(app, config_from_dict({"cluster": {"public_access_cidrs": ["203.0.113.0/24"]}}), nag=False)
    Template.from_stack(stacks.cluster).has_resource_properties(
        "AWS::EKS::Cluster",
        {"ResourcesVpcConfig": Match.object_like({"PublicAccessCidrs": ["203.0.113.0/24"], "EndpointPrivateAccess": True})},
    )


def test_system_node_group_is_al2023_two_nodes_tainted(template) -> None:
    template.has_resource_properties(
        "AWS::EKS::Nodegroup",
        {
            "AmiType": "AL2023_x86_64_STANDARD",
            "CapacityType": "ON_DEMAND",
            "ScalingConfig": {"MinSize": 2, "DesiredSize": 2, "MaxSize": 3},
            "Taints": [{"Effect": "NO_SCHEDULE", "Key": SYSTEM_TAINT_KEY, "Value": SYSTEM_TAINT_VALUE}],
        },
    )


def test_kubectl_provider_uses_the_v35_layer(resources) -> None:
    layers = of_type(resources, "AWS::Lambda::LayerVersion")
    assert any("kubectl" in json.dumps(r["Properties"]).lower() for r in layers.values())
    assert of_type(resources, "AWS::EKS::Cluster")


@pytest.mark.parametrize("addon", ["vpc-cni", "kube-proxy", "coredns", "eks-pod-identity-agent"])
def test_core_addons(template, addon: str) -> None:
    template.has_resource_properties("AWS::EKS::Addon", {"AddonName": addon})


def test_coredns_waits_for_the_node_group(resources) -> None:
    nodegroup = next(iter(of_type(resources, "AWS::EKS::Nodegroup")))
    coredns = next(r for r in of_type(resources, "AWS::EKS::Addon").values() if r["Properties"]["AddonName"] == "coredns")
    assert nodegroup in depends_on(coredns)


# --- Helm charts -----------------------------------------------------------------------
def test_helm_chart_versions_are_the_pinned_ones(resources) -> None:
    charts = helm_charts(resources)
    for pin in (
        versions.KARPENTER_CRD,
        versions.KARPENTER,
        versions.KEDA,
        versions.OTEL_ADDON,
        versions.METRICS_SERVER,
        versions.AWS_LOAD_BALANCER_CONTROLLER,
    ):
        props = charts[pin.chart][1]["Properties"]
        assert (props["Repository"], props["Version"]) == (pin.repository, pin.version), pin


def test_karpenter_chart_values(resources) -> None:
    _, chart = helm_charts(resources)["karpenter"]
    values = json.loads(json.dumps(chart["Properties"]["Values"]))  # a Fn::Join of JSON text
    text = json.dumps(values)
    assert '\\"clusterName\\":\\"qvllm\\"' in text
    assert "interruptionQueue" in text and "KarpenterInterruptionQueue" in text  # the queue NAME (GetAtt QueueName)
    assert "QueueName" in text
    assert '\\"replicas\\":2' in text
    assert SYSTEM_TAINT_KEY in text
    assert chart["Properties"]["Namespace"] == KARPENTER_NAMESPACE


def test_otel_addon_release_is_the_scaler_service_name(resources) -> None:
    _, addon = helm_charts(resources)["otel-add-on"]
    assert addon["Properties"]["Release"] == OTEL_ADDON_NAME
    text = json.dumps(addon["Properties"]["Values"])
    assert '\\"otelOperator\\":{\\"enabled\\":false}' in text
    assert '\\"otelCollector\\":{\\"enabled\\":false}' in text


def test_kedify_flavor_switches_the_keda_chart(tmp_path) -> None:
    from app_config import config_from_dict
    from stacks.app_builder import build_app
    from tests.support.cdk_app import new_app

    app = new_app(tmp_path)
    stacks = build_app(app, config_from_dict({"scaling": {"keda_flavor": "kedify"}}), nag=False)
    keda = stacks.cluster.keda.keda_chart
    assert (keda.repository, keda.version) == (versions.KEDIFY_KEDA.repository, versions.KEDIFY_KEDA.version)


# --- Karpenter AWS side ---------------------------------------------------------------
def test_interruption_rules_use_upstream_event_names(resources) -> None:
    patterns = {
        (r["Properties"]["EventPattern"]["source"][0], r["Properties"]["EventPattern"]["detail-type"][0])
        for r in of_type(resources, "AWS::Events::Rule").values()
    }
    assert patterns == {
        ("aws.health", "AWS Health Event"),
        ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
        ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
        ("aws.ec2", "EC2 Instance State-change Notification"),
        ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
    }
    assert {d for _, _, d in INTERRUPTION_EVENTS} == {d for _, d in patterns}
    for rule in of_type(resources, "AWS::Events::Rule").values():
        assert rule["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][1] == "Arn"


def test_interruption_queue_is_encrypted_and_short_lived(resources) -> None:
    """A customer-managed key (with rotation) that EventBridge of this account may use; the
    controller may decrypt; only our five rules may send."""
    (queue,) = of_type(resources, "AWS::SQS::Queue").values()
    assert queue["Properties"]["MessageRetentionPeriod"] == 300
    key_id = queue["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = resources[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    events = [s for s in key["KeyPolicy"]["Statement"] if s.get("Principal") == {"Service": "events.amazonaws.com"}]
    assert len(events) == 1 and "aws:SourceAccount" in events[0]["Condition"]["StringEquals"]
    (queue_policy,) = of_type(resources, "AWS::SQS::QueuePolicy").values()
    senders = [s for s in queue_policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert len(senders) == len(INTERRUPTION_EVENTS)
    assert all("aws:SourceArn" in s["Condition"]["ArnEquals"] for s in senders)
    decrypt = [
        p for p in of_type(resources, "AWS::IAM::Policy").values()
        if any(s["Action"] == "kms:Decrypt" and s["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}
               for s in p["Properties"]["PolicyDocument"]["Statement"])
    ]
    assert len(decrypt) == 1 and "Controller" in json.dumps(decrypt[0]["Properties"]["Roles"])


def test_karpenter_node_role_access_entry_is_ec2_linux(template) -> None:
    template.has_resource_properties("AWS::EKS::AccessEntry", {"Type": "EC2_LINUX"})


def test_karpenter_node_role_has_upstreams_managed_policies(resources) -> None:
    """Karpenter 1.14's node role: CNI, worker node, ECR pull-only (not ReadOnly) and SSM core."""
    from cdk_constructs.karpenter import NODE_ROLE_MANAGED_POLICIES

    roles = [r for r in of_type(resources, "AWS::IAM::Role").values()
             if "ec2.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])
             and "AmazonSSMManagedInstanceCore" in json.dumps(r["Properties"].get("ManagedPolicyArns", []))]
    assert len(roles) == 1
    arns = json.dumps(roles[0]["Properties"]["ManagedPolicyArns"])
    assert set(NODE_ROLE_MANAGED_POLICIES) == {
        "AmazonEKS_CNI_Policy", "AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly", "AmazonSSMManagedInstanceCore"}
    assert all(f":iam::aws:policy/{name}" in arns for name in NODE_ROLE_MANAGED_POLICIES)
    assert "ContainerRegistryReadOnly" not in arns


def test_karpenter_controller_policy_statements(resources) -> None:
    sids: dict[str, dict] = {}
    for policy in of_type(resources, "AWS::IAM::ManagedPolicy").values():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "Sid" in st:
                sids[st["Sid"]] = st
    assert {
        "AllowScopedEC2InstanceAccessActions",
        "AllowScopedEC2LaunchTemplateAccessActions",
        "AllowScopedEC2InstanceActionsWithTags",
        "AllowScopedResourceCreationTagging",
        "AllowScopedResourceTagging",
        "AllowScopedDeletion",
        "AllowRegionalReadActions",
        "AllowSSMReadActions",
        "AllowPricingReadActions",
        "AllowInterruptionQueueActions",
        "AllowPassingInstanceRole",
        "AllowScopedInstanceProfileCreationActions",
        "AllowScopedInstanceProfileTagActions",
        "AllowScopedInstanceProfileActions",
        "AllowInstanceProfileReadActions",
        "AllowUnscopedInstanceProfileListAction",
        "AllowAPIServerEndpointDiscovery",
        "AllowZonalShiftStatusReadOnly",
    } <= set(sids)
    # Karpenter 1.14's template (v1.14 getting-started cloudformation.yaml): the interruption
    # controller's instance status checks need DescribeInstanceStatus (required since 1.12).
    reads = sids["AllowRegionalReadActions"]
    assert {"ec2:DescribeInstanceStatus", "ec2:DescribePlacementGroups", "ec2:DescribeCapacityReservations",
            "ec2:DescribeInstanceTypes", "ec2:DescribeSpotPriceHistory"} <= set(reads["Action"])
    assert list(reads["Condition"]["StringEquals"]) == ["aws:RequestedRegion"]
    zonal = sids["AllowZonalShiftStatusReadOnly"]
    assert zonal["Action"] == "arc-zonal-shift:GetManagedResource" and zonal["Resource"] == "*"
    assert list(zonal["Condition"]["StringEquals"]) == ["arc-zonal-shift:ResourceIdentifier"]
    assert "cluster/qvllm" in json.dumps(zonal["Condition"])
    access = json.dumps(sids["AllowScopedEC2InstanceAccessActions"]["Resource"])
    assert ":placement-group/*" in access and ":capacity-reservation/*" in access
    assert ":capacity-reservation/*" not in json.dumps(sids["AllowScopedEC2InstanceActionsWithTags"]["Resource"])
    deletion = sids["AllowScopedDeletion"]
    assert deletion["Condition"]["StringEquals"] == {"aws:ResourceTag/kubernetes.io/cluster/qvllm": "owned"}
    assert deletion["Condition"]["StringLike"] == {"aws:ResourceTag/karpenter.sh/nodepool": "*"}
    assert sorted(deletion["Action"]) == ["ec2:DeleteLaunchTemplate", "ec2:TerminateInstances"]
    assert sids["AllowPassingInstanceRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}
    }
    assert sorted(sids["AllowInterruptionQueueActions"]["Action"]) == [
        "sqs:DeleteMessage",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
    ]


def test_pod_identity_associations(template) -> None:
    template.has_resource_properties(
        "AWS::EKS::PodIdentityAssociation", {"Namespace": KARPENTER_NAMESPACE, "ServiceAccount": "karpenter"}
    )
    template.has_resource_properties(
        "AWS::EKS::PodIdentityAssociation", {"Namespace": INFERENCE_NAMESPACE, "ServiceAccount": VLLM_NAME}
    )


# --- vLLM role: the model prefix only --------------------------------------------------
def test_vllm_role_reads_only_the_model_prefix(cluster_app, resources) -> None:
    stacks, _ = cluster_app
    role_id = stacks.cluster.get_logical_id(stacks.cluster.vllm_identity.role.node.default_child)
    statements = policy_statements(resources, role_id)
    by_action = {json.dumps(st["Action"]): st for st in statements}
    assert set(by_action) == {'"s3:GetObject"', '"s3:ListBucket"'}
    get = by_action['"s3:GetObject"']
    assert get["Resource"]["Fn::Join"][1][-1] == "/models/mistral-7b-awq/*"
    listing = by_action['"s3:ListBucket"']
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["models/mistral-7b-awq/", "models/mistral-7b-awq/*"]}}
    trust = resources[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert sorted(trust["Action"]) == ["sts:AssumeRole", "sts:TagSession"]


def test_node_roles_do_not_read_the_model_bucket(resources) -> None:
    for logical_id, role in of_type(resources, "AWS::IAM::Role").items():
        principal = json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
        if "ec2.amazonaws.com" not in principal:
            continue
        text = json.dumps(policy_statements(resources, logical_id)) + json.dumps(role["Properties"].get("Policies", []))
        assert "s3:" not in text and "ModelStore" not in text, logical_id


# --- ordering ---------------------------------------------------------------------------
def test_karpenter_crd_chart_before_karpenter(resources) -> None:
    charts = helm_charts(resources)
    crd_id, _ = charts["karpenter-crd"]
    assert crd_id in depends_on(charts["karpenter"][1])


def test_workloads_depend_on_their_controllers(resources) -> None:
    charts = helm_charts(resources)
    karpenter, keda, addon, alb = (charts[n][0] for n in ("karpenter", "keda", "otel-add-on", "aws-load-balancer-controller"))
    (nodepools,) = manifests_with(resources, "NodePool").values()
    (scaled,) = manifests_with(resources, "ScaledObject").values()
    (tgb,) = manifests_with(resources, "TargetGroupBinding").values()
    assert karpenter in depends_on(nodepools)
    assert {keda, addon} <= depends_on(scaled)
    assert alb in depends_on(tgb)


def test_every_workload_manifest_goes_before_every_controller(resources) -> None:
    controllers = {k for k, _ in helm_charts(resources).values()}
    ours = [r for r in of_type(resources, "Custom::AWSCDK-EKS-KubernetesResource").values() if manifest_kinds(r)]
    assert len(ours) >= 5
    for manifest in ours:
        assert controllers <= depends_on(manifest)


def test_controllers_wait_for_the_cleanup_resource_which_waits_for_the_cluster(resources) -> None:
    cleanup = of_type(resources, "Custom::ControllerCleanup") or {
        k: r for k, r in resources.items() if "ControllerCleanup" in k and r["Type"].startswith("Custom::")
    }
    assert len(cleanup) == 1
    (cleanup_id, cleanup_res), = cleanup.items()
    cluster_id = next(iter(of_type(resources, "AWS::EKS::Cluster")))
    nodegroup_id = next(iter(of_type(resources, "AWS::EKS::Nodegroup")))
    assert {cluster_id, nodegroup_id} <= depends_on(cleanup_res)
    for chart_id, chart in helm_charts(resources).values():
        assert cleanup_id in depends_on(chart), chart_id


def test_collector_forwards_every_metric_the_configured_triggers_query(tmp_path) -> None:
    """The embedded collector is built from the same props as `make manifests` (k8s_charts.chart_props):
    a trigger on another vLLM metric reaches the add-on, or KEDA would read nothing for it."""
    from app_config import config_from_dict
    from stacks.app_builder import build_app
    from tests.support.cdk_app import new_app

    triggers = [
        {"name": "running", "metric_query": "sum(vllm:num_requests_running)", "target_value": 25},
        {"name": "waiting", "metric_query": "sum(vllm:num_requests_waiting)", "target_value": 5},
        {"name": "swapped", "metric_query": "sum(vllm:num_requests_swapped)", "target_value": 1},
    ]
    config = config_from_dict({"scaling": {"triggers": triggers, "formula": "running + (waiting * 10) + swapped"}})
    app = new_app(tmp_path)
    stacks = build_app(app, config, nag=False)
    template = app.synth().get_stack_by_name(stacks.cluster.stack_name).template
    (collector,) = [
        r for r in manifests_with(template["Resources"], "Deployment").values()
        if "otel-collector" in json.dumps(r["Properties"]["Manifest"])
    ]
    text = json.dumps(collector["Properties"]["Manifest"])
    for metric in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:num_requests_swapped"):
        assert metric in text, metric


# --- network policy enforcement --------------------------------------------------------
def test_vpc_cni_enforces_network_policies(resources) -> None:
    """Without enableNetworkPolicy the VPC CNI ignores every NetworkPolicy we render."""
    (cni,) = [r for r in of_type(resources, "AWS::EKS::Addon").values() if r["Properties"]["AddonName"] == "vpc-cni"]
    assert json.loads(cni["Properties"]["ConfigurationValues"]) == {"enableNetworkPolicy": "true"}


def test_service_range_is_the_one_the_policies_name(resources) -> None:
    """The policies allow the API server by its ClusterIP, so the cluster's service range is explicit."""
    from app_config import config_from_dict

    (cluster,) = of_type(resources, "AWS::EKS::Cluster").values()
    network = cluster["Properties"]["KubernetesNetworkConfig"]
    assert network["ServiceIpv4Cidr"] == config_from_dict({}).cluster.service_ipv4_cidr


def test_workloads_start_after_their_network_policies(resources) -> None:
    """vLLM, the gateway and the collector are applied after the NetworkPolicies: their pods never
    run unconfined."""
    manifests = of_type(resources, "Custom::AWSCDK-EKS-KubernetesResource")
    (policies,) = [k for k, r in manifests.items() if '\\"kind\\":\\"NetworkPolicy\\"' in json.dumps(r["Properties"]["Manifest"])]
    ours = {k: r for k, r in manifests.items() if k.startswith(("EksClusterVllmManifest", "EksClusterGatewayManifest",
                                                              "EksClusterOtelCollectorManifest"))}
    assert len(ours) == 3, sorted(ours)
    for lid, manifest in ours.items():
        assert policies in depends_on(manifest), lid
