"""Benchmark (``make bench-upload``): model copy throughput, hub -> S3, beside boto3 upload_file.

One run, on loopback, no AWS:

1. A fake Hugging Face hub (``tests/support/fake_hub.py``, in its own process so it does not
   share our GIL) serves one synthetic LFS weight file of ``--size-mb`` MiB (302 redirect to a
   CDN path, like the real hub). ``copy_model`` streams it into a ``moto_server`` bucket:
   download, sha256 verification and multipart upload together.
2. The same bytes, written to a local file first, go into the same moto server with boto3's
   ``upload_file`` (its default TransferConfig: 8 MiB parts, 10 threads) - the baseline that
   neither downloads nor verifies.

Prints MB/s (1 MB = 10^6 bytes) of both and the ratio copy / upload_file. Both sides write to
the same in-memory moto server, which is usually the bottleneck here, so the ratio (not the
absolute figure) is the comparable number; on AWS both are bounded by the network instead.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import boto3  # noqa: E402

from services.model_upload.copy import copy_model  # noqa: E402
from services.model_upload.sources import HubSource  # noqa: E402
from tests.support.fake_hub import FakeHub, SyntheticFile  # noqa: E402
from tests.support.moto_server import MOTO_CLIENT_KWARGS, running_moto  # noqa: E402

REPO = "bench/synthetic"
FILE = "model.safetensors"


def _serve_hub(size: int, queue: "multiprocessing.Queue[str]", stop: "multiprocessing.synchronize.Event") -> None:
    with FakeHub() as hub:
        hub.add_repo(REPO, {FILE: SyntheticFile(size, seed=1)})
        queue.put(hub.base_url)
        stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512, help="synthetic file size in MiB (default 512)")
    parser.add_argument("--workers", type=int, default=8, help="copy workers (default 8)")
    parser.add_argument("--part-size-mb", type=int, default=32, help="copy part size in MiB (default 32)")
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024

    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    stop = ctx.Event()
    hub_proc = ctx.Process(target=_serve_hub, args=(size, queue, stop), daemon=True)
    hub_proc.start()
    try:
        hub_url = queue.get(timeout=120)
        with running_moto() as moto_url, tempfile.TemporaryDirectory() as tmp:
            s3 = boto3.client("s3", endpoint_url=moto_url, **MOTO_CLIENT_KWARGS)
            s3.create_bucket(Bucket="bench-copy")
            s3.create_bucket(Bucket="bench-upload-file")

            start = time.perf_counter()
            manifest = copy_model(HubSource(REPO, "main", endpoint=hub_url), s3_client=s3, bucket="bench-copy",
                                  prefix="models/bench/", workers=args.workers,
                                  part_size=args.part_size_mb * 1024 * 1024)
            copy_s = time.perf_counter() - start
            assert manifest.total_bytes == size

            local = Path(tmp) / FILE
            with local.open("wb") as fh:
                for piece in SyntheticFile(size, seed=1).iter_range(0, size):
                    fh.write(piece)
            start = time.perf_counter()
            s3.upload_file(str(local), "bench-upload-file", f"models/bench/{FILE}")
            upload_s = time.perf_counter() - start
    finally:
        stop.set()
        hub_proc.join(timeout=10)
        if hub_proc.is_alive():
            hub_proc.terminate()

    mb = size / 1e6
    copy_rate, upload_rate = mb / copy_s, mb / upload_s
    print(f"file: {args.size_mb} MiB ({mb:.0f} MB), one LFS file, {args.workers} workers, "
          f"{args.part_size_mb} MiB parts")
    print(f"copy_model hub -> moto (download + sha256 + multipart): {copy_s:6.2f} s  {copy_rate:7.1f} MB/s")
    print(f"boto3 upload_file local disk -> moto:                  {upload_s:6.2f} s  {upload_rate:7.1f} MB/s")
    print(f"ratio copy_model / upload_file: {copy_rate / upload_rate:.2f}")


if __name__ == "__main__":
    main()
