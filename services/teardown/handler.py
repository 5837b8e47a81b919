"""Controller-cleanup custom resource: CDK Provider framework ``on_event`` / ``is_complete``.

Create and Update do nothing but return a physical id. Delete (Karpenter's nodes and the load balancer controller's
resources would otherwise outlive the cluster and block the VPC's deletion):

1. ``on_event`` deletes our Karpenter NodePools through the Kubernetes API and records the
   start time (``Data.DeleteStartedAt``; the framework passes it on to every ``is_complete``).
2. Each ``is_complete`` poll deletes any NodePool of ours that is back or still there and lists
   the NodeClaims of those pools. While some remain it answers "not complete" (Karpenter is
   draining and terminating them), for at most half the timeout; after that, the NodeClaims
   are reported and the sweep goes on without them: the Karpenter controller may already be
   uninstalled, and their instances are terminated directly.
3. Then one :class:`~services.teardown.cleanup.AwsCleanup` sweep per poll: terminate
   Karpenter instances, delete leftover controller load balancers, target groups, launch
   templates, Karpenter instance profiles holding the node role, controller security groups
   and detached ENIs, and report what still exists. Complete when nothing is left.
4. Past ``TimeoutSeconds`` the poll raises :class:`TeardownTimeout`, whose message lists the
   leftovers by type and id; CloudFormation shows it as the resource's status reason.

Resource properties (strings, set by ``cdk_constructs/controller_cleanup.py``): ``ClusterName``,
``VpcId``, ``NodeRoleName``, ``NodePools`` (list), ``TimeoutSeconds``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .cleanup import AwsCleanup, Leftovers, Target
from .kube import KubeClient, KubeError, describe_endpoint, eks_token

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

DEFAULT_TIMEOUT_SECONDS = 900
NODECLAIM_GRACE_FRACTION = 0.5  # share of the timeout spent waiting for Karpenter to drain NodeClaims


class TeardownTimeout(RuntimeError):
    """The cleanup did not finish in time. The message lists leftovers by type and id."""


@dataclass(frozen=True)
class Settings:
    """Parsed resource properties.

    Attributes:
        target: cluster, VPC, node role and NodePool names.
        timeout_seconds: total budget for the Delete, from its first ``on_event``.
    """

    target: Target
    timeout_seconds: float

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> "Settings":
        """Read ``ResourceProperties``.

        Raises:
            ValueError: a required property is missing or ``TimeoutSeconds`` is not a positive number.
        """
        props = event.get("ResourceProperties") or {}
        missing = [key for key in ("ClusterName", "VpcId") if not props.get(key)]
        if missing:
            raise ValueError(f"ResourceProperties missing {', '.join(missing)}")
        try:
            timeout = float(props.get("TimeoutSeconds", DEFAULT_TIMEOUT_SECONDS))
        except (TypeError, ValueError):
            raise ValueError(f"ResourceProperties.TimeoutSeconds {props.get('TimeoutSeconds')!r} is not a number") from None
        if timeout <= 0:
            raise ValueError(f"ResourceProperties.TimeoutSeconds must be > 0, got {timeout}")
        pools = props.get("NodePools") or []
        if isinstance(pools, str):
            pools = [p for p in pools.split(",") if p]
        return cls(
            target=Target(
                cluster_name=props["ClusterName"],
                vpc_id=props["VpcId"],
                node_role_name=props.get("NodeRoleName") or None,
                nodepools=tuple(pools),
            ),
            timeout_seconds=timeout,
        )


class TeardownHandler:
    """The two Provider-framework entry points, with their dependencies injectable for tests.

    Args:
        aws: ``aws(service_name) -> boto3 client`` (ec2, elbv2, iam, eks, sts).
        kube: ``kube(target) -> KubeClient``; default: endpoint and CA from ``eks:DescribeCluster``,
            token from STS (:func:`services.teardown.kube.eks_token`).
        clock: seconds since the epoch (default ``time.time``).
    """

    def __init__(
        self,
        aws: Callable[[str], Any],
        kube: Callable[[Target], KubeClient] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.aws = aws
        self.kube_factory = kube or self._default_kube
        self.clock = clock

    def _default_kube(self, target: Target) -> KubeClient:
        import boto3

        session = boto3.Session()
        region = session.region_name or os.environ.get("AWS_REGION", "us-east-1")
        endpoint, ca_pem = describe_endpoint(self.aws("eks"), target.cluster_name)
        return KubeClient(endpoint, eks_token(session, target.cluster_name, region), ca_pem)

    # --- entry points ------------------------------------------------------------------
    def on_event(self, event: dict[str, Any], _context: Any = None) -> dict[str, Any]:
        """Create/Update: return the physical id. Delete: delete our NodePools, stamp the start."""
        request = event["RequestType"]
        settings = Settings.from_event(event)
        if request == "Create":
            return {"PhysicalResourceId": f"{settings.target.cluster_name}-controller-cleanup"}
        physical_id = event["PhysicalResourceId"]
        if request == "Update":
            return {"PhysicalResourceId": physical_id}
        if request != "Delete":
            raise ValueError(f"unknown RequestType {request!r}")
        started = self.clock()
        LOG.info("delete: cleaning up after cluster %s in %s", settings.target.cluster_name, settings.target.vpc_id)
        try:
            self._delete_nodepools(self.kube_factory(settings.target), settings.target)
        except KubeError as exc:  # retried on every poll
            LOG.warning("deleting NodePools failed (will retry): %s", exc)
        return {"PhysicalResourceId": physical_id, "Data": {"DeleteStartedAt": str(started)}}

    def is_complete(self, event: dict[str, Any], _context: Any = None) -> dict[str, Any]:
        """Poll: ``{"IsComplete": bool}``.

        Raises:
            TeardownTimeout: ``TimeoutSeconds`` passed since the Delete began; lists leftovers.
        """
        if event["RequestType"] != "Delete":
            return {"IsComplete": True}
        settings = Settings.from_event(event)
        now = self.clock()
        started = float((event.get("Data") or {}).get("DeleteStartedAt", now))
        elapsed = now - started
        timed_out = elapsed >= settings.timeout_seconds
        leftovers = Leftovers()

        waiting_for_karpenter = self._kube_phase(settings.target, leftovers)
        grace = settings.timeout_seconds * NODECLAIM_GRACE_FRACTION
        if waiting_for_karpenter and elapsed < grace and not timed_out:
            LOG.info("waiting for Karpenter (%.0f s of %.0f s): %s", elapsed, grace, leftovers.describe())
            return {"IsComplete": False}
        if waiting_for_karpenter:
            LOG.warning("NodeClaims or the API still there after %.0f s; terminating instances directly", elapsed)

        sweep = AwsCleanup(settings.target, self.aws("ec2"), self.aws("elbv2"), self.aws("iam"), LOG.info).sweep()
        if not sweep:
            LOG.info("nothing left for cluster %s (ignored: %s)", settings.target.cluster_name, leftovers.describe())
            return {"IsComplete": True}
        for kind, ids in sweep.items.items():
            leftovers.add(kind, ids)
        leftovers.errors += sweep.errors
        if timed_out:
            message = (
                f"controller cleanup of cluster {settings.target.cluster_name} timed out after "
                f"{settings.timeout_seconds:.0f} s; left behind: {leftovers.describe()}"
            )
            if leftovers.errors:
                message += "; errors: " + " | ".join(leftovers.errors[:5])
            raise TeardownTimeout(message)
        LOG.info("still waiting (%.0f s): %s", elapsed, leftovers.describe())
        return {"IsComplete": False}

    # --- Kubernetes ----------------------------------------------------------------------
    @staticmethod
    def _delete_nodepools(kube: KubeClient, target: Target) -> None:
        present = {pool.name for pool in kube.list_nodepools()}
        for name in target.nodepools:
            if name in present:
                LOG.info("deleting NodePool %s", name)
                kube.delete_nodepool(name)

    def _kube_phase(self, target: Target, leftovers: Leftovers) -> bool:
        """Delete our NodePools again if present; True while NodeClaims remain or the API fails."""
        try:
            kube = self.kube_factory(target)
            self._delete_nodepools(kube, target)
            claims = kube.list_nodeclaims(target.nodepools)
        except KubeError as exc:
            leftovers.errors.append(f"Kubernetes API: {exc}")
            return True
        except Exception as exc:  # noqa: BLE001 - e.g. DescribeCluster failing: report, then sweep AWS
            leftovers.errors.append(f"Kubernetes API: {type(exc).__name__}: {exc}")
            return True
        leftovers.add("nodeclaim", [claim.name for claim in claims])
        return bool(claims)


def _boto_client(service: str) -> Any:
    import boto3

    return boto3.client(service)


_HANDLER = TeardownHandler(_boto_client)


def on_event(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point for the Provider framework's ``onEvent``."""
    return _HANDLER.on_event(event, context)


def is_complete(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point for the Provider framework's ``isComplete``."""
    return _HANDLER.is_complete(event, context)
