"""The copy library against a real moto_server and the fake hub (no AWS, no internet)."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from app_config.constants import COMPLETION_MANIFEST
from app_config.model import DEFAULT_ALLOW_PATTERNS
from services.model_upload.contract import DEFAULT_PART_SIZE
from services.model_upload.copy import (
    CopyProgress,
    HubSource,
    LocalSource,
    Manifest,
    copy_model,
    copy_step,
    read_manifest,
)
from services.model_upload.retry import Backoff
from services.model_upload.errors import (
    Audience,
    LfsPointerError,
    SourceAuthError,
    SourceNetworkError,
    SourceNotFoundError,
    VerificationError,
)
from tests.support.fake_hub import FakeHub, HubFile, SyntheticFile
from tests.model_upload.conftest import S3Calls, keys_under

PREFIX = "models/tiny/"
LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    b"size 834960\n"
)


FAST = Backoff(base_s=0.01, cap_s=0.05, max_attempts=6, budget_s=5)


def _source(hub: FakeHub, repo: str = "org/tiny", revision: str = "main", **kw: Any) -> HubSource:
    kw.setdefault("backoff", FAST)
    return HubSource(repo, revision, endpoint=hub.base_url, **kw)


def _object(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _sha256_of_object(s3: Any, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(4 * 1024 * 1024):
        digest.update(chunk)
    return digest.hexdigest()


def test_happy_path_bytes_equal_source_and_manifest_written_last(
    hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes], s3_calls: S3Calls
) -> None:
    commit = hub.add_repo("org/tiny", {**tiny_files, "README.md": b"# tiny", "original/consolidated.pth": b"x" * 10})
    manifest = copy_model(_source(hub), s3_client=s3, bucket=bucket, prefix=PREFIX,
                          allow_patterns=DEFAULT_ALLOW_PATTERNS + ["*.pth"])

    # every selected file is byte-identical in S3; README (not in the patterns) and original/ are not copied
    assert keys_under(s3, bucket, PREFIX) == sorted([PREFIX + p for p in tiny_files] + [PREFIX + COMPLETION_MANIFEST])
    for path, data in tiny_files.items():
        assert _object(s3, bucket, PREFIX + path) == data, path
    # manifest: commit, sizes, sha256 of every file, and it is the last object written
    stored = Manifest.from_json(_object(s3, bucket, PREFIX + COMPLETION_MANIFEST))
    assert stored == manifest
    assert stored.commit == commit
    assert {f.path: (f.size, f.sha256) for f in stored.files} == {
        p: (len(d), hashlib.sha256(d).hexdigest()) for p, d in tiny_files.items()
    }
    assert s3_calls.writes()[-1] == PREFIX + COMPLETION_MANIFEST
    assert s3_calls.writes().count(PREFIX + COMPLETION_MANIFEST) == 1


@pytest.mark.slow  # hundreds of MiB through moto
def test_multipart_copy_of_a_few_hundred_mb_streams_and_verifies(
    hub: FakeHub, s3: Any, bucket: str, big_file: SyntheticFile, s3_calls: S3Calls
) -> None:
    hub.add_repo("org/big", {"model.safetensors": big_file, "config.json": b"{}"})

    class Peak(CopyProgress):
        seen = 0

        def on_bytes(self, path: str, n: int) -> None:
            self.seen += n

    progress = Peak()
    manifest = copy_model(_source(hub, "org/big"), s3_client=s3, bucket=bucket, prefix="models/big/",
                          workers=4, progress=progress)
    head = s3.head_object(Bucket=bucket, Key="models/big/model.safetensors")
    assert head["ContentLength"] == big_file.size
    parts = big_file.size // DEFAULT_PART_SIZE
    assert head["ETag"].strip('"').endswith(f"-{parts}")  # multipart
    assert _sha256_of_object(s3, bucket, "models/big/model.safetensors") == big_file.sha256()
    assert manifest.total_bytes == big_file.size + 2
    assert progress.seen == big_file.size + 2
    assert s3_calls.names().count("UploadPart") == parts


@pytest.mark.slow  # hundreds of MiB through moto
def test_interrupted_copy_resumes_without_reuploading_verified_files(
    hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes], big_file: SyntheticFile,
    s3_calls: S3Calls,
) -> None:
    hub.add_repo("org/tiny", {**tiny_files, "model-00002-of-00002.safetensors": big_file})

    class Interrupt(CopyProgress):
        def on_bytes(self, path: str, n: int) -> None:
            if path == "model-00002-of-00002.safetensors":
                raise KeyboardInterrupt("operator pressed Ctrl-C")

    with pytest.raises(KeyboardInterrupt):
        copy_model(_source(hub), s3_client=s3, bucket=bucket, prefix=PREFIX, workers=2, progress=Interrupt())
    # no object and no manifest for the interrupted file; its unfinished upload stays for the next run
    assert read_manifest(s3, bucket, PREFIX) is None
    assert PREFIX + "model-00002-of-00002.safetensors" not in keys_under(s3, bucket, PREFIX)
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == [
        PREFIX + "model-00002-of-00002.safetensors"]
    finished = [k[len(PREFIX):] for k in keys_under(s3, bucket, PREFIX) if ".qvllm-resume/" not in k]
    assert finished, "the small files finished before the interrupt"
    downloads_before = dict(hub.downloads)

    s3_calls.ops.clear()
    result = copy_step(_source(hub), s3_client=s3, bucket=bucket, prefix=PREFIX, workers=2)
    assert result.done
    assert set(result.skipped) == set(finished)
    assert "model-00002-of-00002.safetensors" in result.copied
    for path in finished:  # not downloaded again, not uploaded again
        assert hub.downloads[path] == downloads_before[path]
        assert PREFIX + path not in s3_calls.writes()
    assert _sha256_of_object(s3, bucket, PREFIX + "model-00002-of-00002.safetensors") == big_file.sha256()
    assert read_manifest(s3, bucket, PREFIX) == result.manifest


def test_deadline_splits_the_copy_into_steps(hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes]) -> None:
    hub.add_repo("org/tiny", tiny_files)
    first = copy_step(_source(hub), s3_client=s3, bucket=bucket, prefix=PREFIX, deadline=0.0)
    assert not first.done and first.copied == () and set(first.remaining) == set(tiny_files)
    assert read_manifest(s3, bucket, PREFIX) is None
    second = copy_step(_source(hub), s3_client=s3, bucket=bucket, prefix=PREFIX)
    assert second.done and set(second.copied) == set(tiny_files)


def test_rerun_of_a_finished_copy_uploads_nothing(
    hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes], s3_calls: S3Calls
) -> None:
    hub.add_repo("org/tiny", tiny_files)
    first = copy_model(_source(hub), s3_client=s3, bucket=bucket, prefix=PREFIX)
    s3_calls.ops.clear()
    again = copy_model(_source(hub), s3_client=s3, bucket=bucket, prefix=PREFIX)
    assert again == first
    assert s3_calls.writes() == []
    assert all(count == 1 for count in hub.downloads.values())


@pytest.mark.parametrize("big", [False, True], ids=["single-put", "multipart"])
def test_corrupted_byte_fails_verification_and_leaves_no_manifest(
    hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes], multipart_file: SyntheticFile, big: bool
) -> None:
    files = dict(tiny_files)
    if big:
        files["model.safetensors"] = multipart_file
    hub.add_repo("org/tiny", files)
    hub.corrupt("model.safetensors", DEFAULT_PART_SIZE + 1000 if big else 1000)  # in the 2nd part
    with pytest.raises(VerificationError, match=r"model\.safetensors: sha256 [0-9a-f]{64} does not match the published"):
        copy_model(_source(hub), s3_client=s3, bucket=bucket, prefix=PREFIX, workers=2)
    keys = keys_under(s3, bucket, PREFIX)
    assert PREFIX + COMPLETION_MANIFEST not in keys
    assert PREFIX + "model.safetensors" not in keys
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_git_file_checked_against_the_hub_blob_id(
    hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes]
) -> None:
    hub.add_repo("org/tiny", tiny_files)
    hub.corrupt("tokenizer.json", 10)
    with pytest.raises(VerificationError, match=r"tokenizer\.json: git blob id .* does not match"):
        copy_model(_source(hub), s3_client=s3, bucket=bucket, prefix=PREFIX)
    assert read_manifest(s3, bucket, PREFIX) is None


def test_B18_gated_repo_without_token_fails_fast_naming_repo_and_revision(
    hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes]
) -> None:
    """B18: no token -> 401 GatedRepo: no retry, reason names repo and revision, nothing written."""
    hub.add_repo("meta/gated", tiny_files, gated=True)
    with pytest.raises(SourceAuthError) as err:
        copy_model(_source(hub, "meta/gated", "main"), s3_client=s3, bucket=bucket, prefix=PREFIX)
    reason = str(err.value)  # the shell's advice; the deploy's is in test_handler
    assert "HTTP 401" in reason and "'meta/gated'" in reason and "'main'" in reason
    assert "no Hugging Face token was given" in reason and "HF_TOKEN" in reason and "--token-env" in reason
    assert "hf_token_secret_name" not in reason
    assert "model.hf_token_secret_name" in err.value.reason(Audience.DEPLOY)
    resolves = [p for m, p, _ in hub.log if "/resolve/" in p]
    assert len(resolves) == 1, "an authorization failure is not retried"
    assert keys_under(s3, bucket, PREFIX) == []


def test_B18_token_without_accepted_terms_and_invalid_token(
    hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes]
) -> None:
    """B18: a token whose account has not accepted the terms -> 403, said so; the token never shows."""
    hub.add_repo("meta/gated", tiny_files, gated=True)
    token = "hf_SECRETtoken1234567890"
    hub.valid_tokens.add(token)
    with pytest.raises(SourceAuthError) as err:
        copy_model(_source(hub, "meta/gated", "main", token=token),
                   s3_client=s3, bucket=bucket, prefix=PREFIX)
    reason = str(err.value)
    assert "HTTP 403" in reason and "terms are not accepted" in reason and "'meta/gated'" in reason
    assert token not in reason and token not in repr(_source(hub, token=token))
    assert len([p for m, p, _ in hub.log if "/resolve/" in p]) == 1

    bad = "hf_unknownTOKENabcdef"
    with pytest.raises(SourceAuthError) as err:
        copy_model(_source(hub, "meta/gated", token=bad), s3_client=s3, bucket=bucket, prefix=PREFIX)
    assert "token was rejected" in str(err.value) and bad not in str(err.value)
    assert keys_under(s3, bucket, PREFIX) == []

    hub.accept_terms("meta/gated", token)  # after accepting, the same token works
    manifest = copy_model(_source(hub, "meta/gated", token=token), s3_client=s3, bucket=bucket, prefix=PREFIX)
    assert len(manifest.files) == len(tiny_files)


def test_missing_revision_repo_and_file(hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes]) -> None:
    hub.add_repo("org/tiny", tiny_files)
    with pytest.raises(SourceNotFoundError, match=r"revision 'v9\.9' not found in repo 'org/tiny'"):
        copy_model(_source(hub, revision="v9.9"), s3_client=s3, bucket=bucket, prefix=PREFIX)
    with pytest.raises(SourceNotFoundError, match=r"repo 'org/nope' at revision 'main' not found"):
        copy_model(_source(hub, "org/nope"), s3_client=s3, bucket=bucket, prefix=PREFIX)
    hub.fail("config.json", 404, times=10)
    with pytest.raises(SourceNotFoundError, match=r"file 'config.json' not found"):
        copy_model(_source(hub), s3_client=s3, bucket=bucket, prefix=PREFIX)
    assert read_manifest(s3, bucket, PREFIX) is None


def test_branch_and_tag_resolve_to_a_commit(hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes]) -> None:
    commit = hub.add_repo("org/tiny", tiny_files, tags=("v1",))
    manifest = copy_model(_source(hub, revision="v1"), s3_client=s3, bucket=bucket, prefix=PREFIX)
    assert manifest.commit == commit and len(commit) == 40
    assert manifest.source["revision"] == "v1"
    meta = s3.head_object(Bucket=bucket, Key=PREFIX + "config.json")["Metadata"]
    assert meta["qvllm-commit"] == commit


def test_update_to_new_revision_copies_in_place(
    hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes]
) -> None:
    old = hub.add_repo("org/tiny", {**tiny_files, "added_tokens.json": b"{}"})
    copy_model(_source(hub, revision=old), s3_client=s3, bucket=bucket, prefix=PREFIX)
    changed = dict(tiny_files)
    changed["config.json"] = tiny_files["config.json"].replace(b"}", b', "note": "v2"}', 1)
    new = hub.add_repo("org/tiny", changed)  # added_tokens.json removed, config.json changed
    manifest = copy_model(_source(hub, revision="main"), s3_client=s3, bucket=bucket, prefix=PREFIX)
    assert manifest.commit == new != old
    assert _object(s3, bucket, PREFIX + "config.json") == changed["config.json"]
    assert PREFIX + "added_tokens.json" not in keys_under(s3, bucket, PREFIX)  # stale file removed
    assert hub.downloads["config.json"] == 2
    assert hub.downloads["model.safetensors"] == 1  # unchanged weights kept, not copied again
    assert read_manifest(s3, bucket, PREFIX).commit == new


def test_B19_lfs_pointer_stub_in_place_of_weights_is_rejected(
    hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes], tmp_path: Path
) -> None:
    """B19: a 130-byte Git LFS pointer where model.safetensors should be fails with the file name."""
    assert 100 < len(LFS_POINTER) < 200
    hub.add_repo("org/stub", {**tiny_files, "model.safetensors": HubFile(LFS_POINTER, lfs=False)})
    with pytest.raises(LfsPointerError, match=r"model\.safetensors: weight file is a Git LFS pointer stub"):
        copy_model(_source(hub, "org/stub"), s3_client=s3, bucket=bucket, prefix=PREFIX)
    assert PREFIX + "model.safetensors" not in keys_under(s3, bucket, PREFIX)
    assert read_manifest(s3, bucket, PREFIX) is None

    folder = tmp_path / "clone-without-lfs"
    folder.mkdir()
    for name, data in tiny_files.items():
        (folder / name).write_bytes(LFS_POINTER if name == "model.safetensors" else data)
    with pytest.raises(LfsPointerError, match="model.safetensors"):
        copy_model(LocalSource(folder), s3_client=s3, bucket=bucket, prefix="models/local/")
    assert read_manifest(s3, bucket, "models/local/") is None
    assert "models/local/model.safetensors" not in keys_under(s3, bucket, "models/local/")


def test_transient_errors_are_retried_and_dropped_streams_resume_with_range(
    hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes], big_file: SyntheticFile
) -> None:
    hub.add_repo("org/tiny", {**tiny_files, "model-big.safetensors": big_file})
    hub.fail("config.json", 503, times=2)
    hub.drop("model-big.safetensors", after_bytes=10 * 1024 * 1024, times=1)
    manifest = copy_model(_source(hub), s3_client=s3, bucket=bucket, prefix=PREFIX)
    assert hub.downloads["config.json"] == 3  # two 503s, then the bytes
    parts = -(-big_file.size // DEFAULT_PART_SIZE)
    assert hub.downloads["model-big.safetensors"] == parts + 1  # one Range request per part, one resume
    assert hub.bytes_served["model-big.safetensors"] == big_file.size  # the resume re-read no byte
    assert any(f.path == "model-big.safetensors" and f.sha256 == big_file.sha256() for f in manifest.files)


def test_unreachable_hub_and_persistent_5xx_give_actionable_network_errors(
    hub: FakeHub, s3: Any, bucket: str, tiny_files: dict[str, bytes]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    three = Backoff(base_s=0.01, cap_s=0.05, max_attempts=3, budget_s=5)
    with pytest.raises(SourceNetworkError, match=r"could not reach the Hugging Face hub at http://127\.0\.0\.1:\d+ "
                                                 r"for model info: gave up after 3 attempts over \d+\.\d s"):
        copy_model(HubSource("org/tiny", endpoint=closed, backoff=three), s3_client=s3, bucket=bucket, prefix=PREFIX)
    hub.add_repo("org/tiny", tiny_files)
    hub.fail("model.safetensors", 502, times=100)
    with pytest.raises(SourceNetworkError, match=r"HTTP 502 .*: gave up after 3 attempts over"):
        copy_model(_source(hub, backoff=three), s3_client=s3, bucket=bucket, prefix=PREFIX)
    assert read_manifest(s3, bucket, PREFIX) is None


def test_local_source_copy_for_the_local_stack(s3: Any, bucket: str, tiny_dir: Path, tiny_files: dict[str, bytes]) -> None:
    manifest = copy_model(LocalSource(tiny_dir), s3_client=s3, bucket=bucket, prefix="models/tiny-local/")
    assert manifest.commit is None and manifest.source["type"] == "local"
    for path, data in tiny_files.items():
        assert _object(s3, bucket, "models/tiny-local/" + path) == data
    body = json.loads(_object(s3, bucket, "models/tiny-local/" + COMPLETION_MANIFEST))
    assert sorted(f["path"] for f in body["files"]) == sorted(tiny_files)
