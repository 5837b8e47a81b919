"""Where model files come from: the Hugging Face hub (:class:`HubSource`) or a local folder
(:class:`LocalSource`).

Runs in the AWS Lambda Python runtime with no extra packages: HTTP goes through ``urllib3``
(carried by the runtime as a botocore dependency), nothing else outside the stdlib.

Hub protocol used (the same endpoints ``huggingface_hub`` uses):

* ``GET {endpoint}/api/models/{repo_id}/revision/{revision}?blobs=true`` -> JSON with ``sha``
  (the commit the revision resolves to) and ``siblings``: ``rfilename``, ``size``, ``blobId``
  (git blob sha1) and, for LFS files, ``lfs: {sha256, size, pointerSize}``.
* ``GET {endpoint}/{repo_id}/resolve/{commit}/{path}`` -> the bytes, usually after a 302 to a
  CDN; ``Range: bytes=N-`` is honoured (206), which is how an interrupted stream resumes.
* Errors carry ``X-Error-Code`` (``GatedRepo``, ``RepoNotFound``, ``RevisionNotFound``,
  ``EntryNotFound``) and ``X-Error-Message``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import quote, urljoin, urlsplit

import urllib3
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.exceptions import MaxRetryError, NameResolutionError
from urllib3.util import Retry, Timeout

from .errors import (
    ConfigurationError,
    Remedy,
    SourceAuthError,
    SourceNetworkError,
    SourceNotFoundError,
    redact,
)
from .retry import Backoff, parse_retry_after

DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
READ_CHUNK = 1024 * 1024  # bytes per read() from a stream
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Where the operator keeps the token, per audience (for the advice of 401/403 errors).
_TOKEN_HOME = Remedy(cli="HF_TOKEN (or the variable named by --token-env)",
                     deploy="a Secrets Manager secret named by model.hf_token_secret_name")


@dataclass(frozen=True)
class FileEntry:
    """One file of a snapshot.

    Attributes:
        path: POSIX path relative to the repo / folder root (the S3 key suffix).
        size: size in bytes, as the source publishes it.
        sha256: expected sha256 hex digest: the hub's LFS ``sha256``, or (local files) the
            digest computed when listing. ``None`` for hub files stored in git (not LFS).
        git_oid: the hub's git blob sha1 (``blobId``) for non-LFS files, else ``None``.
    """

    path: str
    size: int
    sha256: str | None = None
    git_oid: str | None = None

    @property
    def identity(self) -> tuple[str, str]:
        """``("sha256", hex)`` or ``("git-oid", hex)``: what a copied object must match."""
        if self.sha256:
            return ("sha256", self.sha256)
        if self.git_oid:
            return ("git-oid", self.git_oid)
        raise ConfigurationError(f"source published no digest for {self.path!r}")


@dataclass(frozen=True)
class Snapshot:
    """A listing of a source at one point: ``commit`` (hub sha or ``None``) and ``files``."""

    commit: str | None
    files: tuple[FileEntry, ...]


class Reader(Protocol):
    """A byte stream of one file: ``read(n) -> bytes`` (``b""`` at end) and ``close()``."""

    def read(self, n: int) -> bytes: ...

    def close(self) -> None: ...


class Source(Protocol):
    """What :func:`services.model_upload.copy.copy_model` needs from a source."""

    def describe(self) -> dict[str, str]:
        """JSON-safe description for the manifest (no secrets)."""

    def resolve(self) -> Snapshot:
        """List the files (and resolve the revision to a commit)."""

    def open(self, entry: FileEntry, commit: str | None, start: int = 0, end: int | None = None) -> Reader:
        """Open bytes ``[start, end)`` of ``entry`` (``end`` ``None``: to the end) for streaming."""

    def check_access(self, entry: FileEntry, commit: str | None) -> None:
        """Fail fast (auth/404) before any byte is written."""


# ---------------------------------------------------------------------------------
# Hugging Face hub
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class HubSource:
    """A Hugging Face model repo at a revision (branch, tag or commit sha).

    Attributes:
        repo_id: ``org/name``.
        revision: branch, tag or 40-hex commit; resolved to a commit by :meth:`resolve`.
        token: optional Hugging Face token (gated/private repos). Never logged or echoed.
        endpoint: hub base URL (tests point it at a local server).
        backoff: retries of connection errors, 429/5xx answers and broken streams (see
            :mod:`.retry`: exponential backoff with jitter, ``Retry-After`` as a minimum, bounded
            total time). 401/403/404 are never retried.
        timeout_seconds: connect and per-read timeout.
    """

    repo_id: str
    revision: str = "main"
    token: str | None = field(default=None, repr=False)
    endpoint: str = DEFAULT_HUB_ENDPOINT
    backoff: Backoff = field(default_factory=Backoff)
    timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        if not self.repo_id or self.repo_id.startswith("/") or ".." in self.repo_id:
            raise ConfigurationError(f"repo_id {self.repo_id!r} is not a Hugging Face repo id like 'org/name'")
        if not self.revision:
            raise ConfigurationError("revision must not be empty")

    # -- plumbing -------------------------------------------------------------------
    @property
    def _http(self) -> urllib3.PoolManager:
        pool = self.__dict__.get("_pool")
        if pool is None:
            # urllib3 only follows redirects (to the CDN; it drops Authorization on a cross-host
            # one); every retry goes through self.backoff so waits grow and the total is bounded.
            retry = Retry(total=None, connect=0, read=0, status=0, other=0, redirect=10, raise_on_status=False)
            pool = urllib3.PoolManager(
                num_pools=8,
                maxsize=64,
                retries=retry,
                timeout=Timeout(connect=self.timeout_seconds, read=self.timeout_seconds),
            )
            object.__setattr__(self, "_pool", pool)
        return pool

    def _headers(self, url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"User-Agent": "qvllm-model-upload/1", "Accept-Encoding": "identity"}
        if self.token and urlsplit(url).netloc == urlsplit(self.endpoint).netloc:  # never to the CDN
            headers["Authorization"] = f"Bearer {self.token}"
        if extra:
            headers.update(extra)
        return headers

    def _where(self, revision: str | None = None) -> str:
        return f"repo {self.repo_id!r} at revision {revision or self.revision!r}"

    def _request(self, method: str, url: str, *, what: str, headers: dict[str, str] | None = None,
                 stream: bool = False, redirect: bool = True) -> urllib3.BaseHTTPResponse:
        attempts = self.backoff.start()
        while True:
            try:
                resp = self._http.request(
                    method, url, headers=self._headers(url, headers), preload_content=not stream, redirect=redirect,
                    decode_content=False,
                )
            except Urllib3HTTPError as exc:
                if _name_not_resolved(exc):
                    # A host name that does not resolve will not resolve on the next attempt either:
                    # say so at once rather than after the whole backoff (about 100 s).
                    raise SourceNetworkError(
                        f"could not resolve the Hugging Face hub's host {urlsplit(url).hostname!r} for {what} "
                        f"(last error: {redact(str(exc), self.token)})",
                        "check DNS and network access to the hub (proxy, NAT, firewall), or give a local "
                        "folder, and run it again") from None
                if attempts.wait():
                    continue
                raise SourceNetworkError(
                    f"could not reach the Hugging Face hub at {self.endpoint} for {what}: gave up after "
                    f"{attempts.summary()} (last error: {redact(str(exc), self.token)})",
                    "check network access to the hub (proxy, NAT, firewall) and run it again") from None
            if resp.status in _RETRY_STATUSES:
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                resp.drain_conn()
                resp.release_conn()
                if attempts.wait(retry_after):
                    continue
                raise SourceNetworkError(
                    f"HTTP {resp.status} from the Hugging Face hub for {what} of {self._where()}: gave up after "
                    f"{attempts.summary()}", "the hub is overloaded or rate-limiting; run it again later")
            if resp.status >= 400:
                self._raise_for_status(resp, what)
            return resp

    def _raise_for_status(self, resp: urllib3.BaseHTTPResponse, what: str) -> None:
        code = resp.headers.get("X-Error-Code", "")
        message = redact(resp.headers.get("X-Error-Message", ""), self.token)
        resp.drain_conn()
        resp.release_conn()
        status = resp.status
        detail = f" (hub says: {message})" if message else ""
        page = f"{self.endpoint}/{self.repo_id}"
        home = _TOKEN_HOME
        if code == "RepoNotFound":
            raise SourceNotFoundError(
                f"HTTP {status}: {self._where()} not found: the repo does not exist, or it is private and "
                f"{'the token cannot see it' if self.token else 'no token was given'}{detail}",
                Remedy(cli=f"check --repo-id, and for a private repo put a token in {home.cli}",
                       deploy=f"check model.hf_repo_id, and for a private repo store a token in {home.deploy}"))
        if code == "RevisionNotFound":
            raise SourceNotFoundError(
                f"HTTP {status}: revision {self.revision!r} not found in repo {self.repo_id!r}{detail}",
                Remedy(cli="give --revision an existing branch, tag or commit sha",
                       deploy="set model.revision to an existing branch, tag or commit sha"))
        if code == "EntryNotFound" or (status == 404 and what.startswith("file")):
            raise SourceNotFoundError(f"HTTP {status}: {what} not found in {self._where()}{detail}",
                                      "the revision changed while copying; run it again")
        if status == 401:
            if code == "GatedRepo" and not self.token:
                raise SourceAuthError(
                    f"HTTP 401: {self._where()} is gated and no Hugging Face token was given{detail}",
                    Remedy(cli=f"accept the terms at {page} and put a token of that account in {home.cli}",
                           deploy=f"accept the terms at {page} and store a token of that account in {home.deploy}"))
            if self.token:
                raise SourceAuthError(
                    f"HTTP 401: the Hugging Face token was rejected for {self._where()} (invalid or expired){detail}",
                    Remedy(cli=f"put a valid token in {home.cli}", deploy=f"replace the token in {home.deploy}"))
            raise SourceAuthError(
                f"HTTP 401: {self._where()} needs a Hugging Face token (gated or private){detail}",
                Remedy(cli=f"put a token with read access in {home.cli}",
                       deploy=f"store a token with read access in {home.deploy}"))
        if status == 403:
            raise SourceAuthError(
                f"HTTP 403: the token's account has no access to {self._where()}: the model's terms are not "
                f"accepted (gated repo) or the token lacks read permission{detail}",
                Remedy(cli=f"accept the terms at {page} with that account, or put a token with read access in {home.cli}",
                       deploy=f"accept the terms at {page} with that account, or store a token with read access "
                              f"in {home.deploy}"))
        if status == 404:
            raise SourceNotFoundError(f"HTTP 404: {what} not found for {self._where()}{detail}")
        raise SourceNetworkError(f"HTTP {status} from the Hugging Face hub for {what} of {self._where()}{detail}",
                                 "run it again; if it persists, check the hub's status page")

    # -- Source protocol ------------------------------------------------------------
    def describe(self) -> dict[str, str]:
        """``{"type": "hub", "repo_id", "revision" (as requested), "endpoint"}``."""
        return {"type": "hub", "repo_id": self.repo_id, "revision": self.revision, "endpoint": self.endpoint}

    def resolve(self) -> Snapshot:
        """Resolve the revision to a commit and list files with sizes and digests.

        Raises:
            SourceAuthError, SourceNotFoundError, SourceNetworkError: see the class docs.
        """
        url = (f"{self.endpoint}/api/models/{self.repo_id}/revision/"
               f"{quote(self.revision, safe='')}?blobs=true")
        resp = self._request("GET", url, what="model info")
        try:
            info = json.loads(resp.data)
        except ValueError:
            raise SourceNetworkError(f"the hub answered model info of {self._where()} with non-JSON",
                                     "check the hub endpoint URL") from None
        commit = info.get("sha")
        if not isinstance(commit, str) or len(commit) != 40:
            raise SourceNetworkError(f"the hub's model info of {self._where()} has no commit sha",
                                     "check the hub endpoint URL")
        files = []
        for sib in info.get("siblings") or []:
            lfs = sib.get("lfs") or None
            size = (lfs or {}).get("size", sib.get("size"))
            if size is None:
                raise SourceNetworkError(
                    f"the hub's model info of {self._where()} lists {sib.get('rfilename')!r} without a "
                    f"size (blobs=true not honoured)", "check the hub endpoint URL")
            files.append(FileEntry(
                path=sib["rfilename"],
                size=int(size),
                sha256=(lfs or {}).get("sha256"),
                git_oid=None if lfs else sib.get("blobId"),
            ))
        return Snapshot(commit=commit, files=tuple(files))

    def _resolve_url(self, entry: FileEntry, commit: str | None) -> str:
        return f"{self.endpoint}/{self.repo_id}/resolve/{commit or quote(self.revision, safe='')}/{quote(entry.path)}"

    def check_access(self, entry: FileEntry, commit: str | None) -> None:
        """HEAD the file's resolve URL (:meth:`download_url`): 401/403/404 surface before anything is copied."""
        self.download_url(entry, commit)

    def download_url(self, entry: FileEntry, commit: str | None, *, fresh: bool = False) -> str:
        """Where the file's bytes are: the CDN location its resolve URL redirects to, asked once per
        file as huggingface_hub does (parallel ranged parts then do not each call the hub's
        resolver, which is rate-limited), or the resolve URL itself for a file served directly."""
        cache: dict[tuple[str, str | None], str] = self.__dict__.setdefault("_locations", {})
        with self.__dict__.setdefault("_locations_lock", threading.Lock()):  # one lookup, not one per part
            if not fresh and (entry.path, commit) in cache:
                return cache[(entry.path, commit)]
            resolve = self._resolve_url(entry, commit)
            resp = self._request("HEAD", resolve, what=f"file {entry.path!r}", redirect=False)
            resp.drain_conn()
            resp.release_conn()
            location = resp.headers.get("Location") if 300 <= resp.status < 400 else None
            url = urljoin(resolve, location) if location else resolve
            cache[(entry.path, commit)] = url
            return url

    def open(self, entry: FileEntry, commit: str | None, start: int = 0, end: int | None = None) -> Reader:
        """Stream bytes ``[start, end)`` (a ``Range`` request unless the whole file) from
        :meth:`download_url`; a broken stream is reopened at the current offset with ``Range``."""
        return _HubReader(self, entry, commit, start, entry.size if end is None else end)


class _HubReader:
    """Reads a byte range of a resolve URL; on a broken stream reopens at the current offset."""

    def __init__(self, source: HubSource, entry: FileEntry, commit: str | None, start: int, end: int) -> None:
        self._source = source
        self._commit = commit
        self._entry = entry
        self._offset = start
        self._end = end
        self._attempts = source.backoff.start()
        self._resp: urllib3.BaseHTTPResponse | None = None

    def _open(self) -> urllib3.BaseHTTPResponse:
        ranged = self._offset > 0 or self._end < self._entry.size
        extra = {"Range": f"bytes={self._offset}-{self._end - 1}"} if ranged else None
        what = f"file {self._entry.path!r}"
        url = self._source.download_url(self._entry, self._commit)
        try:
            resp = self._source._request("GET", url, what=what, headers=extra, stream=True)
        except (SourceAuthError, SourceNotFoundError):
            if url == self._source._resolve_url(self._entry, self._commit):
                raise
            # the CDN's signed location expired: ask the hub again, once
            url = self._source.download_url(self._entry, self._commit, fresh=True)
            resp = self._source._request("GET", url, what=what, headers=extra, stream=True)
        if ranged and resp.status != 206:
            resp.release_conn()
            raise SourceNetworkError(
                f"the hub ignored a Range request for {self._entry.path!r} (HTTP {resp.status})",
                "use a hub endpoint (or mirror) that honours Range requests")
        return resp

    def _broken(self, why: str) -> None:
        if self._resp is not None:
            self._resp.release_conn()
            self._resp = None
        if not self._attempts.wait():
            raise SourceNetworkError(
                f"the stream of {self._entry.path!r} broke at byte {self._offset} ({why}): gave up after "
                f"{self._attempts.summary()} without progress",
                "check the network's stability and run it again (verified parts are kept)")

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; ``b""`` at the end of the range."""
        n = min(n, self._end - self._offset)
        if n <= 0:
            return b""
        while True:
            if self._resp is None:
                self._resp = self._open()
            try:
                data = self._resp.read(n, decode_content=False)
            except (Urllib3HTTPError, OSError) as exc:
                self._broken(redact(str(exc), self._source.token))
                continue
            if not data:
                self._broken("the connection closed early")
                continue
            self._attempts.progressed()
            self._offset += len(data)
            return data

    def close(self) -> None:
        """Release the connection."""
        if self._resp is not None:
            self._resp.release_conn()
            self._resp = None


# ---------------------------------------------------------------------------------
# Local folder
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LocalSource:
    """A model folder on local disk (the local stack uploads the tiny model from one).

    :meth:`resolve` hashes every file (sha256) so the copy verifies what it streams against
    what was on disk, and a re-run can skip objects whose digest already matches.
    """

    path: Path | str

    def _root(self) -> Path:
        root = Path(self.path)
        if not root.is_dir():
            raise SourceNotFoundError(f"local model folder {str(root)!r} does not exist or is not a folder")
        return root

    def describe(self) -> dict[str, str]:
        """``{"type": "local", "path": <absolute path>}``."""
        return {"type": "local", "path": str(Path(self.path).resolve())}

    def resolve(self) -> Snapshot:
        """List regular files under the folder (recursively), with size and sha256."""
        root = self._root()
        files = []
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            digest = hashlib.sha256()
            with file.open("rb") as fh:
                while chunk := fh.read(READ_CHUNK * 8):
                    digest.update(chunk)
            files.append(FileEntry(path=file.relative_to(root).as_posix(), size=file.stat().st_size,
                                   sha256=digest.hexdigest()))
        return Snapshot(commit=None, files=tuple(files))

    def check_access(self, entry: FileEntry, commit: str | None) -> None:
        """Raise :class:`SourceNotFoundError` if the file is gone or unreadable."""
        target = self._root() / entry.path
        if not os.access(target, os.R_OK):
            raise SourceNotFoundError(f"local file {str(target)!r} is missing or unreadable")

    def open(self, entry: FileEntry, commit: str | None, start: int = 0, end: int | None = None) -> Reader:
        """Open bytes ``[start, end)`` of the file."""
        try:
            fh = (self._root() / entry.path).open("rb")
        except OSError as exc:
            raise SourceNotFoundError(f"cannot open local file {entry.path!r}: {exc}") from None
        fh.seek(start)
        return _FileRange(fh, (entry.size if end is None else end) - start)


class _FileRange:
    """At most ``left`` bytes of an open file."""

    def __init__(self, fh: BinaryIO, left: int) -> None:
        self._fh = fh
        self._left = left

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; ``b""`` at the end of the range."""
        data = self._fh.read(min(n, self._left)) if self._left > 0 else b""
        self._left -= len(data)
        return data

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


def _name_not_resolved(exc: Urllib3HTTPError) -> bool:
    """Whether urllib3 failed because the host name does not resolve (directly or as the reason
    of a ``MaxRetryError``)."""
    reason = exc.reason if isinstance(exc, MaxRetryError) else exc
    return isinstance(reason, NameResolutionError)
