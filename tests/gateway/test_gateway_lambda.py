"""``services.gateway.lambda_handler.handler`` (Mangum) invoked with an ALB event and an API
Gateway v2 (HTTP API) event, for non-streaming routes, with the real vLLM as upstream."""

from __future__ import annotations

import base64
import importlib
import json
from typing import Any

import pytest

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def handler(vllm):  # type: ignore[no-untyped-def]
    """The module-level handler, built from GATEWAY_* env pointing at the real vLLM."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GATEWAY_UPSTREAM_URL", vllm.base_url)
    mp.setenv("GATEWAY_SERVED_MODEL_NAME", vllm.served_model_name)
    import services.gateway.lambda_handler

    module = importlib.reload(services.gateway.lambda_handler)  # the handler's app reads the env at import
    yield module.handler
    mp.undo()


def alb_event(method: str, path: str, body: str = "", headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An ALB target-group Lambda event (AWS docs: 'Using Lambda functions as targets')."""
    return {
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gw/abc"}},
        "httpMethod": method,
        "path": path,
        "queryStringParameters": {},
        "headers": {"host": "gw.example.com", "x-forwarded-proto": "https", "x-forwarded-port": "443",
                    "x-forwarded-for": "203.0.113.7", **(headers or {})},
        "body": body,
        "isBase64Encoded": False,
    }


def apigw_v2_event(method: str, path: str, body: str = "", headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "abc.execute-api.us-east-1.amazonaws.com", "x-forwarded-proto": "https",
                    "x-forwarded-port": "443", "x-forwarded-for": "203.0.113.7", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc", "domainName": "abc.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc", "requestId": "req-1", "routeKey": "$default", "stage": "$default",
            "time": "29/Nov/2026:10:00:00 +0000", "timeEpoch": 1795946400000,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "pytest"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _body(result: dict[str, Any]) -> Any:
    raw = base64.b64decode(result["body"]) if result.get("isBase64Encoded") else result["body"]
    return json.loads(raw)


@pytest.mark.parametrize("make_event", [alb_event, apigw_v2_event], ids=["alb", "apigw-v2"])
def test_lambda_healthz_models_and_chat(handler, vllm, make_event) -> None:  # type: ignore[no-untyped-def]
    health = handler(make_event("GET", "/healthz"), None)
    assert health["statusCode"] == 200 and _body(health) == {"status": "ok"}
    ready = handler(make_event("GET", "/readyz"), None)
    assert ready["statusCode"] == 200
    models = handler(make_event("GET", "/v1/models"), None)
    assert models["statusCode"] == 200
    assert [m["id"] for m in _body(models)["data"]] == [vllm.served_model_name]
    chat = handler(
        make_event("POST", "/v1/chat/completions", json.dumps({
            "model": vllm.served_model_name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "ignore_eos": True,
        }), {"content-type": "application/json", "x-request-id": "lambda-1"}),
        None,
    )
    assert chat["statusCode"] == 200, chat
    assert _body(chat)["usage"]["completion_tokens"] == 4
    unknown = handler(make_event("POST", "/v1/chat/completions", json.dumps({"model": "x", "messages": [{"role": "user", "content": "hi"}]}),
                                 {"content-type": "application/json"}), None)
    assert unknown["statusCode"] == 404 and _body(unknown)["error"]["param"] == "model"
