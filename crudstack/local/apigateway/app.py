"""The gateway WSGI app: resolve the stage -> match the route -> build the event -> invoke -> answer."""

from __future__ import annotations

import logging
import time
from typing import Callable

from crudstack.local.apigateway.events import GatewayRequest, RequestIds, build_proxy_event
from crudstack.local.apigateway.mock import mock_response
from crudstack.local.apigateway.models import DeploymentSnapshots, StageTarget
from crudstack.local.apigateway.proxy import LambdaProxyInvoker
from crudstack.local.apigateway.responses import _REASONS, INTERNAL_ERROR, MISSING_TOKEN, HttpResponse, gateway_error
from crudstack.local.apigateway.routing import match_route
from crudstack.local.cloudwatch.metrics import MetricsBatcher
from crudstack.local.wsgi import environ_headers, read_body

log = logging.getLogger(__name__)


def parse_invoke_path(path: str) -> tuple[str, str, str] | None:
    """(api id, stage, path) from the two local invoke-URL forms, or None:
    /restapis/{api_id}/{stage}/_user_request_/{path}   (LocalStack's original form)
    /_aws/execute-api/{api_id}/{stage}/{path}"""
    if path.startswith("/_aws/execute-api/"):
        parts = path[len("/_aws/execute-api/"):].split("/", 2)
        if len(parts) >= 2 and parts[0] and parts[1]:
            return parts[0], parts[1], "/" + (parts[2] if len(parts) == 3 else "")
        return None
    if path.startswith("/restapis/"):
        parts = path[len("/restapis/"):].split("/", 3)
        if len(parts) >= 3 and parts[2] == "_user_request_" and parts[0] and parts[1]:
            return parts[0], parts[1], "/" + (parts[3] if len(parts) == 4 else "")
    return None


def is_invoke_path(path: str) -> bool:
    return parse_invoke_path(path) is not None



class Gateway:
    """WSGI app serving invoke URLs: resolve stage -> match route -> build event -> invoke -> map response."""

    def __init__(self, snapshots: DeploymentSnapshots, invoker: LambdaProxyInvoker, metrics: MetricsBatcher | None = None):
        self.snapshots = snapshots
        self.invoker = invoker
        self.metrics = metrics

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        started = time.perf_counter()
        ids = RequestIds.new()
        api_id, stage, path = parse_invoke_path(environ.get("PATH_INFO", "")) or ("", "", "/")
        request = GatewayRequest(
            http_method=environ["REQUEST_METHOD"].upper(), api_id=api_id, stage=stage,
            # PATH_INFO is already percent-decoded, its bytes carried as latin-1 (PEP 3333).
            path=path.encode("latin-1").decode("utf-8", errors="replace"),
            query_string=environ.get("QUERY_STRING", "").encode("latin-1").decode("utf-8", errors="replace"),
            headers=environ_headers(environ), body=read_body(environ),
            source_ip=environ.get("REMOTE_ADDR", "127.0.0.1"), protocol=environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            url_path=environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", errors="replace"),
        )
        response, target, integration_ms = self.handle(request, ids)
        response.headers += [("x-amzn-RequestId", ids.request_id), ("x-amz-apigw-id", ids.extended_request_id),
                             ("X-Amzn-Trace-Id", ids.trace_id), ("Content-Length", str(len(response.body)))]
        latency_ms = (time.perf_counter() - started) * 1000
        if target is not None and self.metrics is not None:
            self.metrics.record(target.api.account_id, target.api.region, target.api_name, target.stage,
                                response.status, latency_ms, integration_ms)
        start_response(f"{response.status} {_REASONS.get(response.status, 'Status')}", response.headers)
        return [response.body]

    def handle(self, request: GatewayRequest, ids: RequestIds) -> tuple[HttpResponse, StageTarget | None, float | None]:
        target = self.snapshots.resolve(request.api_id, request.stage) if request.api_id else None
        if target is None:
            # AWS answers a wrong stage (or api id) like an unknown route.
            return gateway_error(*MISSING_TOKEN), None, None
        route = match_route(target.api, request.http_method, request.path)
        if route is None:
            return gateway_error(*MISSING_TOKEN), target, None
        where = f"{request.api_id}/{request.stage} {request.http_method} {route.method.resource_path} ({ids.request_id})"
        integration = route.method.integration
        if integration is None:
            log.error("%s: execution failed due to configuration error: no integration defined for method", where)
            return gateway_error(*INTERNAL_ERROR), target, None
        if integration.type == "AWS_PROXY":
            event = build_proxy_event(request, target, route, ids, target.api.account_id)
            outcome = self.invoker.invoke(integration, target, request, route.method, event, where)
            return outcome.response, target, outcome.integration_ms
        if integration.type == "MOCK":
            content_type = next((v for k, v in request.headers if k.lower() == "content-type"), None)
            return mock_response(route.method, content_type, where), target, None
        log.error("%s: integration type %s is not served by the local gateway (AWS_PROXY and MOCK are)",
                  where, integration.type)
        return gateway_error(*INTERNAL_ERROR), target, None
