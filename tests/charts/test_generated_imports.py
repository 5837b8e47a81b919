"""The charts build every object from typed classes, and the generated CRD classes are fresh."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cdk8s
import pytest

from app_config import config_from_dict
from k8s_charts import DeployValues, chart_props

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import gen_chart_imports as gen  # noqa: E402


def _api_objects(chart: cdk8s.Chart) -> list[cdk8s.ApiObject]:
    return [c for c in chart.node.find_all() if isinstance(c, cdk8s.ApiObject)]


@pytest.mark.parametrize("key", list(chart_props(config_from_dict({}), DeployValues.placeholders())))
def test_charts_build_only_typed_objects(key):
    """No bare ``cdk8s.ApiObject`` (an untyped object filled by JSON patches): each object is an
    instance of a generated class, built-in kinds from ``cdk8s_plus_35.k8s``, custom resources
    from ``k8s_charts.imports``."""
    spec = chart_props(config_from_dict({}), DeployValues.placeholders())[key]
    chart = spec.chart_class(cdk8s.App(), key, spec.props)
    objects = _api_objects(chart)
    assert objects, f"chart {key} built no objects"
    untyped = [o.node.path for o in objects if type(o) is cdk8s.ApiObject]
    assert not untyped, f"untyped ApiObjects in {key}: {untyped}"
    for obj in objects:
        assert type(obj).__module__.startswith(("cdk8s_plus_35.k8s", "k8s_charts.imports.")), type(obj)


@pytest.fixture(scope="module")
def fresh_imports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh ``cdk8s import`` of the CRD files (the pinned CLI, offline)."""
    out = tmp_path_factory.mktemp("imports") / "imports"
    gen.generate(out)
    return out


@pytest.mark.slow  # runs cdk8s import over Kubernetes 1.35 and the CRDs
def test_generated_imports_are_up_to_date(fresh_imports):
    assert gen.stale_files(fresh_imports, gen.IMPORTS) == []


@pytest.mark.slow  # runs cdk8s import over Kubernetes 1.35 and the CRDs
def test_stale_check_can_fail(fresh_imports, tmp_path):
    committed = tmp_path / "imports"
    shutil.copytree(gen.IMPORTS, committed, ignore=shutil.ignore_patterns("crds"))
    edited = committed / "sh" / "keda" / "__init__.py"
    edited.write_text(edited.read_text().replace("minReplicaCount", "minReplicas"))
    assert gen.stale_files(fresh_imports, committed) == [Path("sh/keda/__init__.py")]


def test_bytecode_caches_are_not_generated_files(tmp_path):
    # An import of the committed classes with bytecode on (make test-fast) leaves __pycache__ beside them.
    fresh, committed = tmp_path / "fresh", tmp_path / "committed"
    for root in (fresh, committed):
        (root / "sh" / "keda").mkdir(parents=True)
        (root / "sh" / "keda" / "__init__.py").write_text("x = 1\n")
    (committed / "sh" / "keda" / "__pycache__").mkdir()
    (committed / "sh" / "keda" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\0")
    assert gen.stale_files(fresh, committed) == []
    (committed / "sh" / "keda" / "extra.py").write_text("")
    assert gen.stale_files(fresh, committed) == [Path("sh/keda/extra.py")]


def test_wire_enum_maps_crd_values_and_names_an_unknown_one():
    from k8s_charts.common import wire_enum
    from k8s_charts.imports.sh import karpenter

    operator = karpenter.NodePoolSpecTemplateSpecRequirementsOperator
    assert wire_enum(operator, "DoesNotExist") is operator.DOES_NOT_EXIST
    assert wire_enum(operator, "NotIn") is operator.NOT_IN
    with pytest.raises(ValueError, match="'Gte2' is not a value of NodePoolSpecTemplateSpecRequirementsOperator"):
        wire_enum(operator, "Gte2")


def test_typed_scaled_object_refuses_a_string_where_the_crd_wants_an_integer():
    """The generated class types ``minReplicaCount`` as a number, as the CRD does: a string fails
    when the chart is built (at synth), not when the API server rejects the object."""
    from k8s_charts.scaled_object import ScaledObjectProps, scaled_object_manifest, typed_scaled_object_spec

    manifest, _ = scaled_object_manifest(ScaledObjectProps(scaling=config_from_dict({}).scaling))
    typed_scaled_object_spec(manifest["spec"])  # the real spec passes
    manifest["spec"]["minReplicaCount"] = "1"
    with pytest.raises(TypeError, match="min_replica_count"):
        typed_scaled_object_spec(manifest["spec"])
