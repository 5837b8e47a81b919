"""Resume inside a file: a copy killed half-way continues from the first missing part (Range), keeps
the verified parts, re-uploads a part whose record does not match, and still checks the whole
file's sha256. Real moto_server, the fake hub, the CLI in its own process killed with SIGKILL."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from services.model_upload.copy import CopyProgress, copy_model, copy_step, read_manifest
from services.model_upload.plan import plan_copy
from services.model_upload.resume import RESUME_FOLDER
from services.model_upload.retry import Backoff
from services.model_upload.sha256state import RESUMABLE, ResumableSha256, Sha256State
from services.model_upload.sources import HubSource
from services.model_upload.store import Store
from tests.model_upload.conftest import S3Calls, keys_under
from tests.support.fake_hub import FakeHub, SyntheticFile
from tests.support.moto_server import moto_env

MIB = 1024 * 1024
FAST = Backoff(base_s=0.01, cap_s=0.05, max_attempts=6, budget_s=5)
BIG = "model.safetensors"


def test_sha256_state_survives_a_round_trip_through_json() -> None:
    assert RESUMABLE, "OpenSSL's SHA256 functions are found on Linux (Python's own libcrypto)"
    data = os.urandom(3 * MIB + 123)
    first = ResumableSha256()
    first.update(data[:2 * MIB])
    saved = json.loads(json.dumps(first.state().__dict__))
    second = ResumableSha256(Sha256State(**saved))
    second.update(bytearray(data[2 * MIB:]))
    assert second.hexdigest() == hashlib.sha256(data).hexdigest()
    assert second.length == len(data)
    with pytest.raises(ValueError, match="64-byte boundary"):
        second.state()


def _records(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [k for k in keys_under(s3, bucket, prefix) if RESUME_FOLDER in k]


def _stored_in_parts(s3: Any, bucket: str, key: str) -> int:
    """Bytes S3 holds in the parts of the unfinished multipart upload of ``key`` (0 before it starts)."""
    uploads = [u for u in s3.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", []) if u["Key"] == key]
    if not uploads:
        return 0
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=uploads[0]["UploadId"]).get("Parts", [])
    return sum(p["Size"] for p in parts)


@pytest.mark.slow  # hundreds of MiB through moto, twice
def test_kill_at_half_then_rerun_downloads_less_than_60_percent(
    hub: FakeHub, s3: Any, bucket: str, moto_url: str, tmp_path: Any
) -> None:
    """Kill -9 the CLI once half the file is in S3, run it again: only what S3 lacks is downloaded."""
    size = 300 * MIB
    big = SyntheticFile(size, seed=3)
    hub.add_repo("org/big", {BIG: big, "config.json": b"{}"})
    prefix = "models/big/"
    env = {**os.environ, **{k: v for k, v in moto_env(moto_url).items() if k != "AWS_ENDPOINT_URL"}}
    argv = [sys.executable, "-m", "qvllm.cli", "upload-model", "--repo-id", "org/big", "--bucket", bucket,
            "--prefix", prefix, "--endpoint-url", moto_url, "--hf-endpoint", hub.base_url, "--part-size-mb", "16",
            "--workers", "1"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while hub.bytes_served[BIG] < size // 3:  # cheap to watch; S3 is asked only from a third on
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the copy did not start"
        time.sleep(0.02)
    while _stored_in_parts(s3, bucket, prefix + BIG) < size // 2:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the copy did not reach half-way"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = _stored_in_parts(s3, bucket, prefix + BIG)
    served_before = hub.bytes_served[BIG]
    assert read_manifest(s3, bucket, prefix) is None
    assert prefix + BIG not in keys_under(s3, bucket, prefix)

    source = HubSource("org/big", endpoint=hub.base_url)
    plan = plan_copy(source, Store(s3, bucket), prefix, snapshot=source.resolve(), allow_patterns=None,
                     ignore_patterns=(), part_size=16 * MIB)
    kept = {path: (len(point.states), sorted(point.stored)) for path, point in plan.resume.items()}
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    again = hub.bytes_served[BIG] - served_before
    print(f"\nkill at {stored / size:.0%} stored ({served_before / size:.0%} served); re-run downloaded "
          f"{again / MIB:.0f} MiB = {again / size:.1%} of the file")
    assert again < 0.6 * size, f"re-run downloaded {again / size:.1%} of the file; plan kept (hashed, stored) {kept}"
    manifest = read_manifest(s3, bucket, prefix)
    assert manifest is not None
    assert {f.path: f.sha256 for f in manifest.files}[BIG] == big.sha256()
    digest = hashlib.sha256()
    for chunk in s3.get_object(Bucket=bucket, Key=prefix + BIG)["Body"].iter_chunks(8 * MIB):
        digest.update(chunk)
    assert digest.hexdigest() == big.sha256()
    assert _records(s3, bucket, prefix) == []  # records go with the completed upload
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


class _StopAfter(CopyProgress):
    """Stops the copy (like Ctrl-C) once ``parts`` parts of the big file are stored."""

    def __init__(self, parts: int) -> None:
        self.parts = parts

    def on_bytes(self, path: str, n: int) -> None:
        if path == BIG:
            self.parts -= 1
            if self.parts <= 0:
                raise KeyboardInterrupt("stop")


@pytest.mark.slow  # hundreds of MiB through moto (a resume record every 32 MiB)
def test_a_part_whose_record_does_not_match_is_uploaded_again(
    hub: FakeHub, s3: Any, bucket: str, big_file: SyntheticFile, s3_calls: S3Calls
) -> None:
    hub.add_repo("org/big", {BIG: big_file})
    prefix = "models/rec/"
    source = HubSource("org/big", endpoint=hub.base_url, backoff=FAST)
    part = 16 * MIB
    with pytest.raises(KeyboardInterrupt):
        copy_model(source, s3_client=s3, bucket=bucket, prefix=prefix, workers=1, part_size=part,
                   progress=_StopAfter(9))
    records = sorted(_records(s3, bucket, prefix))
    assert len(records) >= 2
    first = json.loads(s3.get_object(Bucket=bucket, Key=records[0])["Body"].read())
    kept = first["first"] + len(first["states"]) - 1  # parts covered by the first record
    second = json.loads(s3.get_object(Bucket=bucket, Key=records[1])["Body"].read())
    second["upload_id"] = "an-upload-aborted-long-ago"  # a record that is not this upload's
    s3.put_object(Bucket=bucket, Key=records[1], Body=json.dumps(second).encode())

    served = hub.bytes_served[BIG]
    s3_calls.ops.clear()
    result = copy_step(source, s3_client=s3, bucket=bucket, prefix=prefix, workers=1, part_size=part)
    assert result.done
    assert hub.bytes_served[BIG] - served == big_file.size - kept * part  # parts after the bad record go again
    uploaded = sorted(p["PartNumber"] for name, p in s3_calls.ops if name == "UploadPart")
    assert uploaded == list(range(kept + 1, big_file.size // part + 1))
    assert result.manifest is not None and result.manifest.files[0].sha256 == big_file.sha256()
    assert s3_calls.writes()[-1] == prefix + ".qvllm-complete.json"


@pytest.mark.slow  # hundreds of MiB through moto (a resume record every 32 MiB)
def test_a_resumed_file_whose_bytes_changed_fails_verification_and_starts_over(
    hub: FakeHub, s3: Any, bucket: str, big_file: SyntheticFile
) -> None:
    """The whole-file sha256 still decides: a byte changed in an already stored part is caught."""
    hub.add_repo("org/big", {BIG: big_file})
    prefix = "models/changed/"
    source = HubSource("org/big", endpoint=hub.base_url, backoff=FAST)
    with pytest.raises(KeyboardInterrupt):
        copy_model(source, s3_client=s3, bucket=bucket, prefix=prefix, workers=1, part_size=16 * MIB,
                   progress=_StopAfter(3))
    record = sorted(_records(s3, bucket, prefix))[-1]  # the state the hash goes on from
    body = json.loads(s3.get_object(Bucket=bucket, Key=record)["Body"].read())
    body["states"][-1]["h"] = "0" * 64  # a state that is not what the stored parts hash to
    s3.put_object(Bucket=bucket, Key=record, Body=json.dumps(body).encode())
    from services.model_upload.errors import VerificationError

    with pytest.raises(VerificationError, match=r"model\.safetensors: sha256 [0-9a-f]{64} does not match"):
        copy_step(source, s3_client=s3, bucket=bucket, prefix=prefix, workers=1, part_size=16 * MIB)
    assert prefix + BIG not in keys_under(s3, bucket, prefix)
    assert _records(s3, bucket, prefix) == [] and s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    manifest = copy_model(source, s3_client=s3, bucket=bucket, prefix=prefix, workers=1, part_size=16 * MIB)
    assert manifest.files[0].sha256 == big_file.sha256()
