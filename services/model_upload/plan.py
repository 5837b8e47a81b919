"""Plan a copy: which files (patterns, and every shard the safetensors index names), which are
already verified in S3, and which unfinished uploads to continue. Reads only; writes nothing."""

from __future__ import annotations

import fnmatch
import json
import posixpath
from dataclasses import dataclass
from typing import Iterable, Sequence

from .contract import COMPLETION_MANIFEST, MAX_PARTS, MIN_PART_SIZE
from .errors import ConfigurationError, IncompleteModelError, Remedy
from .manifest import Manifest, ManifestFile
from .resume import RESUME_FOLDER, ResumePoint, find_resume_point, records_prefix
from .sources import READ_CHUNK, FileEntry, Snapshot, Source
from .store import Store
from .verify import Digests

# Never copied unless a pattern asks for it explicitly: other checkpoints of the same model
# (Meta's ``original/`` consolidated .pth files) that vLLM's safetensors load does not read.
DEFAULT_IGNORE_PATTERNS: tuple[str, ...] = ("original/*",)
# A sharded checkpoint's index: {"weight_map": {tensor name: shard file name}} (transformers'
# SAFE_WEIGHTS_INDEX_NAME, https://github.com/huggingface/transformers/blob/main/src/transformers/utils/__init__.py).
INDEX_SUFFIX = ".safetensors.index.json"
MAX_INDEX_BYTES = 64 * 1024 * 1024

# Object metadata (S3 stores it as x-amz-meta-<key>): what a stored file was verified against.
META_SHA256 = "qvllm-sha256"
META_GIT_OID = "qvllm-git-oid"
META_COMMIT = "qvllm-commit"


@dataclass(frozen=True)
class Plan:
    """What one copy step will do.

    Attributes:
        commit: the commit copied (``None`` for a local folder).
        entries: every selected file, sorted by path.
        verified: files already in S3 with matching size and digest (path -> manifest entry).
        todo: files to copy, in ``entries`` order.
        resume: unfinished uploads to continue (path -> resume point).
        abort: unfinished uploads under the prefix to abort: ``(key, upload_id)``.
        manifest: the completion manifest found in S3, if any.
        keys: every object under the prefix (key -> size) when planned.
    """

    commit: str | None
    entries: tuple[FileEntry, ...]
    verified: dict[str, ManifestFile]
    todo: tuple[FileEntry, ...]
    resume: dict[str, ResumePoint]
    abort: tuple[tuple[str, str], ...]
    manifest: Manifest | None
    keys: dict[str, int]

    @property
    def total_bytes(self) -> int:
        """Bytes of the whole selection."""
        return sum(e.size for e in self.entries)

    @property
    def complete(self) -> bool:
        """The stored manifest already describes this exact copy."""
        return not self.todo and self.manifest is not None and self.manifest.describes(self.commit, self.entries)


def check_prefix(prefix: str) -> None:
    """Raise :class:`ConfigurationError` unless ``prefix`` is a clean key prefix ending with ``/``."""
    if not prefix or not prefix.endswith("/") or prefix.startswith("/") or ".." in prefix.split("/"):
        raise ConfigurationError(f"prefix {prefix!r} must be a non-empty key prefix ending with '/', like 'models/tiny/'")


def part_size_for(entry: FileEntry, part_size: int) -> int:
    """Part size for ``entry``: ``part_size``, grown in whole MiB so the file fits S3's 10,000 parts."""
    if part_size < MIN_PART_SIZE or part_size % (1024 * 1024):
        raise ConfigurationError(f"part size must be a whole number of MiB >= 5 MiB (S3 minimum), got {part_size}")
    needed = -(-entry.size // MAX_PARTS)
    return max(part_size, -(-needed // (1024 * 1024)) * 1024 * 1024)


def select_files(
    entries: Iterable[FileEntry],
    allow_patterns: Sequence[str] | None,
    ignore_patterns: Sequence[str] = DEFAULT_IGNORE_PATTERNS,
) -> list[FileEntry]:
    """Filter entries with ``fnmatch`` patterns (``*`` also matches ``/``, as in huggingface_hub).

    An ignore pattern that also appears in ``allow_patterns`` is dropped ("asked for").

    Raises:
        ConfigurationError: a path is absolute or has ``..`` (it would escape the prefix), or
            collides with the copy's own names (completion manifest, resume records).
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
        if entry.path == COMPLETION_MANIFEST or entry.path.startswith(RESUME_FOLDER):
            raise ConfigurationError(f"source holds a file named like the copy's own records: {entry.path!r}")
        chosen.append(entry)
    return sorted(chosen, key=lambda e: e.path)


def read_verified(source: Source, entry: FileEntry, commit: str | None, limit: int) -> tuple[bytes, str]:
    """The whole (small) file, checked against its published size and digest, and its sha256 (hex)."""
    if entry.size > limit:
        raise ConfigurationError(f"{entry.path}: {entry.size} bytes, more than the {limit} this reads whole")
    digests = Digests(entry)
    body = bytearray()
    reader = source.open(entry, commit)
    try:
        while chunk := reader.read(READ_CHUNK):
            digests.update(chunk)
            body += chunk
    finally:
        reader.close()
    return bytes(body), digests.verify()


def _names(paths: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(p) for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _shards_named(source: Source, snapshot: Snapshot, index: FileEntry, where: str) -> set[str]:
    """Paths (relative to the repo root) of the shards ``index``'s weight_map names."""
    try:
        weight_map = json.loads(read_verified(source, index, snapshot.commit, MAX_INDEX_BYTES)[0])["weight_map"]
        return {posixpath.normpath(posixpath.join(posixpath.dirname(index.path), str(name)))
                for name in weight_map.values()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigurationError(f"{index.path} of {where} is not a safetensors index (JSON with a 'weight_map')",
                                 "fix or remove the index file in the source") from None


def check_index(source: Source, snapshot: Snapshot, selected: Sequence[FileEntry]) -> None:
    """Every shard a selected safetensors index names must be selected too.

    Raises:
        IncompleteModelError: names the missing shards: absent from the source, or left out by
            the patterns. vLLM would fail on the first pod, or load a model without those weights.
        ConfigurationError: an index that is not JSON with a ``weight_map`` object.
    """
    chosen = {e.path for e in selected}
    present = {e.path for e in snapshot.files}
    where = source.describe().get("repo_id") or source.describe().get("path", "the source")
    at = f" at {snapshot.commit}" if snapshot.commit else ""
    for index in (e for e in selected if e.path.endswith(INDEX_SUFFIX)):
        missing = sorted(_shards_named(source, snapshot, index, where) - chosen)
        if not missing:
            continue
        absent = [p for p in missing if p not in present]
        excluded = [p for p in missing if p in present]
        said = ([f"{_names(absent)} missing from {where}{at}"] if absent else []) + (
            [f"{_names(excluded)} left out by the file patterns"] if excluded else [])
        raise IncompleteModelError(
            f"{index.path} names {len(missing)} weight file(s) the copy would not contain: {'; '.join(said)}; "
            f"nothing was copied or marked complete",
            Remedy(cli="copy a revision whose shards are all present, or widen --allow-pattern (or use --all-files)",
                   deploy="pin model.revision to a commit whose shards are all present, or widen model.allow_patterns"))


def select(source: Source, snapshot: Snapshot, allow_patterns: Sequence[str] | None,
           ignore_patterns: Sequence[str] = DEFAULT_IGNORE_PATTERNS) -> list[FileEntry]:
    """:func:`select_files`, non-empty, complete per :func:`check_index` (the same rule for CLI and deploy)."""
    entries = select_files(snapshot.files, allow_patterns, ignore_patterns)
    if not entries:
        raise ConfigurationError(
            f"no file of {source.describe()} matches the allow patterns {list(allow_patterns or [])} "
            f"(ignore patterns {list(ignore_patterns)})",
            Remedy(cli="check --allow-pattern", deploy="check model.allow_patterns"))
    check_index(source, snapshot, entries)
    return entries


def _verified(store: Store, key: str, entry: FileEntry, size_in_listing: int | None) -> ManifestFile | None:
    if size_in_listing != entry.size:
        return None
    head = store.head(key)
    if head is None or head["size"] != entry.size:
        return None
    kind, value = entry.identity
    meta = head["metadata"]
    if meta.get(META_SHA256 if kind == "sha256" else META_GIT_OID) != value or not meta.get(META_SHA256):
        return None
    return ManifestFile(entry.path, entry.size, meta[META_SHA256])


def stored_manifest(store: Store, prefix: str) -> Manifest | None:
    """The completion manifest under ``prefix``, or ``None`` if absent or unreadable (a torn or
    foreign object counts as no finished upload, so the copy starts over rather than trusting it).

    Raises:
        StorageError: S3 failed (one line naming bucket and endpoint).
    """
    body = store.get(prefix + COMPLETION_MANIFEST)
    if body is None:
        return None
    try:
        return Manifest.from_json(body)
    except (ValueError, KeyError, TypeError):
        return None


def _unfinished_uploads(store: Store, prefix: str, todo: Sequence[FileEntry], keys: dict[str, int],
                        part_size: int) -> tuple[dict[str, ResumePoint], list[tuple[str, str]]]:
    """Uploads under ``prefix`` to continue (path -> resume point) and to abort ``(key, upload_id)``."""
    uploads: dict[str, list[str]] = {}
    for key, upload_id in store.uploads(prefix):
        uploads.setdefault(key, []).append(upload_id)
    resume: dict[str, ResumePoint] = {}
    abort: list[tuple[str, str]] = []
    for entry in todo:
        ids = uploads.pop(prefix + entry.path, [])
        if ids and entry.sha256:  # small git files are never uploaded in parts
            records = [k for k in keys if k.startswith(records_prefix(prefix, entry.path))]
            point, ids = find_resume_point(store, prefix, entry, part_size_for(entry, part_size), ids, records)
            if point is not None:
                resume[entry.path] = point
        abort += [(prefix + entry.path, u) for u in ids]
    abort += [(key, u) for key, ids in uploads.items() for u in ids]  # files no longer selected
    return resume, abort


def plan_copy(source: Source, store: Store, prefix: str, *, snapshot: Snapshot, allow_patterns: Sequence[str] | None,
              ignore_patterns: Sequence[str], part_size: int) -> Plan:
    """Select the files, then compare with S3: verified objects, resumable uploads, leftovers.

    Raises:
        UploadError and subclasses (configuration, incomplete index, source, S3).
    """
    entries = select(source, snapshot, allow_patterns, ignore_patterns)
    keys = store.list_keys(prefix)  # first S3 call: a missing bucket or a wrong endpoint fails here
    verified: dict[str, ManifestFile] = {}
    todo: list[FileEntry] = []
    for entry in entries:
        done = _verified(store, prefix + entry.path, entry, keys.get(prefix + entry.path))
        if done:
            verified[entry.path] = done
        else:
            todo.append(entry)
    resume, abort = _unfinished_uploads(store, prefix, todo, keys, part_size)
    manifest = stored_manifest(store, prefix) if prefix + COMPLETION_MANIFEST in keys else None
    return Plan(snapshot.commit, tuple(entries), verified, tuple(todo), resume, tuple(abort), manifest, keys)
