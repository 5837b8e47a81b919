"""The completion manifest: written last under ``<prefix><COMPLETION_MANIFEST>``, only when every
selected file is in S3 and verified; its presence is what "the copy is complete" means."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Sequence

from .sources import FileEntry


@dataclass(frozen=True)
class ManifestFile:
    """One verified object: ``path`` (relative to the prefix), ``size`` (bytes), ``sha256`` (hex)."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """The completion manifest.

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
        """Parse :meth:`to_json` output. Raises ``ValueError``/``KeyError``/``TypeError`` on other input."""
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
