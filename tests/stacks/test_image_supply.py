"""Image supply at scale: every image of a public registry that we run is pulled through ECR
pull-through cache rules in the deploy region, none from Docker Hub directly (its anonymous pull
limit is per IP, and every node shares the NAT gateway's), and the load balancer controller image
comes from its ECR Public repository through the deploy region's cache, not the us-west-2 default."""

from __future__ import annotations

import json

import pytest

from app_config import ConfigError, config_from_dict, versions
from app_config.images import split_reference
from tests.stacks.conftest import app_graph, release_values
from tests.support.cfn_graph import ResourceId
from tests.support.kubectl_handler import ACCOUNT, HELM_CHART_TYPE, MANIFEST_TYPE, IntrinsicResolver


def _registry(region: str) -> str:
    return f"{ACCOUNT}.dkr.ecr.{region}.amazonaws.com"


def _manifest_images(template: dict, region: str) -> dict[str, str]:
    """Container name -> image of every container in the template's manifests (resolved)."""
    resolver = IntrinsicResolver(template["Resources"], region)
    images = {}
    for resource in template["Resources"].values():
        if resource["Type"] != MANIFEST_TYPE:
            continue
        for obj in json.loads(resolver.resolve(resource["Properties"]["Manifest"])):
            spec = obj.get("spec", {}).get("template", {}).get("spec", {})
            for container in spec.get("containers", []) + spec.get("initContainers", []):
                images[f"{obj['metadata']['name']}/{container['name']}"] = container["image"]
    return images


def test_b10_no_image_of_ours_comes_from_docker_hub(default_app, cluster_template) -> None:
    region = default_app.stacks.cluster.region
    images = _manifest_images(cluster_template, region)
    assert images, "no container in the manifests"
    direct = {name: image for name, image in images.items() if split_reference(image)[0] == "docker.io"}
    assert not direct, f"pulled from Docker Hub directly: {direct}"
    assert images["vllm/vllm"] == f"{_registry(region)}/qvllm/docker-hub/{versions.VLLM_IMAGE}"
    assert images["otel-collector/otel-collector"] == f"{_registry(region)}/qvllm/docker-hub/{versions.OTEL_COLLECTOR_IMAGE}"


def test_b10_chart_images_come_through_the_regions_cache(default_app, rehearsal) -> None:
    """Read back through Helm's merge of our values over the charts' defaults (the rehearsal)."""
    cache = _registry(default_app.stacks.cluster.region)
    lb = release_values(rehearsal, "aws-load-balancer-controller")["image"]
    assert lb["repository"] == f"{cache}/qvllm/ecr-public/eks/aws-load-balancer-controller", lb
    assert lb["tag"] == versions.AWS_LOAD_BALANCER_CONTROLLER_IMAGE_TAG
    karpenter = release_values(rehearsal, "karpenter")["controller"]["image"]
    assert karpenter["repository"] == f"{cache}/qvllm/ecr-public/karpenter/controller"
    assert karpenter["digest"].startswith("sha256:")  # the chart's digest pin stays
    metrics = release_values(rehearsal, "metrics-server")["image"]
    assert metrics["repository"] == f"{cache}/qvllm/k8s/metrics-server/metrics-server"


def test_b10_lb_controller_image_follows_the_deploy_region(tmp_path) -> None:
    from stacks.app_builder import build_app
    from tests.support.cdk_app import new_app

    app = new_app(tmp_path)
    stacks = build_app(app, config_from_dict({"env": {"region": "eu-central-1"}}), nag=False)
    template = app.synth().get_stack_by_name(stacks.cluster.stack_name).template
    resolver = IntrinsicResolver(template["Resources"], "eu-central-1")
    (values,) = [
        json.loads(resolver.resolve(r["Properties"]["Values"]))
        for r in template["Resources"].values()
        if r["Type"] == HELM_CHART_TYPE and r["Properties"]["Release"] == "aws-load-balancer-controller"
    ]
    assert values["image"]["repository"] == f"{_registry('eu-central-1')}/qvllm/ecr-public/eks/aws-load-balancer-controller"


def test_b10_cache_rules_and_node_permissions(cluster_template) -> None:
    resources = cluster_template["Resources"]
    rules = {
        r["Properties"]["EcrRepositoryPrefix"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::ECR::PullThroughCacheRule"
    }
    assert set(rules) == {"qvllm/docker-hub", "qvllm/ecr-public", "qvllm/k8s"}
    assert rules["qvllm/docker-hub"]["UpstreamRegistryUrl"] == "registry-1.docker.io"
    assert "secret:ecr-pullthroughcache/docker-hub" in json.dumps(rules["qvllm/docker-hub"]["CredentialArn"])
    assert "CredentialArn" not in rules["qvllm/ecr-public"] and "CredentialArn" not in rules["qvllm/k8s"]
    (policy,) = [r for r in resources.values() if r["Type"] == "AWS::IAM::Policy" and "FillPullThroughCache" in json.dumps(r)]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(statement["Action"]) == ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"]
    assert len(policy["Properties"]["Roles"]) == 2  # the system node group's and Karpenter's node roles


def test_b10_every_release_waits_for_the_cache_rules(default_app, cluster_template) -> None:
    resources = cluster_template["Resources"]
    graph, stack = app_graph(default_app), default_app.stacks.cluster.stack_name
    rules = {lid for lid, r in resources.items() if r["Type"] == "AWS::ECR::PullThroughCacheRule"}
    pulling = [
        lid
        for lid, r in resources.items()
        if r["Type"] == HELM_CHART_TYPE or (r["Type"] == MANIFEST_TYPE and '\\"image\\"' in json.dumps(r))
    ]
    assert len(pulling) >= 9
    early = [
        lid for lid in pulling
        if not all(graph.depends_on(ResourceId(stack, lid), ResourceId(stack, rule)) for rule in rules)
    ]
    assert not early, f"may pull before the cache rules exist: {early}"


def test_b10_pull_through_cache_can_be_turned_off() -> None:
    from k8s_charts import render_all

    rendered = render_all(config_from_dict({"images": {"pull_through_cache": False}}))
    (deployment,) = [o for o in rendered["vllm"] if o["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == versions.VLLM_IMAGE


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"images": {"docker_hub_secret": "dockerhub"}}, "images.docker_hub_secret"),
        ({"project_name": "a-twenty-one-char-nam"}, "project_name: 'a-twenty-one-char-nam' makes the ECR pull-through cache prefix"),
    ],
)
def test_b10_bad_image_settings_fail_naming_the_field(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert expected in str(info.value)
