"""The Provider-framework recipe our custom resources share: ``on_event`` + ``is_complete`` Lambda
functions from one package under ``services/``, each with its own log group, and the Provider.

A function, not a construct: the parts are created on the caller's construct, so each custom
resource keeps its construct paths (and logical ids) and adds its own role, properties and
acknowledgements around it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from cdk_constructs.checkov import acknowledge_handler_functions
from cdk_constructs.lambda_defaults import ARCHITECTURE, PYTHON_RUNTIME
from cdk_constructs.nag import acknowledge_provider_framework

SERVICES_DIR = Path(__file__).resolve().parents[1] / "services"
HANDLER_NAMES = ("on_event", "is_complete")  # functions of <package>/handler.py
LOG_RETENTION = logs.RetentionDays.ONE_MONTH


@dataclass(frozen=True)
class HandlerSize:
    """Lambda ``timeout`` and ``memory_size`` (MB) of one handler function."""

    timeout: cdk.Duration
    memory_mb: int


@dataclass(frozen=True)
class HandlerProviderProps:
    """Props of :func:`handler_provider`.

    Attributes:
        package: the handler package under ``services/`` (shipped as a package: relative imports
            work; only its ``*.py`` files go into the asset, so synth needs no bundling).
        role: the execution role of both functions.
        sizes: ``{"on_event": HandlerSize, "is_complete": HandlerSize}``.
        query_interval / total_timeout: the Provider's ``is_complete`` polling (total below
            CloudFormation's one-hour custom-resource limit).
        describe: the description of a function, from its handler name (``"on_event"``).
        environment: environment variables of both functions.
        vpc: run the functions in this VPC's private subnets (with ``security_groups``), or not.
        grant_log_write: grant ``role`` write on the two log groups (for a role without the
            managed Lambda execution policy).
    """

    package: str
    role: iam.IRole
    sizes: Mapping[str, HandlerSize]
    query_interval: cdk.Duration
    total_timeout: cdk.Duration
    describe: Callable[[str], str]
    environment: Mapping[str, str] = field(default_factory=dict)
    vpc: ec2.IVpc | None = None
    security_groups: tuple[ec2.ISecurityGroup, ...] = ()
    grant_log_write: bool = False


def handler_provider(scope: Construct, props: HandlerProviderProps) -> cr.Provider:
    """Create ``OnEventLogs``/``OnEvent``, ``IsCompleteLogs``/``IsComplete`` and ``ProviderLogs``/
    ``Provider`` on ``scope``, acknowledge the Provider framework's own cdk-nag findings and the
    checkov findings that do not fit a custom-resource handler, and return the Provider (its ``service_token`` goes to the ``CustomResource``).

    Raises:
        ValueError: ``sizes`` does not name exactly ``on_event`` and ``is_complete``.
    """
    if set(props.sizes) != set(HANDLER_NAMES):
        raise ValueError(f"HandlerProviderProps.sizes must name exactly {HANDLER_NAMES}, got {sorted(props.sizes)}")
    code = lambda_.Code.from_asset(
        str(SERVICES_DIR),
        exclude=["*", f"!{props.package}", f"!{props.package}/*.py", "**/__pycache__"],
    )
    in_vpc = {}
    if props.vpc is not None:
        in_vpc = {
            "vpc": props.vpc,
            "vpc_subnets": ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            "security_groups": list(props.security_groups),
        }
    functions: dict[str, lambda_.Function] = {}
    log_groups: list[logs.LogGroup] = []
    for name in HANDLER_NAMES:
        pascal = name.title().replace("_", "")
        log_group = logs.LogGroup(
            scope, f"{pascal}Logs", retention=LOG_RETENTION, removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        log_groups.append(log_group)
        if props.grant_log_write:
            log_group.grant_write(props.role)
        functions[name] = lambda_.Function(
            scope, pascal,
            runtime=PYTHON_RUNTIME,
            architecture=ARCHITECTURE,
            code=code,
            handler=f"{props.package}.handler.{name}",
            timeout=props.sizes[name].timeout,
            memory_size=props.sizes[name].memory_mb,
            role=props.role,
            environment=dict(props.environment) or None,
            log_group=log_group,
            description=props.describe(name),
            **in_vpc,
        )
    log_groups.append(
        logs.LogGroup(scope, "ProviderLogs", retention=LOG_RETENTION, removal_policy=cdk.RemovalPolicy.DESTROY)
    )
    provider = cr.Provider(
        scope, "Provider",
        on_event_handler=functions["on_event"],
        is_complete_handler=functions["is_complete"],
        query_interval=props.query_interval,
        total_timeout=props.total_timeout,
        log_group=log_groups[-1],
    )
    acknowledge_provider_framework(provider)
    for handler_part in (*functions.values(), *log_groups, provider):
        acknowledge_handler_functions(handler_part)
    return provider
