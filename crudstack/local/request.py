"""What an AWS API request is, worked out once at the edge and read by every layer after it.

The dispatcher (server/dispatch.py) calls `understand` on each control-plane request, before any
layer runs: the body is read once, and the answer, a small frozen `AwsRequest`, rides in the WSGI
environ. The access check (iam/), the journal (state/durable.py), the DynamoDB fast path and its lock
(dynamodb/), the deployment recorder (apigateway/) and the caches (server/serve.py) all read it with
`of(environ)`; a layer used on its own (a unit test) gets it worked out on first use.

- The signer is the access key in the SigV4 credential scope
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html:
  Credential=<key>/<date>/<region>/<service>/aws4_request), from the Authorization header or a
  presigned URL's X-Amz-Credential.
- The operation comes from X-Amz-Target (JSON protocols: DynamoDB, Logs), the path of a Smithy RPC v2
  call (/service/<service>/operation/<Action>: CloudWatch), the Action parameter (query protocols: SNS,
  IAM, STS) or, for REST protocols (Lambda, API Gateway), the method and path matched against
  botocore's model of the service (iam/requests.py rest_operation).
- A write is an operation whose name does not start with one of crudstack.aws.READ_PREFIXES (the
  prefixes AWS names its read-only operations with; the tool's own retry logic uses the same list);
  a REST call without a known operation writes unless its method is safe (GET, HEAD, OPTIONS: RFC 9110
  section 9.2.1). Journaling a read costs a record, missing a write loses data: unknown means write.
"""

from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import parse_qs, unquote

from crudstack.aws import READ_PREFIXES
from crudstack.local.wsgi import read_body

ENVIRON_KEY = "crudstack.request"
_CREDENTIAL = re.compile(r"Credential=([^/\s,]+)/\d{8}/([^/\s,]+)/([^/\s,]+)/aws4_request")
# JSON-protocol target prefixes of the services signed as "dynamodb" (botocore/data/dynamodb/2012-08-10 and
# dynamodbstreams/2012-08-10 service-2.json, "targetPrefix" and "signingName"): the target names the API.
_TARGET_SERVICE = {"DynamoDB_20120810": "dynamodb", "DynamoDBStreams_20120810": "dynamodbstreams"}
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class Signer:
    access_key: str
    region: str
    service: str            # the signing name: dynamodb, logs, monitoring, lambda ...
    token: str | None       # X-Amz-Security-Token


@dataclass(frozen=True)
class AwsRequest:
    service: str | None     # the signing name (or the JSON target's service): dynamodb, lambda, monitoring ...
    operation: str | None   # PutItem, CreateTopic, GetFunction; None when nothing names it
    write: bool             # journaled, and empties the caches
    protocol: str           # json | query | rest | rpcv2: how an answer (a refusal) must be written
    signer: Signer | None   # None: unsigned
    body: bytes = field(default=b"", repr=False)

    @property
    def access_key(self) -> str | None:
        return self.signer.access_key if self.signer else None

    @property
    def region(self) -> str | None:
        return self.signer.region if self.signer else None

    @property
    def dynamodb(self) -> bool:
        """A DynamoDB JSON call (what the DynamoDB fast path and item lock take)."""
        return self.service == "dynamodb" and self.protocol == "json"


def signer(environ: Mapping) -> Signer | None:
    auth = environ.get("HTTP_AUTHORIZATION")
    if auth:
        found = _CREDENTIAL.search(auth)
        token = environ.get("HTTP_X_AMZ_SECURITY_TOKEN")
    else:  # a presigned URL
        query = parse_qs(environ.get("QUERY_STRING", ""))
        found = _CREDENTIAL.search("Credential=" + unquote(query.get("X-Amz-Credential", [""])[0]))
        token = query.get("X-Amz-Security-Token", [None])[0]
    if not found:
        return None
    return Signer(found[1], found[2], found[3], token)


def understand(environ: dict[str, Any]) -> AwsRequest:
    """Read the body once (wsgi.input is rewound for the layers after), work the request out, keep it in environ."""
    body = read_body(environ)
    environ["wsgi.input"] = io.BytesIO(body)
    request = parse(environ, body)
    environ[ENVIRON_KEY] = request
    return request


def of(environ: dict[str, Any]) -> AwsRequest:
    """The request as the edge understood it (or understood now, for a layer used alone)."""
    request = environ.get(ENVIRON_KEY)
    return request if request is not None else understand(environ)


def parse(environ: Mapping[str, Any], body: bytes) -> AwsRequest:
    who = signer(environ)
    service = who.service if who else None
    method = environ.get("REQUEST_METHOD", "GET")
    target = environ.get("HTTP_X_AMZ_TARGET")
    path = environ.get("PATH_INFO", "")
    if target:  # JSON protocol: "DynamoDB_20120810.PutItem"
        prefix, _, operation = target.rpartition(".")
        return AwsRequest(_TARGET_SERVICE.get(prefix, service), operation, _writes(operation), "json", who, body)
    if "/operation/" in path:  # Smithy RPC v2 (CloudWatch): /service/<service>/operation/<Action>
        operation = path.rsplit("/", 1)[-1]
        return AwsRequest(service, operation, _writes(operation), "rpcv2", who, body)
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if not action and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):  # query protocol
        action = parse_qs(body.decode("utf-8", errors="replace")).get("Action")
    if action:
        return AwsRequest(service, action[0], _writes(action[0]), "query", who, body)
    operation = None
    if service is not None and service != "apigateway":  # API Gateway's IAM actions are methods on paths
        operation = rest_operation(service, method, path)[0]
    return AwsRequest(service, operation, method not in _SAFE_METHODS, "rest", who, body)


def _writes(operation: str) -> bool:
    return not operation.startswith(READ_PREFIXES)


def is_write(environ: Mapping[str, Any], body: bytes) -> bool:
    return parse(environ, body).write


def rest_operation(service: str, method: str, path: str) -> tuple[str | None, dict[str, str]]:
    """The operation of a REST request, and its path parameters, from botocore's model of the service."""
    for route_method, pattern, name in _rest_routes(service):
        if route_method == method:
            found = pattern.fullmatch(path)
            if found:
                return name, {key: unquote(value) for key, value in found.groupdict().items()}
    return None, {}


@functools.lru_cache(maxsize=16)
def _rest_routes(service: str) -> list[tuple[str, re.Pattern, str]]:
    import botocore.session

    try:
        model: Any = botocore.session.get_session().get_service_model(service)
    except Exception:
        return []
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        uri = http.get("requestUri", "/").split("?")[0]
        regex = re.sub(r"\\\{([A-Za-z0-9_]+)(\\\+)?\\\}",
                       lambda m: f"(?P<{m[1]}>.+)" if m[2] else f"(?P<{m[1]}>[^/]+)", re.escape(uri))
        routes.append((http.get("method", "POST"), re.compile(regex + "/?"), name, len(re.sub(r"\{[^}]*\}", "", uri))))
    routes.sort(key=lambda route: -route[3])  # the most literal route first
    return [(method, pattern, name) for method, pattern, name, _ in routes]
