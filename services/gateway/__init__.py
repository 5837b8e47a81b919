"""OpenAI-compatible gateway in front of vLLM: streaming proxy, admission control, metrics.

Run locally: ``python -m services.gateway`` (or ``python -m uvicorn services.gateway.app:app``)
with ``GATEWAY_*`` environment variables (see :mod:`services.gateway.settings`).
"""
