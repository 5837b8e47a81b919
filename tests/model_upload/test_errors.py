"""Every S3 failure is one line naming the bucket or endpoint, with the shell's advice, exit 1, and
nothing marked complete (``qvllm upload-model`` against a real moto_server). The handler's
reports of the same failures to CloudFormation are in test_handler.py."""

from __future__ import annotations

import socket
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner, Result

from qvllm.cli import main
from services.model_upload.errors import Audience, StorageError
from services.model_upload.store import Store
from tests.support.fake_hub import FakeHub
from tests.support.moto_server import MOTO_CLIENT_KWARGS, moto_env


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _upload(hub: FakeHub, moto_url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    base = {k: v for k, v in moto_env(moto_url).items() if k != "AWS_ENDPOINT_URL"}
    return CliRunner().invoke(main, ["upload-model", "--repo-id", "org/tiny", "--name", "tiny",
                                     "--hf-endpoint", hub.base_url, *args], env={**base, **(env or {})})


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_cli_no_such_bucket_is_one_line_naming_bucket_and_endpoint(
    hub: FakeHub, moto_url: str, tiny_files: dict[str, bytes]
) -> None:
    hub.add_repo("org/tiny", tiny_files)
    line = _one_error_line(_upload(hub, moto_url, "--bucket", "no-such-bucket-here", "--endpoint-url", moto_url))
    assert f"bucket 'no-such-bucket-here' does not exist at {moto_url}" in line
    assert "check --bucket, --endpoint-url and --region" in line


def test_cli_unreachable_endpoint_is_one_line_naming_the_endpoint(
    hub: FakeHub, bucket: str, moto_url: str, tiny_files: dict[str, bytes]
) -> None:
    hub.add_repo("org/tiny", tiny_files)
    closed = _closed_port_url()
    line = _one_error_line(_upload(hub, moto_url, "--bucket", bucket, "--endpoint-url", closed))
    assert f"cannot reach the S3 endpoint {closed}" in line and f"s3://{bucket}/models/tiny/" in line
    assert "check --endpoint-url" in line


def test_cli_invalid_bucket_name_is_one_line(
    hub: FakeHub, s3: Any, bucket: str, moto_url: str, tiny_files: dict[str, bytes]
) -> None:
    hub.add_repo("org/tiny", tiny_files)
    line = _one_error_line(_upload(hub, moto_url, "--bucket", "not:a:bucket", "--endpoint-url", moto_url))
    assert "invalid S3 request for s3://not:a:bucket/models/tiny/" in line and "check --bucket" in line


def test_cli_gated_repo_gives_the_shells_advice(
    hub: FakeHub, bucket: str, moto_url: str, tiny_files: dict[str, bytes]
) -> None:
    hub.add_repo("org/tiny", tiny_files, gated=True)
    line = _one_error_line(_upload(hub, moto_url, "--bucket", bucket, "--endpoint-url", moto_url))
    assert "HTTP 401" in line and "HF_TOKEN (or the variable named by --token-env)" in line
    assert "Secrets Manager" not in line and "hf_token_secret_name" not in line
    hub.valid_tokens.add("hf_cliTOKEN000")
    line = _one_error_line(_upload(hub, moto_url, "--bucket", bucket, "--endpoint-url", moto_url,
                                   "--token-env", "MY_TOKEN", env={"MY_TOKEN": "hf_cliTOKEN000"}))
    assert "HTTP 403" in line and "terms are not accepted" in line and "HF_TOKEN" in line
    assert "hf_cliTOKEN000" not in line


@pytest.mark.parametrize(("code", "headers", "expected_cli", "expected_deploy"), [
    # S3's answer to a request signed for the wrong region (AWS S3 API Reference, "Error responses":
    # AuthorizationHeaderMalformed carries <Region>, and x-amz-bucket-region names the bucket's region).
    ("AuthorizationHeaderMalformed", {"x-amz-bucket-region": "eu-west-1"},
     "bucket 'b1' is in eu-west-1, not in us-east-1 (AuthorizationHeaderMalformed at https://s3.amazonaws.com): "
     "pass --region eu-west-1", "deploy the ModelStore stack in the bucket's region"),
    ("AccessDenied", {}, "access denied: S3 list_objects_v2 on s3://b1/models/x/",
     "the upload role (ModelStore.grant_write_model) lacks it"),
    ("InvalidAccessKeyId", {}, "rejected the AWS credentials (InvalidAccessKeyId)",
     "the function's role credentials were rejected"),
])
def test_aws_only_errors_translate_to_one_line_per_audience(
    code: str, headers: dict[str, str], expected_cli: str, expected_deploy: str
) -> None:
    """Errors moto does not produce (regions, IAM): the recorded AWS error shape through botocore's Stubber."""
    client = boto3.client("s3", endpoint_url="https://s3.amazonaws.com", **MOTO_CLIENT_KWARGS)
    with Stubber(client) as stub:
        stub.add_client_error("list_objects_v2", service_error_code=code, service_message="denied or misdirected",
                              http_status_code=400 if code != "AccessDenied" else 403, response_meta={"HTTPHeaders": headers})
        with pytest.raises(StorageError) as err:
            Store(client, "b1").list_keys("models/x/")
    assert expected_cli in str(err.value)
    assert expected_deploy in err.value.reason(Audience.DEPLOY)
    assert "\n" not in str(err.value)
