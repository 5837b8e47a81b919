"""cdk.json carries the feature flags a new CDK app gets from the pinned aws-cdk-lib, and the
flags keep what they would otherwise change (the stacks' own tags) as before."""

from __future__ import annotations

import importlib.util
import json
import tarfile
from pathlib import Path

from app_config.constants import PROJECT_TAG_KEY
from tests.support.cdk_app import cdk_json_context

# Deliberate differences from the recommended values, each with its reason.
DEVIATIONS = {
    # The unconfigured behaviour, kept: CloudFormation exports make the Edge stack refuse to delete
    # while the Cluster stack still imports its target group and security group; "weak"
    # (Fn::GetStackOutput) would let `cdk destroy` remove them out of order.
    "@aws-cdk/core:defaultCrossStackReferences": "strong",
}


def recommended_flags() -> dict[str, object]:
    """``recommended-feature-flags.json`` of the installed aws-cdk-lib (what ``cdk init`` writes)."""
    spec = importlib.util.find_spec("aws_cdk._jsii")
    assert spec is not None and spec.origin is not None
    bundle = next(Path(spec.origin).parent.glob("aws-cdk-lib@*.jsii.tgz"))
    with tarfile.open(bundle) as tar:
        member = tar.extractfile("package/recommended-feature-flags.json")
        assert member is not None
        return json.load(member)


def test_cdk_json_sets_every_recommended_flag():
    context = cdk_json_context()
    flags = recommended_flags()
    assert len(flags) > 50, "the recommended flags were not found in the aws-cdk-lib bundle"
    wrong = {
        name: context.get(name, "<unset>")
        for name, value in flags.items()
        if context.get(name, "<unset>") != DEVIATIONS.get(name, value)
    }
    assert not wrong, f"cdk.json differs from aws-cdk-lib's recommended flags: {wrong}"


def test_cdk_json_sets_no_flag_the_library_does_not_recommend():
    flags = recommended_flags()
    extra = sorted(k for k in cdk_json_context() if k.startswith("@aws-cdk") and k not in flags)
    assert not extra, f"flags aws-cdk-lib no longer recommends (expired or removed): {extra}"


def test_every_stack_carries_the_project_tag(default_app):
    """``@aws-cdk/core:explicitStackTags`` ignores ``Tags.of(stack)`` for the stack itself: the
    stacks pass their tags explicitly, so the stacks (not only their resources) stay tagged."""
    for stack in default_app.assembly.stacks:
        assert stack.tags.get(PROJECT_TAG_KEY) == "qvllm", (stack.stack_name, stack.tags)
