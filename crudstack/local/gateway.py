"""API Gateway REST API (v1) emulation for the embedded local AWS.

moto keeps API Gateway's control plane (create_rest_api, put_method, create_deployment...)
but does not serve invoke URLs in server mode. This module serves them, as a chain of
small layers with one job each, in the order a request meets them:

    DeploymentSnapshots   what is deployed: a frozen copy of the API taken at CreateDeployment
    match_route           resource tree + HTTP method -> DeployedMethod and pathParameters
    build_proxy_event     the REST v1 "Lambda proxy" event a real function receives
    LambdaProxyInvoker    resource-policy check, then the Lambda runtime
    map_proxy_result      the function's result -> the HTTP response API Gateway would send
    MetricsPublisher      AWS/ApiGateway metrics into moto's CloudWatch, off the request path

`Gateway` is the WSGI app tying them together; `DeploymentRecorder` is the WSGI middleware
in front of moto that takes the snapshots. Every pure layer works on plain data, so each can
be tested alone (tests/local/test_gateway.py).

Gateway answers copy what API Gateway sends for the same failure:

    403 {"message":"Missing Authentication Token"}   unknown API id, stage, resource or method
    500 {"message": "Internal server error"}         the Lambda API rejected the call (no permission,
                                                      no such function, throttled), or MOCK misconfigured
    502 {"message": "Internal server error"}         the function failed, or returned a malformed result
    504 {"message": "Endpoint request timed out"}    no answer within the integration timeout (29 s)
"""

from __future__ import annotations

import base64
import binascii
import collections
import concurrent.futures
import datetime as dt
import json
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol
from urllib.parse import parse_qsl

log = logging.getLogger(__name__)

# API Gateway's integration timeout for REST APIs (an integration may set timeoutInMillis lower).
DEFAULT_INTEGRATION_TIMEOUT_MS = 29_000
LAMBDA_URI = re.compile(
    r"^arn:aws[a-z-]*:apigateway:(?P<region>[a-z0-9-]+):lambda:path/2015-03-31/functions/(?P<function>.+)/invocations$"
)
FUNCTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:(?P<name>[A-Za-z0-9_-]+)(?::(?P<qualifier>[A-Za-z0-9$_-]+))?$"
)
_STAGE_VARIABLE = re.compile(r"\$\{stageVariables\.([A-Za-z0-9_]+)\}")
# A mapping template that uses VTL (variables or directives) needs a VTL engine we do not have.
_VTL = re.compile(r"\$[A-Za-z{!]|#(?:set|if|elseif|else|end|foreach|define|macro|parse|include|break|stop|evaluate)\b")
_TEXT_TYPES = re.compile(r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded)|[^;]*\+(json|xml))", re.I)
# Headers API Gateway computes itself; a function's copies are dropped.
_HOP_BY_HOP = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive"})


class GatewayRuntime(Protocol):
    """What the gateway needs from crudstack.local.runtime.LambdaRuntime."""

    def invoke(self, function_arn_or_name: str, payload: bytes, *, region: str, account_id: str = ..., source: str = ...) -> Any: ...


# --------------------------------------------------------------------------------------------
# What is deployed: snapshots taken at CreateDeployment
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeployedIntegrationResponse:
    status_code: str
    selection_pattern: str | None
    response_parameters: Mapping[str, str]
    response_templates: Mapping[str, str | None]


@dataclass(frozen=True)
class DeployedIntegration:
    type: str
    uri: str | None
    request_templates: Mapping[str, str | None]
    responses: tuple[DeployedIntegrationResponse, ...]
    timeout_ms: int = DEFAULT_INTEGRATION_TIMEOUT_MS


@dataclass(frozen=True)
class DeployedMethod:
    http_method: str
    resource_id: str
    resource_path: str
    integration: DeployedIntegration | None
    # status code -> the response headers the method response declares (put_method_response's
    # method.response.header.* keys). Only non-proxy integrations use them.
    responses: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass
class _RouteNode:
    """One path segment of the resource tree. API Gateway prefers, at each segment,
    a literal part over a {param} part over a greedy {proxy+} part."""

    methods: dict[str, DeployedMethod] = field(default_factory=dict)
    literals: dict[str, "_RouteNode"] = field(default_factory=dict)
    param: tuple[str, "_RouteNode"] | None = None
    greedy: tuple[str, "_RouteNode"] | None = None


@dataclass(frozen=True)
class DeployedApi:
    """An API as it was when a deployment was created; what a stage pointing at that
    deployment serves, whatever has been changed in the API since."""

    api_id: str
    deployment_id: str
    account_id: str
    region: str
    binary_media_types: tuple[str, ...]
    routes: _RouteNode

    @classmethod
    def from_resources(cls, *, api_id: str, deployment_id: str, account_id: str, region: str,
                       resources: Iterable[tuple],
                       binary_media_types: Iterable[str] = ()) -> "DeployedApi":
        """resources: (resource id, path like /items/{id}, {HTTP method: integration or None}) and,
        optionally, a fourth item {HTTP method: {status code: declared response header names}}."""
        root = _RouteNode()
        for resource_id, path, methods, *more in resources:
            method_responses = more[0] if more else {}
            node = root
            for part in _segments(path):
                if part.startswith("{") and part.endswith("+}"):
                    name = part[1:-2]
                    if node.greedy is None:
                        node.greedy = (name, _RouteNode())
                    node = node.greedy[1]
                elif part.startswith("{") and part.endswith("}"):
                    name = part[1:-1]
                    if node.param is None:
                        node.param = (name, _RouteNode())
                    node = node.param[1]
                else:
                    node = node.literals.setdefault(part, _RouteNode())
            for http_method, integration in methods.items():
                node.methods[http_method.upper()] = DeployedMethod(
                    http_method.upper(), resource_id, path, integration,
                    {status: frozenset(headers) for status, headers in method_responses.get(http_method, {}).items()})
        return cls(api_id, deployment_id, account_id, region, tuple(binary_media_types), root)


def snapshot_rest_api(rest_api: Any, deployment_id: str) -> DeployedApi:
    """Copy a moto RestAPI's resources, methods and integrations into a DeployedApi."""
    resources = []
    for resource in list(rest_api.resources.values()):
        methods: dict[str, DeployedIntegration | None] = {}
        method_responses: dict[str, dict[str, list[str]]] = {}
        for http_method, method in list(resource.resource_methods.items()):
            method_responses[http_method] = {
                str(code): [key[len("method.response.header."):] for key in (response.response_parameters or {})
                            if key.startswith("method.response.header.")]
                for code, response in list((method.method_responses or {}).items())
            }
            integration = method.method_integration
            methods[http_method] = None if integration is None else DeployedIntegration(
                type=(integration.integration_type or "").upper(),
                uri=integration.uri,
                request_templates=dict(integration.request_templates or {}),
                responses=tuple(
                    DeployedIntegrationResponse(
                        status_code=str(response.status_code),
                        selection_pattern=response.selection_pattern or None,
                        response_parameters=dict(response.response_parameters or {}),
                        response_templates=dict(response.response_templates or {}),
                    )
                    for response in (integration.integration_responses or {}).values()
                ),
                timeout_ms=int(integration.timeout_in_millis or DEFAULT_INTEGRATION_TIMEOUT_MS),
            )
        resources.append((resource.id, resource.get_path(), methods, method_responses))
    return DeployedApi.from_resources(
        api_id=rest_api.id, deployment_id=deployment_id, account_id=rest_api.account_id,
        region=rest_api.region_name, resources=resources, binary_media_types=rest_api.binaryMediaTypes or (),
    )


@dataclass(frozen=True)
class StageTarget:
    """Where an invoke URL's api id and stage lead right now."""

    api: DeployedApi
    api_name: str
    stage: str
    stage_variables: Mapping[str, str]


class DeploymentSnapshots:
    """The deployed APIs of moto's in-process API Gateway backends.

    moto keeps one live copy of each API and no history, so an undeployed put_method would be
    served at once. AWS serves a stage from the deployment it points to, and a deployment is
    frozen when created; `record()` is called right after moto creates one (DeploymentRecorder).
    """

    def __init__(self, backends: Any = None):
        self._backends = backends
        self._snapshots: dict[tuple[str, str], DeployedApi] = {}
        self._locations: dict[str, tuple[str, str]] = {}  # api id -> (account, region)
        self._lock = threading.Lock()

    @property
    def backends(self) -> Any:
        if self._backends is None:
            from moto.apigateway.models import apigateway_backends
            self._backends = apigateway_backends
        return self._backends

    def _find_rest_api(self, api_id: str) -> Any | None:
        location = self._locations.get(api_id)
        if location is not None:
            rest_api = self.backends[location[0]][location[1]].apis.get(api_id)
            if rest_api is not None:
                return rest_api
        # API ids are unique across accounts and regions: look through every backend once, then cache.
        from moto.core.base_backend import backend_lock
        with backend_lock:
            candidates = list(self.backends.iter_backends())
        for account_id, region, backend in candidates:
            rest_api = backend.apis.get(api_id)
            if rest_api is not None:
                self._locations[api_id] = (account_id, region)
                return rest_api
        return None

    def record(self, api_id: str, deployment_id: str) -> DeployedApi | None:
        rest_api = self._find_rest_api(api_id)
        if rest_api is None or deployment_id not in rest_api.deployments:
            return None
        snapshot = snapshot_rest_api(rest_api, deployment_id)
        with self._lock:
            self._snapshots[(api_id, deployment_id)] = snapshot
        log.info("API %s: deployment %s recorded (%s)", api_id, deployment_id,
                 ", ".join(sorted(_describe_routes(snapshot.routes))) or "no methods")
        return snapshot

    def forget(self, api_id: str, deployment_id: str | None = None) -> None:
        with self._lock:
            for key in [k for k in self._snapshots if k[0] == api_id and deployment_id in (None, k[1])]:
                del self._snapshots[key]
            if deployment_id is None:
                self._locations.pop(api_id, None)

    def clear(self) -> None:
        with self._lock:
            self._snapshots.clear()
            self._locations.clear()

    # A stage serves the deployment it points to even after the API changed: what was deployed
    # is state, saved and restored with moto's (crudstack.local.durable).
    def dump(self) -> dict[tuple[str, str], DeployedApi]:
        with self._lock:
            return dict(self._snapshots)

    def load(self, snapshots: dict[tuple[str, str], DeployedApi]) -> None:
        with self._lock:
            self._snapshots = dict(snapshots)
            self._locations.clear()

    def resolve(self, api_id: str, stage_name: str) -> StageTarget | None:
        """The deployment a stage points to, or None (AWS: 403 for an unknown api or stage)."""
        rest_api = self._find_rest_api(api_id)
        if rest_api is None:
            return None
        stage = rest_api.stages.get(stage_name)
        if stage is None or not stage.deployment_id:
            return None
        snapshot = self._snapshots.get((api_id, stage.deployment_id))
        if snapshot is None:
            # A deployment made without going through the HTTP API (e.g. moto's CloudFormation):
            # its creation was not seen, so the best copy left is the API as it is now.
            log.warning("API %s: deployment %s was not recorded when created; serving the API as it is now",
                        api_id, stage.deployment_id)
            snapshot = self.record(api_id, stage.deployment_id)
            if snapshot is None:
                return None
        # Stage variables are live on AWS too: changing them needs no deployment.
        return StageTarget(snapshot, rest_api.name, stage_name, dict(stage.variables or {}))


def _describe_routes(node: _RouteNode) -> Iterable[str]:
    for method in node.methods.values():
        yield f"{method.http_method} {method.resource_path}"
    for child in node.literals.values():
        yield from _describe_routes(child)
    for branch in (node.param, node.greedy):
        if branch is not None:
            yield from _describe_routes(branch[1])


class DeploymentRecorder:
    """WSGI middleware in front of moto: after moto answers CreateDeployment with success, snapshot
    the API for the new deployment id; forget snapshots when deployments, APIs or all state go."""

    def __init__(self, app: Callable, snapshots: DeploymentSnapshots):
        self.app = app
        self.snapshots = snapshots

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        parts = path.strip("/").split("/")
        watched = (
            (method == "POST" and len(parts) == 3 and parts[0] == "restapis" and parts[2] == "deployments")
            or (method == "DELETE" and parts[0] == "restapis" and (len(parts) == 2 or (len(parts) == 4 and parts[2] == "deployments")))
            or (method == "POST" and path == "/moto-api/reset")
        )
        if not watched:
            return self.app(environ, start_response)

        captured: dict[str, Any] = {}

        def capture(status: str, headers: list, exc_info: Any = None) -> Callable:
            captured["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        body = b"".join(self.app(environ, capture))
        ok = 200 <= captured.get("status", 500) < 300
        if ok and path == "/moto-api/reset":
            self.snapshots.clear()
        elif ok and method == "POST":
            try:
                deployment_id = json.loads(body)["id"]
            except (ValueError, KeyError, TypeError):
                log.error("API %s: CreateDeployment answer has no deployment id; nothing recorded", parts[1])
            else:
                self.snapshots.record(parts[1], deployment_id)
        elif ok:
            self.snapshots.forget(parts[1], parts[3] if len(parts) == 4 else None)
        return [body]


# --------------------------------------------------------------------------------------------
# Route matcher
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RouteMatch:
    method: DeployedMethod
    path_parameters: dict[str, str]


def _segments(path: str) -> list[str]:
    # API Gateway ignores a trailing slash and empty segments: /items/ is /items.
    return [part for part in path.split("/") if part]


def match_route(api: DeployedApi, http_method: str, path: str) -> RouteMatch | None:
    """The deployed method serving `http_method path`, or None (-> 403 Missing Authentication Token).

    A resource's own method wins over its ANY method, as on AWS; HEAD is not folded into GET.
    """
    found = _walk(api.routes, _segments(path), 0, {})
    if found is None:
        return None
    node, params = found
    method = node.methods.get(http_method.upper()) or node.methods.get("ANY")
    if method is None:
        return None
    return RouteMatch(method, params)


def _walk(node: _RouteNode, parts: list[str], i: int, params: dict[str, str]) -> tuple[_RouteNode, dict[str, str]] | None:
    if i == len(parts):
        return (node, params) if node.methods else None
    child = node.literals.get(parts[i])
    if child is not None:
        found = _walk(child, parts, i + 1, params)
        if found is not None:
            return found
    if node.param is not None:
        found = _walk(node.param[1], parts, i + 1, {**params, node.param[0]: parts[i]})
        if found is not None:
            return found
    if node.greedy is not None and node.greedy[1].methods:
        return node.greedy[1], {**params, node.greedy[0]: "/".join(parts[i:])}
    return None


# --------------------------------------------------------------------------------------------
# Event builder
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GatewayRequest:
    """An invoke-URL request, already split from the local URL form it came in."""

    http_method: str
    api_id: str
    stage: str
    path: str                              # after the stage, starting with "/"
    query_string: str                      # raw, still percent-encoded
    headers: tuple[tuple[str, str], ...]   # as sent: original case, repeats kept
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"
    url_path: str = ""                     # the whole path the client called (the local URL form included)


@dataclass(frozen=True)
class RequestIds:
    request_id: str
    extended_request_id: str
    trace_id: str
    epoch_ms: int

    @classmethod
    def new(cls, now: float | None = None) -> "RequestIds":
        now = time.time() if now is None else now
        return cls(
            request_id=str(uuid.uuid4()),
            # x-amz-apigw-id looks like "BQGojGQxoAMFdPg=": base64 of 11 random bytes.
            extended_request_id=base64.b64encode(os.urandom(11)).decode(),
            trace_id=f"Root=1-{int(now):08x}-{os.urandom(12).hex()}",
            epoch_ms=int(now * 1000),
        )


def _is_binary(content_type: str | None, body: bytes, binary_media_types: Iterable[str]) -> bool:
    """API Gateway base64-encodes a body whose Content-Type matches one of the API's binaryMediaTypes.
    Without a match it passes text; a body that is not UTF-8 is base64-encoded here too (AWS would
    mangle it), so that a handler can still read it."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    for pattern in binary_media_types:
        pattern = pattern.lower()
        if pattern == "*/*" or pattern == mime or (pattern.endswith("/*") and mime.startswith(pattern[:-1])):
            return True
    if _TEXT_TYPES.match(mime):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def build_proxy_event(request: GatewayRequest, target: StageTarget, route: RouteMatch, ids: RequestIds,
                      account_id: str) -> dict[str, Any]:
    """The event a Lambda function receives from a REST API "Lambda proxy integration"."""
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers[name] = value  # a repeated header: the last value, as AWS
        multi_headers.setdefault(name, []).append(value)
    host = next((v for k, v in request.headers if k.lower() == "host"), "")
    # Headers API Gateway adds on its way to the integration.
    for name, value in (("X-Amzn-Trace-Id", ids.trace_id), ("X-Forwarded-For", request.source_ip),
                        ("X-Forwarded-Port", host.rpartition(":")[2] if ":" in host else "80"),
                        ("X-Forwarded-Proto", "http")):
        if not any(k.lower() == name.lower() for k in headers):
            headers[name] = value
            multi_headers[name] = [value]

    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for key, value in parse_qsl(request.query_string, keep_blank_values=True):
        query[key] = value  # repeated key: the last value, as AWS
        multi_query.setdefault(key, []).append(value)

    content_type = next((v for k, v in request.headers if k.lower() == "content-type"), None)
    body: str | None = None
    is_base64 = False
    if request.body:
        if _is_binary(content_type, request.body, target.api.binary_media_types):
            body, is_base64 = base64.b64encode(request.body).decode("ascii"), True
        else:
            body = request.body.decode("utf-8", errors="replace")

    method = route.method
    request_time = dt.datetime.fromtimestamp(ids.epoch_ms / 1000, dt.timezone.utc)
    user_agent = next((v for k, v in request.headers if k.lower() == "user-agent"), None)
    return {
        "resource": method.resource_path,
        "path": request.path,
        "httpMethod": request.http_method,
        # AWS sends null, not {}, for an empty collection.
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(route.path_parameters) or None,
        "stageVariables": dict(target.stage_variables) or None,
        "requestContext": {
            "resourceId": method.resource_id,
            "resourcePath": method.resource_path,
            "httpMethod": request.http_method,
            "extendedRequestId": ids.extended_request_id,
            "requestTime": request_time.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            # The path as the client called it (AWS: "/prod/items" on the execute-api domain, a base path
            # on a custom domain). Locally that is the local URL form, so a handler building a link
            # (a Location header) from it points where the client can go.
            "path": request.url_path or f"/{target.stage}{request.path}",
            "accountId": account_id,
            "protocol": request.protocol,
            "stage": target.stage,
            "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
            "requestTimeEpoch": ids.epoch_ms,
            "requestId": ids.request_id,
            "identity": {
                "cognitoIdentityPoolId": None, "accountId": None, "cognitoIdentityId": None, "caller": None,
                "sourceIp": request.source_ip, "principalOrgId": None, "accessKey": None,
                "cognitoAuthenticationType": None, "cognitoAuthenticationProvider": None, "userArn": None,
                "userAgent": user_agent, "user": None,
            },
            "domainName": host,
            "apiId": request.api_id,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


# --------------------------------------------------------------------------------------------
# Response mapper
# --------------------------------------------------------------------------------------------

@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class MalformedProxyResult(ValueError):
    """The function answered, but not in the shape a proxy integration requires."""


_PROXY_RESULT_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})


def _header_value(value: Any) -> str:
    # AWS accepts scalar header values and sends their JSON text (true, 5).
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise MalformedProxyResult(f"header value {value!r} is not a string")


def map_proxy_result(payload: bytes) -> HttpResponse:
    """A Lambda proxy result -> the HTTP response. Raises MalformedProxyResult (-> 502) unless it is
    {statusCode: int, headers?: {str: str}, multiValueHeaders?: {str: [str]}, body?: str, isBase64Encoded?: bool}."""
    try:
        result = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedProxyResult(f"result is not JSON ({exc})") from None
    if not isinstance(result, dict):
        raise MalformedProxyResult(f"result is a {type(result).__name__}, not an object")
    unknown = set(result) - _PROXY_RESULT_KEYS
    if unknown:
        raise MalformedProxyResult(f"unexpected keys {sorted(unknown)}")
    status = result.get("statusCode")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise MalformedProxyResult(f"statusCode {status!r} is not an HTTP status number")
    headers = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(headers, dict) or not isinstance(multi, dict):
        raise MalformedProxyResult("headers and multiValueHeaders must be objects")
    body = result.get("body")
    if body is not None and not isinstance(body, str):
        raise MalformedProxyResult(f"body is a {type(body).__name__}, not a string")
    is_base64 = result.get("isBase64Encoded", False)
    if not isinstance(is_base64, bool):
        raise MalformedProxyResult("isBase64Encoded must be true or false")
    if is_base64 and body:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedProxyResult("isBase64Encoded is true but body is not base64") from None
    else:
        raw = (body or "").encode("utf-8")

    # A key in both: multiValueHeaders' values win, as AWS documents.
    out: list[tuple[str, str]] = []
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedProxyResult(f"multiValueHeaders[{name!r}] is not a list")
        if name.lower() not in _HOP_BY_HOP:
            out.extend((name, _header_value(v)) for v in values)
    for name, value in headers.items():
        if name not in multi and name.lower() not in _HOP_BY_HOP:
            out.append((name, _header_value(value)))
    if not any(name.lower() == "content-type" for name, _ in out):
        out.append(("Content-Type", "application/json"))  # API Gateway's default
    return HttpResponse(status, out, raw)


_ERROR_TYPES = {403: "MissingAuthenticationTokenException", 500: "InternalServerErrorException",
                502: "InternalServerErrorException"}


def gateway_error(status: int, body: bytes) -> HttpResponse:
    """An answer API Gateway makes itself (its DEFAULT_4XX / DEFAULT_5XX gateway responses)."""
    headers = [("Content-Type", "application/json")]
    if status in _ERROR_TYPES:
        headers.append(("x-amzn-ErrorType", _ERROR_TYPES[status]))
    return HttpResponse(status, headers, body)


# The bodies byte for byte as API Gateway sends them (the 403 one has no space after the colon).
MISSING_TOKEN = (403, b'{"message":"Missing Authentication Token"}')
INTERNAL_ERROR = (500, b'{"message": "Internal server error"}')   # the Lambda API refused the invocation
FUNCTION_ERROR = (502, b'{"message": "Internal server error"}')   # the function failed or answered malformed
TIMED_OUT = (504, b'{"message": "Endpoint request timed out"}')


# --------------------------------------------------------------------------------------------
# Invoker: resource-policy check, then the runtime
# --------------------------------------------------------------------------------------------

def _arn_like(pattern: str, value: str) -> bool:
    """IAM ArnLike: each of the six colon-separated parts matched alone; * and ? are wildcards."""
    p_parts, v_parts = pattern.split(":", 5), value.split(":", 5)
    if len(p_parts) != len(v_parts):
        return False
    return all(_string_like(p, v) for p, v in zip(p_parts, v_parts))


def _string_like(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.S) is not None


_CONDITION_TESTS: dict[str, Callable[[str, str], bool]] = {
    "arnlike": _arn_like, "arnequals": str.__eq__, "stringlike": _string_like, "stringequals": str.__eq__,
}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def check_invoke_permission(policy: Mapping[str, Any] | None, source_arn: str, source_account: str) -> str | None:
    """None if the function's resource policy lets API Gateway invoke it from `source_arn`, else why not.

    AWS evaluates the statement's Principal (apigateway.amazonaws.com), Action (lambda:InvokeFunction)
    and Conditions (AWS:SourceArn, AWS:SourceAccount); a statement without a SourceArn condition lets
    any API in any account call the function, as on AWS.
    """
    if not policy or not policy.get("Statement"):
        return "the function has no resource-based policy (lambda add-permission was not called)"
    seen: list[str] = []
    for statement in _as_list(policy["Statement"]):
        if statement.get("Effect", "Allow") != "Allow":
            continue
        principal = statement.get("Principal")
        services = _as_list(principal.get("Service", [])) if isinstance(principal, dict) else _as_list(principal)
        if "apigateway.amazonaws.com" not in services and "*" not in services:
            continue
        actions = [a.lower() for a in _as_list(statement.get("Action", []))]
        if not {"lambda:invokefunction", "lambda:*", "*"} & set(actions):
            continue
        ok = True
        for operator, conditions in (statement.get("Condition") or {}).items():
            test = _CONDITION_TESTS.get(operator.lower())
            for key, expected in conditions.items():
                actual = {"aws:sourcearn": source_arn, "aws:sourceaccount": source_account}.get(key.lower())
                if test is None or actual is None or not any(test(str(e), actual) for e in _as_list(expected)):
                    ok = False
                    if key.lower() == "aws:sourcearn":
                        seen.extend(str(e) for e in _as_list(expected))
        if ok:
            return None
    if seen:
        return f"no statement's SourceArn ({', '.join(seen)}) matches {source_arn}"
    return "no statement allows apigateway.amazonaws.com to call lambda:InvokeFunction"


def source_arn_for(region: str, account_id: str, api_id: str, stage: str, http_method: str, resource_path: str) -> str:
    """The execute-api ARN API Gateway presents to Lambda as AWS:SourceArn, in the region's partition
    (arn:aws-cn:... in cn-north-1), as the local STS names the caller and so provision names permissions."""
    from crudstack.aws import partition_of_region

    partition = partition_of_region(region)
    return f"arn:{partition}:execute-api:{region}:{account_id}:{api_id}/{stage}/{http_method}/{resource_path.lstrip('/')}"


@dataclass
class InvocationOutcome:
    response: HttpResponse
    integration_ms: float | None = None


class LambdaProxyInvoker:
    """AWS_PROXY integration: the Lambda API's permission check, then the runtime."""

    def __init__(self, runtime: GatewayRuntime, lambda_backend: Callable[[str, str], Any] | None = None):
        self.runtime = runtime
        self._lambda_backend = lambda_backend
        self._slow_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._slow_pool_lock = threading.Lock()

    def lambda_backend(self, account_id: str, region: str) -> Any:
        if self._lambda_backend is None:
            # moto keeps functions in the docker or the docker-less backend depending on its
            # lambda config; utils.get_backend picks the one in use.
            from moto.awslambda.utils import get_backend
            self._lambda_backend = get_backend
        return self._lambda_backend(account_id, region)

    def invoke(self, integration: DeployedIntegration, target: StageTarget, request: GatewayRequest,
               method: DeployedMethod, event: dict[str, Any], where: str) -> InvocationOutcome:
        uri = _STAGE_VARIABLE.sub(lambda m: target.stage_variables.get(m.group(1), ""), integration.uri or "")
        uri_match = LAMBDA_URI.match(uri)
        fn_match = FUNCTION_ARN.match(uri_match.group("function")) if uri_match else None
        if fn_match is None:
            log.error("%s: execution failed due to configuration error: integration URI %r is not a Lambda "
                      "function invocation URI", where, uri)
            return InvocationOutcome(gateway_error(*INTERNAL_ERROR))
        function_arn = uri_match.group("function")
        fn_region, fn_account = fn_match.group("region"), fn_match.group("account")
        api = target.api
        source_arn = source_arn_for(api.region, api.account_id, api.api_id, target.stage, request.http_method,
                                    method.resource_path)

        from moto.awslambda.exceptions import LambdaClientError
        try:
            backend = self.lambda_backend(fn_account, fn_region)
            function = backend.get_function(fn_match.group("name"), fn_match.group("qualifier"))
            try:
                policy = json.loads(json.loads(backend.get_policy(fn_match.group("name"), fn_match.group("qualifier")))["Policy"])
            except LambdaClientError:
                policy = None
        except LambdaClientError as exc:
            log.error("%s: execution failed due to configuration error: Lambda function %s: %s", where, function_arn,
                      getattr(exc, "message", exc))
            return InvocationOutcome(gateway_error(*INTERNAL_ERROR))
        refusal = check_invoke_permission(policy, source_arn, api.account_id)
        if refusal:
            log.error("%s: execution failed due to configuration error: Invalid permissions on Lambda function %s: %s",
                      where, function_arn, refusal)
            return InvocationOutcome(gateway_error(*INTERNAL_ERROR))

        payload = json.dumps(event).encode()
        timeout_ms = integration.timeout_ms
        started = time.perf_counter()
        try:
            if (getattr(function, "timeout", 0) or 0) * 1000 > timeout_ms:
                # The function may outlive the integration timeout: wait for it no longer than AWS does
                # (the invocation carries on, as on AWS).
                future = self._pool().submit(self._call, function_arn, payload, fn_region, fn_account)
                try:
                    result = future.result(timeout=timeout_ms / 1000)
                except concurrent.futures.TimeoutError:
                    log.error("%s: execution failed due to a timeout error after %d ms (Lambda function %s)",
                              where, timeout_ms, function_arn)
                    return InvocationOutcome(gateway_error(*TIMED_OUT), (time.perf_counter() - started) * 1000)
            else:
                result = self._call(function_arn, payload, fn_region, fn_account)
        except Exception:
            log.exception("%s: Lambda invocation of %s failed", where, function_arn)
            return InvocationOutcome(gateway_error(*INTERNAL_ERROR), (time.perf_counter() - started) * 1000)
        integration_ms = (time.perf_counter() - started) * 1000
        return InvocationOutcome(self._map(result, where, function_arn), integration_ms)

    def _call(self, function_arn: str, payload: bytes, region: str, account_id: str) -> Any:
        return self.runtime.invoke(function_arn, payload, region=region, account_id=account_id, source="api")

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._slow_pool_lock:
            if self._slow_pool is None:
                self._slow_pool = concurrent.futures.ThreadPoolExecutor(32, thread_name_prefix="slow-invoke")
            return self._slow_pool

    @staticmethod
    def _map(result: Any, where: str, function_arn: str) -> HttpResponse:
        if result.throttled:
            # The Lambda API refused the invocation (429 TooManyRequestsException): API Gateway does not
            # pass 429 on, it answers 500 (docs.aws.amazon.com/lambda/latest/dg/services-apigateway-errors.html).
            log.error("%s: Lambda invocation failed with status: 429 (%s) for %s", where,
                      getattr(result, "throttle_reason", None) or "Rate Exceeded", function_arn)
            return gateway_error(*INTERNAL_ERROR)
        if result.function_error:
            # A timed-out function is an Unhandled function error on AWS too ("Task timed out after..."):
            # 502 when it times out before the integration does.
            log.error("%s: Lambda function %s failed (%s%s): %s", where, function_arn, result.function_error,
                      ", timed out" if result.timed_out else "", _clip(result.payload))
            return gateway_error(*FUNCTION_ERROR)
        try:
            return map_proxy_result(result.payload)
        except MalformedProxyResult as exc:
            log.error("%s: execution failed due to configuration error: Malformed Lambda proxy response from %s: %s",
                      where, function_arn, exc)
            return gateway_error(*FUNCTION_ERROR)

    def close(self) -> None:
        if self._slow_pool is not None:
            self._slow_pool.shutdown(wait=False, cancel_futures=True)


def _clip(payload: bytes, limit: int = 500) -> str:
    text = payload.decode("utf-8", errors="replace")
    return text if len(text) <= limit else text[:limit] + "..."


# --------------------------------------------------------------------------------------------
# MOCK integration (the CORS preflight pattern)
# --------------------------------------------------------------------------------------------

def _pick_template(templates: Mapping[str, str | None], content_type: str | None) -> str | None:
    if not templates:
        return None
    mime = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if mime in templates:
        return templates[mime]
    return templates.get("application/json", next(iter(templates.values())))


def mock_response(method: DeployedMethod, content_type: str | None, where: str) -> HttpResponse:
    """MOCK: the request template's statusCode selects an integration response (by selectionPattern,
    else the default one), whose static header values and body template make the answer.

    As on AWS, the integration response's status must have a method response, and a header it
    maps must be declared there (AWS refuses such a mapping at put_integration_response; moto
    stores it, so it is caught here): otherwise 500 and a log line. Templates with VTL expressions
    are not evaluated here: 500 and a log line too."""
    integration = method.integration  # a MOCK method always has one (Gateway.handle checked)
    template = _pick_template(integration.request_templates, content_type)
    status = "200"
    if template:
        if _VTL.search(template):
            log.error("%s: MOCK request template uses VTL, which the local gateway does not evaluate: %r", where, template)
            return gateway_error(*INTERNAL_ERROR)
        try:
            status = str(json.loads(template)["statusCode"])
        except (ValueError, KeyError, TypeError):
            log.error("%s: MOCK request template has no statusCode: %r", where, template)
            return gateway_error(*INTERNAL_ERROR)
    chosen = next((r for r in integration.responses if r.selection_pattern and re.fullmatch(r.selection_pattern, status)), None)
    chosen = chosen or next((r for r in integration.responses if not r.selection_pattern), None)
    if chosen is None:
        log.error("%s: execution failed due to configuration error: no integration response matches status %s "
                  "and there is no default one", where, status)
        return gateway_error(*INTERNAL_ERROR)
    declared = method.responses.get(chosen.status_code)
    if declared is None:
        log.error("%s: execution failed due to configuration error: Output mapping refers to an invalid method "
                  "response: %s", where, chosen.status_code)
        return gateway_error(*INTERNAL_ERROR)
    headers: list[tuple[str, str]] = []
    for target, source in chosen.response_parameters.items():
        if not target.startswith("method.response.header."):
            continue
        if target[len("method.response.header."):] not in declared:
            log.error("%s: execution failed due to configuration error: %s is not declared by the %s method "
                      "response (AWS refuses this mapping at put_integration_response)", where, target, chosen.status_code)
            return gateway_error(*INTERNAL_ERROR)
        if not (len(source) >= 2 and source[0] == source[-1] == "'"):
            log.error("%s: MOCK response parameter %s = %s is not a static 'value'; the local gateway maps only those",
                      where, target, source)
            return gateway_error(*INTERNAL_ERROR)
        headers.append((target[len("method.response.header."):], source[1:-1]))
    body = _pick_template(chosen.response_templates, "application/json") or ""
    if _VTL.search(body):
        log.error("%s: MOCK response template uses VTL, which the local gateway does not evaluate: %r", where, body)
        return gateway_error(*INTERNAL_ERROR)
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(int(chosen.status_code), headers, body.encode("utf-8"))


# --------------------------------------------------------------------------------------------
# Metrics: AWS/ApiGateway into moto's CloudWatch, flushed by a background thread
# --------------------------------------------------------------------------------------------

class MetricsPublisher:
    """Count, 4XXError, 5XXError, Latency and IntegrationLatency per ApiName + Stage, as API Gateway
    publishes them. `record` only appends to a deque; a thread aggregates and writes once a second."""

    NAMESPACE = "AWS/ApiGateway"

    def __init__(self, cloudwatch_backends: Any = None, interval: float = 1.0):
        self._backends = cloudwatch_backends
        self._interval = interval
        self._pending: collections.deque = collections.deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "MetricsPublisher":
        self._thread = threading.Thread(target=self._run, name="apigw-metrics", daemon=True)
        self._thread.start()
        return self

    def record(self, account_id: str, region: str, api_name: str, stage: str, status: int,
               latency_ms: float, integration_ms: float | None) -> None:
        self._pending.append((account_id, region, api_name, stage, int(time.time()), status, latency_ms, integration_ms))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def flush(self) -> None:
        batches: dict[tuple, list] = collections.defaultdict(list)
        while True:
            try:
                item = self._pending.popleft()
            except IndexError:
                break
            batches[item[:5]].append(item[5:])
        if not batches:
            return
        if self._backends is None:
            from moto.cloudwatch.models import cloudwatch_backends
            self._backends = cloudwatch_backends
        for (account_id, region, api_name, stage, second), rows in batches.items():
            try:
                self._backends[account_id][region].put_metric_data(self.NAMESPACE, _metric_data(api_name, stage, second, rows))
            except Exception:
                log.exception("could not publish %d API Gateway metric samples", len(rows))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()


def _metric_data(api_name: str, stage: str, second: int, rows: list[tuple[int, float, float | None]]) -> list[dict]:
    dimensions = [{"Name": "ApiName", "Value": api_name}, {"Name": "Stage", "Value": stage}]
    # moto stores naive UTC datetimes.
    timestamp = dt.datetime.fromtimestamp(second, dt.timezone.utc).replace(tzinfo=None)
    count = len(rows)
    errors_4xx = sum(1 for status, _, _ in rows if 400 <= status < 500)
    errors_5xx = sum(1 for status, _, _ in rows if status >= 500)
    integration = [ms for _, _, ms in rows if ms is not None]

    def datum(name: str, values: list[float], counts: list[int] | None, unit: str) -> dict:
        item = {"MetricName": name, "Dimensions": dimensions, "Timestamp": timestamp, "Unit": unit,
                "Values": [round(v, 3) for v in values]}
        if counts is not None:
            item["Counts"] = counts
        return item

    data = [
        datum("Count", [1], [count], "Count"),
        datum("4XXError", [0, 1], [count - errors_4xx, errors_4xx], "Count"),
        datum("5XXError", [0, 1], [count - errors_5xx, errors_5xx], "Count"),
        datum("Latency", [ms for _, ms, _ in rows], None, "Milliseconds"),
    ]
    if integration:
        data.append(datum("IntegrationLatency", integration, None, "Milliseconds"))
    return data


# --------------------------------------------------------------------------------------------
# The gateway WSGI app
# --------------------------------------------------------------------------------------------

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


def _environ_headers(environ: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    raw = environ.get("localaws.headers")
    if raw is not None:  # our HTTP server keeps the header names as sent, and repeats
        return tuple(raw)
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append(("-".join(p.capitalize() for p in key[5:].split("_")), value))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers.append(("-".join(p.capitalize() for p in key.split("_")), value))
    return tuple(headers)


def read_body(environ: Mapping[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


class Gateway:
    """WSGI app serving invoke URLs: resolve stage -> match route -> build event -> invoke -> map response."""

    def __init__(self, snapshots: DeploymentSnapshots, invoker: LambdaProxyInvoker, metrics: MetricsPublisher | None = None):
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
            headers=_environ_headers(environ), body=read_body(environ),
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


_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently", 302: "Found",
            304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 422: "Unprocessable Entity", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
