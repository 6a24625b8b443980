"""A tiny stand-in for crudstack.local.awslambda.runtime, so the server and gateway are tested on their own.

FakeRuntime has the LambdaRuntime interface (invoke / shutdown) and answers from a behaviour picked
by the function's FAKE_BEHAVIOUR environment variable, read from moto's in-process Lambda backend:

    echo (default)  a proxy result whose body is the event it received (JSON)
    raw             the payload it received, unchanged (for the Invoke API)
    binary          a base64-encoded image/png proxy result
    malformed       {"status": 200}: not a proxy result
    crash           an unhandled exception (function_error "Unhandled")
    timeout         the function ran out of time (timed_out, function_error "Unhandled")
    throttle        no free concurrency (throttled)
    sleep           sleeps FAKE_SLEEP_S seconds, then echo

Event invocations (invoke_async: SNS deliveries to Lambda) are recorded, one JSON line each, in
<state-dir>/fake-events.jsonl.

It also starts one child process, as the real runtime starts workers, and stops it in shutdown():
a test can then see that the server shuts its runtime down.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"


@dataclass
class FakeInvokeResult:
    payload: bytes
    function_error: str | None = None
    timed_out: bool = False
    throttled: bool = False
    duration_ms: float = 1.0
    request_id: str = ""


class FakeRuntime:
    def __init__(self, *, endpoint_url: str, max_concurrency: int = 10, log=None, state_dir: Path | None = None):
        self.endpoint_url = endpoint_url
        self.log = log
        self.state_dir = state_dir
        self.child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        if state_dir is not None:
            (state_dir / "fake-worker.pid").write_text(str(self.child.pid))
        if log:
            log.info("fake runtime started with worker pid %d", self.child.pid)

    def _function(self, name_or_arn: str, region: str, account_id: str):
        from moto.awslambda.utils import get_backend

        return get_backend(account_id, region).get_function(name_or_arn)

    def invoke(self, function_arn_or_name: str, payload: bytes, *, region: str, account_id: str = "123456789012",
               source: str = "api", deadline: float | None = None) -> FakeInvokeResult:
        fn = self._function(function_arn_or_name, region, account_id)
        behaviour = fn.environment_vars.get("FAKE_BEHAVIOUR", "echo")
        request_id = str(uuid.uuid4())
        if behaviour == "sleep":
            time.sleep(float(fn.environment_vars.get("FAKE_SLEEP_S", "1")))
            behaviour = "echo"
        if behaviour == "echo":
            event = json.loads(payload)
            result = {"statusCode": 200, "headers": {"Content-Type": "application/json", "X-Fake": "1"},
                      "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "body": json.dumps(event)}
            return FakeInvokeResult(json.dumps(result).encode(), request_id=request_id)
        if behaviour == "raw":
            return FakeInvokeResult(payload, request_id=request_id)
        if behaviour == "binary":
            result = {"statusCode": 200, "headers": {"Content-Type": "image/png"},
                      "body": base64.b64encode(PNG).decode(), "isBase64Encoded": True}
            return FakeInvokeResult(json.dumps(result).encode(), request_id=request_id)
        if behaviour == "malformed":
            return FakeInvokeResult(b'{"status": 200}', request_id=request_id)
        if behaviour == "crash":
            error = {"errorMessage": "boom", "errorType": "RuntimeError", "stackTrace": []}
            return FakeInvokeResult(json.dumps(error).encode(), function_error="Unhandled", request_id=request_id)
        if behaviour == "timeout":
            error = {"errorMessage": "Task timed out after 3.00 seconds", "errorType": "Sandbox.Timedout"}
            return FakeInvokeResult(json.dumps(error).encode(), function_error="Unhandled", timed_out=True,
                                    request_id=request_id)
        if behaviour == "throttle":
            error = {"Type": "User", "message": "Rate Exceeded."}
            return FakeInvokeResult(json.dumps(error).encode(), throttled=True, request_id=request_id)
        raise ValueError(f"unknown FAKE_BEHAVIOUR {behaviour!r}")

    def invoke_async(self, function_arn_or_name: str, payload: bytes, *, region: str, account_id: str = "123456789012",
                     qualifier: str | None = None, source: str = "event") -> str:
        """An event invocation: recorded, one JSON line each, in <state-dir>/fake-events.jsonl."""
        self._function(function_arn_or_name, region, account_id)  # FunctionNotFound-like errors, as the real one
        request_id = str(uuid.uuid4())
        if self.state_dir is not None:
            with open(self.state_dir / "fake-events.jsonl", "a", encoding="utf-8") as events:
                events.write(json.dumps({"function": function_arn_or_name, "source": source,
                                         "event": json.loads(payload), "request_id": request_id}) + "\n")
        return request_id

    def shutdown(self) -> None:
        self.child.terminate()
        self.child.wait(timeout=10)
        if self.log:
            self.log.info("fake runtime shut down")


_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")


def fake_invoke_api_app(runtime: FakeRuntime):
    """The Lambda Invoke API over the fake runtime; answers carry X-Fake-Runtime so a test can tell
    the call reached the runtime and not moto."""

    def app(environ, start_response):
        name = _INVOKE_PATH.match(environ["PATH_INFO"]).group("name")
        auth = environ.get("HTTP_AUTHORIZATION", "")
        scope = re.search(r"Credential=[^/]+/\d+/([a-z0-9-]+)/lambda/", auth)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        payload = environ["wsgi.input"].read(length) if length else b"{}"
        result = runtime.invoke(name, payload, region=scope.group(1) if scope else "us-east-1")
        headers = [("Content-Type", "application/json"), ("X-Fake-Runtime", "1"),
                   ("X-Amz-Executed-Version", "$LATEST"), ("Content-Length", str(len(result.payload)))]
        if result.function_error:
            headers.append(("X-Amz-Function-Error", result.function_error))
        start_response("200 OK", headers)
        return [result.payload]

    return app
