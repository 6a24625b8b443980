"""The event a Lambda function receives from a REST API "Lambda proxy integration"."""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import parse_qsl

from crudstack.local.apigateway.models import StageTarget
from crudstack.local.apigateway.routing import RouteMatch

_TEXT_TYPES = re.compile(r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded)|[^;]*\+(json|xml))", re.I)


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
    raw_uri: str = ""                      # the request target as sent, still percent-encoded (what SigV4 signs)


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
    first: dict[str, str] = {}  # lower-case name -> the first value sent
    for name, value in request.headers:
        headers[name] = value  # a repeated header: the last value, as AWS
        multi_headers.setdefault(name, []).append(value)
        first.setdefault(name.lower(), value)
    host = first.get("host", "")
    # Headers API Gateway adds on its way to the integration.
    for name, value in (("X-Amzn-Trace-Id", ids.trace_id), ("X-Forwarded-For", request.source_ip),
                        ("X-Forwarded-Port", host.rpartition(":")[2] if ":" in host else "80"),
                        ("X-Forwarded-Proto", "http")):
        if name.lower() not in first:
            headers[name] = value
            multi_headers[name] = [value]

    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for key, value in parse_qsl(request.query_string, keep_blank_values=True):
        query[key] = value  # repeated key: the last value, as AWS
        multi_query.setdefault(key, []).append(value)

    content_type = first.get("content-type")
    body: str | None = None
    is_base64 = False
    if request.body:
        if _is_binary(content_type, request.body, target.api.binary_media_types):
            body, is_base64 = base64.b64encode(request.body).decode("ascii"), True
        else:
            body = request.body.decode("utf-8", errors="replace")

    method = route.method
    request_time = dt.datetime.fromtimestamp(ids.epoch_ms / 1000, dt.timezone.utc)
    user_agent = first.get("user-agent")
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
