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
# vLLM Service's EndpointSlices instead. Set at most one of the two (the gateway refuses both).
#
# - GATEWAY_UPSTREAM_ENDPOINTS: comma-separated base URLs, e.g.
#   "http://127.0.0.1:8001,http://127.0.0.1:8002"; every one is taken as ready.
# - GATEWAY_UPSTREAM_ENDPOINTS_FILE: path of a JSON file holding a list of base URLs, e.g.
#   ["http://127.0.0.1:8001", "http://127.0.0.1:8002"]. The gateway re-reads it within
#   0.25 s of a change: list an engine once its /health answers 200, drop it to stop new
#   requests (its running streams finish). A missing file or [] means no endpoint is ready:
#   requests are held (up to GATEWAY_MAX_HELD_REQUESTS, GATEWAY_HOLD_TIMEOUT_SECONDS).
#   Write it atomically (write a temporary file, then rename it over the old one).
ENV_UPSTREAM_ENDPOINTS = "GATEWAY_UPSTREAM_ENDPOINTS"
ENV_UPSTREAM_ENDPOINTS_FILE = "GATEWAY_UPSTREAM_ENDPOINTS_FILE"
ENDPOINTS_FILE_POLL_SECONDS = 0.25
