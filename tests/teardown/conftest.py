"""Fixtures for the teardown handler: a real moto_server (EC2, ELBv2, IAM) on loopback, a local
HTTP server replaying recorded Kubernetes API responses, and builders of two clusters' worth of
controller-made resources.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from services.teardown.handler import TeardownHandler
from services.teardown.kube import KubeClient
from tests.support.moto_server import MOTO_CLIENT_KWARGS, running_moto
from tests.support.serving import serve_in_thread

RECORDED = Path(__file__).parent / "recorded"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with running_moto() as url:
        yield url


@dataclass
class Aws:
    """boto3 clients on the moto server, recording every operation they call."""

    url: str
    calls: list[str] = field(default_factory=list)
    _clients: dict[str, Any] = field(default_factory=dict)

    def __call__(self, service: str) -> Any:
        if service not in self._clients:
            client = boto3.client(service, endpoint_url=self.url, **MOTO_CLIENT_KWARGS)
            client.meta.events.register(
                "before-call", lambda model, **_: self.calls.append(model.name)
            )
            self._clients[service] = client
        return self._clients[service]

    def mutations(self) -> list[str]:
        """Recorded operations that change something (Delete*, Terminate*, Revoke*, Remove*)."""
        return [c for c in self.calls if c.startswith(("Delete", "Terminate", "Revoke", "Remove", "Modify"))]


@pytest.fixture
def aws(moto_url: str) -> Aws:
    """Fresh moto state per test (POST /moto-api/reset), clients that record their calls."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10)
    return Aws(moto_url)


# --- Kubernetes API replay ---------------------------------------------------------
@dataclass
class Replay:
    """Recorded responses by ``(METHOD, path)``; each list is served in order, the last repeats.

    ``calls`` logs ``(method, path, query dict, Authorization header)`` of every request.
    """

    script: dict[tuple[str, str], list[tuple[int, str]]]
    calls: list[tuple[str, str, dict[str, list[str]], str | None]] = field(default_factory=list)

    def respond(self, method: str, raw_path: str, auth: str | None) -> tuple[int, bytes]:
        parts = urlsplit(raw_path)
        self.calls.append((method, parts.path, parse_qs(parts.query), auth))
        queue = self.script.get((method, parts.path))
        if not queue:
            return 404, (RECORDED / "status_404_nodepools.json").read_bytes()
        status, name = queue.pop(0) if len(queue) > 1 else queue[0]
        return status, (RECORDED / name).read_bytes()

    def summary(self) -> list[str]:
        """``["DELETE nodepools/gpu", "GET nodeclaims", ...]`` (group/version prefix dropped)."""
        prefix = "/apis/karpenter.sh/v1/"
        return [f"{m} {p.removeprefix(prefix)}" for m, p, _, _ in self.calls]


@pytest.fixture
def kube_replay() -> Iterator[Callable[[dict], tuple[Replay, str]]]:
    """Start a loopback HTTP server per script: ``start(script) -> (replay, url)``."""
    servers: list[ThreadingHTTPServer] = []

    def start(script: dict[tuple[str, str], list[tuple[int, str]]]) -> tuple[Replay, str]:
        replay = Replay({k: list(v) for k, v in script.items()})

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                status, body = replay.respond(self.command, self.path, self.headers.get("Authorization"))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_DELETE = _serve  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        serve_in_thread(server)
        servers.append(server)
        return replay, f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


NODEPOOLS = "/apis/karpenter.sh/v1/nodepools"
NODECLAIMS = "/apis/karpenter.sh/v1/nodeclaims"


def quiet_kube_script() -> dict[tuple[str, str], list[tuple[int, str]]]:
    """A cluster whose NodePools delete and whose NodeClaims are already gone."""
    return {
        ("GET", NODEPOOLS): [(200, "nodepool_list.json"), (200, "nodepool_list_empty.json")],
        ("DELETE", f"{NODEPOOLS}/gpu"): [(200, "nodepool_delete_gpu.json")],
        ("DELETE", f"{NODEPOOLS}/cpu"): [(200, "nodepool_delete_cpu.json")],
        ("GET", NODECLAIMS): [(200, "nodeclaim_list_empty.json")],
    }


class Clock:
    """A settable clock (seconds) for the handler's timeout arithmetic."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_handler(aws: Aws, kube_url: str, clock: Clock) -> TeardownHandler:
    return TeardownHandler(aws, kube=lambda _target: KubeClient(kube_url, token="k8s-aws-v1.test"), clock=clock)


def delete_event(cluster: "ClusterWorld", timeout: int = 900) -> dict[str, Any]:
    return {
        "RequestType": "Delete",
        "PhysicalResourceId": f"{cluster.name}-controller-cleanup",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:framework-onEvent",
            "ClusterName": cluster.name,
            "VpcId": cluster.vpc_id,
            "NodeRoleName": cluster.node_role,
            "NodePools": ["gpu", "cpu"],
            "TimeoutSeconds": str(timeout),
        },
    }


def drive_delete(
    handler: TeardownHandler,
    event: dict[str, Any],
    clock: Clock,
    max_polls: int = 10,
    poll_seconds: float = 5.0,
    between: Callable[[int], None] | None = None,
) -> int:
    """Run a Delete as the Provider framework does; return how many polls it took.

    ``on_event`` once, then ``is_complete`` with ``{**event, **on_event result}`` every
    ``poll_seconds`` of the fake clock, calling ``between(poll_number)`` before each poll.
    """
    started = handler.on_event(event)
    request = {**event, **started}
    for poll in range(1, max_polls + 1):
        if between:
            between(poll)
        if handler.is_complete(request)["IsComplete"]:
            return poll
        clock.now += poll_seconds
    raise AssertionError(f"not complete after {max_polls} polls")


# --- AWS resources of one cluster --------------------------------------------------
@dataclass
class ClusterWorld:
    """Ids of everything created for one cluster (see :func:`build_cluster`)."""

    name: str
    vpc_id: str
    subnets: list[str]
    node_role: str
    karpenter_instances: list[str] = field(default_factory=list)
    system_instance: str = ""
    launch_templates: list[str] = field(default_factory=list)
    karpenter_profile: str = ""
    cfn_profile: str = ""
    cluster_sg: str = ""
    controller_sg: str = ""
    load_balancer: str = ""
    target_group: str = ""
    detached_eni: str = ""
    system_eni: str = ""


def _tags(resource_type: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def make_vpc(aws: Aws, cidr: str) -> tuple[str, list[str]]:
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    base = cidr.split(".")
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"{base[0]}.{base[1]}.{i}.0/24", AvailabilityZone=f"us-east-1{az}")[
            "Subnet"
        ]["SubnetId"]
        for i, az in ((1, "a"), (2, "b"))
    ]
    return vpc, subnets


def build_cluster(aws: Aws, name: str, vpc_id: str, subnets: list[str], *, with_lb: bool = True) -> ClusterWorld:
    """What Karpenter, the AWS Load Balancer Controller, the VPC CNI and EKS leave for one cluster.

    Two Karpenter instances (``kubernetes.io/cluster/<name>=owned`` + ``karpenter.sh/nodepool``),
    one system node-group instance with an in-use CNI ENI, two Karpenter launch templates
    (``karpenter.k8s.aws/cluster``), a Karpenter instance profile and a CloudFormation one on the
    node role, the EKS cluster security group with an ingress rule referencing the controller's
    security group, a controller load balancer + target group (``elbv2.k8s.aws/cluster``) and a
    detached CNI ENI.
    """
    ec2, elbv2, iam = aws("ec2"), aws("elbv2"), aws("iam")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    owned = {f"kubernetes.io/cluster/{name}": "owned"}
    world = ClusterWorld(name=name, vpc_id=vpc_id, subnets=subnets, node_role=f"KarpenterNodeRole-{name}")

    iam.create_role(RoleName=world.node_role, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    world.karpenter_profile = f"{name}_1234567890123456789"
    iam.create_instance_profile(
        InstanceProfileName=world.karpenter_profile,
        Tags=[{"Key": k, "Value": v} for k, v in {**owned, "topology.kubernetes.io/region": "us-east-1",
                                                   "karpenter.k8s.aws/ec2nodeclass": "gpu"}.items()],
    )
    world.cfn_profile = f"{name}-NodeInstanceProfile"
    iam.create_instance_profile(InstanceProfileName=world.cfn_profile)
    for profile in (world.karpenter_profile, world.cfn_profile):
        iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=world.node_role)

    for pool in ("gpu", "cpu"):
        lt = ec2.create_launch_template(
            LaunchTemplateName=f"karpenter.k8s.aws/{name}-{pool}",
            LaunchTemplateData={"ImageId": image},
            TagSpecifications=_tags("launch-template", {**owned, "karpenter.sh/nodepool": pool,
                                                        "karpenter.k8s.aws/cluster": name}),
        )
        world.launch_templates.append(lt["LaunchTemplate"]["LaunchTemplateId"])
        run = ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnets[0],
            TagSpecifications=_tags("instance", {**owned, "karpenter.sh/nodepool": pool, "eks:eks-cluster-name": name,
                                                 "karpenter.sh/nodeclaim": f"{pool}-abcde"}),
        )
        world.karpenter_instances.append(run["Instances"][0]["InstanceId"])
    world.system_instance = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnets[1],
        TagSpecifications=_tags("instance", {**owned, "eks:nodegroup-name": "system", "eks:cluster-name": name}),
    )["Instances"][0]["InstanceId"]

    cni = {"cluster.k8s.amazonaws.com/name": name, "node.k8s.amazonaws.com/instance_id": world.system_instance}
    world.system_eni = ec2.create_network_interface(
        SubnetId=subnets[1], Description="aws-K8S-" + world.system_instance,
        TagSpecifications=_tags("network-interface", cni),
    )["NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(NetworkInterfaceId=world.system_eni, InstanceId=world.system_instance, DeviceIndex=1)
    world.detached_eni = ec2.create_network_interface(
        SubnetId=subnets[0], Description="aws-K8S-i-0gone",
        TagSpecifications=_tags("network-interface", {**cni, "node.k8s.amazonaws.com/instance_id": "i-0gone"}),
    )["NetworkInterface"]["NetworkInterfaceId"]

    world.cluster_sg = ec2.create_security_group(
        GroupName=f"eks-cluster-sg-{name}", Description="EKS created security group", VpcId=vpc_id,
        TagSpecifications=_tags("security-group", {**owned, "aws:eks:cluster-name": name}),
    )["GroupId"]
    if with_lb:
        world.controller_sg = ec2.create_security_group(
            GroupName=f"k8s-traffic-{name}-8a1b2c", Description="[k8s] Shared Backend SecurityGroup for LoadBalancer",
            VpcId=vpc_id,
            TagSpecifications=_tags("security-group", {"elbv2.k8s.aws/cluster": name, "elbv2.k8s.aws/resource": "backend-sg"}),
        )["GroupId"]
        ec2.authorize_security_group_ingress(
            GroupId=world.cluster_sg,
            IpPermissions=[{"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8000,
                            "UserIdGroupPairs": [{"GroupId": world.controller_sg}]}],
        )
        controller_tags = [{"Key": "elbv2.k8s.aws/cluster", "Value": name},
                           {"Key": "ingress.k8s.aws/stack", "Value": "inference/gateway"}]
        world.load_balancer = elbv2.create_load_balancer(
            Name=f"k8s-{name}-gateway"[:32], Subnets=subnets, Scheme="internal",
            SecurityGroups=[world.controller_sg], Tags=controller_tags,
        )["LoadBalancers"][0]["LoadBalancerArn"]
        world.target_group = elbv2.create_target_group(
            Name=f"k8s-{name}-gw"[:32], Protocol="HTTP", Port=8000, VpcId=vpc_id, TargetType="ip",
            Tags=controller_tags,
        )["TargetGroups"][0]["TargetGroupArn"]
    return world


def snapshot(aws: Aws, world: ClusterWorld) -> dict[str, Any]:
    """Current state of every resource of ``world`` (to compare before/after)."""
    ec2, elbv2, iam = aws("ec2"), aws("elbv2"), aws("iam")
    instances = {
        i["InstanceId"]: i["State"]["Name"]
        for r in ec2.describe_instances(InstanceIds=[*world.karpenter_instances, world.system_instance])["Reservations"]
        for i in r["Instances"]
    }
    lts = {lt["LaunchTemplateId"] for lt in ec2.describe_launch_templates()["LaunchTemplates"]} & set(world.launch_templates)
    profiles = {
        p["InstanceProfileName"]: [r["RoleName"] for r in p["Roles"]]
        for p in iam.list_instance_profiles()["InstanceProfiles"]
        if p["InstanceProfileName"] in (world.karpenter_profile, world.cfn_profile)
    }
    sgs = {
        sg["GroupId"]: sorted(
            pair["GroupId"] for perm in sg["IpPermissions"] for pair in perm.get("UserIdGroupPairs", [])
        )
        for sg in ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [world.vpc_id]}])["SecurityGroups"]
        if sg["GroupId"] in (world.cluster_sg, world.controller_sg)
    }
    enis = {
        e["NetworkInterfaceId"]: e["Status"]
        for e in ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [world.vpc_id]}])["NetworkInterfaces"]
        if e["NetworkInterfaceId"] in (world.detached_eni, world.system_eni)
    }
    lbs = {lb["LoadBalancerArn"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]} & {world.load_balancer}
    tgs = {tg["TargetGroupArn"] for tg in elbv2.describe_target_groups()["TargetGroups"]} & {world.target_group}
    return {"instances": instances, "launch_templates": lts, "profiles": profiles, "security_groups": sgs,
            "enis": enis, "load_balancers": lbs, "target_groups": tgs}
