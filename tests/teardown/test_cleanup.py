"""The controller-cleanup handler against a real moto_server (EC2, ELBv2, IAM) on loopback and a
local HTTP server replaying recorded karpenter.sh/v1 API responses (cases B26, B27)."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from services.teardown.handler import Settings, TeardownTimeout
from services.teardown.kube import CLUSTER_ID_HEADER, TOKEN_PREFIX, eks_token
from tests.teardown.conftest import (
    NODECLAIMS,
    NODEPOOLS,
    Clock,
    build_cluster,
    delete_event,
    drive_delete,
    make_handler,
    make_vpc,
    quiet_kube_script,
    snapshot,
)


def test_removes_only_its_own_cluster_and_second_run_is_a_noop(aws, kube_replay):
    """Two clusters share one VPC (a third lives in another VPC): deleting 'alpha' removes only alpha's
    controller-made resources; a second Delete makes read calls only (idempotent)."""
    vpc, subnets = make_vpc(aws, "10.0.0.0/16")
    alpha = build_cluster(aws, "alpha", vpc, subnets)
    beta = build_cluster(aws, "beta", vpc, subnets)
    other_vpc, other_subnets = make_vpc(aws, "10.1.0.0/16")
    gamma = build_cluster(aws, "gamma", other_vpc, other_subnets)
    beta_before, gamma_before = snapshot(aws, beta), snapshot(aws, gamma)

    _, url = kube_replay(quiet_kube_script())
    clock = Clock()
    handler = make_handler(aws, url, clock)
    polls = drive_delete(handler, delete_event(alpha), clock)

    after = snapshot(aws, alpha)
    assert {i: after["instances"][i] for i in alpha.karpenter_instances} == dict.fromkeys(alpha.karpenter_instances, "terminated")
    assert after["instances"][alpha.system_instance] == "running"  # the node group's: CloudFormation's job
    assert after["launch_templates"] == set()
    assert after["profiles"] == {alpha.cfn_profile: [alpha.node_role]}  # Karpenter's profile gone, CFN's kept
    assert after["load_balancers"] == set() and after["target_groups"] == set()
    assert after["security_groups"] == {alpha.cluster_sg: []}  # controller SG gone, rule referencing it revoked
    assert after["enis"] == {alpha.system_eni: "in-use"}  # detached CNI ENI deleted, in-use one untouched
    assert snapshot(aws, beta) == beta_before
    assert snapshot(aws, gamma) == gamma_before
    assert polls == 2  # poll 1 deletes; poll 2 finds nothing left

    aws.calls.clear()
    assert drive_delete(handler, delete_event(alpha), clock) == 1
    assert aws.mutations() == []
    assert aws.calls  # it did look
    assert snapshot(aws, beta) == beta_before


def test_b26_nodepools_deleted_then_nodeclaims_awaited_before_instances(aws, kube_replay):
    """Case B26: NodePools are deleted through the API first; while a NodeClaim remains (Karpenter
    draining its GPU node) nothing is terminated; once the NodeClaim list is empty the Karpenter
    instances are terminated and the instance profile holding the node role is removed."""
    vpc, subnets = make_vpc(aws, "10.0.0.0/16")
    world = build_cluster(aws, "alpha", vpc, subnets, with_lb=False)
    replay, url = kube_replay({
        ("GET", NODEPOOLS): [(200, "nodepool_list.json"), (200, "nodepool_list_empty.json")],
        ("DELETE", f"{NODEPOOLS}/gpu"): [(200, "nodepool_delete_gpu.json")],
        ("DELETE", f"{NODEPOOLS}/cpu"): [(200, "nodepool_delete_cpu.json")],
        ("GET", NODECLAIMS): [(200, "nodeclaim_list_one.json"), (200, "nodeclaim_list_one.json"),
                              (200, "nodeclaim_list_empty.json")],
    })
    clock = Clock()
    handler = make_handler(aws, url, clock)
    states: list[set[str]] = []

    def record(poll: int) -> None:
        states.append(set(snapshot(aws, world)["instances"][i] for i in world.karpenter_instances))

    polls = drive_delete(handler, delete_event(world), clock, between=record)

    assert polls == 4  # poll 3 terminates; poll 4 sees them gone and removes the instance profile
    assert states == [{"running"}, {"running"}, {"running"}, {"terminated"}]  # untouched while the NodeClaim existed
    assert replay.summary() == [
        "GET nodepools", "DELETE nodepools/gpu", "DELETE nodepools/cpu",  # on_event
        "GET nodepools", "GET nodeclaims",  # poll 1: gpu-7xk2p draining
        "GET nodepools", "GET nodeclaims",  # poll 2: still there
        "GET nodepools", "GET nodeclaims",  # poll 3: gone -> sweep AWS
        "GET nodepools", "GET nodeclaims",  # poll 4: sweep finds nothing left
    ]
    selectors = [q["labelSelector"] for m, p, q, _ in replay.calls if p == NODECLAIMS]
    assert selectors == [["karpenter.sh/nodepool in (gpu,cpu)"]] * 4
    assert {auth for *_, auth in replay.calls} == {"Bearer k8s-aws-v1.test"}
    after = snapshot(aws, world)
    assert {after["instances"][i] for i in world.karpenter_instances} == {"terminated"}
    assert after["profiles"] == {world.cfn_profile: [world.node_role]}
    # EC2 termination came after the last NodeClaim list, and before the instance profile removal
    assert aws.calls.index("TerminateInstances") < aws.calls.index("DeleteInstanceProfile")


def test_b26_nodeclaims_that_never_go_stop_blocking_after_half_the_timeout(aws, kube_replay):
    """Case B26, controller already gone: the NodeClaim's finalizer is never removed. After half the
    timeout the handler stops waiting for it and terminates the instances directly."""
    vpc, subnets = make_vpc(aws, "10.0.0.0/16")
    world = build_cluster(aws, "alpha", vpc, subnets, with_lb=False)
    _, url = kube_replay({
        ("GET", NODEPOOLS): [(200, "nodepool_list_empty.json")],
        ("GET", NODECLAIMS): [(200, "nodeclaim_list_one.json")],
    })
    clock = Clock()
    handler = make_handler(aws, url, clock)
    polls = drive_delete(handler, delete_event(world, timeout=100), clock, max_polls=20, poll_seconds=10)
    assert polls == 7  # t = 0..40 wait; t = 50 (half of 100 s) terminates; t = 60 finds nothing left
    assert {snapshot(aws, world)["instances"][i] for i in world.karpenter_instances} == {"terminated"}


def test_b26_timeout_message_names_nodeclaims_and_kube_errors(aws, kube_replay):
    """Case B26: past the timeout with things left, the error names each leftover and the API error."""
    vpc, subnets = make_vpc(aws, "10.0.0.0/16")
    world = build_cluster(aws, "alpha", vpc, subnets)
    _, url = kube_replay({("GET", NODEPOOLS): [(403, "status_403_nodepools.json")]})
    clock = Clock()
    handler = make_handler(aws, url, clock)
    # the load balancer's ENI stays in use (ELB has not released it yet)
    ec2 = aws("ec2")
    eni = ec2.create_network_interface(SubnetId=subnets[0], Groups=[world.controller_sg],
                                       Description="ELB app/k8s-alpha-gateway/50dc6c495c0c9188")["NetworkInterface"]
    ec2.attach_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=world.system_instance,
                                 DeviceIndex=2)
    event = delete_event(world, timeout=60)
    request = {**event, **handler.on_event(event)}
    assert handler.is_complete(request) == {"IsComplete": False}
    clock.now += 60
    with pytest.raises(TeardownTimeout) as excinfo:
        handler.is_complete(request)
    message = str(excinfo.value)
    assert message.startswith("controller cleanup of cluster alpha timed out after 60 s; left behind: ")
    assert f"security-group: {world.controller_sg}" in message
    assert f"network-interface: {eni['NetworkInterfaceId']}" in message
    assert "cannot list resource \\\"nodepools\\\"" in message or 'cannot list resource "nodepools"' in message


def test_b27_waits_for_load_balancer_enis_then_deletes_the_security_group(aws, kube_replay):
    """Case B27: the controller's load balancer is deleted, but its ENI (using the controller's
    security group) is released later. The handler keeps the security group and reports the ENI
    until ELB lets go, then deletes both and completes; the other cluster is untouched."""
    vpc, subnets = make_vpc(aws, "10.0.0.0/16")
    world = build_cluster(aws, "alpha", vpc, subnets)
    beta = build_cluster(aws, "beta", vpc, subnets)
    beta_before = snapshot(aws, beta)
    ec2 = aws("ec2")
    eni_id = ec2.create_network_interface(SubnetId=subnets[0], Groups=[world.controller_sg],
                                          Description="ELB app/k8s-alpha-gateway/50dc6c495c0c9188")[
        "NetworkInterface"]["NetworkInterfaceId"]
    attachment = ec2.attach_network_interface(NetworkInterfaceId=eni_id, InstanceId=world.system_instance,
                                              DeviceIndex=2)["AttachmentId"]
    _, url = kube_replay(quiet_kube_script())
    clock = Clock()
    handler = make_handler(aws, url, clock)
    seen: list[dict] = []

    def between(poll: int) -> None:
        seen.append(snapshot(aws, world))
        if poll == 3:  # ELB releases the ENI between poll 2 and poll 3
            ec2.detach_network_interface(AttachmentId=attachment)

    polls = drive_delete(handler, delete_event(world), clock, between=between)
    assert polls == 3
    assert seen[1]["load_balancers"] == set() and seen[1]["target_groups"] == set()  # poll 1 deleted them
    assert world.controller_sg in seen[1]["security_groups"]  # kept: its ENI was in use
    assert world.controller_sg in seen[2]["security_groups"]
    after = snapshot(aws, world)
    assert world.controller_sg not in after["security_groups"]
    assert eni_id not in {e["NetworkInterfaceId"] for e in ec2.describe_network_interfaces()["NetworkInterfaces"]}
    assert snapshot(aws, beta) == beta_before


def test_b27_timeout_lists_leftovers_by_type_and_id(aws, kube_replay):
    """Case B27: an ENI that never detaches ends the Delete with a message listing leftovers by type."""
    vpc, subnets = make_vpc(aws, "10.0.0.0/16")
    world = build_cluster(aws, "alpha", vpc, subnets)
    ec2 = aws("ec2")
    eni_id = ec2.create_network_interface(SubnetId=subnets[1], Groups=[world.controller_sg])[
        "NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(NetworkInterfaceId=eni_id, InstanceId=world.system_instance, DeviceIndex=2)
    _, url = kube_replay(quiet_kube_script())
    clock = Clock()
    handler = make_handler(aws, url, clock)
    with pytest.raises(TeardownTimeout) as excinfo:
        drive_delete(handler, delete_event(world, timeout=120), clock, max_polls=50, poll_seconds=30)
    assert str(excinfo.value) == (
        "controller cleanup of cluster alpha timed out after 120 s; left behind: "
        f"security-group: {world.controller_sg}; network-interface: {eni_id}"
    )


def test_create_and_update_are_noops_returning_a_physical_id(aws, kube_replay):
    replay, url = kube_replay({})
    handler = make_handler(aws, url, Clock())
    event = {"RequestType": "Create", "ResourceProperties": {"ClusterName": "alpha", "VpcId": "vpc-1"}}
    assert handler.on_event(event) == {"PhysicalResourceId": "alpha-controller-cleanup"}
    update = {**event, "RequestType": "Update", "PhysicalResourceId": "alpha-controller-cleanup"}
    assert handler.on_event(update) == {"PhysicalResourceId": "alpha-controller-cleanup"}
    assert handler.is_complete(update) == {"IsComplete": True}
    assert replay.calls == [] and aws.calls == []


def test_missing_properties_are_named():
    with pytest.raises(ValueError, match="ResourceProperties missing ClusterName, VpcId"):
        Settings.from_event({"ResourceProperties": {}})
    with pytest.raises(ValueError, match="TimeoutSeconds 'soon' is not a number"):
        Settings.from_event({"ResourceProperties": {"ClusterName": "a", "VpcId": "v", "TimeoutSeconds": "soon"}})


def test_eks_token_is_a_presigned_get_caller_identity_bound_to_the_cluster():
    session = boto3.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="us-west-2")
    token = eks_token(session, "alpha", "us-west-2")
    assert token.startswith(TOKEN_PREFIX) and not token.endswith("=")
    encoded = token.removeprefix(TOKEN_PREFIX)
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.netloc == "sts.us-west-2.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"] and query["Version"] == ["2011-06-15"]
    assert query["X-Amz-Expires"] == ["60"]
    assert CLUSTER_ID_HEADER in query["X-Amz-SignedHeaders"][0].split(";")
    assert query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")



def test_change_call_errors_are_sorted_into_gone_draining_and_real(aws):
    """One rule for every change call: "already gone" is success (idempotent), a draining
    dependency keeps the resource for the next poll without an error, anything else is kept and
    reported. The errors are moto_server's real EC2 answers, but for DependencyViolation (moto
    deletes a group still in use), built in EC2's error shape."""
    from botocore.exceptions import ClientError

    from services.teardown.cleanup import Leftovers, _attempt

    ec2 = aws("ec2")
    leftovers, remaining = Leftovers(), []
    _attempt(leftovers, "DeleteNetworkInterface", "eni-0123456789abcdef0",
             lambda: ec2.delete_network_interface(NetworkInterfaceId="eni-0123456789abcdef0"),
             gone="InvalidNetworkInterfaceID.NotFound", remaining=remaining)
    assert remaining == [] and leftovers.errors == []

    def draining() -> None:
        raise ClientError({"Error": {"Code": "DependencyViolation", "Message": "resource sg-1 has a dependent object"}},
                          "DeleteSecurityGroup")

    _attempt(leftovers, "DeleteSecurityGroup", "sg-1", draining, gone="InvalidGroup.NotFound",
             remaining=remaining, expected=("DependencyViolation",))
    assert remaining == ["sg-1"] and leftovers.errors == []

    # Terminating is idempotent in EC2 itself, so no error code means "gone" there.
    _attempt(leftovers, "TerminateInstances", "i-0123456789abcdef0",
             lambda: ec2.terminate_instances(InstanceIds=["i-0123456789abcdef0"]), gone=None, remaining=remaining)
    assert remaining == ["sg-1", "i-0123456789abcdef0"]
    assert len(leftovers.errors) == 1
    assert leftovers.errors[0].startswith("TerminateInstances i-0123456789abcdef0: ")
    assert "InvalidInstanceID.NotFound" in leftovers.errors[0]
