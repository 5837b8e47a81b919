"""Copy a model (Hugging Face repo or local folder) into S3, verified, resumable, idempotent.

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

How it works:

* **Plan.** The source is listed (a hub revision is resolved to its commit sha), filtered by
  ``allow_patterns`` (``None`` = every file) and ``ignore_patterns`` (default ``original/*``,
  dropped when ``allow_patterns`` names the same pattern). Each selected file is checked
  against S3 with HEAD: an object whose size and recorded digest (object metadata
  ``qvllm-sha256`` / ``qvllm-git-oid``) match is *verified* and skipped. That metadata is the
  progress record, so a second run (or the next Lambda invocation) resumes where the last one
  stopped, and a re-run of a finished copy uploads nothing.
* **Copy.** Files stream from the source in parallel (``workers`` files at a time). A file
  larger than ``part_size`` with a published sha256 goes through S3 multipart upload, parts
  uploaded in parallel with at most ``2 * workers`` parts in memory (memory bound
  ``2 * workers * part_size``). Smaller files, and hub files kept in git (the hub caps those at
  10 MB), are buffered and PUT once. sha256 (and the git blob sha1 for git files) is computed
  while streaming; the object is completed only if size and digest match, else the multipart
  upload is aborted, so a corrupt file never lands. A weight file starting with the Git LFS
  pointer header is rejected (case B19).
* **Finish.** When every selected file is verified, objects under the prefix that are not in
  the selection (left by an earlier revision) are deleted, then the completion manifest
  (:data:`settings.COMPLETION_MANIFEST`: source, commit, files, sizes, sha256) is written
  **last**. A manifest that does not describe the planned copy is deleted before any byte is
  written, so nothing is ever marked complete for a copy that did not finish.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from botocore.exceptions import ClientError

from . import settings
from .errors import ConfigurationError, LfsPointerError, UploadError, VerificationError
from .sources import READ_CHUNK, FileEntry, HubSource, LocalSource, Snapshot, Source

__all__ = [
    "CopyProgress",
    "HubSource",
    "LocalSource",
    "Manifest",
    "ManifestFile",
    "StepResult",
    "copy_model",
    "copy_step",
    "purge_prefix",
    "read_manifest",
    "select_files",
]

DEFAULT_PART_SIZE = 32 * 1024 * 1024  # bytes; S3 needs >= 5 MiB for all parts but the last
MAX_GIT_FILE_BYTES = 64 * 1024 * 1024  # non-LFS files are buffered whole; the hub caps them at 10 MB
MAX_PARTS = 10_000  # S3 limit


# ---------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ManifestFile:
    """One verified object: ``path`` (relative to the prefix), ``size`` (bytes), ``sha256`` (hex)."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """The completion manifest, written last under ``<prefix><COMPLETION_MANIFEST>``.

    Attributes:
        source: :meth:`Source.describe` (hub: repo_id, requested revision, endpoint; local: path).
        commit: the commit sha the revision resolved to (``None`` for a local folder).
        bucket, prefix: where the files are.
        files: every copied file, sorted by path.
        completed_at: ISO 8601 UTC timestamp.
    """

    source: dict[str, str]
    commit: str | None
    bucket: str
    prefix: str
    files: tuple[ManifestFile, ...]
    completed_at: str = ""

    @property
    def total_bytes(self) -> int:
        """Sum of file sizes in bytes."""
        return sum(f.size for f in self.files)

    def to_json(self) -> str:
        """Serialise (stable key order)."""
        data = asdict(self)
        data["files"] = [asdict(f) for f in self.files]
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Manifest":
        """Parse :meth:`to_json` output. Raises ``ValueError``/``KeyError`` on other input."""
        data = json.loads(text)
        return cls(
            source=dict(data["source"]),
            commit=data["commit"],
            bucket=data["bucket"],
            prefix=data["prefix"],
            files=tuple(ManifestFile(**f) for f in data["files"]),
            completed_at=data.get("completed_at", ""),
        )

    def describes(self, commit: str | None, entries: Sequence[FileEntry]) -> bool:
        """True if this manifest is for ``commit`` and exactly these files (paths, sizes, sha256)."""
        if self.commit != commit or len(self.files) != len(entries):
            return False
        mine = {f.path: f for f in self.files}
        for entry in entries:
            done = mine.get(entry.path)
            if done is None or done.size != entry.size:
                return False
            if entry.sha256 and done.sha256 != entry.sha256:
                return False
        return True


@dataclass(frozen=True)
class StepResult:
    """Outcome of one :func:`copy_step`.

    Attributes:
        done: every file verified and the manifest written.
        manifest: the manifest when ``done``.
        commit: the commit copied (``None`` for a local folder).
        copied / skipped / remaining: file paths uploaded now / already verified / left for
            a later step (deadline reached).
        bytes_copied: bytes uploaded by this step.
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


class CopyProgress:
    """Progress callbacks (no-op base class). Called from worker threads.

    ``on_plan(entries, skipped)`` once after planning; ``on_bytes(path, n)`` for every chunk
    read; ``on_file_done(path)`` when a file is verified and stored.
    """

    def on_plan(self, entries: Sequence[FileEntry], skipped: Sequence[str]) -> None:
        """Planning done: ``entries`` selected, of which ``skipped`` are already verified."""

    def on_bytes(self, path: str, n: int) -> None:
        """``n`` more bytes of ``path`` streamed."""

    def on_file_done(self, path: str) -> None:
        """``path`` verified and stored."""


# ---------------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------------
def select_files(
    entries: Iterable[FileEntry],
    allow_patterns: Sequence[str] | None,
    ignore_patterns: Sequence[str] = settings.DEFAULT_IGNORE_PATTERNS,
) -> list[FileEntry]:
    """Filter entries with ``fnmatch`` patterns (``*`` also matches ``/``, as in huggingface_hub).

    An ignore pattern that also appears in ``allow_patterns`` is dropped ("asked for").

    Raises:
        ConfigurationError: a path is absolute or has ``..`` (it would escape the prefix), or
            collides with the completion manifest name.
    """
    allow = list(allow_patterns) if allow_patterns is not None else None
    ignore = [p for p in ignore_patterns if not (allow and p in allow)]
    chosen = []
    for entry in entries:
        if allow is not None and not any(fnmatch.fnmatchcase(entry.path, p) for p in allow):
            continue
        if any(fnmatch.fnmatchcase(entry.path, p) for p in ignore):
            continue
        parts = entry.path.split("/")
        if entry.path.startswith("/") or ".." in parts or "" in parts:
            raise ConfigurationError(f"source file path {entry.path!r} is not a clean relative path")
        if entry.path == settings.COMPLETION_MANIFEST:
            raise ConfigurationError(f"source holds a file named like the completion manifest: {entry.path!r}")
        chosen.append(entry)
    return sorted(chosen, key=lambda e: e.path)


def _check_prefix(prefix: str) -> None:
    if not prefix or not prefix.endswith("/") or prefix.startswith("/") or ".." in prefix.split("/"):
        raise ConfigurationError(f"prefix {prefix!r} must be a non-empty key prefix ending with '/', like 'models/tiny/'")


# ---------------------------------------------------------------------------------
# S3 state
# ---------------------------------------------------------------------------------
def _is_missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def read_manifest(s3_client: Any, bucket: str, prefix: str) -> Manifest | None:
    """Return the completion manifest under ``prefix``, or ``None`` if absent or unreadable."""
    try:
        body = s3_client.get_object(Bucket=bucket, Key=prefix + settings.COMPLETION_MANIFEST)["Body"].read()
    except ClientError as exc:
        if _is_missing(exc):
            return None
        raise
    try:
        return Manifest.from_json(body)
    except (ValueError, KeyError, TypeError):
        return None


def _verified_sha256(s3_client: Any, bucket: str, key: str, entry: FileEntry) -> str | None:
    """sha256 of the stored object if it matches ``entry`` (size + recorded digest), else None."""
    try:
        head = s3_client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _is_missing(exc):
            return None
        raise
    meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
    if head.get("ContentLength") != entry.size:
        return None
    kind, value = entry.identity
    recorded = meta.get(settings.META_SHA256 if kind == "sha256" else settings.META_GIT_OID)
    if recorded != value:
        return None
    return meta.get(settings.META_SHA256)


def _list_keys(s3_client: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def _delete_keys(s3_client: Any, bucket: str, keys: Sequence[str]) -> None:
    for start in range(0, len(keys), 1000):
        batch = [{"Key": k} for k in keys[start:start + 1000]]
        resp = s3_client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        if resp.get("Errors"):
            first = resp["Errors"][0]
            raise UploadError(f"could not delete s3://{bucket}/{first.get('Key')}: {first.get('Message')}")


def _abort_uploads(s3_client: Any, bucket: str, prefix: str) -> int:
    aborted = 0
    for page in s3_client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
        for upload in page.get("Uploads", []):
            s3_client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            aborted += 1
    return aborted


def purge_prefix(s3_client: Any, bucket: str, prefix: str) -> int:
    """Delete every current object under ``prefix`` (manifest first) and abort its multipart uploads.

    In a versioned bucket this adds delete markers; older versions expire by the bucket's
    lifecycle rule. Returns the number of objects deleted.
    """
    _check_prefix(prefix)
    manifest_key = prefix + settings.COMPLETION_MANIFEST
    keys = _list_keys(s3_client, bucket, prefix)
    if manifest_key in keys:  # first: the copy stops being "complete" before files vanish
        _delete_keys(s3_client, bucket, [manifest_key])
    others = [k for k in keys if k != manifest_key]
    _delete_keys(s3_client, bucket, others)
    _abort_uploads(s3_client, bucket, prefix)
    return len(keys)


# ---------------------------------------------------------------------------------
# Copy of one file
# ---------------------------------------------------------------------------------
@dataclass
class _Ctx:
    source: Source
    commit: str | None
    s3: Any
    bucket: str
    prefix: str
    part_size: int
    part_pool: ThreadPoolExecutor
    part_slots: threading.BoundedSemaphore
    progress: CopyProgress
    cancel: threading.Event = field(default_factory=threading.Event)


class _Hasher:
    def __init__(self, entry: FileEntry) -> None:
        self.entry = entry
        self.sha256 = hashlib.sha256()
        self.git = hashlib.sha1(b"blob %d\0" % entry.size) if entry.git_oid else None  # noqa: S324 (git's id)
        self.size = 0

    def update(self, data: bytes) -> None:
        if self.size == 0 and data:
            self._check_pointer(data)
        self.size += len(data)
        if self.size > self.entry.size:
            raise VerificationError(
                f"{self.entry.path}: the source sent more than the {self.entry.size} bytes it published"
            )
        self.sha256.update(data)
        if self.git is not None:
            self.git.update(data)

    def _check_pointer(self, head: bytes) -> None:
        if self.entry.path.lower().endswith(settings.WEIGHT_SUFFIXES) and head.startswith(settings.LFS_POINTER_PREFIX):
            raise LfsPointerError(
                f"{self.entry.path}: weight file is a Git LFS pointer stub ({self.entry.size} bytes), not "
                f"tensor data: the source was cloned or synced without Git LFS; fetch the real LFS objects"
            )

    def verify(self) -> str:
        e = self.entry
        if self.size != e.size:
            raise VerificationError(f"{e.path}: got {self.size} bytes, the source published {e.size}")
        digest = self.sha256.hexdigest()
        if e.sha256 and digest != e.sha256:
            raise VerificationError(f"{e.path}: sha256 {digest} does not match the published {e.sha256}")
        if self.git is not None and self.git.hexdigest() != e.git_oid:
            raise VerificationError(
                f"{e.path}: git blob id {self.git.hexdigest()} does not match the published {e.git_oid}"
            )
        return digest


def _read_exactly(reader: Any, n: int, hasher: _Hasher, ctx: _Ctx) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = reader.read(min(READ_CHUNK, n - len(buf)))
        if not chunk:
            break
        hasher.update(chunk)
        buf += chunk
        ctx.progress.on_bytes(hasher.entry.path, len(chunk))
    return bytes(buf)


def _metadata(ctx: _Ctx, entry: FileEntry, sha256: str) -> dict[str, str]:
    meta = {settings.META_SHA256: sha256}
    if entry.git_oid:
        meta[settings.META_GIT_OID] = entry.git_oid
    if ctx.commit:
        meta[settings.META_COMMIT] = ctx.commit
    return meta


def _copy_file(ctx: _Ctx, entry: FileEntry) -> ManifestFile:
    key = ctx.prefix + entry.path
    hasher = _Hasher(entry)
    reader = ctx.source.open(entry, ctx.commit)
    try:
        if entry.sha256 is None or entry.size <= ctx.part_size:
            if entry.sha256 is None and entry.size > MAX_GIT_FILE_BYTES:
                raise ConfigurationError(
                    f"{entry.path}: {entry.size} bytes without a published sha256 (not in LFS); refusing to buffer it"
                )
            body = _read_exactly(reader, entry.size + 1, hasher, ctx)
            sha256 = hasher.verify()
            ctx.s3.put_object(Bucket=ctx.bucket, Key=key, Body=body, Metadata=_metadata(ctx, entry, sha256))
        else:
            sha256 = _multipart(ctx, entry, key, reader, hasher)
    finally:
        reader.close()
    ctx.progress.on_file_done(entry.path)
    return ManifestFile(path=entry.path, size=entry.size, sha256=sha256)


def _multipart(ctx: _Ctx, entry: FileEntry, key: str, reader: Any, hasher: _Hasher) -> str:
    part_size = max(ctx.part_size, -(-entry.size // MAX_PARTS))
    assert entry.sha256  # multipart only for files with a published sha256 (metadata set up front)
    upload_id = ctx.s3.create_multipart_upload(
        Bucket=ctx.bucket, Key=key, Metadata=_metadata(ctx, entry, entry.sha256)
    )["UploadId"]
    futures: list[Future] = []
    try:
        number = 1
        while True:
            if ctx.cancel.is_set():
                raise UploadError(f"{entry.path}: cancelled because another file failed")
            for fut in futures:
                if fut.done() and fut.exception() is not None:
                    raise fut.exception()  # type: ignore[misc]
            data = _read_exactly(reader, part_size, hasher, ctx)
            if not data:
                break
            ctx.part_slots.acquire()
            fut = ctx.part_pool.submit(
                ctx.s3.upload_part, Bucket=ctx.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            )
            fut.add_done_callback(lambda _f: ctx.part_slots.release())
            futures.append(fut)
            number += 1
            if len(data) < part_size:
                break
        parts = [{"PartNumber": i + 1, "ETag": fut.result()["ETag"]} for i, fut in enumerate(futures)]
        sha256 = hasher.verify()  # before completing: a mismatch never becomes an object
        ctx.s3.complete_multipart_upload(
            Bucket=ctx.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        return sha256
    except BaseException:
        for fut in futures:
            fut.cancel()
        for fut in futures:
            if not fut.cancelled():
                try:
                    fut.result()
                except Exception:  # noqa: BLE001 - the first error is re-raised below
                    pass
        ctx.s3.abort_multipart_upload(Bucket=ctx.bucket, Key=key, UploadId=upload_id)
        raise


# ---------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------
def copy_step(
    source: Source,
    *,
    s3_client: Any,
    bucket: str,
    prefix: str,
    allow_patterns: Sequence[str] | None = None,
    ignore_patterns: Sequence[str] = settings.DEFAULT_IGNORE_PATTERNS,
    workers: int = 8,
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
        workers: files copied in parallel (and parallel part uploads).
        part_size: multipart part size in bytes (>= 5 MiB).
        progress: callbacks, see :class:`CopyProgress`.
        deadline: ``time.monotonic()`` value after which no new file is started (files in
            flight finish). ``None``: no limit.
        snapshot: a listing already resolved (the handler pins the commit from Create).

    Raises:
        UploadError and subclasses: auth, not found, network, verification, configuration.
        botocore errors from S3 propagate unchanged.
    """
    _check_prefix(prefix)
    if workers < 1:
        raise ConfigurationError(f"workers must be >= 1, got {workers}")
    if part_size < 5 * 1024 * 1024:
        raise ConfigurationError(f"part_size must be >= 5 MiB (S3 minimum), got {part_size}")
    progress = progress or CopyProgress()
    snap = snapshot or source.resolve()
    entries = select_files(snap.files, allow_patterns, ignore_patterns)
    if not entries:
        raise ConfigurationError(
            f"no file of {source.describe()} matches allow_patterns {list(allow_patterns or [])} "
            f"(ignore_patterns {list(ignore_patterns)})"
        )
    total = sum(e.size for e in entries)

    existing = read_manifest(s3_client, bucket, prefix)
    verified: dict[str, ManifestFile] = {}
    todo: list[FileEntry] = []
    for entry in entries:
        sha = _verified_sha256(s3_client, bucket, prefix + entry.path, entry)
        if sha:
            verified[entry.path] = ManifestFile(entry.path, entry.size, sha)
        else:
            todo.append(entry)
    if existing is not None and not todo and existing.describes(snap.commit, entries):
        progress.on_plan(entries, [e.path for e in entries])
        return StepResult(True, existing, snap.commit, (), tuple(verified), (), 0, total)
    if existing is not None:  # stale or for another revision: not complete any more
        _delete_keys(s3_client, bucket, [prefix + settings.COMPLETION_MANIFEST])
    skipped = tuple(verified)
    progress.on_plan(entries, list(skipped))
    if todo:
        source.check_access(todo[0], snap.commit)  # fail fast on auth/404 before writing
        _abort_uploads(s3_client, bucket, prefix)  # left by an interrupted invocation

    copied: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="part") as part_pool:
        ctx = _Ctx(source, snap.commit, s3_client, bucket, prefix, part_size, part_pool,
                   threading.BoundedSemaphore(2 * workers), progress)

        def run(entry: FileEntry) -> None:
            if ctx.cancel.is_set() or (deadline is not None and time.monotonic() >= deadline):
                return
            try:
                done = _copy_file(ctx, entry)
            except BaseException as exc:  # noqa: BLE001 - reported after the pool drains
                ctx.cancel.set()
                with lock:
                    errors.append(exc)
                return
            with lock:
                verified[entry.path] = done
                copied.append(entry.path)

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="file") as file_pool:
            list(file_pool.map(run, todo))
    if errors:
        first = next((e for e in errors if isinstance(e, UploadError) and "cancelled because" not in str(e)),
                     errors[0])
        raise first
    remaining = tuple(e.path for e in entries if e.path not in verified)
    bytes_copied = sum(verified[p].size for p in copied)
    if remaining:
        return StepResult(False, None, snap.commit, tuple(copied), skipped, remaining, bytes_copied, total)

    wanted = {prefix + e.path for e in entries} | {prefix + settings.COMPLETION_MANIFEST}
    stale = [k for k in _list_keys(s3_client, bucket, prefix) if k not in wanted]
    _delete_keys(s3_client, bucket, stale)
    manifest = Manifest(
        source=source.describe(),
        commit=snap.commit,
        bucket=bucket,
        prefix=prefix,
        files=tuple(verified[e.path] for e in entries),
        completed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    s3_client.put_object(  # last: only now is the copy complete
        Bucket=bucket, Key=prefix + settings.COMPLETION_MANIFEST, Body=manifest.to_json().encode(),
        ContentType="application/json",
    )
    return StepResult(True, manifest, snap.commit, tuple(copied), skipped, (), bytes_copied, total)


def copy_model(
    source: Source,
    *,
    s3_client: Any,
    bucket: str,
    prefix: str,
    workers: int = 8,
    progress: CopyProgress | None = None,
    allow_patterns: Sequence[str] | None = None,
    ignore_patterns: Sequence[str] = settings.DEFAULT_IGNORE_PATTERNS,
    part_size: int = DEFAULT_PART_SIZE,
) -> Manifest:
    """Copy ``source`` to ``s3://bucket/prefix`` in one go and return the completion manifest.

    Same arguments as :func:`copy_step` without a deadline. Re-running after an interruption
    skips verified files; re-running a finished copy uploads nothing and returns the manifest.

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
