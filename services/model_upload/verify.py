"""Checks on the bytes of one file while they stream: size, sha256 (resumable), git blob id, and
no Git LFS pointer stub in place of weights."""

from __future__ import annotations

import hashlib

from .errors import LfsPointerError, VerificationError
from .sha256state import ResumableSha256, Sha256State
from .sources import FileEntry

# Suffixes of weight files: such a file starting with the Git LFS pointer header is a stub left by
# a clone without Git LFS, never tensor data.
WEIGHT_SUFFIXES: tuple[str, ...] = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack", ".onnx", ".npz",
)
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"


def check_not_lfs_pointer(entry: FileEntry, head: bytes | bytearray | memoryview) -> None:
    """Raise :class:`LfsPointerError` if ``head`` (the file's first bytes) is a Git LFS pointer of a weight file."""
    if entry.path.lower().endswith(WEIGHT_SUFFIXES) and bytes(head[:len(LFS_POINTER_PREFIX)]) == LFS_POINTER_PREFIX:
        raise LfsPointerError(
            f"{entry.path}: weight file is a Git LFS pointer stub ({entry.size} bytes), not tensor data: the "
            f"source was cloned or synced without Git LFS", "fetch the real LFS objects (git lfs pull) and retry")


class Digests:
    """Running digests of one file, fed in order from byte ``state.length`` (0 for a new file)."""

    def __init__(self, entry: FileEntry, state: Sha256State | None = None) -> None:
        self.entry = entry
        self.sha256 = ResumableSha256(state)
        # git's blob id is sha1("blob <size>\0" + bytes); only for small files kept in git (never resumed)
        self.git = hashlib.sha1(b"blob %d\0" % entry.size) if entry.git_oid else None  # noqa: S324

    @property
    def length(self) -> int:
        """Bytes hashed so far (including a resumed state's)."""
        return self.sha256.length

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Hash the next bytes. Raises :class:`VerificationError` past the published size."""
        if self.length == 0 and len(data):
            check_not_lfs_pointer(self.entry, data)
        if self.length + len(data) > self.entry.size:
            raise VerificationError(f"{self.entry.path}: the source sent more than the {self.entry.size} bytes "
                                    f"it published", "run it again; if it persists, the source changed under us")
        self.sha256.update(data)
        if self.git is not None:
            self.git.update(data)

    def verify(self) -> str:
        """Check size and digests against the source's; return the sha256 hex digest."""
        e = self.entry
        again = "nothing was marked complete; run it again, and if it persists the source serves other bytes than it publishes"
        if self.length != e.size:
            raise VerificationError(f"{e.path}: got {self.length} bytes, the source published {e.size}", again)
        digest = self.sha256.hexdigest()
        if e.sha256 and digest != e.sha256:
            raise VerificationError(f"{e.path}: sha256 {digest} does not match the published {e.sha256}", again)
        if self.git is not None and self.git.hexdigest() != e.git_oid:
            raise VerificationError(
                f"{e.path}: git blob id {self.git.hexdigest()} does not match the published {e.git_oid}", again)
        return digest
