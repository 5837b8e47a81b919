"""Acknowledge checkov findings on CloudFormation resources, each with a reviewer-facing reason.

checkov (the scanner ``make test`` runs on every synthesized template) reads a suppression from
the resource's own template metadata, ``Metadata: {checkov: {skip: [{id, comment}]}}``
(checkov ``cloudformation/context_parser.py``, ``collect_skip_comments``), and reports the
comment as the reason. A skip therefore sits on exactly the resource it excuses, as a cdk-nag
acknowledgement sits on its construct; tests/stacks/test_checkov_templates.py fails on a skip
whose reason is missing or too short to judge.
"""

from __future__ import annotations

from collections.abc import Iterable

import aws_cdk as cdk
import jsii
from constructs import IConstruct, IValidation

METADATA_KEY = "checkov"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
LOG_GROUP = "AWS::Logs::LogGroup"

# checkov checks on Lambda functions and log groups that do not fit a custom-resource handler
# (a function CloudFormation calls only while a stack deploys or deletes).
NO_DEAD_LETTER_QUEUE = "CKV_AWS_116"
NO_RESERVED_CONCURRENCY = "CKV_AWS_115"
NOT_IN_VPC = "CKV_AWS_117"
ENVIRONMENT_NOT_KMS = "CKV_AWS_173"
LOG_GROUP_NOT_KMS = "CKV_AWS_158"

HANDLER_REASONS = {
    NO_DEAD_LETTER_QUEUE: "Custom-resource handler: CloudFormation is its only caller and receives every outcome "
    "through the response URL (a failure fails the stack), so a dead-letter queue would hold events nobody reads.",
    NO_RESERVED_CONCURRENCY: "Custom-resource handler that runs once per stack event during deploy or delete; "
    "reserving concurrency would take capacity from the account's unreserved pool for nothing.",
    NOT_IN_VPC: "Custom-resource handler that calls only public AWS APIs (and, for the model upload, the Hugging Face "
    "Hub): a VPC attachment reaches no private resource and adds Lambda ENIs that slow the VPC's deletion.",
    ENVIRONMENT_NOT_KMS: "The environment holds only resource names, ARNs and settings, no secret; Lambda encrypts it "
    "at rest with its service key, and a customer key would add a key policy to keep for no secret.",
    LOG_GROUP_NOT_KMS: "Handler logs hold progress messages (resource names, counts, errors), no prompts or secrets; "
    "CloudWatch Logs encrypts them at rest, and they expire with the log group's retention.",
}


def skip_checks(resource: IConstruct, reason: str, *check_ids: str) -> None:
    """Record a checkov suppression of each of ``check_ids`` with ``reason`` on ``resource``.

    ``resource`` is a ``CfnResource`` or an L2 construct whose default child is one; existing
    suppressions on it are kept (a second skip of the same id replaces its reason).

    Raises:
        TypeError: ``resource`` has no CloudFormation resource to carry the metadata.
    """
    cfn = resource if isinstance(resource, cdk.CfnResource) else resource.node.default_child
    if not isinstance(cfn, cdk.CfnResource):
        raise TypeError(f"{resource.node.path} has no CloudFormation resource to carry a checkov skip")
    current = cfn.get_metadata(METADATA_KEY) or {}
    skips = {entry["id"]: entry["comment"] for entry in current.get("skip", [])}
    skips.update({check_id: reason for check_id in check_ids})
    cfn.add_metadata(METADATA_KEY, {"skip": [{"id": i, "comment": c} for i, c in sorted(skips.items())]})


BUCKET_NO_ACCESS_LOGS = "CKV_AWS_18"
BUCKET_NOT_VERSIONED = "CKV_AWS_21"


def acknowledge_log_bucket(bucket: IConstruct) -> None:
    """Skip the access-logging and versioning checks on a bucket that only receives logs."""
    skip_checks(
        bucket,
        "This bucket is itself the access-log destination: logging its own access would log every "
        "log delivery again, a loop with no reader.",
        BUCKET_NO_ACCESS_LOGS,
    )
    skip_checks(
        bucket,
        "Log objects are written once by the log delivery service and expire by a lifecycle rule; "
        "versioning would keep each expired log as a noncurrent version.",
        BUCKET_NOT_VERSIONED,
    )


def _cfn_children(scope: IConstruct, resource_type: str) -> Iterable[cdk.CfnResource]:
    for child in scope.node.find_all():
        if isinstance(child, cdk.CfnResource) and child.cfn_resource_type == resource_type:
            yield child


def acknowledge_handler_functions(scope: IConstruct) -> None:
    """Skip, with :data:`HANDLER_REASONS`, the Lambda checks that do not fit a custom-resource
    handler on every function and log group in ``scope`` (call it on the construct that holds
    only handlers: a ``Provider``, the kubectl provider, a CDK singleton provider).

    The VPC check is skipped only for a function outside a VPC, and the environment check only
    for a function with an environment, so a skip never hides a check that passes.
    """
    for function in _cfn_children(scope, LAMBDA_FUNCTION):
        checks = [NO_DEAD_LETTER_QUEUE, NO_RESERVED_CONCURRENCY]
        props = _properties(function)
        if not props.get("vpcConfig"):
            checks.append(NOT_IN_VPC)
        if props.get("environment"):
            checks.append(ENVIRONMENT_NOT_KMS)
        for check in checks:
            skip_checks(function, HANDLER_REASONS[check], check)
    for log_group in _cfn_children(scope, LOG_GROUP):
        if not _properties(log_group).get("kmsKeyId"):
            skip_checks(log_group, HANDLER_REASONS[LOG_GROUP_NOT_KMS], LOG_GROUP_NOT_KMS)


# Handlers aws-cdk-lib creates once per stack, as direct children of the stack, for its own custom
# resources: the VPC's default-security-group restriction (@aws-cdk/aws-ec2:restrictDefaultSecurityGroup),
# CfnUtils (the kubectl provider's JSON values), AwsCustomResource's singleton function (and its log
# group, a sibling), and the writer/reader of cross-region references (created while the app is
# prepared for synthesis, after every stack's constructor ran).
CDK_SINGLETON_HANDLERS = (
    "Custom::VpcRestrictDefaultSGCustomResourceProvider",
    "AWSCDKCfnUtilsProviderCustomResourceProvider",
    "AWS679f53fac002430cb0da5b7982bd2287",
    "Custom::CrossRegionExportWriterCustomResourceProvider",
    "Custom::CrossRegionExportReaderCustomResourceProvider",
)


@jsii.implements(IValidation)
class _SingletonHandlerAcknowledgement:
    """Construct validation (CDK validates the tree after preparing it and before writing the
    templates) that acknowledges the handlers of :data:`CDK_SINGLETON_HANDLERS` in one stack,
    including those made during preparation."""

    def __init__(self, stack: cdk.Stack) -> None:
        self._stack = stack

    def validate(self) -> list[str]:
        for child in self._stack.node.children:
            if any(child.node.id.startswith(name) for name in CDK_SINGLETON_HANDLERS):
                acknowledge_handler_functions(child)
        return []


def acknowledge_cdk_singleton_handlers(stack: cdk.Stack) -> None:
    """:func:`acknowledge_handler_functions` on each of :data:`CDK_SINGLETON_HANDLERS` that ``stack``
    holds when it is synthesized."""
    stack.node.add_validation(_SingletonHandlerAcknowledgement(stack))


def _properties(resource: cdk.CfnResource) -> dict:
    """The resource's properties as set so far, keys lower-camel-cased (an L1 class keeps
    ``vpcConfig``; a raw ``CfnResource``, as ``CustomResourceProvider`` makes, keeps ``VpcConfig``)."""
    props = cdk.Stack.of(resource).resolve(resource._cfn_properties) or {}
    return {key[:1].lower() + key[1:]: value for key, value in props.items()}
