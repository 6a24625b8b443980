"""The gateway WSGI app: resolve the stage -> match the route -> admit (AWS_IAM, API key, usage plan
throttle and quota, stage throttle) -> build the event -> invoke -> answer, with the API's gateway
responses applied to every answer the gateway makes itself."""

from __future__ import annotations

import logging
import time
from typing import Callable

from crudstack.local.apigateway.auth import IamAuthorizer, api_key_header, check_api_key
from crudstack.local.apigateway.events import GatewayRequest, RequestIds, build_proxy_event
from crudstack.local.apigateway.exceptions import QuotaExceeded, Refused, Throttled
from crudstack.local.apigateway.gatewayresponses import customize
from crudstack.local.apigateway.mock import mock_response
from crudstack.local.apigateway.models import DeployedMethod, DeploymentSnapshots, StageTarget
from crudstack.local.apigateway.proxy import LambdaProxyInvoker
from crudstack.local.apigateway.responses import (
    _REASONS,
    INTERNAL_ERROR,
    MISSING_TOKEN,
    HttpResponse,
    gateway_error,
    refusal,
)
from crudstack.local.apigateway.routing import RouteMatch, match_route
from crudstack.local.apigateway.throttling import ThrottleState
from crudstack.local.awslambda.permissions import source_arn_for
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

    def __init__(self, snapshots: DeploymentSnapshots, invoker: LambdaProxyInvoker, metrics: MetricsBatcher | None = None,
                 throttling: ThrottleState | None = None, iam: IamAuthorizer | None = None):
        self.snapshots = snapshots
        self.invoker = invoker
        self.metrics = metrics
        self.throttling = throttling or ThrottleState()
        # Credentials and policy verdicts are kept with what resolve() reads: emptied by every write.
        self.iam = iam or IamAuthorizer(snapshots.targets)

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
            raw_uri=environ.get("RAW_URI") or environ.get("REQUEST_URI") or "",
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
            # AWS answers a wrong stage (or api id) like an unknown route; with no deployment, no
            # gateway response customization applies.
            return gateway_error(*MISSING_TOKEN), None, None
        route = match_route(target.api, request.http_method, request.path)
        response, integration_ms = self._serve(request, ids, target, route)
        if response.response_type is not None and target.api.gateway_responses:
            response = customize(response, target, request, ids, route.path_parameters if route else None,
                                 route.method.resource_path if route else None)
        return response, target, integration_ms

    def _serve(self, request: GatewayRequest, ids: RequestIds, target: StageTarget,
               route: RouteMatch | None) -> tuple[HttpResponse, float | None]:
        if route is None:
            return gateway_error(*MISSING_TOKEN), None
        method = route.method
        where = f"{request.api_id}/{request.stage} {request.http_method} {method.resource_path} ({ids.request_id})"
        identity: dict[str, str] = {}
        # The common case (no authorization, no key, no throttling) costs these three tests.
        if method.authorization_type != "NONE" or method.api_key_required or target.method_throttles:
            try:
                identity = self._admit(request, target, method, where)
            except Refused as refused:
                log.info("%s: %s %s", where, refused.status, refused.message.split("\n", 1)[0])
                return refusal(refused), None
            except _Unsupported:
                return gateway_error(*INTERNAL_ERROR), None
        integration = method.integration
        if integration is None:
            log.error("%s: execution failed due to configuration error: no integration defined for method", where)
            return gateway_error(*INTERNAL_ERROR), None
        if integration.type == "AWS_PROXY":
            event = build_proxy_event(request, target, route, ids, target.api.account_id)
            if identity:
                event["requestContext"]["identity"].update(identity)
            outcome = self.invoker.invoke(integration, target, request, method, event, where)
            return outcome.response, outcome.integration_ms
        if integration.type == "MOCK":
            content_type = next((v for k, v in request.headers if k.lower() == "content-type"), None)
            return mock_response(method, content_type, where), None
        log.error("%s: integration type %s is not served by the local gateway (AWS_PROXY and MOCK are)",
                  where, integration.type)
        return gateway_error(*INTERNAL_ERROR), None

    def _admit(self, request: GatewayRequest, target: StageTarget, method: DeployedMethod, where: str) -> dict[str, str]:
        """API Gateway's checks before the integration, in its order: authorization (AWS_IAM), the API key,
        the key's usage plan throttle and quota, then the stage's method throttling
        (docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html: usage
        plan limits apply first, then the stage's). Raises Refused; returns what the event's
        requestContext.identity learns about the caller."""
        api = target.api
        identity: dict[str, str] = {}
        if method.authorization_type == "AWS_IAM":
            method_arn = source_arn_for(api.region, api.account_id, api.api_id, target.stage, request.http_method,
                                        request.path)
            caller = self.iam.authorize(request, method_arn, api.account_id)
            identity.update(accessKey=caller.access_key, accountId=caller.account_id, caller=caller.user_id,
                            user=caller.user_id, userArn=caller.arn)
        elif method.authorization_type != "NONE":
            log.error("%s: authorization type %s is not served by the local gateway (NONE and AWS_IAM are)",
                      where, method.authorization_type)
            raise _Unsupported()
        if method.api_key_required:
            key = check_api_key(self.snapshots.plan_keys(api.api_id, target.stage), request.headers)
            if key.throttle is not None and not self.throttling.take(("plan", key.plan_id, key.key_id), key.throttle):
                raise Throttled()
            if key.quota is not None and not self.throttling.count(("plan", key.plan_id, key.key_id), key.quota):
                raise QuotaExceeded()
            identity.update(apiKey=api_key_header(request.headers), apiKeyId=key.key_id)
        limits = target.method_throttle(method)
        if limits is not None and not self.throttling.take(
                ("stage", api.api_id, target.stage, method.resource_path, method.http_method), limits):
            raise Throttled()
        return identity


class _Unsupported(Exception):
    """The method needs something the local gateway does not emulate (a Lambda or Cognito authorizer)."""
