"""A bad config value fails synth with a message that names the field.

Module cdk-config-validation; cases B06 (replica bounds the KEDA webhook let through) and
B11 (NodePool requirements no instance can satisfy / operators the CRD refuses).
Each case runs through ``app_config.config_from_dict``; the replica-bounds case and the
kubectl-layer case also run through a real ``cdk synth`` / ``python app.py`` subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from app_config import ConfigError, config_from_dict
from app_config.model import KNOWN_REQUIREMENT_VALUES

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK = REPO_ROOT / "node_modules" / ".bin" / "cdk"
PYTHON = REPO_ROOT / ".venv" / "bin" / "python"


def _error(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    return str(info.value)


# (id, config, strings the message must contain: the field's dotted path first)
BAD_CONFIGS = [
    pytest.param(
        {"scaling": {"min_replicas": 5, "max_replicas": 2}},
        ["scaling.max_replicas", "scaling.min_replicas", "(2)", "(5)"],
        id="B06-max-replicas-below-min",
    ),
    pytest.param({"scaling": {"max_replicas": 0}}, ["scaling.max_replicas"], id="B06-max-replicas-zero"),
    pytest.param({"scaling": {"min_replicas": -1}}, ["scaling.min_replicas"], id="B06-negative-min-replicas"),
    pytest.param(
        {"scaling": {"min_replicas": 1, "idle_replica_count": 3}},
        ["scaling.idle_replica_count", "scaling.min_replicas"],
        id="B06-idle-replicas-not-below-min",
    ),
    pytest.param({"model": {"hf_repo_id": ""}}, ["model.hf_repo_id"], id="empty-model-id"),
    pytest.param({"model": {"hf_repo_id": "   "}}, ["model.hf_repo_id", "must not be empty"], id="blank-model-id"),
    pytest.param(
        {"karpenter": {"gpu": {"capacity_types": ["xspot", "on-demand"]}}},
        ["karpenter.gpu", "karpenter.sh/capacity-type", "'xspot'"],
        id="B11-unknown-capacity-type",
    ),
    pytest.param(
        {"karpenter": {"gpu": {"extra_requirements": [
            {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gte", "values": ["5"]}
        ]}}},
        ["karpenter.gpu.extra_requirements.0", "karpenter.k8s.aws/instance-generation", "'Gte'", "'Gt'", "'Lt'"],
        id="B11-operator-the-crd-refuses",
    ),
    pytest.param(
        {"karpenter": {"gpu": {"extra_requirements": [
            {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["5", "6"]}
        ]}}},
        ["karpenter.gpu.extra_requirements.0", "karpenter.k8s.aws/instance-generation", "exactly one integer"],
        id="B11-gt-needs-one-integer",
    ),
    pytest.param(
        {"karpenter": {"gpu": {"gpu_manufacturer": "NVIDIA"}}},
        ["karpenter.gpu", "instance-gpu-manufacturer", "'NVIDIA'"],
        id="B11-gpu-manufacturer-case",
    ),
    pytest.param(
        {"scaling": {"formula": "running + (queued * 10)"}},
        ["scaling.formula", "'queued'"],
        id="formula-names-missing-trigger",
    ),
    pytest.param({"scaling": {"target": 0}}, ["scaling.target"], id="non-positive-target"),
    pytest.param(
        {"scaling": {"triggers": [
            {"name": "running", "metric_query": "sum(vllm:num_requests_running)", "target_value": -5},
            {"name": "waiting", "metric_query": "sum(vllm:num_requests_waiting)", "target_value": 5},
        ]}},
        ["scaling.triggers.0.target_value"],
        id="non-positive-trigger-target",
    ),
    pytest.param({"network": {"vpc_cidr": "10.0.0.0/33"}}, ["network.vpc_cidr", "10.0.0.0/33"], id="cidr-bad-prefix"),
    pytest.param({"network": {"vpc_cidr": "10.0.0.1/16"}}, ["network.vpc_cidr"], id="cidr-host-bits-set"),
    pytest.param(
        {"cluster": {"public_access_cidrs": ["203.0.113.0/24", "not-a-cidr"]}},
        ["cluster.public_access_cidrs", "not-a-cidr"],
        id="cidr-allow-list-entry",
    ),
    pytest.param(
        {"cluster": {"kubernetes_version": "1.30"}},
        ["cluster.kubernetes_version", "kubectl", "1.30"],
        id="kubernetes-version-kubectl-layer-cannot-drive",
    ),
    pytest.param({"edge": {"waf_rate_limit_per_5min": 0}}, ["edge.waf_rate_limit_per_5min"], id="waf-rate-limit-zero"),
]


@pytest.mark.parametrize(("data", "expected"), BAD_CONFIGS)
def test_bad_value_names_the_field(data, expected):
    message = _error(data)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} missing from:\n{message}"


def test_design_values_pass():
    """B06/B11: the design values (replicas 1..10, spot + on-demand, nvidia) are accepted."""
    config = config_from_dict({})
    assert (config.scaling.min_replicas, config.scaling.max_replicas) == (1, 10)
    assert config.scaling.idle_replica_count is None
    assert config.karpenter.gpu.capacity_types == ["spot", "on-demand"]
    assert set(config.karpenter.gpu.capacity_types) <= KNOWN_REQUIREMENT_VALUES["karpenter.sh/capacity-type"]
    assert config.edge.waf_rate_limit_per_5min == 2000
    assert config.cluster.kubernetes_version == "1.35"


def test_unknown_key_names_the_field():
    assert "edge.waf_rate_limt" in _error({"edge": {"waf_rate_limt": 100}})


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("JSII_NODE", str(REPO_ROOT / "node_modules" / ".bin" / "node"))
    env["JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"] = "1"
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    return env


@pytest.mark.slow  # the cdk CLI or app.py in a subprocess
def test_cdk_synth_fails_naming_the_field(tmp_path):
    """B06 through the real CLI: ``cdk synth -c config_file=bad.yaml`` exits non-zero, names the field."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"scaling": {"min_replicas": 5, "max_replicas": 2}}))
    result = subprocess.run(
        [str(CDK), "synth", "--no-notices", "-o", str(tmp_path / "out"), "-c", f"config_file={bad}"],
        cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "scaling.max_replicas (2) must be >= scaling.min_replicas (5)" in output
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.slow  # the cdk CLI or app.py in a subprocess
def test_app_py_fails_naming_the_field_from_context(tmp_path):
    """The kubectl-layer case through ``python app.py`` with inline context (as ``cdk synth -c config=...``)."""
    env = _env() | {
        "CDK_CONTEXT_JSON": json.dumps({"config": {"cluster": {"kubernetes_version": "1.31"}}}),
        "CDK_OUTDIR": str(tmp_path / "out"),
    }
    result = subprocess.run(
        [str(PYTHON), "app.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    assert "cluster.kubernetes_version" in result.stderr and "kubectl" in result.stderr, result.stderr


def test_a_partial_nested_override_keeps_the_other_defaults() -> None:
    """Overrides merge onto the defaults key by key (a new user set one HPA field and lost the policies)."""
    config = config_from_dict({"scaling": {"scale_up": {"stabilization_window_seconds": 30}}})
    default = config_from_dict({})
    assert config.scaling.scale_up.stabilization_window_seconds == 30
    assert config.scaling.scale_up.policies == default.scaling.scale_up.policies
    assert config.scaling.scale_down == default.scaling.scale_down


VLLM_ONLY_TRIGGERS = {
    "triggers": [
        {"name": "running", "metric_query": "sum(vllm:num_requests_running)", "target_value": 25},
        {"name": "waiting", "metric_query": "sum(vllm:num_requests_waiting)", "target_value": 5},
    ],
    "formula": "running + (waiting * 10)",
}


@pytest.mark.parametrize("override, field", [
    ({"min_replicas": 0, **VLLM_ONLY_TRIGGERS}, "scaling.min_replicas"),
    ({"idle_replica_count": 0, **VLLM_ONLY_TRIGGERS}, "scaling.idle_replica_count"),
    # the held trigger exists but the formula ignores it: it cannot wake KEDA either
    ({"min_replicas": 0, "formula": "running + (waiting * 10)"}, "scaling.min_replicas"),
])
def test_scale_to_zero_is_refused_with_the_reason(override: dict, field: str) -> None:
    """Without the gateway's held-requests trigger in the formula, the triggers read only vLLM's own
    metrics: with no vLLM pod there is nothing to activate on."""
    with pytest.raises(ConfigError) as err:
        config_from_dict({"scaling": override})
    assert field in str(err.value) and "scale to zero" in str(err.value)
    assert "qvllm_gateway_held_requests" in str(err.value)


def test_scale_from_zero_is_valid_with_the_held_trigger() -> None:
    """The default triggers include the gateway's held requests, so min_replicas 0 alone is valid."""
    config = config_from_dict({"scaling": {"min_replicas": 0}})
    assert config.scaling.min_replicas == 0
    assert any(t.source == "gateway" and "qvllm_gateway_held_requests" in t.metric_query for t in config.scaling.triggers)


@pytest.mark.parametrize("scaling, culprit", [
    ({"activation_target": 5, "formula": "running * 20 + waiting * 10 + held"}, "held"),
    ({"activation_target": 1}, "running"),
])
def test_scale_to_zero_needs_one_request_above_the_activation_target(scaling: dict, culprit: str) -> None:
    """One held request must wake KEDA (its composite > activationTarget), and one running request
    must keep it awake, or KEDA would remove the last pod under a request after cooldownPeriod."""
    with pytest.raises(ConfigError) as err:
        config_from_dict({"scaling": {"min_replicas": 0, **scaling}})
    message = str(err.value)
    assert "scaling.activation_target" in message and f"one {culprit} request" in message


def test_formula_functions_of_keda_are_not_taken_for_trigger_names() -> None:
    """KEDA's formula language has functions (ceil, abs...): the config must not refuse them."""
    config = config_from_dict({"scaling": {"formula": "ceil(waiting / 2) + max(running, 1)"}})
    assert config.scaling.formula.startswith("ceil(")
    with pytest.raises(ConfigError, match="'queued'"):
        config_from_dict({"scaling": {"formula": "ceil(queued / 2) + running"}})


def test_bad_yaml_is_one_line_naming_the_file_and_line(tmp_path):
    from app_config.loader import ConfigError, read_yaml

    bad = tmp_path / "my.yaml"
    bad.write_text("scaling:\n  min_replicas: [1\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(bad)
    text = str(info.value)
    assert "\n" not in text and "<unicode string>" not in text
    assert text.startswith(f"config_file {str(bad)!r} is not valid YAML at line 3, column 1: ")


def test_a_misspelt_key_gets_the_closest_field_and_a_cross_field_check_names_its_field_once():
    from app_config.loader import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match=r"scaling\.min_replicass: Extra inputs are not permitted \(did you mean 'min_replicas'\?\)"):
        config_from_dict({"scaling": {"min_replicass": 1}})
    with pytest.raises(ConfigError) as info:
        config_from_dict({"scaling": {"min_replicas": 5, "max_replicas": 2}})
    assert "  - scaling.max_replicas (2) must be >= scaling.min_replicas (5)" in str(info.value)
    assert "scaling: scaling." not in str(info.value)
