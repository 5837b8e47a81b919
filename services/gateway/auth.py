"""Bearer-key check of the API routes."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from services.gateway.errors import GatewayError


def check_api_key(request: Request, keys: frozenset[str]) -> None:
    """Accept the request if no keys are configured, or its ``Authorization: Bearer`` is one.

    Raises:
        GatewayError: 401 with ``WWW-Authenticate: Bearer`` when the key is missing or wrong.
    """
    if not keys:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise GatewayError(
            401,
            "Missing API key: send 'Authorization: Bearer <key>'",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = token.strip()
    if not any(hmac.compare_digest(token.encode(), key.encode()) for key in keys):
        raise GatewayError(401, "Incorrect API key provided", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
