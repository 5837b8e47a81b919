"""Deploy rehearsal (case B10): the Cluster template's Helm charts and manifests through the real
kubectl handler of aws-cdk-lib, the real Helm and kubectl of the kubectl-v35 layer, and a real OCI
registry standing in for public.ecr.aws and ghcr.io (tests/support/deploy_rehearsal.py).

The charts on the loopback registries sit at the repository paths, names and version tags the
upstream projects publish (tests/stacks/upstream_charts.py, each fact with its source), so a
``Repository``/``Version`` that does not match upstream fails here as it would fail ``cdk deploy``.
"""

from __future__ import annotations

import json

import pytest

from tests.stacks.conftest import fact_for as _fact_for
from tests.stacks.upstream_charts import UPSTREAM_CHARTS
from tests.support.deploy_rehearsal import helm_upgrade, merged_values, rehearse
from tests.support.kubectl_handler import MANIFEST_TYPE

pytestmark = [pytest.mark.timeout(900), pytest.mark.registry]  # local OCI registries


def test_b10_every_chart_and_manifest_creates_through_the_real_handler(rehearsal) -> None:
    failures = rehearsal.failures(rehearsal.creates)
    assert not failures, "\n\n".join(inv.describe() for inv in failures)
    assert len(rehearsal.helm_charts()) >= 6


def test_b10_every_chart_and_manifest_updates_and_deletes(rehearsal) -> None:
    failures = rehearsal.failures([*rehearsal.updates, *rehearsal.deletes])
    assert not failures, "\n\n".join(inv.describe() for inv in failures)
    for inv in rehearsal.deletes:
        if "Release" in inv.properties:
            uninstall = [a for a in inv.argvs("helm") if a[0] == "uninstall"]
            assert uninstall and uninstall[0][1] == inv.properties["Release"], inv.commands


def test_b10_oci_charts_are_pulled_by_their_full_upstream_path(rehearsal) -> None:
    oci = {lid: p for lid, p in rehearsal.helm_charts().items() if p["Repository"].startswith("oci://")}
    assert oci, "the default app installs OCI charts (Karpenter, the OTel add-on)"
    for lid, props in oci.items():
        fact = _fact_for(props)
        inv = rehearsal.create_of(lid)
        pulls = [a for a in inv.argvs("helm") if a[0] == "pull"]
        assert pulls == [["pull", fact.location, "--version", fact.version, "--untar"]], (lid, inv.describe())
        upgrade = helm_upgrade(inv)["argv"]
        # The handler installs the pulled folder, named after the last segment of Repository.
        assert upgrade[2].endswith(f"/{fact.chart}") and "--repo" not in upgrade, upgrade


def test_b10_https_charts_install_from_the_upstream_repository(rehearsal) -> None:
    https = {lid: p for lid, p in rehearsal.helm_charts().items() if p["Repository"].startswith("https://")}
    assert https
    for lid, props in https.items():
        fact = _fact_for(props)
        upgrade = helm_upgrade(rehearsal.create_of(lid))
        argv = upgrade["argv"]
        assert argv[1:3] == [props["Release"], fact.chart], argv
        assert argv[argv.index("--repo") + 1] == fact.location and argv[argv.index("--version") + 1] == fact.version
        assert upgrade["flags_ok"] and upgrade["rc"] == 0, upgrade.get("output")


def test_b10_no_chart_claims_skip_crds(rehearsal) -> None:
    """The handler reads SkipCrds but never passes --skip-crds to Helm (helm/__init__.py: helm()
    is called without it), so setting it would claim a behaviour that does not happen."""
    claims = [p["Release"] for p in rehearsal.helm_charts().values() if "SkipCrds" in p]
    assert not claims, f"charts setting SkipCrds, which the handler ignores: {claims}"
    for inv in rehearsal.creates:
        for argv in inv.argvs("helm"):
            assert "--skip-crds" not in argv


def test_b10_manifests_parse_with_the_real_kubectl_in_the_handler_order(rehearsal) -> None:
    manifests = [inv for inv in rehearsal.creates if rehearsal.resources[inv.logical_id]["Type"] == MANIFEST_TYPE]
    assert len(manifests) >= 6
    for inv in manifests:
        expected = [
            (o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            for o in json.loads(inv.properties["Manifest"])
        ]
        (call,) = [c for c in inv.commands if c["tool"] == "kubectl"]
        assert call["argv"][0] == "create" and "--save-config" in call["argv"] and call["flags_ok"], call
        parsed = [
            (o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            for o in call["objects"]
        ]
        assert parsed == expected, inv.logical_id


def test_b10_helm_sees_our_values_merged_over_the_chart_defaults(rehearsal) -> None:
    """The values file the handler writes reaches Helm: read back through the chart's real merge."""
    for lid, props in rehearsal.helm_charts().items():
        values = merged_values(rehearsal.create_of(lid))
        fact = _fact_for(props)
        for key in fact.default_values:
            assert key in values, (lid, key)


def test_b10_kedify_flavor_charts_create_through_the_real_handler(tmp_path_factory) -> None:
    """``scaling.keda_flavor: kedify`` swaps the KEDA chart for Kedify's build: rehearse its Create too."""
    from app_config import config_from_dict
    from stacks.app_builder import build_app
    from tests.support.cdk_app import new_app
    from tests.support.cfn_graph import AppGraph
    from tests.support.kubectl_handler import HELM_CHART_TYPE

    outdir = tmp_path_factory.mktemp("kedify-app")
    app = new_app(outdir)
    stacks = build_app(app, config_from_dict({"scaling": {"keda_flavor": "kedify"}}), nag=False)
    assembly = app.synth()
    result = rehearse(
        assembly.get_stack_by_name(stacks.cluster.stack_name).template,
        region=stacks.cluster.region,
        workdir=tmp_path_factory.mktemp("rehearsal-kedify"),
        charts=UPSTREAM_CHARTS,
        phases=("Create",),
        resource_types=(HELM_CHART_TYPE,),
        graph=AppGraph.from_assembly(assembly),
        stack=stacks.cluster.stack_name,
    )
    failures = result.failures()
    assert not failures, "\n\n".join(inv.describe() for inv in failures)
    keda = [p for p in result.helm_charts().values() if p["Chart"] == "keda"]
    assert [p["Repository"] for p in keda] == ["https://kedify.github.io/charts"]


def test_b10_otel_addon_version_must_keep_its_v(tmp_path_factory) -> None:
    """The add-on's OCI tag is ``v0.1.4``: the real handler with ``0.1.4`` (the form Kedify's README
    shows) fails to pull, with our pin it installs."""
    from app_config import versions
    from tests.support.kubectl_handler import HELM_CHART_TYPE

    def template(version: str) -> dict:
        props = {
            "ServiceToken": "arn:aws:lambda:us-west-2:111122223333:function:provider",
            "ClusterName": "qvllm",
            "Release": "keda-otel-scaler",
            "Chart": versions.OTEL_ADDON.chart,
            "Repository": versions.OTEL_ADDON.repository,
            "Version": version,
            "Namespace": "keda",
        }
        return {"Resources": {"Addon": {"Type": HELM_CHART_TYPE, "Properties": props}}}

    (fact,) = [f for f in UPSTREAM_CHARTS if f.chart == "otel-add-on"]
    results = {
        version: rehearse(
            template(version),
            region="us-west-2",
            workdir=tmp_path_factory.mktemp("addon-tag"),
            charts=[fact],
            phases=("Create",),
        ).creates[0]
        for version in ("0.1.4", versions.OTEL_ADDON.version)
    }
    assert not results["0.1.4"].ok and "otel-add-on:0.1.4: not found" in results["0.1.4"].output
    assert results[versions.OTEL_ADDON.version].ok, results[versions.OTEL_ADDON.version].describe()
