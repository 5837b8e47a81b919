"""In the cluster: the vLLM Service's EndpointSlices, listed and watched through the Kubernetes API.

The loop is the informer pattern of the Kubernetes API concepts
(https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes):
list the slices (label ``kubernetes.io/service-name=<service>``), then watch from the list's
``resourceVersion``. The watch asks the server to end after ``resync_seconds``; the loop then
lists again (a resync: a missed event cannot outlive it). A ``410 Gone`` (the resource
version is too old) also means: list again. The gateway's ServiceAccount may only list and
watch EndpointSlices in its namespace (the gateway chart's Role).

An endpoint is used only while its ``ready`` condition is true (a nil ``ready`` counts as
ready, as the EndpointSlice API reference tells consumers to read it); a ``terminating`` one
gets no new requests while its running streams finish. Reference:
https://kubernetes.io/docs/reference/kubernetes-api/service-resources/endpoint-slice-v1/

If listing fails (no in-cluster credentials, RBAC, the API server unreachable), the gateway
sends to the Service URL instead and says so: a warning in the logs and
``gateway_endpoint_discovery_fallback 1``; it keeps retrying and leaves the fallback at the
next successful list.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException
from kubernetes_asyncio.watch import Watch

from services.gateway.endpoints import Endpoint, endpoint_from_url
from services.gateway.logs import LOGGER_NAME

if TYPE_CHECKING:
    from services.gateway.routing import Router

log = logging.getLogger(LOGGER_NAME)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # set by the EndpointSlice controller
RETRY_SECONDS = 1.0  # first pause after a failed list; doubles up to MAX_RETRY_SECONDS
MAX_RETRY_SECONDS = 30.0
# The client-side read limit of a watch: the server ends it at resync_seconds; this catches a
# connection that died silently.
WATCH_CLIENT_GRACE_SECONDS = 30.0
LIST_TIMEOUT_SECONDS = 10.0
DISCOVERY_ERRORS = (ApiException, ConfigException, aiohttp.ClientError, TimeoutError, OSError, ValueError)


def _slice_port(eps: Any, port_name: str) -> int | None:
    """The slice's port named ``port_name``; a slice with one unnamed port uses that one."""
    ports = eps.ports or []
    port = next((p.port for p in ports if p.name == port_name), None)
    if port is None and len(ports) == 1 and not ports[0].name:
        port = ports[0].port
    return port


def _is_ready(ep: Any) -> bool:
    """``ready`` true or nil (the API reference: read an unknown state as ready), never terminating."""
    conditions = ep.conditions
    if conditions is None:
        return True
    return (conditions.ready is None or bool(conditions.ready)) and not conditions.terminating


def _endpoint(address_type: str, ep: Any, port: int) -> Endpoint:
    # The API reference: the addresses are fungible and consumers may use the first only.
    host = ep.addresses[0] if address_type == "IPv4" else f"[{ep.addresses[0]}]"
    url = f"http://{host}:{port}"
    ref = ep.target_ref
    name = ref.name if ref is not None and ref.kind == "Pod" and ref.name else endpoint_from_url(url).name
    return Endpoint(url=url, name=name, ready=_is_ready(ep))


def endpoints_from_slices(slices: list[Any], port_name: str) -> list[Endpoint]:
    """The endpoints of a Service from its EndpointSlices (``V1EndpointSlice`` models).

    One endpoint per address and the named port; FQDN slices are skipped. An address listed
    by two slices (as happens while the controller moves endpoints between slices) is one
    endpoint, ready if either says so. The name is the Pod's (``targetRef``) when known, else
    ``host:port``.
    """
    found: dict[str, Endpoint] = {}
    for eps in slices:
        port = _slice_port(eps, port_name)
        if eps.address_type not in ("IPv4", "IPv6") or port is None:
            continue
        for ep in eps.endpoints or []:
            if ep.addresses:
                endpoint = _endpoint(eps.address_type, ep, port)
                previous = found.get(endpoint.url)
                if previous is None or (endpoint.ready and not previous.ready):
                    found[endpoint.url] = endpoint
    return list(found.values())


class EndpointSliceSource:
    """List and watch the Service's EndpointSlices; see the module docstring.

    Args:
        service: the vLLM Service name.
        namespace: its namespace.
        port_name: the Service port to use (by name).
        resync_seconds: how long one watch lasts before the next list.
        fallback_url: the Service URL used while listing fails.
        configuration: a client configuration; None = the Pod's in-cluster credentials.
    """

    name = "endpointslices"
    uses_upstream_url = True  # the fallback while listing fails

    def __init__(
        self,
        *,
        service: str,
        namespace: str,
        port_name: str,
        resync_seconds: float,
        fallback_url: str,
        configuration: client.Configuration | None = None,
    ) -> None:
        self._service = service
        self._namespace = namespace
        self._port_name = port_name
        self._resync = max(1, int(resync_seconds))
        self._fallback = endpoint_from_url(fallback_url)
        self._configuration = configuration
        self._selector = f"{SERVICE_NAME_LABEL}={service}"
        self._slices: dict[str, Any] = {}

    def _config(self) -> client.Configuration:
        if self._configuration is not None:
            return self._configuration
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return configuration

    async def run(self, router: Router) -> None:  # noqa: D102
        pause = RETRY_SECONDS
        while True:
            try:
                async with client.ApiClient(self._config()) as api_client:
                    api = client.DiscoveryV1Api(api_client)
                    while True:
                        version = await self._list(api, router)
                        pause = RETRY_SECONDS
                        await self._watch(api, router, version)
            except ApiException as exc:
                if exc.status == 410:  # the watch's resource version is too old: list again
                    log.info("EndpointSlice watch expired, listing again", extra={"service": self._service})
                    continue
                await self._failed(router, exc, pause)
            except DISCOVERY_ERRORS as exc:
                await self._failed(router, exc, pause)
            pause = min(MAX_RETRY_SECONDS, pause * 2)

    async def _failed(self, router: Router, exc: BaseException, pause: float) -> None:
        """Count and log the failure, send to the Service URL meanwhile, wait ``pause`` s."""
        router.count_discovery_error()
        detail = f"{exc.status} {exc.reason}" if isinstance(exc, ApiException) else f"{type(exc).__name__}: {exc}"
        log.warning(
            "EndpointSlice discovery failed: sending to the Service URL meanwhile",
            extra={"service": self._service, "namespace": self._namespace, "error": detail,
                   "fallback": self._fallback.url, "retry_in_s": pause},
        )
        router.update([self._fallback], source=self.name, fallback=True)
        await asyncio.sleep(pause)

    async def _list(self, api: client.DiscoveryV1Api, router: Router) -> str:
        """List the slices, publish their endpoints, return the list's resource version."""
        listing = await api.list_namespaced_endpoint_slice(
            self._namespace, label_selector=self._selector, _request_timeout=LIST_TIMEOUT_SECONDS
        )
        self._slices = {s.metadata.name: s for s in listing.items}
        self._publish(router)
        return listing.metadata.resource_version

    async def _watch(self, api: client.DiscoveryV1Api, router: Router, version: str) -> None:
        """Apply watch events until the server ends the watch (after ``resync_seconds``)."""
        async with Watch() as watch:
            stream = watch.stream(
                api.list_namespaced_endpoint_slice,
                self._namespace,
                label_selector=self._selector,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=self._resync,
                _request_timeout=self._resync + WATCH_CLIENT_GRACE_SECONDS,
            )
            async for event in stream:
                kind, obj = event["type"], event["object"]
                if kind in ("ADDED", "MODIFIED"):
                    self._slices[obj.metadata.name] = obj
                elif kind == "DELETED":
                    self._slices.pop(obj.metadata.name, None)
                else:  # BOOKMARK: only a newer resource version, which the Watch keeps
                    continue
                self._publish(router)

    def _publish(self, router: Router) -> None:
        router.update(endpoints_from_slices(list(self._slices.values()), self._port_name), source=self.name)
