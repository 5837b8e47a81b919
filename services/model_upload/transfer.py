"""Copy one file from the source into S3, verified.

* A file of at most one part, or kept in git (no published sha256, at most
  :data:`MAX_GIT_FILE_BYTES`), is read whole, verified, and PUT once with its digests as metadata.
* A larger file is a multipart upload. Its parts are downloaded in parallel, each with its own
  ``Range`` request, and uploaded as they arrive; the file's sha256 is fed the parts in order
  (a part that arrives early waits in memory) and its state after each part is recorded beside
  the upload, so a later run continues inside the file (see :mod:`.resume`). At most ``slots``
  parts are in memory across all files. The upload is completed only when the whole file's
  sha256 and size match the published ones; a mismatch aborts the upload and drops its
  records, so corrupt bytes never become an object.

A transfer stops between parts when another file failed (:class:`TransferCancelled`) or the
step's deadline passed (:class:`DeadlineReached`); the parts in flight finish, so the file
resumes there next time.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

from .errors import ConfigurationError, VerificationError
from .manifest import ManifestFile
from .plan import META_COMMIT, META_GIT_OID, META_SHA256, part_size_for, read_verified
from .resume import RECORD_BYTES, PartRecord, ResumePoint, record_key
from .sha256state import ResumableSha256, Sha256State
from .sources import READ_CHUNK, FileEntry, Source
from .store import Store
from .verify import Digests, check_not_lfs_pointer

MAX_GIT_FILE_BYTES = 64 * 1024 * 1024  # non-LFS files are read whole; the hub keeps files over 10 MB in LFS


class TransferCancelled(Exception):
    """The transfer stopped between parts because another file of the step failed."""


class DeadlineReached(Exception):
    """The transfer stopped between parts because the step's deadline passed (it resumes later)."""


class CopyProgress:
    """Progress callbacks (no-op base class), called from worker threads.

    ``on_plan`` once after planning; ``on_bytes`` when bytes are stored in S3 (a part, or a
    small file); ``on_file_done`` when a file is verified and complete.
    """

    def on_plan(self, entries: Sequence[FileEntry], skipped: Sequence[str], resumed_bytes: dict[str, int]) -> None:
        """``entries`` selected; ``skipped`` already verified; ``resumed_bytes`` already in S3 per resumed file."""

    def on_bytes(self, path: str, n: int) -> None:
        """``n`` more bytes of ``path`` stored."""

    def on_file_done(self, path: str) -> None:
        """``path`` verified and stored."""


@dataclass
class Transfers:
    """What the file transfers of one step share.

    Attributes:
        source, commit, store, prefix: from where, to where.
        part_size: bytes per part (grown for files over 10,000 parts).
        slots: parts in memory at once, across files (memory bound ``slots * part_size``).
        progress: callbacks.
        deadline: ``time.monotonic()`` after which no part is started (``None``: none).
        cancel: set when a file failed; the others stop between parts.
    """

    source: Source
    commit: str | None
    store: Store
    prefix: str
    part_size: int
    slots: int
    progress: CopyProgress
    deadline: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(self.slots)
        self._pool = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="part")
        # part records are small PUTs written beside the uploads, off the hashing path
        self.records = ThreadPoolExecutor(max_workers=4, thread_name_prefix="record")

    def close(self) -> None:
        """Stop the part and record threads (after the files are done)."""
        self._pool.shutdown(wait=True)
        self.records.shutdown(wait=True)

    def check_go(self) -> None:
        """Raise :class:`TransferCancelled` / :class:`DeadlineReached` if the step should stop."""
        if self.cancel.is_set():
            raise TransferCancelled()
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise DeadlineReached()

    def metadata(self, entry: FileEntry, sha256: str) -> dict[str, str]:
        """Object metadata: the digests the object was verified against, and the commit."""
        meta = {META_SHA256: sha256}
        if entry.git_oid:
            meta[META_GIT_OID] = entry.git_oid
        if self.commit:
            meta[META_COMMIT] = self.commit
        return meta

    def copy(self, entry: FileEntry, resume: ResumePoint | None) -> ManifestFile:
        """Copy ``entry``; returns its manifest entry. Raises UploadError, TransferCancelled, DeadlineReached."""
        self.check_go()
        if entry.sha256 is None or entry.size <= part_size_for(entry, self.part_size):
            return self._copy_whole(entry)
        return _Multipart(self, entry, resume).run()

    def _copy_whole(self, entry: FileEntry) -> ManifestFile:
        if entry.sha256 is None and entry.size > MAX_GIT_FILE_BYTES:
            raise ConfigurationError(
                f"{entry.path}: {entry.size} bytes without a published sha256 (not in Git LFS); refusing to read it "
                f"whole", "store large files in Git LFS")
        body, digest = read_verified(self.source, entry, self.commit, max(MAX_GIT_FILE_BYTES, self.part_size))
        self.store.put(self.prefix + entry.path, body, metadata=self.metadata(entry, digest))
        self.progress.on_bytes(entry.path, entry.size)
        self.progress.on_file_done(entry.path)
        return ManifestFile(entry.path, entry.size, digest)

    def run_part(self, fn, *args) -> Future:  # type: ignore[no-untyped-def]
        """Take a memory slot (waiting, but stopping if the step stops) and run ``fn`` in the part pool.

        The part releases the slot when its record is written or it failed (see :class:`_Multipart`).
        """
        while not self._slots.acquire(timeout=0.2):
            self.check_go()
        try:
            return self._pool.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise

    def release_slot(self) -> None:
        """A part left memory."""
        self._slots.release()


class _Multipart:
    """One file's multipart upload, new or resumed (see :mod:`.resume` for what is kept)."""

    def __init__(self, t: Transfers, entry: FileEntry, resume: ResumePoint | None) -> None:
        self.t = t
        self.entry = entry
        self.key = t.prefix + entry.path
        self.part_size = part_size_for(entry, t.part_size)
        self.count = -(-entry.size // self.part_size)
        if resume is not None and resume.part_size == self.part_size:
            self.upload_id = resume.upload_id
            self.known: tuple[Sha256State, ...] = resume.states  # hashed before: parts 1..h
            self.etags: dict[int, str] = dict(resume.stored)  # in S3 and kept
        else:
            assert entry.sha256  # multipart only for files with a published sha256 (metadata set up front)
            self.upload_id = t.store.create_upload(self.key, t.metadata(entry, entry.sha256))
            self.known, self.etags = (), {}
        self.digests = Digests(entry, self.known[-1] if self.known else None)  # hashes on after part h
        self.lock = threading.Lock()
        self.pending: dict[int, bytearray] = {}  # downloaded, waiting for the earlier parts to be hashed
        self.next_to_hash = len(self.known) + 1
        self.hashing = False
        self.marks: dict[int, set[str]] = {}  # "hashed" / "uploaded" per part in flight
        self.record_writes: list[Future] = []
        self.record_keys: list[str] = list(resume.record_keys) if resume is not None else []
        self.unrecorded: list[Sha256State] = []  # states after the parts since the last record
        self.recorded_through = len(self.known)
        self.released: set[int] = set()  # parts whose memory slot is free again

    # -- one part (runs in the part pool) ----------------------------------------------------
    def _part(self, number: int) -> None:
        start = (number - 1) * self.part_size
        end = min(self.entry.size, start + self.part_size)
        try:
            body = self._download(start, end)
            if number == 1:
                check_not_lfs_pointer(self.entry, body)
            if number <= len(self.known):
                self._check_known(number, body)
            else:
                self._hash_in_order(number, body)
            etag = self.t.store.upload_part(self.key, self.upload_id, number, body)
            del body
            with self.lock:
                self.etags[number] = etag
            self.t.progress.on_bytes(self.entry.path, end - start)
            self._mark(number, "uploaded")
        except BaseException:
            self._release(number)
            raise

    def _download(self, start: int, end: int) -> bytearray:
        body = bytearray(end - start)
        view = memoryview(body)
        reader = self.t.source.open(self.entry, self.t.commit, start, end)
        try:
            pos = 0
            while pos < len(body):
                chunk = reader.read(min(READ_CHUNK * 8, len(body) - pos))
                if not chunk:
                    raise VerificationError(f"{self.entry.path}: the source ended at byte {start + pos}, it published "
                                            f"{self.entry.size}", "run it again")
                view[pos:pos + len(chunk)] = chunk
                pos += len(chunk)
        finally:
            reader.close()
        return body

    def _check_known(self, number: int, body: bytearray) -> None:
        """A part hashed before the copy stopped but not in S3: it must hash to the recorded state."""
        digest = ResumableSha256(self.known[number - 2] if number > 1 else None)
        digest.update(body)
        if digest.state() != self.known[number - 1]:
            raise VerificationError(f"{self.entry.path}: part {number} is not the bytes hashed before the copy "
                                    f"stopped", "run it again: the file starts over")
        self._mark(number, "hashed")

    def _hash_in_order(self, number: int, body: bytearray) -> None:
        """Queue ``body``; hash every queued part that is next in order (one thread at a time) and
        record the state after it."""
        with self.lock:
            self.pending[number] = body
            if self.hashing:
                return
            self.hashing = True
        try:
            while True:
                with self.lock:
                    ready = self.pending.pop(self.next_to_hash, None)
                    if ready is None:
                        self.hashing = False
                        return
                    current = self.next_to_hash
                    self.next_to_hash += 1
                self.digests.update(ready)
                del ready
                if current < self.count:  # the last part ends the file: nothing to resume after it
                    self._remember(current, self.digests.sha256.state())
                self._mark(current, "hashed")
        except BaseException:
            with self.lock:
                self.hashing = False
            raise

    def _remember(self, number: int, state: Sha256State | None) -> None:
        """Keep the state after part ``number``; write a record every :data:`RECORD_BYTES`."""
        if state is None:  # no OpenSSL SHA256 functions: this file restarts if interrupted
            return
        with self.lock:
            self.unrecorded.append(state)
            full = len(self.unrecorded) * self.part_size >= RECORD_BYTES
        if full:
            self._write_record()

    def _write_record(self) -> None:
        """Write the states not yet recorded beside the upload (in the background)."""
        with self.lock:
            states, self.unrecorded = tuple(self.unrecorded), []
            if not states:
                return
            first = self.recorded_through + 1
            self.recorded_through += len(states)
            last = self.recorded_through
        record = PartRecord(self.upload_id, str(self.entry.sha256), self.part_size, first, states)
        future = self.t.records.submit(self.t.store.put, record_key(self.t.prefix, self.entry.path, last),
                                       record.to_json(), content_type="application/json")
        with self.lock:
            self.record_writes.append(future)
            self.record_keys.append(record_key(self.t.prefix, self.entry.path, last))

    def _mark(self, number: int, what: str) -> None:
        """``number`` was hashed or uploaded; once both, its memory slot is free."""
        with self.lock:
            marks = self.marks.setdefault(number, set())
            marks.add(what)
            free = len(marks) == 2 and number not in self.released
            if free:
                self.released.add(number)
                del self.marks[number]
        if free:
            self.t.release_slot()

    def _release(self, number: int) -> None:
        """Part ``number`` failed, or waited for a failed earlier part: free its slot (once)."""
        with self.lock:
            if number in self.released:
                return
            self.released.add(number)
            self.pending.pop(number, None)
        self.t.release_slot()

    # -- the file ---------------------------------------------------------------------------
    def run(self) -> ManifestFile:
        """Transfer the parts S3 lacks, then verify and complete. Raises the first real failure."""
        todo = [n for n in range(1, self.count + 1) if n not in self.etags]
        futures: list[Future] = []
        try:
            self._submit(todo, futures)
            stopped: BaseException | None = None
        except BaseException as exc:  # noqa: BLE001 - settled below with the parts' own errors
            stopped = exc
        errors = ([stopped] if stopped is not None else []) + self._settle(todo, futures)
        if errors:
            raise self._first(errors)
        return self._complete()

    def _submit(self, todo: list[int], futures: list[Future]) -> None:
        for number in todo:
            failed = next((f for f in futures if f.done() and f.exception() is not None), None)
            if failed is not None:
                raise failed.exception()  # type: ignore[misc]
            self.t.check_go()
            futures.append(self.t.run_part(self._part, number))

    def _settle(self, todo: list[int], futures: list[Future]) -> list[BaseException]:
        """Wait for the parts in flight, record what was hashed, wait for the record writes; free
        what waited for a failed part."""
        errors = [exc for f in futures if (exc := _wait(f)) is not None]
        for number in todo[:len(futures)]:
            self._release(number)
        if len(self.etags) < self.count:  # stopped: the next run resumes from here
            try:
                self._write_record()
            except Exception as exc:  # noqa: BLE001 - reported with the others
                errors.append(exc)
        return errors + [exc for f in self.record_writes if (exc := _wait(f)) is not None]

    def _first(self, errors: list[BaseException]) -> BaseException:
        """The error to raise: a real failure before a stop; bad bytes discard the upload."""
        first = next((e for e in errors if not isinstance(e, (TransferCancelled, DeadlineReached))), errors[0])
        if isinstance(first, VerificationError):
            self._discard()
        return first

    def _complete(self) -> ManifestFile:
        try:
            sha256 = self.digests.verify()  # before completing: a mismatch never becomes an object
        except VerificationError:
            self._discard()
            raise
        self.t.store.complete_upload(self.key, self.upload_id, [self.etags[n] for n in range(1, self.count + 1)])
        self._drop_records()
        self.t.progress.on_file_done(self.entry.path)
        return ManifestFile(self.entry.path, self.entry.size, sha256)

    def _discard(self) -> None:
        """Bad bytes: abort the upload and drop its records (the next run starts the file over)."""
        self.t.store.abort_upload(self.key, self.upload_id)
        self._drop_records()

    def _drop_records(self) -> None:
        """Delete the records of this upload: the ones found at planning and the ones written."""
        self.t.store.delete(sorted(set(self.record_keys)))


def _wait(future: Future) -> BaseException | None:
    try:
        future.result()
    except BaseException as exc:  # noqa: BLE001 - collected, the first real one is raised
        return exc
    return None
