"""AWS Lambda entry point: ``handler = Mangum(create_app())`` (ALB and API Gateway events).

Lambda buffers whole responses, so only non-streaming routes are useful there (``/healthz``,
``/readyz``, ``/v1/models``, non-streaming completions). The app is built when Lambda loads
this module (its init phase), from the function's ``GATEWAY_*`` environment; the lifespan runs
per invocation, opening and closing the upstream session.
"""

from __future__ import annotations

from mangum import Mangum

from services.gateway.app import create_app

handler = Mangum(create_app(), lifespan="auto")
