"""Run the CDK Provider framework's own runtime (aws-cdk-lib's JavaScript) against our handler.

What is real: ``framework.js`` and ``cfn-response.js`` from the installed aws-cdk-lib (extracted
from its jsii tarball), run by Node: request sanitising, ``createResponseEvent``, the
``safeHandler`` that turns an exception into a FAILED response (and the CREATE_FAILED marker),
the ``Data``/``IsComplete`` rules and the response body. Our handler runs in this Python process
behind a loopback "Lambda Invoke" endpoint, answering like Lambda (``FunctionError`` and an
``errorMessage`` payload when it raises). The response PUT goes over HTTP to a loopback server.

What is shimmed (``driver.js``): the three AWS calls of ``outbound.js``: Lambda Invoke (to the
loopback endpoint), Step Functions StartExecution (a loop with the waiter state machine's
semantics: every error retried after ``interval`` up to ``max_attempts``, then ``onTimeout``),
and the HTTPS PUT (plain HTTP to the loopback response server, port added since the framework
drops it). ``@aws-sdk/client-lambda``/``client-sfn`` are stubbed so ``outbound.js`` loads.
"""

from __future__ import annotations

import functools
import json
import subprocess
import tarfile
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aws_cdk

from tests.support.serving import serve_in_thread

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE = REPO_ROOT / "node_modules" / ".bin" / "node"
RUNTIME_IN_TARBALL = "package/custom-resources/lib/provider-framework/runtime/"
CREATE_FAILED_MARKER = "AWSCDK::CustomResourceProviderFramework::CREATE_FAILED"

DRIVER_JS = r"""
const http = require('http');
const outbound = require('./runtime/outbound');
const fw = require('./runtime/framework');
const [invokeUrl, responsePort, interval, maxAttempts] = process.argv.slice(2);
const event = JSON.parse(require('fs').readFileSync(0, 'utf8'));
process.env.USER_ON_EVENT_FUNCTION_ARN = 'arn:aws:lambda:us-east-1:111111111111:function:on-event';
process.env.USER_IS_COMPLETE_FUNCTION_ARN = 'arn:aws:lambda:us-east-1:111111111111:function:is-complete';
process.env.WAITER_STATE_MACHINE_ARN = 'arn:aws:states:us-east-1:111111111111:stateMachine:waiter';
function post(url, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST' }, (res) => {
      const chunks = []; res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    req.on('error', reject); req.end(body);
  });
}
outbound.invokeFunction = async (req) => {
  const name = req.FunctionName.split(':').pop();
  const out = JSON.parse(await post(`${invokeUrl}/${name}`, req.Payload));
  return { Payload: Buffer.from(out.Payload), FunctionError: out.FunctionError };
};
outbound.httpRequest = (options, body) => new Promise((resolve, reject) => {
  const req = http.request({ ...options, port: Number(responsePort) }, (res) => {
    res.resume();
    (!res.statusCode || res.statusCode >= 400) ? reject(new Error(`HTTP ${res.statusCode}`)) : resolve();
  });
  req.on('error', reject); req.write(body); req.end();
});
outbound.startExecution = async (req) => {
  const input = JSON.parse(req.input);
  for (let attempt = 0; ; attempt++) {
    try { await fw.isComplete(input); return; }
    catch (e) {
      if (attempt + 1 >= Number(maxAttempts)) {
        await fw.onTimeout({ Cause: JSON.stringify({ errorMessage: e.message }) });
        return;
      }
      await new Promise((ok) => setTimeout(ok, Number(interval) * 1000));
    }
  }
};
fw.onEvent(event).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
"""


@dataclass
class FakeContext:
    """The part of the Lambda context our handler uses."""

    remaining_ms: int

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Harness:
    """Loopback Lambda endpoint + CloudFormation response server + the framework runtime.

    Attributes:
        responses: every response body CloudFormation received (parsed JSON), in order.
        invocations: names of user functions invoked (``on-event`` / ``is-complete``), in order.
        remaining_ms: callable(invocation_index) -> Lambda remaining time given to the handler.
    """

    workdir: Path
    handlers: dict[str, Callable[..., Any]]
    responses: list[dict[str, Any]] = field(default_factory=list)
    invocations: list[str] = field(default_factory=list)
    remaining_ms: Callable[[int], int] = lambda _i: 900_000
    lambda_url: str = ""
    response_port: int = 0

    def run(self, request_type: str, properties: dict[str, Any], *, physical_id: str | None = None,
            old_properties: dict[str, Any] | None = None, interval: float = 0.05,
            max_attempts: int = 60) -> dict[str, Any]:
        """Send one CloudFormation request through the framework; return the response body."""
        event: dict[str, Any] = {
            "RequestType": request_type,
            "ServiceToken": "arn:aws:lambda:us-east-1:111111111111:function:framework-onEvent",
            "ResponseURL": f"http://127.0.0.1:{self.response_port}/cfn-response?X-Amz-Signature=abc",
            "StackId": "arn:aws:cloudformation:us-east-1:111111111111:stack/qvllm-ModelStore/guid",
            "RequestId": str(uuid.uuid4()),
            "LogicalResourceId": "ModelUpload",
            "ResourceType": "Custom::ModelUpload",
            "ResourceProperties": {"ServiceToken": "arn:...", **properties},
        }
        if physical_id is not None:
            event["PhysicalResourceId"] = physical_id
        if old_properties is not None:
            event["OldResourceProperties"] = old_properties
        before = len(self.responses)
        proc = subprocess.run(
            [str(NODE), str(self.workdir / "driver.js"), self.lambda_url, str(self.response_port),
             str(interval), str(max_attempts)],
            input=json.dumps(event), capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(self.responses) == before + 1, f"expected one response, got {self.responses[before:]}\n{proc.stdout[-3000:]}"
        response = self.responses[-1]
        assert response["RequestId"] == event["RequestId"]
        return response


@functools.cache
def _runtime_sources() -> dict[str, bytes]:
    """The provider framework's runtime files (name -> bytes), read once per process: the
    aws-cdk-lib tarball is tens of MiB of gzip, and scanning it took ~1.5 s per test."""
    tarball = next((Path(aws_cdk.__file__).parent / "_jsii").glob("aws-cdk-lib@*.jsii.tgz"))
    with tarfile.open(tarball) as tar:
        return {Path(member.name).name: tar.extractfile(member).read()  # type: ignore[union-attr]
                for member in tar.getmembers()
                if member.name.startswith(RUNTIME_IN_TARBALL) and member.name.endswith(".js")}


def _extract_runtime(dest: Path) -> None:
    (dest / "runtime").mkdir(parents=True, exist_ok=True)
    for name, data in _runtime_sources().items():
        (dest / "runtime" / name).write_bytes(data)
    for pkg, exports in (("client-lambda", "Lambda, waitUntilFunctionActiveV2"), ("client-sfn", "SFN")):
        folder = dest / "node_modules" / "@aws-sdk" / pkg
        folder.mkdir(parents=True, exist_ok=True)
        stubs = ", ".join(f"{name.strip()}: function () {{ throw new Error('stub: no AWS in tests'); }}"
                          for name in exports.split(","))
        (folder / "index.js").write_text(f"module.exports = {{ {stubs} }};\n")
    (dest / "driver.js").write_text(DRIVER_JS)


def _lambda_payload(exc: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_exception(exc)[-3:],
    }


@contextmanager
def provider_harness(workdir: Path, handlers: dict[str, Callable[..., Any]]) -> Iterator[Harness]:
    """Start the loopback servers; ``handlers`` maps ``on-event``/``is-complete`` to callables."""
    _extract_runtime(workdir)
    harness = Harness(workdir=workdir, handlers=handlers)

    class LambdaHandler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            name = self.path.strip("/")
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            index = len(harness.invocations)
            harness.invocations.append(name)
            out: dict[str, Any]
            try:
                result = harness.handlers[name](payload, FakeContext(harness.remaining_ms(index)))
                out = {"Payload": json.dumps(result)}
            except Exception as exc:  # noqa: BLE001 - reported like Lambda does
                out = {"Payload": json.dumps(_lambda_payload(exc)), "FunctionError": "Unhandled"}
            body = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class ResponseHandler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_PUT(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            harness.responses.append(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), LambdaHandler),
               ThreadingHTTPServer(("127.0.0.1", 0), ResponseHandler)]
    for server in servers:
        serve_in_thread(server)
    harness.lambda_url = f"http://127.0.0.1:{servers[0].server_address[1]}"
    harness.response_port = servers[1].server_address[1]
    try:
        yield harness
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
