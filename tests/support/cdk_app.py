"""Build CDK apps in tests the way the CLI does: with cdk.json's context (feature flags)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from tests.support.cfn_graph import ResourceId

REPO_ROOT = Path(__file__).resolve().parents[2]


def cdk_json_context() -> dict[str, Any]:
    """The ``context`` block of cdk.json (feature flags and the default ``config``)."""
    return dict(json.loads((REPO_ROOT / "cdk.json").read_text())["context"])


def new_app(outdir: str | Path | None = None, **extra_context: Any) -> cdk.App:
    """A ``cdk.App`` with cdk.json's context plus ``extra_context`` (as ``cdk synth -c`` would)."""
    context = cdk_json_context() | extra_context
    return cdk.App(outdir=str(outdir) if outdir else None, context=context)


def resource_id(construct: Any) -> ResourceId:
    """The app-wide id (stack name, logical id) of the CloudFormation resource behind an L1 or L2 construct."""
    element = construct
    while not isinstance(element, cdk.CfnElement):
        element = element.node.default_child
        assert element is not None, f"{construct.node.path} has no CloudFormation resource"
    stack = cdk.Stack.of(element)
    return ResourceId(stack.stack_name, stack.resolve(element.logical_id))
