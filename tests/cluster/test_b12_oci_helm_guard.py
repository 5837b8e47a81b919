"""Case B12 (module cdk-config-validation): OCI Helm charts with the kubectl v35 layer (Helm 4) need an
aws-cdk-lib whose kubectl handler has the fix of aws/aws-cdk#37143."""

from __future__ import annotations

import json

import pytest

from app_config import versions
from cdk_constructs import helm_oci_guard
from cdk_constructs.helm_oci_guard import HelmOciSupportError, check_oci_helm_support
from stacks.cluster_stack import helm_chart_pins


def test_b12_guard_fails_naming_package_and_minimum_version() -> None:
    with pytest.raises(HelmOciSupportError) as exc:
        check_oci_helm_support([versions.KARPENTER], kubectl_layer_version="1.35", cdk_lib_version="2.274.0")
    message = str(exc.value)
    assert "aws-cdk-lib 2.274.0" in message
    assert f"aws-cdk-lib>={versions.MIN_AWS_CDK_LIB_FOR_OCI_WITH_HELM4}" in message
    assert "oci://public.ecr.aws/karpenter/karpenter:1.14.1" in message


def test_b12_guard_passes_at_the_minimum_and_for_https_charts_or_older_layers() -> None:
    check_oci_helm_support([versions.KARPENTER], kubectl_layer_version="1.35", cdk_lib_version="2.275.0")
    check_oci_helm_support([versions.KEDA], kubectl_layer_version="1.35", cdk_lib_version="2.200.0")
    check_oci_helm_support([versions.KARPENTER], kubectl_layer_version="1.34", cdk_lib_version="2.200.0")


def test_b12_guard_reads_the_installed_version() -> None:
    check_oci_helm_support(helm_chart_pins_default(), kubectl_layer_version="1.35")  # 2.275.0 installed


def helm_chart_pins_default():
    from app_config import config_from_dict

    return helm_chart_pins(config_from_dict({}))


def test_b12_cluster_stack_refuses_to_synth_with_an_older_aws_cdk_lib(monkeypatch, tmp_path) -> None:
    from app_config import config_from_dict
    from stacks.app_builder import build_app
    from tests.support.cdk_app import new_app

    monkeypatch.setattr(helm_oci_guard, "installed_cdk_lib_version", lambda: "2.270.1")
    with pytest.raises(HelmOciSupportError, match=r"aws-cdk-lib 2\.270\.1 .*aws-cdk-lib>=2\.275\.0"):
        build_app(new_app(tmp_path), config_from_dict({}), nag=False)


def test_b12_karpenter_charts_in_the_template(resources) -> None:
    charts = {
        r["Properties"]["Chart"]: (k, r["Properties"], r.get("DependsOn", []))
        for k, r in resources.items()
        if r["Type"] == "Custom::AWSCDK-EKS-HelmChart"
    }
    crd_id, crd, _ = charts["karpenter-crd"]
    _, karpenter, karpenter_deps = charts["karpenter"]
    for props in (crd, karpenter):
        assert props["Repository"] == "oci://public.ecr.aws/karpenter"
        assert props["Version"].startswith("1.14.")
        assert props["Version"] == versions.KARPENTER.version
    assert crd_id in karpenter_deps  # explicit: karpenter-crd first
    assert karpenter.get("SkipCrds") is True
    assert json.dumps(karpenter).count("oci://") == 1
