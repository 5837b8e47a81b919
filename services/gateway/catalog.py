"""Which ``model`` values the gateway accepts."""

from __future__ import annotations

import time

import aiohttp

from services.gateway.errors import GatewayError
from services.gateway.routing import Router

MODELS_PATH = "/v1/models"
MODEL_CACHE_SECONDS = 30.0


class ModelCatalog:
    """The configured served model name, or (if empty) the ids a ready endpoint lists at
    ``/v1/models`` (cached ``MODEL_CACHE_SECONDS``).

    Args:
        served_model_name: the fixed name, or "" to learn it from the engines.
        session: the shared aiohttp session.
        router: picks the endpoint to ask.
    """

    def __init__(self, served_model_name: str, session: aiohttp.ClientSession, router: Router) -> None:
        self._fixed = served_model_name
        self._session = session
        self._router = router
        self._ids: frozenset[str] = frozenset()
        self._fetched = float("-inf")

    async def names(self) -> frozenset[str] | None:
        """Accepted names, or None if unknown (no endpoint ready or reachable): then the engine decides."""
        if self._fixed:
            return frozenset({self._fixed})
        if time.monotonic() - self._fetched > MODEL_CACHE_SECONDS:
            endpoint = self._router.pick()
            if endpoint is None:
                return None
            try:
                async with self._session.get(endpoint.url + MODELS_PATH) as resp:
                    resp.raise_for_status()
                    body = await resp.json(content_type=None)
                self._ids = frozenset(m["id"] for m in body["data"])
                self._fetched = time.monotonic()
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError):
                return None
        return self._ids

    async def check(self, model: str) -> None:
        """Raises GatewayError 404 if ``model`` is not served here."""
        names = await self.names()
        if names is not None and model not in names:
            if not self._fixed:  # maybe the engines changed: refresh once on a miss
                self._fetched = float("-inf")
                names = await self.names()
                if names is None or model in names:
                    return
            served = ", ".join(sorted(names)) or "(none)"
            raise GatewayError(
                404,
                f"The model '{model}' does not exist; this gateway serves: {served}",
                param="model",
                code="model_not_found",
            )
