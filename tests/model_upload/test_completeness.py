"""Completeness from the safetensors index: every shard its weight_map names is copied, or the
copy fails naming the missing ones and marks nothing complete (library, CLI; the handler's case is
in test_handler_errors.py). Real moto_server, the fake hub."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from app_config.model import DEFAULT_ALLOW_PATTERNS
from qvllm.cli import main
from services.model_upload.copy import copy_model, read_manifest
from services.model_upload.errors import Audience, IncompleteModelError
from services.model_upload.retry import Backoff
from services.model_upload.sources import HubSource, LocalSource
from tests.model_upload.conftest import S3Calls, keys_under
from tests.support.fake_hub import FakeHub
from tests.support.moto_server import moto_env

PREFIX = "models/sharded/"
FAST = Backoff(base_s=0.01, cap_s=0.05, max_attempts=4, budget_s=5)


def _index(*shards: str) -> bytes:
    return json.dumps({"metadata": {"total_size": 8 * len(shards)},
                       "weight_map": {f"layer.{i}.weight": name for i, name in enumerate(shards)}}).encode()


def _repo(shards_listed: tuple[str, ...], shards_present: tuple[str, ...]) -> dict[str, bytes]:
    files = {"config.json": b'{"model_type": "llama"}', "model.safetensors.index.json": _index(*shards_listed)}
    files.update({name: name.encode() * 64 for name in shards_present})
    return files


def test_index_naming_a_shard_the_repo_lacks_fails_and_writes_nothing(hub: FakeHub, s3: Any, bucket: str) -> None:
    commit = hub.add_repo("org/broken", _repo(("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"),
                                              ("model-00001-of-00002.safetensors",)))
    with pytest.raises(IncompleteModelError) as err:
        copy_model(HubSource("org/broken", endpoint=hub.base_url, backoff=FAST), s3_client=s3, bucket=bucket,
                   prefix=PREFIX, allow_patterns=DEFAULT_ALLOW_PATTERNS)
    reason = str(err.value)
    assert "model.safetensors.index.json names 1 weight file(s)" in reason
    assert f"'model-00002-of-00002.safetensors' missing from org/broken at {commit}" in reason
    assert "--allow-pattern" in reason and "\n" not in reason
    assert "model.revision" in err.value.reason(Audience.DEPLOY)
    assert keys_under(s3, bucket, PREFIX) == []  # nothing copied, no completion marker
    assert hub.downloads["model-00001-of-00002.safetensors"] == 0


def test_index_shard_left_out_by_the_patterns_fails(hub: FakeHub, s3: Any, bucket: str) -> None:
    shards = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    hub.add_repo("org/sharded", _repo(shards, shards))
    with pytest.raises(IncompleteModelError, match=r"'model-00002-of-00002\.safetensors' left out by the file patterns"):
        copy_model(HubSource("org/sharded", endpoint=hub.base_url, backoff=FAST), s3_client=s3, bucket=bucket,
                   prefix=PREFIX, allow_patterns=["*.json", "model-00001-*"])
    assert keys_under(s3, bucket, PREFIX) == []


def test_non_standard_shard_names_all_listed_and_present_copy_fine(
    hub: FakeHub, s3: Any, bucket: str, s3_calls: S3Calls
) -> None:
    shards = ("weights/consolidated-a.safetensors", "weights/tail_part.safetensors")
    files = {"config.json": b"{}", "weights/model.safetensors.index.json": _index("consolidated-a.safetensors",
                                                                                   "tail_part.safetensors")}
    files.update({name: name.encode() * 64 for name in shards})
    hub.add_repo("org/odd", files)
    manifest = copy_model(HubSource("org/odd", endpoint=hub.base_url, backoff=FAST), s3_client=s3, bucket=bucket,
                          prefix=PREFIX, allow_patterns=DEFAULT_ALLOW_PATTERNS)
    assert {f.path for f in manifest.files} == set(files)
    assert s3_calls.writes()[-1] == PREFIX + ".qvllm-complete.json"  # the marker is the last write


def test_local_folder_with_a_missing_shard_fails(s3: Any, bucket: str, tmp_path: Path) -> None:
    for name, data in _repo(("a.safetensors", "b.safetensors"), ("a.safetensors",)).items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(IncompleteModelError, match=r"'b\.safetensors' missing from"):
        copy_model(LocalSource(tmp_path), s3_client=s3, bucket=bucket, prefix=PREFIX)
    assert read_manifest(s3, bucket, PREFIX) is None


def test_cli_missing_shard_is_one_line_exit_1(hub: FakeHub, s3: Any, bucket: str, moto_url: str) -> None:
    hub.add_repo("org/broken", _repo(("s1.safetensors", "s2.safetensors"), ("s1.safetensors",)))
    env = {k: v for k, v in moto_env(moto_url).items() if k != "AWS_ENDPOINT_URL"}
    result = CliRunner().invoke(main, ["upload-model", "--repo-id", "org/broken", "--bucket", bucket, "--prefix", PREFIX,
                                       "--endpoint-url", moto_url, "--hf-endpoint", hub.base_url], env=env)
    assert result.exit_code == 1, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "'s2.safetensors' missing from org/broken" in error[0], result.output
    assert "Traceback" not in result.output
    assert keys_under(s3, bucket, PREFIX) == []
