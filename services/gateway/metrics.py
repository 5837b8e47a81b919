"""Prometheus metrics of one gateway app (own registry, so several apps can live in a process).

Names (all prefixed ``gateway_``):

- ``gateway_requests_total{route, method, status}``: finished requests (counter).
- ``gateway_request_duration_seconds{route}``: request start to last byte sent (histogram).
- ``gateway_ttft_seconds{route}``: request start to first upstream body byte of a stream
  forwarded to the client = time to first token as the gateway sees it (histogram).
- ``gateway_in_flight_requests``: requests holding an admission slot (gauge).
- ``gateway_queued_requests``: requests waiting for a slot (gauge).
- ``gateway_rejected_requests_total{reason}``: 429s, reason ``queue_full`` or
  ``queue_timeout`` (counter).
- ``gateway_upstream_errors_total{kind}``: ``connect``, ``timeout``, ``disconnected`` (the engine
  closed the connection mid-answer), ``protocol`` (counter).
- ``gateway_client_disconnects_total``: clients that went away before the end (counter).
- ``gateway_endpoint_in_flight_requests{endpoint}``: requests in flight per vLLM endpoint
  (pod name, or host:port), from this gateway (gauge).
- ``gateway_endpoint_requests_total{endpoint}``: requests sent per vLLM endpoint (counter).
  Both series go away when their endpoint is gone and drained.
- ``gateway_ready_endpoints``: vLLM endpoints taking new requests (gauge).
- ``gateway_endpoint_discovery_fallback``: 1 while EndpointSlice discovery failed and the
  gateway sends to the Service URL instead (gauge).
- ``gateway_endpoint_discovery_errors_total``: failed list/watch calls (counter).
- ``qvllm_gateway_held_requests``: requests held because no endpoint is ready (gauge; the
  autoscaler's activation trigger for scale from zero, name owned by the contract).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from services.gateway.contract import HELD_REQUESTS_METRIC

# Buckets in seconds: from sub-millisecond proxy overhead to multi-minute generations.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)


@dataclass
class GatewayMetrics:
    """The gateway's metric objects, registered in ``registry``."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter("gateway_requests", "Finished requests", ["route", "method", "status"], registry=r)
        self.duration = Histogram(
            "gateway_request_duration_seconds", "Request latency, start to last byte", ["route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.ttft = Histogram(
            "gateway_ttft_seconds", "Time to first streamed token (first upstream body byte)", ["route"],
            buckets=TTFT_BUCKETS, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge("gateway_in_flight_requests", "Requests holding an admission slot", registry=r)
        self.queued = Gauge("gateway_queued_requests", "Requests waiting for an admission slot", registry=r)
        self.rejected = Counter("gateway_rejected_requests", "Requests rejected with 429", ["reason"], registry=r)
        self.upstream_errors = Counter("gateway_upstream_errors", "Upstream failures", ["kind"], registry=r)
        self.disconnects = Counter("gateway_client_disconnects", "Clients gone before the end", registry=r)
        self.endpoint_in_flight = Gauge(
            "gateway_endpoint_in_flight_requests", "Requests in flight per vLLM endpoint", ["endpoint"], registry=r,
        )  # fmt: skip
        self.endpoint_requests = Counter(
            "gateway_endpoint_requests", "Requests sent per vLLM endpoint", ["endpoint"], registry=r,
        )  # fmt: skip
        self.ready_endpoints = Gauge("gateway_ready_endpoints", "vLLM endpoints taking new requests", registry=r)
        self.discovery_fallback = Gauge(
            "gateway_endpoint_discovery_fallback", "1 while discovery failed and the Service URL is used", registry=r,
        )  # fmt: skip
        self.discovery_errors = Counter(
            "gateway_endpoint_discovery_errors", "Failed EndpointSlice list/watch calls", registry=r,
        )  # fmt: skip
        self.held = Gauge(HELD_REQUESTS_METRIC, "Requests held because no vLLM endpoint is ready", registry=r)

    def forget_endpoint(self, name: str) -> None:
        """Drop the per-endpoint series of an endpoint that is gone."""
        for metric in (self.endpoint_in_flight, self.endpoint_requests):
            try:
                metric.remove(name)
            except KeyError:
                pass

    def render(self) -> tuple[bytes, str]:
        """Return (exposition text, content type)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
