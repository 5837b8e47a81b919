"""Network stack: the VPC every other stack lives in."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from app_config import AppConfig
from cdk_constructs.network import Network, NetworkProps


class NetworkStack(cdk.Stack):
    """Holds :class:`cdk_constructs.network.Network`; exposes ``vpc``."""

    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description="qvllm: VPC, NAT, endpoints, flow logs", **kwargs)
        network = Network(self, "Network", NetworkProps(config=config.network, cluster_name=config.cluster_name))
        self.vpc = network.vpc
