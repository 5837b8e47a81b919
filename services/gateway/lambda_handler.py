"""AWS Lambda entry point: ``handler = Mangum(app)`` (ALB and API Gateway events).

Lambda buffers whole responses, so only non-streaming routes are useful there (``/healthz``,
``/readyz``, ``/v1/models``, non-streaming completions). The lifespan runs per invocation,
creating and closing the shared httpx client.
"""

from __future__ import annotations

from mangum import Mangum

from services.gateway.app import app

handler = Mangum(app, lifespan="auto")
