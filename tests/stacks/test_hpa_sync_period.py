"""The HPA sync period: the values EKS accepts (10-15 s; below 15 s only on a Provisioned Control
Plane; EKS User Guide, "Advanced Kubernetes control plane configuration"), validated at synth
naming the field, and rendered into ``AWS::EKS::Cluster`` as the property shape and value format
of the CloudFormation resource schema (checked by cfn-lint's copy of that schema)."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file

from app_config import ConfigError, config_from_dict
from app_config.model import ClusterConfig
from cdk_constructs.eks_cluster import _PROVISIONED_CONTROL_PLANE_TIERS


def _error(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    return str(info.value)


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        pytest.param({"hpa_sync_period_seconds": 10},
                     "cluster.hpa_sync_period_seconds: 10 s needs an EKS Provisioned Control Plane", id="fast-on-standard"),
        pytest.param({"control_plane_tier": "tier-xl", "hpa_sync_period_seconds": 9},
                     "cluster.hpa_sync_period_seconds: Input should be greater than or equal to 10", id="below-eks-minimum"),
        pytest.param({"control_plane_tier": "tier-xl", "hpa_sync_period_seconds": 30},
                     "cluster.hpa_sync_period_seconds: Input should be less than or equal to 15", id="above-eks-maximum"),
        pytest.param({"control_plane_tier": "tier-9xl"}, "cluster.control_plane_tier", id="unknown-tier"),
    ],
)
def test_values_eks_refuses_fail_naming_the_field(cluster, expected):
    assert expected in _error({"cluster": cluster})


def test_defaults_are_what_eks_does_on_the_standard_control_plane():
    config = config_from_dict({})
    assert (config.cluster.control_plane_tier, config.cluster.hpa_sync_period_seconds) == ("standard", 15)


def test_every_provisioned_tier_maps_to_a_cdk_tier():
    (tiers,) = [typing.get_args(f.annotation) for n, f in ClusterConfig.model_fields.items() if n == "control_plane_tier"]
    assert set(tiers) - {"standard"} == set(_PROVISIONED_CONTROL_PLANE_TIERS)


def _cluster_properties(app_stacks, assembly) -> tuple[dict, Path, str]:
    artifact = assembly.get_stack_by_name(app_stacks.cluster.stack_name)
    (props,) = [r["Properties"] for r in artifact.template["Resources"].values() if r["Type"] == "AWS::EKS::Cluster"]
    return props, Path(artifact.assembly.directory) / artifact.template_file, artifact.environment.region


def test_default_config_leaves_the_eks_default(default_app):
    props, _, _ = _cluster_properties(default_app.stacks, default_app.assembly)
    assert "KubeControllerManagerConfig" not in props
    assert "ControlPlaneScalingConfig" not in props


def test_provisioned_tier_renders_the_sync_period_eks_expects(tmp_path):
    from stacks.app_builder import build_app
    from tests.support.cdk_app import new_app

    app = new_app(tmp_path)
    config = config_from_dict({"cluster": {"control_plane_tier": "tier-xl", "hpa_sync_period_seconds": 10}})
    stacks = build_app(app, config, nag=False)
    props, template, region = _cluster_properties(stacks, app.synth())
    assert props["KubeControllerManagerConfig"] == {
        "HorizontalPodAutoscalerControllerConfig": {"HorizontalPodAutoscalerSyncPeriod": "10s"}
    }
    assert props["ControlPlaneScalingConfig"] == {"Tier": "tier-xl"}
    # The CloudFormation resource schema (cfn-lint's copy) accepts the shape: no error anywhere.
    errors = [f"{m.rule.id} {m.message} ({m.path_string})"
              for m in lint_file(template, config=ManualArgs(regions=[region])) if m.rule.id.startswith("E")]
    assert errors == []
