"""Helpers to acknowledge cdk-nag (AwsSolutions) findings, each with a reviewer-facing reason.

cdk-nag 3 runs as a synth-time validation plugin; ``cdk.Validations.of(scope).acknowledge`` takes
a rule id (``AwsSolutions-SQS3``) or one finding (``AwsSolutions-IAM4[Policy::...]``) and applies
to ``scope`` and its children, so acknowledge on the narrowest construct that carries the finding.
"""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_iam as iam
from constructs import IConstruct, IValidation


def acknowledge(scope: IConstruct, reason: str, *finding_ids: str) -> None:
    """Acknowledge each of ``finding_ids`` on ``scope`` (and its children) with ``reason``."""
    cdk.Validations.of(scope).acknowledge(*(cdk.Acknowledgment(id=fid, reason=reason) for fid in finding_ids))


def managed_policy_finding(name: str) -> str:
    """The IAM4 finding id for the AWS managed policy ``name`` (e.g. ``AmazonEKSWorkerNodePolicy``)."""
    return f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{name}]"


def flatten_cfn_reference(node: Any) -> str:
    """cdk-nag's ``flattenCfnReference``: a resolved CloudFormation value as its finding text.

    ``{"Ref": "AWS::Region"}`` -> ``<AWS::Region>``; ``Fn::GetAtt [X, Arn]`` -> ``<X.Arn>``;
    ``Fn::ImportValue`` -> the export name; ``Fn::Join`` -> joined parts.
    """
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return delimiter.join(flatten_cfn_reference(item) for item in items)
        if "Fn::Sub" in node:
            return flatten_cfn_reference(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flatten_cfn_reference(resource)}.{flatten_cfn_reference(attribute)}>"
        if "Fn::ImportValue" in node:
            return flatten_cfn_reference(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{flatten_cfn_reference(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))


@jsii.implements(IValidation)
class _WildcardResourceAcknowledgement:
    """Construct validation that, once cross-stack references are resolved (CDK validates the
    tree after ``prepare`` and before running plugins such as cdk-nag), acknowledges exactly the
    IAM5 ``Resource::`` findings of the wildcard resources in one policy document."""

    def __init__(self, policy: cdk.CfnResource, reason: str) -> None:
        self._policy = policy
        self._reason = reason

    def validate(self) -> list[str]:
        stack = cdk.Stack.of(self._policy)
        document = stack.resolve(getattr(self._policy, "policy_document"))  # CfnPolicy / CfnManagedPolicy
        resources: list[str] = []
        for statement in document.get("Statement", []):
            values = statement.get("Resource", [])
            for value in values if isinstance(values, list) else [values]:
                text = flatten_cfn_reference(value)
                if "*" in text:
                    resources.append(text)
        acknowledge(self._policy, self._reason, *(f"AwsSolutions-IAM5[Resource::{r}]" for r in sorted(set(resources))))
        return []


def acknowledge_wildcard_resources(policy: IConstruct, reason: str) -> None:
    """Acknowledge the IAM5 findings of every wildcard *resource* in ``policy``'s own document.

    ``policy`` is an ``iam.Policy``/``iam.ManagedPolicy`` (or its ``CfnResource``). Only
    ``Resource::`` findings of that document are acknowledged (not ``Action::`` wildcards), each
    by its exact id, computed after cross-stack references are resolved.
    """
    cfn = policy if isinstance(policy, cdk.CfnResource) else policy.node.default_child
    if not isinstance(cfn, cdk.CfnResource):
        raise TypeError(f"{policy.node.path} has no CloudFormation resource to acknowledge findings on")
    cfn.node.add_validation(_WildcardResourceAcknowledgement(cfn, reason))


@jsii.implements(IValidation)
class _ManagedPolicyAcknowledgement:
    """Construct validation acknowledging the IAM4 finding of each managed policy ARN of one role
    (ARNs resolved, conditional ``Fn::If`` ARNs included), by exact finding id."""

    def __init__(self, role: cdk.CfnResource, reason: str) -> None:
        self._role = role
        self._reason = reason

    def validate(self) -> list[str]:
        arns = cdk.Stack.of(self._role).resolve(getattr(self._role, "managed_policy_arns")) or []
        acknowledge(self._role, self._reason, *(f"AwsSolutions-IAM4[Policy::{flatten_cfn_reference(a)}]" for a in arns))
        return []


def acknowledge_managed_policies(role: IConstruct, reason: str) -> None:
    """Acknowledge the IAM4 (AWS managed policy) findings of ``role`` (an ``iam.Role`` or ``CfnRole``)."""
    cfn = role if isinstance(role, cdk.CfnResource) else role.node.default_child
    if not isinstance(cfn, cdk.CfnResource):
        raise TypeError(f"{role.node.path} has no CloudFormation resource to acknowledge findings on")
    cfn.node.add_validation(_ManagedPolicyAcknowledgement(cfn, reason))


def acknowledge_provider_framework(provider: IConstruct) -> None:
    """Acknowledge the findings on a ``custom_resources.Provider``'s own parts (aws-cdk-lib code).

    Its roles carry the AWS managed Lambda basic execution policy (IAM4), its policy may invoke any
    version of the construct's own handler functions (IAM5 ``<function ARN>:*``), and its functions
    and waiter state machine have a runtime, logging and tracing that are not configurable (L1,
    SF1, SF2). Each IAM finding is acknowledged by exact id, on the role or policy that carries it.
    """
    for child in provider.node.find_all():
        if isinstance(child, iam.CfnRole):
            acknowledge_managed_policies(
                child,
                "CDK Provider framework (aws-cdk-lib code): its functions use the AWS managed Lambda "
                "basic execution policy (CloudWatch Logs only).",
            )
        elif isinstance(child, iam.CfnPolicy):
            acknowledge_wildcard_resources(
                child,
                "CDK Provider framework: it may invoke any version (<function ARN>:*) of this construct's "
                "own on_event/is_complete functions and run its own waiter state machine, nothing else.",
            )
    acknowledge(
        provider,
        "CDK Provider framework functions and waiter state machine are generated by aws-cdk-lib: their "
        "Node.js runtime, state-machine logging and X-Ray tracing are not configurable from here.",
        "AwsSolutions-L1", "AwsSolutions-SF1", "AwsSolutions-SF2",
    )
