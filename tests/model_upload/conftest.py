"""Fixtures of the model-upload tests: a real moto_server, a fake hub, the tiny model's files."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from qvllm.tinymodel import generate_tiny_model
from services.model_upload.contract import DEFAULT_PART_SIZE
from tests.support.fake_hub import FakeHub, SyntheticFile
from tests.support.moto_server import MOTO_CLIENT_KWARGS, running_moto

BIG_FILE_BYTES = 256 * 1024 * 1024  # "a few hundred MB": 8 parts of 32 MiB
_bucket_ids = itertools.count()


@pytest.fixture(scope="package")
def moto_url() -> Iterator[str]:
    """One moto_server process for the package."""
    with running_moto() as url:
        yield url


@pytest.fixture()
def s3(moto_url: str) -> Any:
    """A boto3 S3 client on the moto server."""
    return boto3.client("s3", endpoint_url=moto_url, **MOTO_CLIENT_KWARGS)


@pytest.fixture()
def bucket(s3: Any) -> str:
    """A fresh bucket per test."""
    name = f"models-{next(_bucket_ids)}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture()
def hub() -> Iterator[FakeHub]:
    """A fresh fake hub per test (cheap: a thread)."""
    with FakeHub() as server:
        yield server


@pytest.fixture(scope="package")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama written once to disk."""
    return generate_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="package")
def tiny_files(tiny_dir: Path) -> dict[str, bytes]:
    """path -> bytes of the tiny model."""
    return {p.relative_to(tiny_dir).as_posix(): p.read_bytes() for p in tiny_dir.rglob("*") if p.is_file()}


@pytest.fixture(scope="package")
def multipart_file() -> SyntheticFile:
    """A synthetic weight file of three parts at the default part size (33 MiB), for the multipart
    tests of ``make test-fast``, which leaves ``big_file``'s hundreds of MiB out (sha256 computed once)."""
    multipart = SyntheticFile(2 * DEFAULT_PART_SIZE + 1024 * 1024, seed=11)
    multipart.sha256()
    return multipart


@pytest.fixture(scope="package")
def big_file() -> SyntheticFile:
    """A synthetic weight file large enough for multipart (sha256 computed once)."""
    big = SyntheticFile(BIG_FILE_BYTES, seed=7)
    big.sha256()
    return big


class S3Calls:
    """Records the S3 operations a boto3 client makes (names in order)."""

    def __init__(self, client: Any) -> None:
        self.ops: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register("before-parameter-build.s3.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.ops.append((model.name, params))

    def names(self) -> list[str]:
        """Operation names, in order."""
        return [name for name, _ in self.ops]

    def writes(self) -> list[str]:
        """Keys written by PutObject / CompleteMultipartUpload, in order."""
        keys = []
        for name, params in self.ops:
            if name in ("PutObject", "CompleteMultipartUpload"):
                keys.append(params["Key"])
        return keys


@pytest.fixture()
def s3_calls(s3: Any) -> S3Calls:
    """Record the operations of the ``s3`` fixture's client."""
    return S3Calls(s3)


def keys_under(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Current object keys under a prefix."""
    resp = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in resp.get("Contents", []))
