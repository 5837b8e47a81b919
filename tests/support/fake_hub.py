"""A local HTTP server that behaves like the Hugging Face hub for model downloads.

Usage::

    from tests.support.fake_hub import FakeHub, SyntheticFile

    with FakeHub() as hub:                                # starts on a free loopback port
        sha = hub.add_repo("org/tiny", {"config.json": b"{}", "model.safetensors": b"..."})
        hub.add_repo("org/big", {"big.safetensors": SyntheticFile(300 * 2**20)})
        hub.base_url                                      # "http://127.0.0.1:<port>"

Endpoints (the subset huggingface_hub and our copy use; behaviour follows the real hub):

* ``GET /api/models/{repo}/revision/{rev}[?blobs=true]`` -> ``{"id", "sha", "gated", "siblings":
  [{"rfilename", "blobId", "size"?, "lfs"?: {"sha256", "size", "pointerSize"}}]}``; ``size`` and
  ``lfs`` only with ``blobs=true``. ``rev`` is a branch, tag or commit sha (URL-quoted).
* ``GET|HEAD /{repo}/resolve/{rev}/{path}`` -> LFS files: 302 to ``/cdn/...`` (on a second
  origin with ``FakeHub(second_origin=True)``, as the real hub's CDN hosts) with
  ``X-Linked-Size``/``X-Linked-Etag``/``X-Repo-Commit``; git files: 200 with the bytes.
* ``GET|HEAD /cdn/{repo}/{commit}/{path}`` -> the bytes, ``Range: bytes=a-[b]`` -> 206.
* Errors carry ``X-Error-Code``: 401 ``GatedRepo`` for a gated repo without a token, 401 for an
  unknown token, 403 ``GatedRepo`` for a known token whose account has not accepted the terms;
  404 ``RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound``.

A git file (not LFS) is anything that is neither a weight file nor larger than 10 MB, unless
forced with :class:`HubFile`. :class:`SyntheticFile` content is generated on the fly (never held
in memory) so a few hundred MB exercise multipart uploads.

Fault injection, per file path (all counted down per request): :meth:`FakeHub.fail` (answer a
status, optionally with ``Retry-After``), :meth:`FakeHub.drop` (close the connection after N body
bytes), :meth:`FakeHub.corrupt` (flip one byte); and for every request :meth:`FakeHub.outage`
(close every connection unanswered for a while, like a network outage).
:attr:`FakeHub.downloads` counts body GETs per path, :attr:`FakeHub.bytes_served` the body bytes
sent per path; :attr:`FakeHub.log` records ``(method, path, authorization-present)`` of every
request (never the token itself) and :attr:`FakeHub.body_times` the ``time.monotonic()`` of each
body request per path.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.support.serving import serve_in_thread

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")
GIT_MAX_BYTES = 10 * 1024 * 1024
_BLOCK = 1024 * 1024


@dataclass
class SyntheticFile:
    """``size`` bytes of deterministic pseudo-random data, generated per request.

    Block ``k`` (1 MiB) is a fixed random block with ``k`` written in its first 8 bytes, so
    blocks differ and any byte can be produced from its offset.
    """

    size: int
    seed: int = 0
    _sha256: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._base = random.Random(self.seed).randbytes(_BLOCK)

    def iter_range(self, start: int, end: int, chunk: int = _BLOCK) -> Iterator[bytes]:
        """Yield bytes ``[start, end)`` in chunks."""
        pos = start
        while pos < end:
            k, j = divmod(pos, _BLOCK)
            block = struct.pack(">Q", k) + self._base[8:]
            piece = block[j:min(_BLOCK, j + (end - pos), j + chunk)]
            yield piece
            pos += len(piece)

    def sha256(self) -> str:
        """sha256 of the whole content (computed once, ~1 s per 500 MB)."""
        if self._sha256 is None:
            digest = hashlib.sha256()
            for piece in self.iter_range(0, self.size):
                digest.update(piece)
            self._sha256 = digest.hexdigest()
        return self._sha256


@dataclass
class HubFile:
    """A file with explicit storage: ``lfs=True`` (LFS, sha256 published) or ``False`` (git blob)."""

    content: bytes | SyntheticFile
    lfs: bool | None = None


class _Entry:
    def __init__(self, path: str, spec: bytes | SyntheticFile | HubFile) -> None:
        lfs = None
        if isinstance(spec, HubFile):
            lfs, spec = spec.lfs, spec.content
        self.path = path
        self.content = spec
        self.size = spec.size if isinstance(spec, SyntheticFile) else len(spec)
        if lfs is None:
            lfs = path.endswith(WEIGHT_SUFFIXES) or self.size > GIT_MAX_BYTES
        self.lfs = lfs
        if isinstance(spec, SyntheticFile):
            self.sha256 = spec.sha256()
            self.blob_id = hashlib.sha1(f"lfs-pointer {self.sha256}".encode()).hexdigest()  # noqa: S324
        else:
            self.sha256 = hashlib.sha256(spec).hexdigest()
            self.blob_id = hashlib.sha1(b"blob %d\0" % self.size + spec).hexdigest()  # noqa: S324

    def iter_range(self, start: int, end: int) -> Iterator[bytes]:
        if isinstance(self.content, SyntheticFile):
            yield from self.content.iter_range(start, end)
        else:
            for pos in range(start, end, _BLOCK):
                yield self.content[pos:min(end, pos + _BLOCK)]

    def sibling(self, blobs: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"rfilename": self.path, "blobId": self.blob_id}
        if blobs:
            out["size"] = self.size
            if self.lfs:
                out["lfs"] = {"sha256": self.sha256, "size": self.size, "pointerSize": 134}
        return out


@dataclass
class _Repo:
    repo_id: str
    gated: bool
    refs: dict[str, str] = field(default_factory=dict)
    commits: dict[str, dict[str, _Entry]] = field(default_factory=dict)
    accepted_tokens: set[str] = field(default_factory=set)



class _QuietServer(ThreadingHTTPServer):
    """A client that goes away mid-request (a CLI that stopped at its first error) is normal
    here: no traceback on stderr, where it would mix into the output of the CLI under test."""

    def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

class FakeHub:
    """The server. Use as a context manager (start/stop); thread-safe registries.

    Attributes:
        base_url: ``http://127.0.0.1:<port>`` once started.
        valid_tokens: tokens the hub knows (others get 401).
        downloads: Counter of body GETs per file path (resolve or CDN, not redirects/HEAD).
        log: list of ``(method, path, has_authorization)``.
    """

    def __init__(self, second_origin: bool = False) -> None:
        self.second_origin = second_origin
        self.cdn_base_url = ""  # empty: the CDN paths are served by the hub's own origin
        self.repos: dict[str, _Repo] = {}
        self.valid_tokens: set[str] = set()
        self.downloads: Counter[str] = Counter()
        self.bytes_served: Counter[str] = Counter()
        self.body_times: dict[str, list[float]] = {}
        self.log: list[tuple[str, str, bool]] = []
        self._outage_until = 0.0
        self._outage_empty_body = False
        self._faults_fail: dict[str, list[int]] = {}
        self._faults_drop: dict[str, list[int]] = {}
        self._faults_corrupt: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- content ---------------------------------------------------------------------
    def add_repo(self, repo_id: str, files: dict[str, bytes | SyntheticFile | HubFile], *,
                 branch: str = "main", tags: tuple[str, ...] = (), gated: bool = False) -> str:
        """Create (or add a commit to) ``repo_id`` with exactly ``files``; point ``branch`` and
        ``tags`` at it. Returns the new 40-hex commit sha."""
        with self._lock:
            repo = self.repos.get(repo_id) or _Repo(repo_id, gated)
            repo.gated = gated or repo.gated
            entries = {path: _Entry(path, spec) for path, spec in files.items()}
            seed = json.dumps([repo_id, len(repo.commits), sorted((p, e.sha256) for p, e in entries.items())])
            sha = hashlib.sha1(seed.encode()).hexdigest()  # noqa: S324
            repo.commits[sha] = entries
            repo.refs[branch] = sha
            for tag in tags:
                repo.refs[tag] = sha
            self.repos[repo_id] = repo
        return sha

    def accept_terms(self, repo_id: str, token: str) -> None:
        """The account of ``token`` accepts the gated repo's terms."""
        self.valid_tokens.add(token)
        self.repos[repo_id].accepted_tokens.add(token)

    def sha256_of(self, repo_id: str, revision: str, path: str) -> str:
        """sha256 of a file as served."""
        repo = self.repos[repo_id]
        return repo.commits[repo.refs.get(revision, revision)][path].sha256

    # -- faults ----------------------------------------------------------------------
    def fail(self, path: str, status: int, times: int = 1, retry_after: int | None = None) -> None:
        """Answer the next ``times`` body requests for ``path`` with ``status`` (and ``Retry-After``)."""
        self._faults_fail[path] = [status, times, retry_after]

    def outage(self, seconds: float, empty_body: bool = False) -> None:
        """From now on for ``seconds``, close every request's connection unanswered, or with
        ``empty_body`` after sending a file's response headers (a stream that breaks at once)."""
        self._outage_until = time.monotonic() + seconds
        self._outage_empty_body = empty_body

    def drop(self, path: str, after_bytes: int, times: int = 1, outage_s: float = 0.0,
             empty_body: bool = False) -> None:
        """Close the connection after ``after_bytes`` body bytes, ``times`` times; then, with
        ``outage_s``, start an :meth:`outage` of that length."""
        self._faults_drop[path] = [after_bytes, times, outage_s, empty_body]

    def corrupt(self, path: str, offset: int) -> None:
        """Flip the byte at ``offset`` of ``path`` in every response from now on."""
        self._faults_corrupt[path] = offset

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self._faults_fail.clear()
        self._faults_drop.clear()
        self._faults_corrupt.clear()
        self._outage_until = 0.0

    # -- server ----------------------------------------------------------------------
    def __enter__(self) -> "FakeHub":
        hub = self

        class Handler(_HubHandler):
            fake = hub

        self._servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []
        for _ in range(2 if self.second_origin else 1):
            server = _QuietServer(("127.0.0.1", 0), Handler)
            server.daemon_threads = True
            thread = serve_in_thread(server, name="fake-hub")
            self._servers.append((server, thread))
        self._server, self._thread = self._servers[0]
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        if self.second_origin:  # the CDN on another origin (port), like cdn-lfs / cas-bridge hosts
            self.cdn_base_url = f"http://127.0.0.1:{self._servers[1][0].server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        for server, thread in self._servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


_INFO_RE = re.compile(r"^/api/models/([^/]+(?:/[^/]+)?)/revision/([^/]+)$")
_RESOLVE_RE = re.compile(r"^/([^/]+/[^/]+|[^/]+)/resolve/([^/]+)/(.+)$")
_CDN_RE = re.compile(r"^/cdn/([^/]+/[^/]+|[^/]+)/([0-9a-f]{40})/(.+)$")
_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _HubError(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


class _HubHandler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._dispatch(body=True)

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
        self._dispatch(body=False)

    # -- helpers ---------------------------------------------------------------------
    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def _send_error(self, err: _HubError) -> None:
        body = json.dumps({"error": err.message}).encode()
        self.send_response(err.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Error-Code", err.code)
        self.send_header("X-Error-Message", err.message)
        if err.retry_after is not None:
            self.send_header("Retry-After", str(err.retry_after))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _repo(self, repo_id: str) -> _Repo:
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            raise _HubError(404, "RepoNotFound", "Repository not found")
        return repo

    def _commit(self, repo: _Repo, rev: str) -> str:
        rev = unquote(rev)
        sha = repo.refs.get(rev, rev if rev in repo.commits else None)
        if sha is None:
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return sha

    def _authorize(self, repo: _Repo) -> None:
        token = self._token()
        if token is not None and token not in self.fake.valid_tokens:
            raise _HubError(401, "", "Invalid credentials in Authorization header")
        if repo.gated:
            if token is None:
                raise _HubError(401, "GatedRepo", f"Access to model {repo.repo_id} is restricted. You must "
                                "have access to it and be authenticated to access it. Please log in.")
            if token not in repo.accepted_tokens:
                raise _HubError(403, "GatedRepo", f"Access to model {repo.repo_id} is restricted and you "
                                "are not in the authorized list. Visit the model page to ask for access.")

    def _dispatch(self, body: bool) -> None:
        url = urlsplit(self.path)
        self.fake.log.append((self.command, url.path, "Authorization" in self.headers))
        if time.monotonic() < self.fake._outage_until and not self.fake._outage_empty_body:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            if m := _INFO_RE.match(url.path):
                self._model_info(m.group(1), m.group(2), "blobs=true" in url.query or
                                 parse_qs(url.query).get("blobs") == ["true"], body)
            elif m := _CDN_RE.match(url.path):
                repo = self._repo(m.group(1))
                entry = repo.commits[m.group(2)][unquote(m.group(3))]
                self._serve(entry, body)
            elif m := _RESOLVE_RE.match(url.path):
                self._resolve(m.group(1), m.group(2), unquote(m.group(3)), body)
            else:
                raise _HubError(404, "", f"no route for {url.path}")
        except _HubError as err:
            self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _model_info(self, repo_id: str, rev: str, blobs: bool, body: bool) -> None:
        repo = self._repo(repo_id)
        token = self._token()
        if token is not None and token not in self.fake.valid_tokens:
            raise _HubError(401, "", "Invalid credentials in Authorization header")
        sha = self._commit(repo, rev)
        info = {
            "id": repo.repo_id,
            "sha": sha,
            "gated": "auto" if repo.gated else False,
            "siblings": [e.sibling(blobs) for e in repo.commits[sha].values()],
        }
        data = json.dumps(info).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _resolve(self, repo_id: str, rev: str, path: str, body: bool) -> None:
        repo = self._repo(repo_id)
        self._authorize(repo)
        sha = self._commit(repo, rev)
        entry = repo.commits[sha].get(path)
        if entry is None:
            raise _HubError(404, "EntryNotFound", f"{path} does not exist on \"{unquote(rev)}\"")
        if entry.lfs:
            self.send_response(302)
            self.send_header("Location", f"{self.fake.cdn_base_url}/cdn/{repo_id}/{sha}/{quote(path)}?X-Amz-Signature=fake")
            self.send_header("X-Repo-Commit", sha)
            self.send_header("X-Linked-Size", str(entry.size))
            self.send_header("X-Linked-Etag", f'"{entry.sha256}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._serve(entry, body, commit=sha)

    def _serve(self, entry: _Entry, body: bool, commit: str | None = None) -> None:
        fake = self.fake
        if body:
            with fake._lock:
                fake.downloads[entry.path] += 1
                fake.body_times.setdefault(entry.path, []).append(time.monotonic())
                fail = fake._faults_fail.get(entry.path)
                if fail and fail[1] > 0:
                    fail[1] -= 1
                    raise _HubError(fail[0], "", f"injected HTTP {fail[0]}", fail[2])
                drop = fake._faults_drop.get(entry.path)
                drop_after, outage_s, empty_body = None, 0.0, False
                if drop and drop[1] > 0:
                    drop[1] -= 1
                    drop_after, outage_s, empty_body = drop[0], drop[2], drop[3]
                if time.monotonic() < fake._outage_until and fake._outage_empty_body:
                    drop_after = 0
            corrupt_at = fake._faults_corrupt.get(entry.path)
        start, end, status = 0, entry.size, 200
        range_header = self.headers.get("Range")
        if range_header:
            m = _RANGE_RE.match(range_header.strip())
            if not m or int(m.group(1)) >= entry.size:
                raise _HubError(416, "", f"bad range {range_header}")
            start = int(m.group(1))
            end = min(entry.size, int(m.group(2)) + 1) if m.group(2) else entry.size
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{entry.sha256}"')
        if commit:
            self.send_header("X-Repo-Commit", commit)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{entry.size}")
        self.end_headers()
        if not body:
            return
        pos = start
        for piece in entry.iter_range(start, end):
            if corrupt_at is not None and pos <= corrupt_at < pos + len(piece):
                buf = bytearray(piece)
                buf[corrupt_at - pos] ^= 0xFF
                piece = bytes(buf)
            if drop_after is not None and pos + len(piece) > start + drop_after:
                piece = piece[:max(0, start + drop_after - pos)]
                self.wfile.write(piece)
                self.wfile.flush()
                with fake._lock:
                    fake.bytes_served[entry.path] += len(piece)
                if outage_s:
                    fake.outage(outage_s, empty_body)
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(piece)
            with fake._lock:
                fake.bytes_served[entry.path] += len(piece)
            pos += len(piece)
