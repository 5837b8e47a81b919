"""Resume inside a file: the record kept beside each part of an unfinished multipart upload.

A large file goes to S3 as a multipart upload, one part per ``part_size`` bytes. When a part is
in S3 *and* the file's running sha256 has covered it, the copy writes a small JSON record
``<prefix>.qvllm-resume/<path>/<part number>.json``: the upload id, the part's size and ETag,
the file's sha256 and the part size (what the record is valid for), and the sha256 state after
the part (:class:`~.sha256state.Sha256State`). The records live under the model's own prefix,
so the same IAM grant covers them, and they are deleted when the file completes.

A later run (the CLI again, or the next ``is_complete`` invocation) finds the unfinished upload
with ListMultipartUploads, its parts with ListParts, and keeps parts 1..k where every part has a
record for this upload, file digest and part size whose size and ETag match what S3 lists.
It restores the sha256 state of part k and downloads from byte ``k * part_size`` with a Range
request; a part whose record does not match S3 is downloaded and uploaded again. The whole
file's sha256 is still checked against the published one before the upload is completed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .sha256state import Sha256State
from .sources import FileEntry
from .store import Part, Store

RESUME_FOLDER = ".qvllm-resume/"  # under the model prefix; never a source file name


@dataclass(frozen=True)
class PartRecord:
    """What the copy knew when part ``number`` was stored (see the module docs)."""

    upload_id: str
    number: int
    size: int
    etag: str
    file_sha256: str
    part_size: int
    state: Sha256State | None

    def to_json(self) -> bytes:
        """Serialise."""
        data = asdict(self)
        data["state"] = asdict(self.state) if self.state else None
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, body: bytes) -> "PartRecord | None":
        """Parse, or ``None`` for anything that is not a record."""
        try:
            data = json.loads(body)
            state = data.pop("state")
            return cls(**data, state=Sha256State(**state) if state else None)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def records_prefix(prefix: str, path: str) -> str:
    """Key prefix of the records of ``path``'s upload."""
    return f"{prefix}{RESUME_FOLDER}{path}/"


def record_key(prefix: str, path: str, number: int) -> str:
    """Key of part ``number``'s record."""
    return f"{records_prefix(prefix, path)}{number:05d}.json"


@dataclass(frozen=True)
class ResumePoint:
    """An unfinished upload to continue: parts ``1..len(etags)`` are kept.

    Attributes:
        upload_id: the multipart upload.
        etags: ETags of the kept parts, in order.
        state: sha256 state after the kept parts (``None`` when none is kept).
        part_size: bytes per part (the records' and the upload's).
    """

    upload_id: str
    etags: tuple[str, ...]
    state: Sha256State | None
    part_size: int

    @property
    def offset(self) -> int:
        """The first byte not yet in S3."""
        return len(self.etags) * self.part_size


def kept_parts(records: dict[int, PartRecord], parts: dict[int, Part], upload_id: str, entry: FileEntry,
               part_size: int) -> list[PartRecord]:
    """The longest run of parts 1..k whose records match S3 (upload, digest, part size, size, ETag)."""
    kept: list[PartRecord] = []
    number = 1
    while True:
        record, part = records.get(number), parts.get(number)
        if (record is None or part is None or record.upload_id != upload_id or record.file_sha256 != entry.sha256
                or record.part_size != part_size or record.state is None or record.size != part.size
                or record.etag.strip('"') != part.etag.strip('"') or record.state.length != number * part_size):
            return kept
        kept.append(record)
        number += 1


def find_resume_point(store: Store, prefix: str, entry: FileEntry, part_size: int, upload_ids: list[str],
                      record_keys: list[str]) -> tuple[ResumePoint | None, list[str]]:
    """Pick the upload of ``entry`` to continue among ``upload_ids`` (unfinished uploads of its key).

    Returns the resume point (``None``: start a new upload) and the upload ids to abort.
    """
    records: dict[str, dict[int, PartRecord]] = {}
    for key in record_keys:
        body = store.get(key)
        record = PartRecord.from_json(body) if body is not None else None
        if record is not None:
            records.setdefault(record.upload_id, {})[record.number] = record
    best: ResumePoint | None = None
    for upload_id in upload_ids:
        parts = store.parts(prefix + entry.path, upload_id)
        if parts is None:
            continue
        kept = kept_parts(records.get(upload_id, {}), parts, upload_id, entry, part_size)
        if kept and (best is None or len(kept) > len(best.etags)):
            best = ResumePoint(upload_id, tuple(r.etag for r in kept), kept[-1].state, part_size)
    return best, [u for u in upload_ids if best is None or u != best.upload_id]
