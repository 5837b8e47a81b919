"""The custom resource handler through the CDK Provider framework's real runtime (case B21),
with S3 = moto_server, the hub = the fake hub and CloudFormation's response URL = a loopback server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from app_config.constants import COMPLETION_MANIFEST
from services.model_upload import handler
from services.model_upload.copy import read_manifest
from services.model_upload.retry import Backoff
from services.model_upload.sources import HubSource
from tests.support.fake_hub import FakeHub
from tests.support.moto_server import MOTO_CLIENT_KWARGS, moto_env
from tests.model_upload.conftest import keys_under
from tests.model_upload.provider_framework import CREATE_FAILED_MARKER, Harness, provider_harness

PREFIX = "models/tiny/"


@pytest.fixture()
def lambda_env(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler's boto3 defaults point at moto (as AWS_ENDPOINT_URL would in a test account)."""
    for key, value in moto_env(moto_url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("UPLOAD_WORKERS", "4")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    # fast backoff for the tests; the production default stays 0.5 s
    monkeypatch.setattr(handler, "_source", lambda props, rev, token: HubSource(
        props.repo_id, rev, token=token, endpoint=props.hub_endpoint,
        backoff=Backoff(base_s=0.01, cap_s=0.05, max_attempts=6, budget_s=5)))


@pytest.fixture()
def framework(tmp_path: Path, lambda_env: None) -> Iterator[Harness]:
    with provider_harness(tmp_path, {"on-event": handler.on_event, "is-complete": handler.is_complete}) as h:
        yield h


def _props(hub: FakeHub, bucket: str, **over: Any) -> dict[str, Any]:
    props = {
        "Bucket": bucket,
        "Prefix": PREFIX,
        "RepoId": "org/tiny",
        "Revision": "main",
        "AllowPatterns": ["*.safetensors", "*.json"],
        "HubEndpoint": hub.base_url,
        "PurgeOnDelete": "false",
    }
    props.update(over)
    return props


def _physical(bucket: str) -> str:
    return f"qvllm-model-upload:s3://{bucket}/{PREFIX}"


def test_create_resolves_branch_copies_across_invocations_and_answers_success(
    framework: Harness, hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes]
) -> None:
    commit = hub.add_repo("org/tiny", tiny_files)
    # the first isComplete invocation has no time budget left: it copies nothing and the
    # framework asks again; the second resumes from the S3 state and finishes
    framework.remaining_ms = lambda i: 1_000 if i == 1 else 900_000
    resp = framework.run("Create", _props(hub, bucket))
    assert resp["Status"] == "SUCCESS", resp["Reason"]
    assert resp["PhysicalResourceId"] == _physical(bucket)
    assert resp["LogicalResourceId"] == "ModelUpload"
    assert resp["StackId"].startswith("arn:aws:cloudformation:")
    assert resp["Data"]["Revision"] == commit  # "main" resolved to the commit sha
    assert resp["Data"]["ModelUri"] == f"s3://{bucket}/{PREFIX}"
    assert resp["Data"]["FileCount"] == str(len(tiny_files))
    assert framework.invocations == ["on-event", "is-complete", "is-complete"]
    manifest = read_manifest(s3, bucket, PREFIX)
    assert manifest is not None and manifest.commit == commit


def test_B18_B21_gated_repo_fails_create_fast_with_readable_reason(
    framework: Harness, hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes], moto_url: str
) -> None:
    """B18 + B21: on_event raises -> FAILED with repo/revision and the case, CREATE_FAILED marker."""
    hub.add_repo("meta/gated", tiny_files, gated=True)
    resp = framework.run("Create", _props(hub, bucket, RepoId="meta/gated"))
    assert resp["Status"] == "FAILED"
    assert "HTTP 401" in resp["Reason"] and "'meta/gated' at revision 'main'" in resp["Reason"]
    assert "no Hugging Face token was given" in resp["Reason"]
    assert resp["PhysicalResourceId"] == CREATE_FAILED_MARKER
    assert framework.invocations == ["on-event"]  # failed in seconds, no waiter started
    assert keys_under(s3, bucket, PREFIX) == []

    # with a token (from Secrets Manager) whose account has not accepted the terms
    token = "hf_TOPsecretVALUE0987654321"
    hub.valid_tokens.add(token)
    sm = boto3.client("secretsmanager", endpoint_url=moto_url, **MOTO_CLIENT_KWARGS)
    sm.create_secret(Name=f"hf-token-{bucket}", SecretString=f'{{"token": "{token}"}}')
    resp = framework.run("Create", _props(hub, bucket, RepoId="meta/gated", TokenSecretName=f"hf-token-{bucket}"))
    assert resp["Status"] == "FAILED"
    assert "HTTP 403" in resp["Reason"] and "terms are not accepted" in resp["Reason"]
    assert token not in resp["Reason"]
    assert keys_under(s3, bucket, PREFIX) == []


def test_B21_missing_revision_fails_with_original_request_ids(
    framework: Harness, hub: FakeHub, bucket: str, tiny_files: dict[str, bytes]
) -> None:
    """B21: an exception in on_event becomes FAILED with a readable reason and the request's ids."""
    hub.add_repo("org/tiny", tiny_files)
    resp = framework.run("Create", _props(hub, bucket, Revision="does-not-exist"))
    assert resp["Status"] == "FAILED"
    assert resp["Reason"].startswith("Error: HTTP 404: revision 'does-not-exist' not found in repo 'org/tiny'")
    assert resp["LogicalResourceId"] == "ModelUpload"
    assert resp["StackId"].endswith("stack/qvllm-ModelStore/guid")


def test_B21_failure_inside_is_complete_fails_at_once_and_marks_nothing_complete(
    framework: Harness, hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes]
) -> None:
    """B21: is_complete raising (corrupt bytes) -> FAILED on that invocation, not after the timeout."""
    hub.add_repo("org/tiny", tiny_files)
    hub.corrupt("model.safetensors", 500)
    resp = framework.run("Create", _props(hub, bucket), max_attempts=50)
    assert resp["Status"] == "FAILED"
    assert "model.safetensors: sha256" in resp["Reason"]
    assert resp["PhysicalResourceId"] == _physical(bucket)
    assert framework.invocations == ["on-event", "is-complete"]
    assert read_manifest(s3, bucket, PREFIX) is None
    assert PREFIX + "model.safetensors" not in keys_under(s3, bucket, PREFIX)


def test_provider_total_timeout_ends_a_copy_that_never_finishes(
    framework: Harness, hub: FakeHub, bucket: str, tiny_files: dict[str, bytes]
) -> None:
    """B21: a copy that never completes ends in FAILED when the waiter's attempts run out."""
    hub.add_repo("org/tiny", tiny_files)
    framework.remaining_ms = lambda i: 0
    resp = framework.run("Create", _props(hub, bucket), max_attempts=3)
    assert resp["Status"] == "FAILED" and resp["Reason"] == "Operation timed out"


def test_update_with_new_revision_copies_in_place_and_keeps_the_id(
    framework: Harness, hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes]
) -> None:
    first = hub.add_repo("org/tiny", tiny_files, tags=("v1",))
    assert framework.run("Create", _props(hub, bucket, Revision="v1"))["Status"] == "SUCCESS"
    changed = {**tiny_files, "config.json": tiny_files["config.json"].replace(b"{", b'{"v": 2, ', 1)}
    second = hub.add_repo("org/tiny", changed, tags=("v2",))
    resp = framework.run("Update", _props(hub, bucket, Revision="v2"), physical_id=_physical(bucket),
                         old_properties=_props(hub, bucket, Revision="v1"))
    assert resp["Status"] == "SUCCESS", resp["Reason"]
    assert resp["PhysicalResourceId"] == _physical(bucket)  # in place: no replacement Delete
    assert resp["Data"]["Revision"] == second != first
    assert read_manifest(s3, bucket, PREFIX).commit == second
    assert s3.get_object(Bucket=bucket, Key=PREFIX + "config.json")["Body"].read() == changed["config.json"]
    assert hub.downloads["model.safetensors"] == 1


def test_delete_keeps_objects_by_default_and_purges_when_asked(
    framework: Harness, hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes]
) -> None:
    hub.add_repo("org/tiny", tiny_files)
    assert framework.run("Create", _props(hub, bucket))["Status"] == "SUCCESS"
    kept = keys_under(s3, bucket, PREFIX)
    resp = framework.run("Delete", _props(hub, bucket), physical_id=_physical(bucket))
    assert resp["Status"] == "SUCCESS"
    assert keys_under(s3, bucket, PREFIX) == kept and PREFIX + COMPLETION_MANIFEST in kept
    s3.put_object(Bucket=bucket, Key="models/other/keep.txt", Body=b"x")
    resp = framework.run("Delete", _props(hub, bucket, PurgeOnDelete="true"), physical_id=_physical(bucket))
    assert resp["Status"] == "SUCCESS"
    assert keys_under(s3, bucket, PREFIX) == []
    assert keys_under(s3, bucket, "models/other/") == ["models/other/keep.txt"]


@pytest.mark.parametrize("foreign_id", [CREATE_FAILED_MARKER, "2025/01/01/[$LATEST]0123abcd", "models/tiny/"])
def test_B23_delete_with_an_id_we_did_not_issue_is_a_noop_with_zero_s3_calls(
    framework: Harness, hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes], foreign_id: str
) -> None:
    """B23: rollback Delete with the failed-create marker or a log-stream id: SUCCESS, no S3 call."""
    hub.add_repo("org/tiny", tiny_files)
    assert framework.run("Create", _props(hub, bucket))["Status"] == "SUCCESS"
    before = keys_under(s3, bucket, PREFIX)
    calls: list[str] = []
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-parameter-build.s3.*", lambda model, **_: calls.append(model.name))
    resp = framework.run("Delete", _props(hub, bucket, PurgeOnDelete="true"), physical_id=foreign_id)
    assert resp["Status"] == "SUCCESS"
    assert resp["PhysicalResourceId"] == foreign_id
    assert calls == []
    assert keys_under(s3, bucket, PREFIX) == before


def test_bad_properties_fail_naming_the_property(framework: Harness, hub: FakeHub, bucket: str) -> None:
    resp = framework.run("Create", _props(hub, bucket, Prefix="/abs"))
    assert resp["Status"] == "FAILED" and "resource property Prefix" in resp["Reason"]
    resp = framework.run("Create", _props(hub, bucket, PurgeOnDelete="maybe"))
    assert resp["Status"] == "FAILED" and "resource property PurgeOnDelete" in resp["Reason"]


def _closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _one_line(reason: str) -> str:
    """Our line: the Provider framework prints ``Error: <message>`` and appends its own
    ``Logs: <log group>`` and JavaScript stack after a blank line (framework.js)."""
    first, _, rest = reason.partition("\n")
    assert first.startswith("Error: ") and "Traceback" not in reason, reason
    assert rest == "" or rest.lstrip("\n").startswith("Logs: /aws/lambda/"), reason
    return first


def test_no_such_bucket_fails_create_with_one_line_and_the_deploys_advice(
    framework: Harness, hub: FakeHub, tiny_files: dict[str, bytes], moto_url: str
) -> None:
    hub.add_repo("org/tiny", tiny_files)
    resp = framework.run("Create", _props(hub, "bucket-that-is-gone"))
    assert resp["Status"] == "FAILED"
    reason = _one_line(resp["Reason"])
    assert f"bucket 'bucket-that-is-gone' does not exist at {moto_url}" in reason
    assert "deploy the ModelStore stack again" in reason and "--bucket" not in reason
    assert framework.invocations == ["on-event"]  # found before the waiter started


def test_unreachable_s3_endpoint_fails_with_one_line_naming_it(
    framework: Harness, hub: FakeHub, bucket: str, tiny_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo("org/tiny", tiny_files)
    closed = _closed_port_url()
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed)
    resp = framework.run("Create", _props(hub, bucket))
    assert resp["Status"] == "FAILED"
    reason = _one_line(resp["Reason"])
    assert f"cannot reach the S3 endpoint {closed}" in reason and f"s3://{bucket}/{PREFIX}" in reason
    assert "retry the deploy" in reason and "--endpoint-url" not in reason


def test_index_naming_a_missing_shard_fails_create_and_marks_nothing_complete(
    framework: Harness, hub: FakeHub, s3: Any, bucket: str
) -> None:
    index = b'{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}'
    hub.add_repo("org/tiny", {"config.json": b"{}", "model.safetensors.index.json": index,
                              "model-00001-of-00002.safetensors": b"\0" * 64})
    resp = framework.run("Create", _props(hub, bucket))
    assert resp["Status"] == "FAILED"
    reason = _one_line(resp["Reason"])
    assert "'model-00002-of-00002.safetensors' missing from org/tiny" in reason
    assert "pin model.revision" in reason
    assert keys_under(s3, bucket, PREFIX) == []


def test_gated_repo_reason_gives_the_deploys_token_advice(
    framework: Harness, hub: FakeHub, bucket: str, tiny_files: dict[str, bytes]
) -> None:
    hub.add_repo("meta/gated", tiny_files, gated=True)
    reason = _one_line(framework.run("Create", _props(hub, bucket, RepoId="meta/gated"))["Reason"])
    assert "a Secrets Manager secret named by model.hf_token_secret_name" in reason
    assert "HF_TOKEN" not in reason and "--token-env" not in reason
