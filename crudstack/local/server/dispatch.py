"""The edge: which front answers a request (the gateway, the Lambda Invoke API, the health check, the
console, or moto), and, for the control plane, what the request is (crudstack/local/request.py),
worked out once here and read by every layer behind (serve.py lists them).

Everything but an invoke URL and the console is the control plane: the guard (guard.py) refuses what
a web page could send, every AWS API request must be signed by a key the local AWS knows, and
those signed with a role session pass the access check (crudstack/local/iam/) first. The console (crudstack/local/console/) applies the same loopback-Host
rule with its own, stricter Origin rules: its page is same-origin and unsigned by design.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from crudstack.local import request
from crudstack.local.apigateway.app import is_invoke_path
from crudstack.local.console.responses import is_console_path
from crudstack.local.server import guard
from crudstack.local.server.record import HEALTH_PATH
from crudstack.local.wsgi import WsgiApp


# The most a request body may be, read by the HTTP server (httpserver.py) from Content-Length before any
# of the body: API Gateway's REST API payload quota, 10 MB, answered 413 (REQUEST_TOO_LARGE; "Payload size"
# in docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-execution-service-limits-table.html,
# and supported-gateway-response-types.html). The control plane's largest request is a Lambda deployment
# package sent inline: 50 MB zipped ("Deployment package (.zip file archive) size", docs.aws.amazon.com/
# lambda/latest/dg/gettingstarted-limits.html), base64 in a JSON body, about 67 MB.
INVOKE_URL_MAX_BODY = 10 * 1024 * 1024
CONTROL_PLANE_MAX_BODY = 70 * 1024 * 1024


class LocalAws:
    """Routes each request to the gateway, the Lambda Invoke API, the health check, the console or moto
    (the last two already wrapped in their layers by the composition root, serve.py)."""

    def __init__(self, *, gateway: WsgiApp, invoke_api: WsgiApp, moto_app: WsgiApp, health: dict[str, Any],
                 console: WsgiApp | None = None):
        self.gateway = gateway
        self.invoke_api = invoke_api
        self.moto_app = moto_app
        self.console = console
        self._health_body = json.dumps(health).encode()

    @staticmethod
    def max_body(path: str) -> int:
        return INVOKE_URL_MAX_BODY if is_invoke_path(path) or is_console_path(path) else CONTROL_PLANE_MAX_BODY

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if is_invoke_path(path):
            return self.gateway(environ, start_response)
        if self.console is not None and is_console_path(path):
            return self.console(environ, start_response)
        refused = guard.refusal(environ)
        if refused is not None:
            return guard.refuse(*refused, start_response)
        start_response = guard.without_cors(start_response)
        request.understand(environ)
        if environ["REQUEST_METHOD"] == "POST" and path.startswith("/2015-03-31/functions/") and path.endswith("/invocations"):
            return self.invoke_api(environ, start_response)
        if path == HEALTH_PATH:
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(self._health_body)))])
            return [self._health_body]
        return self.moto_app(environ, start_response)
