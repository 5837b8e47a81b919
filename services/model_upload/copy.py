"""Copy a model (Hugging Face repo or local folder) into S3: verified, resumable, idempotent.

Public API (used by the Lambda handler, the ``qvllm upload-model`` command and the local stack)::

    from services.model_upload.copy import copy_model, HubSource, LocalSource

    manifest = copy_model(
        HubSource("org/name", "main", token=None),        # or LocalSource("/path/to/model")
        s3_client=boto3.client("s3", endpoint_url=...),
        bucket="models-bucket",
        prefix="models/tiny/",                             # must end with "/"
        workers=8,
        progress=None,                                     # a CopyProgress, e.g. a rich bar
    )
    manifest.files  # (ManifestFile(path, size, sha256), ...)

A step has three parts, one function each:

* **Plan** (:func:`~.plan.plan_copy`, read-only). List the source (a hub revision resolves to
  its commit sha), filter by ``allow_patterns`` / ``ignore_patterns``, and require every shard
  that a selected safetensors index names. Compare with S3: an object whose size and recorded
  digest (metadata ``qvllm-sha256`` / ``qvllm-git-oid``) match is verified and skipped; an
  unfinished multipart upload whose part records match S3 is continued (:mod:`.resume`).
* **Transfer** (:func:`_transfer`). Files in parallel (``workers``), large files in parallel
  parts (:mod:`.transfer`), every byte checked against the published size and digest before
  its object exists. A failed file cancels the others between parts (:class:`TransferCancelled`);
  a deadline stops them between parts (:class:`DeadlineReached`); both leave them resumable.
* **Finish** (:func:`_finish`). When every file is verified, delete objects under the prefix
  that are not in the selection, then write the completion manifest
  (:data:`~.contract.COMPLETION_MANIFEST`) **last**. A stored manifest that does not describe
  this copy is deleted before the first byte is written, so nothing is ever marked complete
  for a copy that did not finish.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from .contract import COMPLETION_MANIFEST, DEFAULT_PART_SIZE, DEFAULT_WORKERS
from .errors import ConfigurationError, UploadError
from .manifest import Manifest, ManifestFile
from .plan import (
    DEFAULT_IGNORE_PATTERNS,
    Plan,
    check_prefix,
    part_size_for,
    plan_copy,
    select,
    select_files,
    stored_manifest,
)
from .sources import FileEntry, HubSource, LocalSource, Snapshot, Source
from .store import Store
from .transfer import CopyProgress, DeadlineReached, TransferCancelled, Transfers

__all__ = [
    "CopyProgress",
    "HubSource",
    "LocalSource",
    "Manifest",
    "ManifestFile",
    "StepResult",
    "copy_model",
    "copy_step",
    "preflight",
    "purge_prefix",
    "read_manifest",
    "select_files",
]


@dataclass(frozen=True)
class StepResult:
    """Outcome of one :func:`copy_step`.

    Attributes:
        done: every file verified and the manifest written.
        manifest: the manifest when ``done``.
        commit: the commit copied (``None`` for a local folder).
        copied / skipped / remaining: file paths completed now / already verified / left for
            a later step (deadline reached; a partly uploaded file resumes there).
        bytes_copied: bytes of the files completed by this step.
        total_bytes: bytes of the whole selection.
    """

    done: bool
    manifest: Manifest | None
    commit: str | None
    copied: tuple[str, ...]
    skipped: tuple[str, ...]
    remaining: tuple[str, ...]
    bytes_copied: int
    total_bytes: int


def read_manifest(s3_client: Any, bucket: str, prefix: str) -> Manifest | None:
    """Return the completion manifest under ``prefix``, or ``None`` if absent or unreadable.

    Raises:
        StorageError: S3 failed (one line naming bucket and endpoint).
    """
    return stored_manifest(Store(s3_client, bucket), prefix)


def purge_prefix(s3_client: Any, bucket: str, prefix: str) -> int:
    """Delete every current object under ``prefix`` (manifest first) and abort its multipart uploads.

    In a versioned bucket this adds delete markers; older versions expire by the bucket's
    lifecycle rule. Returns the number of objects deleted.

    Raises:
        StorageError: S3 failed.
    """
    check_prefix(prefix)
    store = Store(s3_client, bucket)
    manifest_key = prefix + COMPLETION_MANIFEST
    keys = store.list_keys(prefix)
    if manifest_key in keys:  # first: the copy stops being "complete" before files vanish
        store.delete([manifest_key])
    store.delete(sorted(k for k in keys if k != manifest_key))
    for key, upload_id in list(store.uploads(prefix)):
        store.abort_upload(key, upload_id)
    return len(keys)


def _check_arguments(prefix: str, workers: int, part_size: int) -> None:
    check_prefix(prefix)
    if workers < 1:
        raise ConfigurationError(f"workers must be >= 1, got {workers}")
    part_size_for(FileEntry("-", 0), part_size)  # raises on a part size S3 refuses


def preflight(source: Source, *, s3_client: Any, bucket: str, prefix: str, allow_patterns: Sequence[str] | None,
              ignore_patterns: Sequence[str] = DEFAULT_IGNORE_PATTERNS) -> tuple[Snapshot, list[FileEntry]]:
    """Everything that can fail fast, before a byte is copied: resolve and select (index complete),
    list the destination prefix (bucket, endpoint, credentials), open the first file (auth, 404).

    Returns the snapshot and the selected files. Raises UploadError and subclasses.
    """
    check_prefix(prefix)
    snapshot = source.resolve()
    entries = select(source, snapshot, allow_patterns, ignore_patterns)
    Store(s3_client, bucket).list_keys(prefix)
    source.check_access(entries[0], snapshot.commit)
    return snapshot, entries


def _transfer(plan: Plan, source: Source, store: Store, prefix: str, *, workers: int, part_size: int,
              progress: CopyProgress, deadline: float | None) -> dict[str, ManifestFile]:
    """Copy ``plan.todo``; returns the files completed. Raises the first failure (others cancelled)."""
    if plan.manifest is not None:  # stale or for another revision: not complete any more
        store.delete([prefix + COMPLETION_MANIFEST])
    if plan.todo:
        source.check_access(plan.todo[0], plan.commit)  # fail fast on auth/404 before writing
    for key, upload_id in plan.abort:
        store.abort_upload(key, upload_id)
    transfers = Transfers(source, plan.commit, store, prefix, part_size, 2 * workers, progress, deadline)
    completed: dict[str, ManifestFile] = {}
    failures: list[BaseException] = []
    lock = threading.Lock()

    def copy_one(entry: FileEntry) -> None:
        try:
            done = transfers.copy(entry, plan.resume.get(entry.path))
        except (TransferCancelled, DeadlineReached):
            return
        except BaseException as exc:  # noqa: BLE001 - raised below, after the other files stopped
            transfers.cancel.set()
            with lock:
                failures.append(exc)
            return
        with lock:
            completed[entry.path] = done

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="file") as files:
            list(files.map(copy_one, plan.todo))
    finally:
        transfers.close()
    if failures:
        raise failures[0]
    return completed


def _finish(plan: Plan, source: Source, store: Store, prefix: str, files: dict[str, ManifestFile]) -> Manifest:
    """Delete what is not in the selection (left by an earlier revision, or records of uploads
    given up), then write the completion manifest, last."""
    manifest_key = prefix + COMPLETION_MANIFEST
    wanted = {prefix + e.path for e in plan.entries} | {manifest_key}
    store.delete(sorted(k for k in plan.keys if k not in wanted))
    manifest = Manifest(
        source=source.describe(),
        commit=plan.commit,
        bucket=store.bucket,
        prefix=prefix,
        files=tuple(files[e.path] for e in plan.entries),
        completed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    store.put(manifest_key, manifest.to_json().encode(), content_type="application/json")  # last
    return manifest


def copy_step(
    source: Source,
    *,
    s3_client: Any,
    bucket: str,
    prefix: str,
    allow_patterns: Sequence[str] | None = None,
    ignore_patterns: Sequence[str] = DEFAULT_IGNORE_PATTERNS,
    workers: int = DEFAULT_WORKERS,
    part_size: int = DEFAULT_PART_SIZE,
    progress: CopyProgress | None = None,
    deadline: float | None = None,
    snapshot: Snapshot | None = None,
) -> StepResult:
    """Copy as much as fits before ``deadline``; finish (manifest) when everything is verified.

    Args:
        source: :class:`HubSource` or :class:`LocalSource`.
        s3_client: a boto3 S3 client (any endpoint).
        bucket, prefix: destination; ``prefix`` ends with ``/`` (``models/<name>/``).
        allow_patterns, ignore_patterns: see :func:`select_files`.
        workers: files copied in parallel; ``2 * workers`` parts in memory at most.
        part_size: multipart part size in bytes (whole MiB, >= 5 MiB).
        progress: callbacks, see :class:`CopyProgress`.
        deadline: ``time.monotonic()`` value after which no part is started (parts in flight
            finish and are recorded). ``None``: no limit.
        snapshot: a listing already resolved (the handler pins the commit from Create).

    Raises:
        UploadError and subclasses: auth, not found, network, S3, verification, configuration,
        an incomplete safetensors index. Each is one line saying what to do.
    """
    _check_arguments(prefix, workers, part_size)
    progress = progress or CopyProgress()
    store = Store(s3_client, bucket)
    plan = plan_copy(source, store, prefix, snapshot=snapshot or source.resolve(), allow_patterns=allow_patterns,
                     ignore_patterns=ignore_patterns, part_size=part_size)
    skipped = tuple(plan.verified)
    if plan.complete:
        progress.on_plan(plan.entries, skipped, {})
        return StepResult(True, plan.manifest, plan.commit, (), skipped, (), 0, plan.total_bytes)
    progress.on_plan(plan.entries, skipped, {path: point.stored_bytes for path, point in plan.resume.items()})
    copied = _transfer(plan, source, store, prefix, workers=workers, part_size=part_size, progress=progress,
                       deadline=deadline)
    files = {**plan.verified, **copied}
    remaining = tuple(e.path for e in plan.entries if e.path not in files)
    bytes_copied = sum(f.size for f in copied.values())
    if remaining:
        return StepResult(False, None, plan.commit, tuple(copied), skipped, remaining, bytes_copied, plan.total_bytes)
    manifest = _finish(plan, source, store, prefix, files)
    return StepResult(True, manifest, plan.commit, tuple(copied), skipped, (), bytes_copied, plan.total_bytes)


def copy_model(
    source: Source,
    *,
    s3_client: Any,
    bucket: str,
    prefix: str,
    workers: int = DEFAULT_WORKERS,
    progress: CopyProgress | None = None,
    allow_patterns: Sequence[str] | None = None,
    ignore_patterns: Sequence[str] = DEFAULT_IGNORE_PATTERNS,
    part_size: int = DEFAULT_PART_SIZE,
) -> Manifest:
    """Copy ``source`` to ``s3://bucket/prefix`` in one go and return the completion manifest.

    Same arguments as :func:`copy_step` without a deadline. Re-running after an interruption
    skips verified files and continues unfinished ones; re-running a finished copy uploads
    nothing and returns the manifest.

    Raises:
        UploadError and subclasses (see :mod:`services.model_upload.errors`).
    """
    result = copy_step(
        source, s3_client=s3_client, bucket=bucket, prefix=prefix, allow_patterns=allow_patterns,
        ignore_patterns=ignore_patterns, workers=workers, part_size=part_size, progress=progress,
    )
    if not result.done or result.manifest is None:  # pragma: no cover - no deadline given
        raise UploadError(f"copy stopped with files remaining: {list(result.remaining)}")
    return result.manifest
