"""Resume inside a file: the sha256 state recorded beside each part of an unfinished upload.

A large file goes to S3 as a multipart upload, one part per ``part_size`` bytes, parts in
parallel; the file's sha256 is fed the parts in order. Every :data:`RECORD_BYTES` it has covered
(at least every part; and when a step stops), the copy writes a small JSON record
``<prefix>.qvllm-resume/<path>/<n>.json``: the upload id, the file's published sha256, the part
size, and the sha256 state after each part ``first..n`` (:class:`~.sha256state.Sha256State`: 32
bytes of chaining value plus a length). Records live under the model's own prefix (the same IAM
grant covers them) and are deleted when the file completes. Two sources of truth, each for what
it knows:

* the records say which bytes were hashed (a chain ``1..h`` with no gap, all for this upload,
  digest and part size);
* S3's ListParts says which parts are stored.

A later run (the CLI again, or the next ``is_complete`` invocation) finds the upload with
ListMultipartUploads and keeps every part ``n <= h`` that ListParts holds with the recorded size:
it is neither downloaded nor uploaded again. A part ``n <= h`` that S3 lacks (it was in flight)
is downloaded with a Range request and must take the recorded state ``n - 1`` to the recorded
state ``n`` before it is uploaded, so it is byte for byte what was hashed before. Parts after
``h`` are downloaded from the first missing byte and hashed on from state ``h``. The upload is
completed only when that chain reaches the published sha256 of the whole file. A record that does
not match (another upload, another digest or part size, a size S3 disagrees with) ends the chain:
the parts from there are downloaded, hashed and uploaded again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .sha256state import Sha256State
from .sources import FileEntry
from .store import Part, Store

RESUME_FOLDER = ".qvllm-resume/"  # under the model prefix; never a source file name
# Bytes per record: fewer small PUTs beside the upload (S3 bills and rate-limits per request); a
# killed run re-downloads at most this much more than S3 lacks (a stopped step records all first).
RECORD_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class PartRecord:
    """The sha256 states after parts ``first..first + len(states) - 1`` of upload ``upload_id``."""

    upload_id: str
    file_sha256: str
    part_size: int
    first: int
    states: tuple[Sha256State, ...]

    @property
    def last(self) -> int:
        """The last part covered."""
        return self.first + len(self.states) - 1

    def to_json(self) -> bytes:
        """Serialise."""
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, body: bytes) -> "PartRecord | None":
        """Parse, or ``None`` for anything that is not a record."""
        try:
            data = json.loads(body)
            return cls(**{**data, "states": tuple(Sha256State(**state) for state in data["states"])})
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
    """An unfinished upload to continue.

    Attributes:
        upload_id: the multipart upload.
        part_size: bytes per part (the records' and the upload's).
        states: sha256 state after each part ``1..h`` (index ``n - 1`` for part ``n``).
        stored: parts ``n <= h`` S3 holds: part number -> ETag (kept as they are).
        record_keys: the records found (deleted when the file completes).
    """

    upload_id: str
    part_size: int
    states: tuple[Sha256State, ...]
    stored: dict[int, str]
    record_keys: tuple[str, ...] = ()

    @property
    def stored_bytes(self) -> int:
        """Bytes already in S3 that this run will not send again."""
        return len(self.stored) * self.part_size


def hashed_chain(records: list[PartRecord], parts: dict[int, Part], upload_id: str, entry: FileEntry,
                 part_size: int) -> list[Sha256State]:
    """The states after parts ``1..h``: no gap, all from records of this upload, digest and part size,
    lengths consistent, and every part S3 holds among them of the full part size."""
    states: dict[int, Sha256State] = {}
    for record in records:
        if record.upload_id == upload_id and record.file_sha256 == entry.sha256 and record.part_size == part_size:
            states.update({record.first + i: state for i, state in enumerate(record.states)})
    chain: list[Sha256State] = []
    number = 1
    while (state := states.get(number)) is not None and state.length == number * part_size and (
            number not in parts or parts[number].size == part_size):
        chain.append(state)
        number += 1
    return chain


def find_resume_point(store: Store, prefix: str, entry: FileEntry, part_size: int, upload_ids: list[str],
                      record_keys: list[str]) -> tuple[ResumePoint | None, list[str]]:
    """Pick the upload of ``entry`` to continue among ``upload_ids`` (unfinished uploads of its key).

    Returns the resume point (``None``: start a new upload) and the upload ids to abort.
    """
    records = [r for key in record_keys if (body := store.get(key)) is not None
               and (r := PartRecord.from_json(body)) is not None]
    best: ResumePoint | None = None
    for upload_id in upload_ids:
        parts = store.parts(prefix + entry.path, upload_id)
        if parts is None:
            continue
        chain = hashed_chain(records, parts, upload_id, entry, part_size)
        if not chain:
            continue
        stored = {n: parts[n].etag for n in range(1, len(chain) + 1) if n in parts}
        point = ResumePoint(upload_id, part_size, tuple(chain), stored, tuple(record_keys))
        if best is None or (len(point.states), len(stored)) > (len(best.states), len(best.stored)):
            best = point
    return best, [u for u in upload_ids if best is None or u != best.upload_id]
