"""``qvllm upload-model`` against the fake hub and moto_server (click's runner, real HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from qvllm.cli import main
from services.model_upload.copy import read_manifest
from tests.support.fake_hub import FakeHub
from tests.support.moto_server import moto_env


@pytest.fixture()
def env(moto_url: str) -> dict[str, str]:
    return {k: v for k, v in moto_env(moto_url).items() if k != "AWS_ENDPOINT_URL"}


def test_upload_model_from_the_hub_with_endpoint_url(
    hub: FakeHub, s3: Any, bucket: str, moto_url: str, tiny_files: dict[str, bytes], env: dict[str, str]
) -> None:
    commit = hub.add_repo("org/tiny", {**tiny_files, "pytorch_model.bin": b"\0" * 100})
    result = CliRunner().invoke(main, [
        "upload-model", "--repo-id", "org/tiny", "--revision", "main", "--bucket", bucket, "--name", "tiny",
        "--endpoint-url", moto_url, "--hf-endpoint", hub.base_url, "--workers", "2",
    ], env=env)
    assert result.exit_code == 0, result.output
    assert f"s3://{bucket}/models/tiny/: {len(tiny_files)} files" in result.output
    assert commit in result.output
    manifest = read_manifest(s3, bucket, "models/tiny/")
    assert manifest is not None and {f.path for f in manifest.files} == set(tiny_files)  # *.bin skipped


def test_upload_model_from_a_local_folder(
    s3: Any, bucket: str, moto_url: str, tiny_dir: Path, tiny_files: dict[str, bytes], env: dict[str, str]
) -> None:
    result = CliRunner().invoke(main, [
        "upload-model", "--local-dir", str(tiny_dir), "--bucket", bucket, "--prefix", "models/local/",
        "--endpoint-url", moto_url,
    ], env=env)
    assert result.exit_code == 0, result.output
    assert {f.path for f in read_manifest(s3, bucket, "models/local/").files} == set(tiny_files)


def test_upload_model_errors_are_clear_and_never_show_the_token(
    hub: FakeHub, bucket: str, moto_url: str, tiny_files: dict[str, bytes], env: dict[str, str]
) -> None:
    hub.add_repo("meta/gated", tiny_files, gated=True)
    hub.valid_tokens.add("hf_cliSECRET123")
    result = CliRunner().invoke(main, [
        "upload-model", "--repo-id", "meta/gated", "--bucket", bucket, "--name", "gated",
        "--endpoint-url", moto_url, "--hf-endpoint", hub.base_url,
    ], env={**env, "HF_TOKEN": "hf_cliSECRET123"})
    assert result.exit_code == 1
    assert "HTTP 403" in result.output and "'meta/gated'" in result.output
    assert "hf_cliSECRET123" not in result.output

    result = CliRunner().invoke(main, ["upload-model", "--bucket", bucket, "--name", "x"], env=env)
    assert result.exit_code == 2 and "exactly one of --repo-id or --local-dir" in result.output
    result = CliRunner().invoke(main, ["upload-model", "--repo-id", "a/b", "--bucket", bucket,
                                       "--prefix", "models/x"], env=env)
    assert result.exit_code == 2 and "--prefix" in result.output
