"""Edge and gateway timeouts that would fail (or mislead) only in a real account fail synth
instead, each with a message naming the field: CloudFront's origin timeout quota, the response
completion timeout, the ALB idle timeout against the read timeout, the gateway heartbeat."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template

from app_config import ConfigError, config_from_dict
from app_config.model import CLOUDFRONT_ORIGIN_TIMEOUT_QUOTA_SECONDS, CLOUDFRONT_VPC_ORIGIN_TIMEOUT_MAX_SECONDS

REPO_ROOT = Path(__file__).resolve().parents[2]


def _error(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    return str(info.value)


BAD = [
    pytest.param({"edge": {"origin_read_timeout_seconds": 120}},
                 "edge.origin_read_timeout_seconds: 120 s is above CloudFront's default quota of 60 s",
                 id="read-timeout-above-quota-without-flag"),
    pytest.param({"edge": {"origin_keepalive_timeout_seconds": 90}},
                 "edge.origin_keepalive_timeout_seconds: 90 s is above CloudFront's default quota",
                 id="keepalive-above-quota-without-flag"),
    pytest.param({"edge": {"origin_timeout_quota_raised": True, "origin_read_timeout_seconds": 180}},
                 "edge.origin_read_timeout_seconds: Input should be less than or equal to 120",
                 id="read-timeout-above-the-vpc-origin-maximum"),
    pytest.param({"edge": {"origin_read_timeout_seconds": 0}},
                 "edge.origin_read_timeout_seconds", id="read-timeout-zero"),
    pytest.param({"edge": {"response_completion_timeout_seconds": 30}},
                 "edge.response_completion_timeout_seconds: 30 s must be >= edge.origin_read_timeout_seconds (60 s)",
                 id="completion-below-read"),
    pytest.param({"edge": {"response_completion_timeout_seconds": 3601}},
                 "edge.response_completion_timeout_seconds", id="completion-above-3600"),
    pytest.param({"edge": {"alb_idle_timeout_seconds": 30}},
                 "edge.alb_idle_timeout_seconds: 30 s must be >= edge.origin_read_timeout_seconds (60 s)",
                 id="alb-idle-below-read"),
    pytest.param({"gateway": {"heartbeat_interval_seconds": 60}},
                 "gateway.heartbeat_interval_seconds: 60.0 s must be below the edge's idle timeouts",
                 id="heartbeat-not-below-read"),
    pytest.param({"edge": {"origin_read_timeout_seconds": 20, "alb_idle_timeout_seconds": 20},
                  "gateway": {"heartbeat_interval_seconds": 25}},
                 "gateway.heartbeat_interval_seconds: 25.0 s must be below", id="heartbeat-not-below-idle"),
]


@pytest.mark.parametrize(("data", "expected"), BAD)
def test_bad_timing_fails_naming_the_field(data, expected):
    message = _error(data)
    assert expected in message, message
    assert "<root>" not in message


GOOD = [
    pytest.param({}, id="defaults"),
    pytest.param({"edge": {"origin_read_timeout_seconds": 30}}, id="read-30-within-quota"),
    pytest.param({"edge": {"origin_read_timeout_seconds": 1, "alb_idle_timeout_seconds": 1},
                  "gateway": {"heartbeat_interval_seconds": 0.5}}, id="smallest"),
    pytest.param({"edge": {"origin_timeout_quota_raised": True, "origin_read_timeout_seconds": 120,
                           "origin_keepalive_timeout_seconds": 120}}, id="raised-quota-120"),
    pytest.param({"edge": {"response_completion_timeout_seconds": 60}}, id="completion-equal-to-read"),
]


@pytest.mark.parametrize("data", GOOD)
def test_valid_timing_passes(data):
    config_from_dict(data)


def test_quota_constants_are_the_documented_ones():
    assert (CLOUDFRONT_ORIGIN_TIMEOUT_QUOTA_SECONDS, CLOUDFRONT_VPC_ORIGIN_TIMEOUT_MAX_SECONDS) == (60, 120)


def test_response_completion_timeout_reaches_the_origin():
    from cdk_constructs.edge import Edge, EdgeProps

    config = config_from_dict({"edge": {"response_completion_timeout_seconds": 900}})
    app = cdk.App()
    stack = cdk.Stack(app, "EdgeOnly", env=cdk.Environment(region="eu-west-1"))
    Edge(stack, "Edge", EdgeProps(
        config=config.edge, vpc=ec2.Vpc(stack, "Vpc", max_azs=2), web_acl_arn=None, viewer_certificate_arn=None,
        teardown_wait_seconds=config.teardown.wait_timeout_seconds,
    ))
    (dist,) = Template.from_stack(stack).find_resources("AWS::CloudFront::Distribution").values()
    (origin,) = dist["Properties"]["DistributionConfig"]["Origins"]
    assert origin["ResponseCompletionTimeout"] == 900
    assert origin["VpcOriginConfig"]["OriginReadTimeout"] == 60


@pytest.mark.slow  # app.py in a subprocess
def test_app_py_fails_naming_the_heartbeat_field(tmp_path):
    """Through ``python app.py`` (what ``cdk synth -c config=...`` runs): non-zero, field named."""
    env = dict(os.environ) | {
        "JSII_NODE": str(REPO_ROOT / "node_modules" / ".bin" / "node"),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "CDK_CONTEXT_JSON": json.dumps({"config": {"edge": {"alb_idle_timeout_seconds": 70},
                                                   "gateway": {"heartbeat_interval_seconds": 60}}}),
        "CDK_OUTDIR": str(tmp_path / "out"),
    }
    result = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "python"), "app.py"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "gateway.heartbeat_interval_seconds: 60.0 s must be below" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
