"""The shared Provider-framework recipe of our custom resources (cdk_constructs/handler_provider.py)."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from cdk_constructs.handler_provider import HandlerProviderProps, HandlerSize, handler_provider


def _props(role: iam.IRole, **sizes: HandlerSize) -> HandlerProviderProps:
    return HandlerProviderProps(
        package="teardown", role=role, sizes=sizes, query_interval=cdk.Duration.seconds(10),
        total_timeout=cdk.Duration.minutes(20), describe=lambda handler: f"Probe {handler}",
        environment={"PROBE": "1"}, grant_log_write=True,
    )


def test_two_handlers_with_their_sizes_log_groups_and_provider() -> None:
    stack = cdk.Stack(cdk.App(), "Probe")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    provider = handler_provider(stack, _props(
        role,
        on_event=HandlerSize(cdk.Duration.minutes(1), 256),
        is_complete=HandlerSize(cdk.Duration.minutes(15), 3008),
    ))
    template = Template.from_stack(stack)
    for handler, timeout, memory in (("on_event", 60, 256), ("is_complete", 900, 3008)):
        template.has_resource_properties("AWS::Lambda::Function", {
            "Handler": f"teardown.handler.{handler}", "Timeout": timeout, "MemorySize": memory,
            "Runtime": "python3.14", "Architectures": ["arm64"], "Description": f"Probe {handler}",
            "Environment": {"Variables": {"PROBE": "1"}},
            "LoggingConfig": {"LogGroup": Match.any_value()},
        })
    log_groups = template.find_resources("AWS::Logs::LogGroup")
    assert len(log_groups) == 3  # two handlers + the Provider's framework function
    assert all(lg["Properties"]["RetentionInDays"] == 30 for lg in log_groups.values())
    policy = template.find_resources("AWS::IAM::Policy")
    actions = {a for p in policy.values() for s in p["Properties"]["PolicyDocument"]["Statement"]
               for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {"logs:CreateLogStream", "logs:PutLogEvents"} <= actions
    assert provider.service_token


def test_sizes_must_name_both_handlers() -> None:
    stack = cdk.Stack(cdk.App(), "Probe")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    with pytest.raises(ValueError, match=r"HandlerProviderProps.sizes must name exactly .*'is_complete'"):
        handler_provider(stack, _props(role, on_event=HandlerSize(cdk.Duration.minutes(1), 256)))
