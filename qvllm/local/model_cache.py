"""A prepared model folder in the user's cache, verified by the sha256 of every file.

:func:`ensure_prepared` builds a folder once (into a temporary sibling, renamed into place
when complete) and writes ``<folder>.sha256`` beside it in ``sha256sum`` format (``sha256sum -c``
works from inside the folder). Later calls hash the folder again and reuse it when every listed
file is there with its digest and no file was added; otherwise they prepare it again.

Cache root: ``$QVLLM_CACHE_DIR``, else ``$XDG_CACHE_HOME/qvllm``, else ``~/.cache/qvllm``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ENV_CACHE_DIR = "QVLLM_CACHE_DIR"


def cache_root() -> Path:
    """The cache folder (see the module docstring); not created here."""
    explicit = os.environ.get(ENV_CACHE_DIR)
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().resolve() / "qvllm"


def digest_path(folder: Path) -> Path:
    """Where the digests of ``folder`` are kept: ``<folder>.sha256`` beside it."""
    return folder.with_name(folder.name + ".sha256")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_digests(folder: Path) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): sha256_file(p)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def read_digests(folder: Path) -> dict[str, str] | None:
    """The recorded digests of ``folder``, or None when there is no (readable) digest file."""
    try:
        text = digest_path(folder).read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            return None
        out[name] = digest
    return out or None


def verify(folder: Path) -> list[str]:
    """What is wrong with ``folder`` against its digest file; empty when it is intact."""
    recorded = read_digests(folder)
    if recorded is None:
        return [f"no digest file {digest_path(folder)}"]
    if not folder.is_dir():
        return [f"{folder} is missing"]
    actual = folder_digests(folder)
    problems = [f"{name}: missing" for name in recorded if name not in actual]
    problems += [f"{name}: sha256 differs" for name, digest in recorded.items()
                 if name in actual and actual[name] != digest]
    problems += [f"{name}: not in the digest file" for name in actual if name not in recorded]
    return problems


@dataclass(frozen=True)
class Prepared:
    """Result of :func:`ensure_prepared`.

    Attributes:
        path: the verified folder.
        built: True when it was (re)built by this call.
        reason: why it was built (the verification problems), empty when reused.
        seconds: time spent (verification, plus the build when built).
    """

    path: Path
    built: bool
    reason: tuple[str, ...]
    seconds: float


def ensure_prepared(folder: Path, build: Callable[[Path], None]) -> Prepared:
    """Reuse ``folder`` when it verifies, else ``build(tmp)`` a fresh copy and put it in place.

    Args:
        folder: the prepared folder's final path (its parent is created).
        build: writes the model into the empty folder it is given; raises on failure.

    Raises:
        Whatever ``build`` raises; the previous folder then stays as it was.
    """
    start = time.monotonic()
    problems = verify(folder)
    if not problems:
        return Prepared(folder, False, (), round(time.monotonic() - start, 2))
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        build(tmp)
        digests = folder_digests(tmp)
        digest_path(folder).unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    written = digest_path(folder).with_suffix(".sha256.tmp")
    written.write_text("".join(f"{digest}  {name}\n" for name, digest in digests.items()))
    written.replace(digest_path(folder))
    return Prepared(folder, True, tuple(problems), round(time.monotonic() - start, 2))
