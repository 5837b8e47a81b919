"""Benchmark (``make bench-upload``): model copy throughput, hub -> S3, beside boto3 ``upload_file``.

One run, on loopback, no AWS, rounds interleaved (copy, upload_file, upload_file, copy, ...) so a
change in the machine's load hits both sides alike:

1. A fake Hugging Face hub (``tests/support/fake_hub.py``, in its own process so it does not
   share our GIL) serves one synthetic LFS weight file of ``--size-mb`` MiB (302 redirect to a
   CDN path, like the real hub). ``copy_model`` streams it into a ``moto_server`` bucket:
   parallel ranged downloads, sha256 verification and multipart upload together.
2. The same bytes, written to a local file first, go into the same moto server with boto3's
   ``upload_file`` (its default TransferConfig: 8 MiB parts, 10 threads): the baseline that
   neither downloads nor verifies.

Prints MB/s (1 MB = 10^6 bytes) of both per round, the medians and ranges, and last the ratio of
the medians, copy / upload_file, as ``key=value`` pairs. Both sides write to the same in-memory
moto server, usually the bottleneck here, so the ratio (not the absolute figure) is the
comparable number; on AWS both are bounded by the network instead.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import boto3  # noqa: E402

from services.model_upload.contract import DEFAULT_PART_SIZE, DEFAULT_WORKERS  # noqa: E402
from services.model_upload.copy import copy_model  # noqa: E402
from services.model_upload.sources import HubSource  # noqa: E402
from services.model_upload.store import client_config  # noqa: E402
from tests.support.fake_hub import FakeHub, SyntheticFile  # noqa: E402
from tests.support.moto_server import MOTO_CLIENT_KWARGS, running_moto  # noqa: E402

REPO = "bench/synthetic"
FILE = "model.safetensors"
MIB = 1024 * 1024


def _serve_hub(size: int, queue: "multiprocessing.Queue[str]", stop: "multiprocessing.synchronize.Event") -> None:
    with FakeHub() as hub:
        hub.add_repo(REPO, {FILE: SyntheticFile(size, seed=1)})
        queue.put(hub.base_url)
        stop.wait()


def _spread(values: list[float]) -> str:
    return f"median {statistics.median(values):7.1f}  range {min(values):6.1f} .. {max(values):6.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=300, help="synthetic file size in MiB (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side, interleaved (default 3)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="copy workers (default: the contract's)")
    parser.add_argument("--part-size-mb", type=int, default=DEFAULT_PART_SIZE // MIB,
                        help="copy part size in MiB (default: the contract's)")
    args = parser.parse_args()
    size = args.size_mb * MIB

    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    stop = ctx.Event()
    hub_proc = ctx.Process(target=_serve_hub, args=(size, queue, stop), daemon=True)
    hub_proc.start()
    rates: dict[str, list[float]] = {"copy": [], "upload_file": []}
    try:
        hub_url = queue.get(timeout=120)
        with running_moto() as moto_url, tempfile.TemporaryDirectory() as tmp:
            s3 = boto3.client("s3", endpoint_url=moto_url, config=client_config(args.workers), **MOTO_CLIENT_KWARGS)
            baseline = boto3.client("s3", endpoint_url=moto_url, **MOTO_CLIENT_KWARGS)  # upload_file's defaults
            local = Path(tmp) / FILE
            with local.open("wb") as fh:
                for piece in SyntheticFile(size, seed=1).iter_range(0, size):
                    fh.write(piece)
            for n in range(args.rounds):
                order = ("copy", "upload_file") if n % 2 == 0 else ("upload_file", "copy")
                for side in order:
                    bucket = f"bench-{side.replace('_', '-')}-{n}"
                    s3.create_bucket(Bucket=bucket)
                    start = time.perf_counter()
                    if side == "copy":
                        manifest = copy_model(HubSource(REPO, "main", endpoint=hub_url), s3_client=s3, bucket=bucket,
                                              prefix="models/bench/", workers=args.workers,
                                              part_size=args.part_size_mb * MIB)
                        assert manifest.total_bytes == size
                    else:
                        baseline.upload_file(str(local), bucket, f"models/bench/{FILE}")
                    seconds = time.perf_counter() - start
                    rates[side].append(size / 1e6 / seconds)
                    print(f"round {n + 1} {side:<11} {seconds:6.2f} s {rates[side][-1]:7.1f} MB/s", flush=True)
                    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):  # free moto's memory
                        for obj in page.get("Contents", []):
                            s3.delete_object(Bucket=bucket, Key=obj["Key"])
    finally:
        stop.set()
        hub_proc.join(timeout=10)
        if hub_proc.is_alive():
            hub_proc.terminate()

    copy_mb_s, upload_mb_s = statistics.median(rates["copy"]), statistics.median(rates["upload_file"])
    print(f"file: {args.size_mb} MiB, one LFS file, {args.workers} workers, {args.part_size_mb} MiB parts, "
          f"{args.rounds} interleaved rounds")
    print(f"copy_model hub -> moto (ranged download + sha256 + multipart) MB/s: {_spread(rates['copy'])}")
    print(f"boto3 upload_file local disk -> moto MB/s:                     {_spread(rates['upload_file'])}")
    print(f"copy_mb_s={copy_mb_s:.1f} upload_file_mb_s={upload_mb_s:.1f} ratio={copy_mb_s / upload_mb_s:.2f}")


if __name__ == "__main__":
    main()
