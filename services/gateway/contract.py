"""The gateway's contract with the rest of the app: port, paths, metric and header names.

This module is the one owner of these values. It imports nothing outside the standard
library, so the gateway container (which ships ``services/`` only) and the Lambda-free parts
of the app read the same names: :mod:`app_config.constants` re-exports them for the stacks,
charts and operator tools.
"""

from __future__ import annotations

PORT = 8000  # container port, ALB target-group port, and `python -m services.gateway` default
HEALTH_PATH = "/healthz"  # liveness, and the ALB target-group health check
READY_PATH = "/readyz"  # readiness: at least one vLLM endpoint answers
METRICS_PATH = "/metrics"  # Prometheus text

# Gauge: requests the gateway holds because no vLLM endpoint is ready (scale from zero).
# The OTel collector forwards it and the ScaledObject's activation trigger queries it.
HELD_REQUESTS_METRIC = "qvllm_gateway_held_requests"

# Response header naming the vLLM endpoint that answered (pod name when known, else host:port).
UPSTREAM_HEADER = "x-qvllm-upstream"

# Static endpoint sources (local stack and tests); in the cluster the gateway watches the
# vLLM Service's EndpointSlices instead.
ENV_UPSTREAM_ENDPOINTS = "GATEWAY_UPSTREAM_ENDPOINTS"  # comma-separated base URLs
ENV_UPSTREAM_ENDPOINTS_FILE = "GATEWAY_UPSTREAM_ENDPOINTS_FILE"  # JSON list of base URLs, re-read on change
