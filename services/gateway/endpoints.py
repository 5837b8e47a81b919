"""Where the vLLM endpoints come from: a static list, a file, or (in the cluster) EndpointSlices.

Every source has one job: tell the :class:`~services.gateway.routing.Router` the current
set of endpoints, by calling ``router.update(endpoints, source=...)`` whenever it changes.
The router decides which endpoint serves each request.

- :class:`StaticEndpoints`: ``GATEWAY_UPSTREAM_ENDPOINTS`` (tests, benchmarks).
- :class:`FileEndpoints`: ``GATEWAY_UPSTREAM_ENDPOINTS_FILE``, polled (the local stack).
- :class:`~services.gateway.endpointslices.EndpointSliceSource`: the vLLM Service's
  EndpointSlices through the Kubernetes API (the cluster).
- :class:`ServiceEndpoint`: no source configured: the one ``GATEWAY_UPSTREAM_URL``.

The file format and the variable names are the gateway's contract
(:mod:`services.gateway.contract`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from services.gateway.contract import ENDPOINTS_FILE_POLL_SECONDS
from services.gateway.logs import LOGGER_NAME

if TYPE_CHECKING:
    from services.gateway.routing import Router
    from services.gateway.settings import GatewaySettings

log = logging.getLogger(LOGGER_NAME)


@dataclass(frozen=True)
class Endpoint:
    """One vLLM server the gateway may send requests to.

    Attributes:
        url: base URL without ``/v1`` (``http://10.0.3.7:8000``); the endpoint's identity.
        name: what the ``x-qvllm-upstream`` header and the metrics call it: the pod name when
            known, else ``host:port``.
        ready: takes new requests. A terminating endpoint is listed with ``ready=False``: it
            gets no new requests, its running streams finish.
    """

    url: str
    name: str
    ready: bool = True


def endpoint_from_url(url: str, ready: bool = True) -> Endpoint:
    """An :class:`Endpoint` named ``host:port`` after its URL (``http://h:1/`` -> ``h:1``)."""
    url = url.rstrip("/")
    return Endpoint(url=url, name=urlsplit(url).netloc, ready=ready)


class EndpointSource(Protocol):
    """Feeds a router; :meth:`run` runs until cancelled (the app's lifespan owns the task)."""

    name: str
    uses_upstream_url: bool  # sends to GATEWAY_UPSTREAM_URL (as the upstream, or as a fallback)

    async def run(self, router: Router) -> None:
        """Call ``router.update`` with the endpoints now, and again on every change."""


class ServiceEndpoint:
    """The single ``GATEWAY_UPSTREAM_URL`` (a Service or one engine); ready by assumption."""

    name = "service"
    uses_upstream_url = True

    def __init__(self, url: str) -> None:
        self._url = url

    async def run(self, router: Router) -> None:  # noqa: D102
        router.update([endpoint_from_url(self._url)], source=self.name)


class StaticEndpoints:
    """A fixed list of base URLs, all ready."""

    name = "static"
    uses_upstream_url = False

    def __init__(self, urls: tuple[str, ...]) -> None:
        self._endpoints = [endpoint_from_url(u) for u in urls]

    async def run(self, router: Router) -> None:  # noqa: D102
        router.update(self._endpoints, source=self.name)


class EndpointsFileError(ValueError):
    """The endpoints file is not a JSON list of http(s) base URLs; the message says where."""


def read_endpoints_file(path: Path) -> list[Endpoint]:
    """Parse the endpoints file: a JSON list of base URLs. A missing file is an empty list.

    Raises:
        EndpointsFileError: not JSON, not a list, or an item that is not an http(s) URL.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    try:
        data = json.loads(text) if text.strip() else []
    except ValueError as exc:
        raise EndpointsFileError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, list):
        raise EndpointsFileError(f"{path}: expected a JSON list of base URLs, got {type(data).__name__}")
    for i, item in enumerate(data):
        if not isinstance(item, str) or not item.startswith(("http://", "https://")):
            raise EndpointsFileError(f"{path}: item {i} ({item!r}) is not an http(s) base URL")
    return [endpoint_from_url(u) for u in data]


class FileEndpoints:
    """The endpoints file, re-read whenever its modification time or size changes.

    Polling (every ``ENDPOINTS_FILE_POLL_SECONDS``) keeps it portable and cheap: one ``stat``
    per poll. A file that does not parse keeps the last good list (logged once per change).
    """

    name = "file"
    uses_upstream_url = False

    def __init__(self, path: Path, poll_seconds: float = ENDPOINTS_FILE_POLL_SECONDS) -> None:
        self._path = path
        self._poll = poll_seconds

    def _signature(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    async def run(self, router: Router) -> None:  # noqa: D102
        seen: tuple[int, int] | None | str = "never"
        while True:
            signature = self._signature()
            if signature != seen:
                seen = signature
                try:
                    router.update(read_endpoints_file(self._path), source=self.name)
                except (EndpointsFileError, OSError) as exc:
                    log.warning("endpoints file ignored, keeping the last good list", extra={"error": str(exc)})
                    if not router.synced:
                        router.update([], source=self.name)
            await asyncio.sleep(self._poll)


def endpoint_source(settings: GatewaySettings) -> EndpointSource:
    """The source the settings ask for (at most one is set; see ``GatewaySettings``)."""
    if settings.upstream_endpoints:
        return StaticEndpoints(settings.upstream_endpoints)
    if settings.upstream_endpoints_file is not None:
        return FileEndpoints(settings.upstream_endpoints_file)
    if settings.upstream_service:
        from services.gateway.endpointslices import EndpointSliceSource

        return EndpointSliceSource(
            service=settings.upstream_service,
            namespace=settings.upstream_namespace,
            port_name=settings.upstream_port_name,
            resync_seconds=settings.discovery_resync_seconds,
            fallback_url=settings.upstream_url,
        )
    return ServiceEndpoint(settings.upstream_url)
