"""OpenAI-compatible gateway in front of vLLM: endpoint discovery, routing, scale-from-zero
hold, streaming proxy, admission control, metrics.

Run locally: ``python -m services.gateway`` with ``GATEWAY_*`` environment variables (see
:mod:`services.gateway.settings` and, for the endpoint sources, :mod:`services.gateway.contract`).
"""
