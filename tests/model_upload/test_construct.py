"""The ModelUpload construct: synthesized template (aws_cdk.assertions) and cdk-nag AwsSolutions."""

from __future__ import annotations

import json
import re
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import assertions
from cdk_nag import AwsSolutionsChecks

from app_config import config_from_dict
from services.model_upload import contract
from stacks.model_store_stack import ModelStoreStack
from tests.support.cdk_app import new_app


def _synth(tmp_path: Any, model: dict[str, Any]) -> tuple[ModelStoreStack, dict[str, Any]]:
    app = new_app(tmp_path / "cdk.out")
    config = config_from_dict({"model": model})
    stack = ModelStoreStack(app, "Test-ModelStore", config=config,
                            env=cdk.Environment(account="111111111111", region="us-west-2"))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))  # type: ignore[arg-type]
    assembly = app.synth()  # raises on any unacknowledged cdk-nag finding
    return stack, assembly.get_stack_by_name(stack.stack_name).template


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelStoreStack, dict[str, Any]]:
    return _synth(tmp_path_factory.mktemp("upload"), {
        "name": "tiny", "hf_repo_id": "org/tiny", "revision": "v1", "hf_token_secret_name": "hf/token",
        "purge_on_delete": True,
    })


def test_B21_service_timeout_and_provider_total_timeout_below_one_hour(synthesized: Any) -> None:
    """B21: ServiceTimeout set on the custom resource; the waiter gives up before it (both < 3600 s)."""
    _, template = synthesized
    t = assertions.Template.from_json(template)
    resources = t.find_resources("Custom::ModelUpload")
    assert len(resources) == 1
    props = next(iter(resources.values()))["Properties"]
    service_timeout = int(props["ServiceTimeout"])
    assert 0 < service_timeout < 3600
    machines = t.find_resources("AWS::StepFunctions::StateMachine")
    assert len(machines) == 1
    definition = json.dumps(next(iter(machines.values()))["Properties"]["DefinitionString"]).replace('\\"', '"')
    match = re.search(r'"IntervalSeconds":(\d+),"MaxAttempts":(\d+),"BackoffRate":([\d.]+)', definition)
    assert match, definition[:500]
    interval, attempts, backoff = int(match[1]), int(match[2]), float(match[3])
    assert backoff == 1
    total = interval * attempts
    assert total < service_timeout < 3600


def test_resource_properties_come_from_config(synthesized: Any) -> None:
    _, template = synthesized
    t = assertions.Template.from_json(template)
    t.has_resource_properties("Custom::ModelUpload", {
        "Prefix": "models/tiny/",
        "RepoId": "org/tiny",
        "Revision": "v1",
        "TokenSecretName": "hf/token",
        "PurgeOnDelete": "true",
        "HubEndpoint": "https://huggingface.co",
        "AllowPatterns": assertions.Match.array_with(["*.safetensors", "config.json"]),
    })
    assert any(k.startswith("ModelRevision") for k in template["Outputs"])


def test_handlers_are_python_arm64_sized_for_throughput(synthesized: Any) -> None:
    _, template = synthesized
    functions = [r["Properties"] for r in template["Resources"].values()
                 if r["Type"] == "AWS::Lambda::Function" and str(r["Properties"].get("Handler", "")).startswith("model_upload.")]
    by_handler = {f["Handler"]: f for f in functions}
    assert set(by_handler) == {"model_upload.handler.on_event", "model_upload.handler.is_complete"}
    for fn in functions:
        assert fn["Runtime"] == "python3.14" and fn["Architectures"] == ["arm64"]
        # the sizing the construct chose memory for; the S3 layout ships in the asset (contract.py)
        assert fn["Environment"]["Variables"] == {
            contract.ENV_WORKERS: str(contract.DEFAULT_WORKERS), contract.ENV_PART_SIZE: str(contract.DEFAULT_PART_SIZE)}
    copy = by_handler["model_upload.handler.is_complete"]
    assert copy["Timeout"] == 900 and copy["MemorySize"] >= 3008


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for res in template["Resources"].values():
        roles = [r.get("Ref", "") for r in res["Properties"].get("Roles", [])] if res["Type"] == "AWS::IAM::Policy" else []
        if any(r.startswith("ModelUploadRole") for r in roles):  # the handlers' role, not the framework's
            out.extend(res["Properties"]["PolicyDocument"]["Statement"])
    return out


def test_least_privilege_model_prefix_and_named_secret_only(synthesized: Any) -> None:
    _, template = synthesized
    statements = _statements(template)
    every_action = {a for st in statements for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])}
    assert {"s3:PutObject", "s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:ListMultipartUploadParts",
            "secretsmanager:GetSecretValue"} <= every_action
    (abort,) = [st for st in statements if "s3:AbortMultipartUpload" in st["Action"]]
    assert "/models/tiny/*" in json.dumps(abort["Resource"])
    for st in statements:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        text = json.dumps(st["Resource"])
        assert not any(a.endswith(":*") or a == "*" for a in actions), st
        if any(a.startswith("s3:") for a in actions):
            if "s3:ListBucket" in actions:
                assert st["Condition"]["StringLike"]["s3:prefix"] == ["models/tiny/", "models/tiny/*"]
            elif actions == ["s3:ListBucketMultipartUploads"]:
                # s3:prefix is not a condition key of this action (it would always deny): bucket-level,
                # no condition; the abort itself is limited to the prefix's objects.
                assert "Condition" not in st and "/models/" not in text, st
            else:
                assert "/models/tiny/*" in text, st
        elif any(a.startswith("secretsmanager:") for a in actions):
            assert "secret:hf/token-??????" in text, st
        else:
            assert all(a.startswith("logs:") for a in actions), st


def test_no_upload_resource_when_upload_on_deploy_is_off(tmp_path: Any) -> None:
    stack, template = _synth(tmp_path, {"upload_on_deploy": False})
    assert stack.model_upload is None
    assert not [r for r in template["Resources"].values() if r["Type"] == "Custom::ModelUpload"]


def test_asset_holds_only_the_handler_package(synthesized: Any) -> None:
    stack, _ = synthesized
    outdir = cdk.Stage.of(stack).outdir  # type: ignore[union-attr]
    from pathlib import Path

    assets = [p for p in Path(outdir).glob("asset.*") if (p / "model_upload" / "handler.py").exists()]
    assert assets, "the model_upload package is in an asset"
    names = {p.relative_to(assets[0]).as_posix() for p in assets[0].rglob("*")}
    assert names >= {"model_upload", "model_upload/handler.py", "model_upload/copy.py", "model_upload/sources.py",
                     "model_upload/contract.py"}
    assert not any(n.startswith(("gateway", "teardown")) or "__pycache__" in n for n in names)
