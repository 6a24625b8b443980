"""What an AWS API request asks for, in IAM's terms: who signed it, the action, the resources.

The caller is the access key in the SigV4 credential scope
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html:
Credential=<key>/<date>/<region>/<service>/aws4_request). The action is `<prefix>:<operation>`:
the operation comes from X-Amz-Target (JSON protocols: DynamoDB, Logs), the Action parameter (query
protocols: SNS, CloudWatch, IAM, STS) or, for REST protocols, the method and path matched against
botocore's service model (Lambda). Resources are the ARNs the Service Authorization Reference names
for the operation, for the operations the tutorial's services have
(https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html: a
table, or table/<t>/index/<i> for a Query or Scan of an index); an operation with no
resource-level permissions is checked against "*".
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import parse_qs, unquote

# SigV4 signing names that differ from the IAM service prefix.
_IAM_PREFIX = {"monitoring": "cloudwatch"}
# Operations whose IAM action has another name
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html).
_IAM_ACTION = {"lambda:Invoke": "lambda:InvokeFunction", "lambda:InvokeWithResponseStream": "lambda:InvokeFunction",
               "lambda:InvokeAsync": "lambda:InvokeFunction"}
_CREDENTIAL = re.compile(r"Credential=([^/\s,]+)/\d{8}/([^/\s,]+)/([^/\s,]+)/aws4_request")


@dataclass(frozen=True)
class Signer:
    access_key: str
    region: str
    service: str            # the signing name: dynamodb, logs, monitoring, lambda ...
    token: str | None       # X-Amz-Security-Token


@dataclass(frozen=True)
class Asked:
    protocol: str           # json | query | rest: how a refusal must be written
    service: str            # the signing name
    action: str             # dynamodb:DeleteItem
    resources: tuple[str, ...]


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


def asked(environ: Mapping, body: bytes, who: Signer, account: str) -> Asked:
    prefix = _IAM_PREFIX.get(who.service, who.service)
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        operation = target.rpartition(".")[2]
        params = _json(body)
        protocol = "json"
    else:
        params = _form(environ, body)
        operation = params.get("Action")
        protocol = "query"
        if operation is None:
            protocol = "rest"
            if who.service == "apigateway":  # API Gateway's IAM actions are HTTP methods on resource paths
                path = environ.get("PATH_INFO", "")
                return Asked(protocol, who.service, f"apigateway:{environ.get('REQUEST_METHOD', 'GET')}",
                             (f"arn:{_partition(who.region)}:apigateway:{who.region}::{path}",))
            operation, params = rest_operation(who.service, environ.get("REQUEST_METHOD", "GET"),
                                               environ.get("PATH_INFO", ""))
    action = f"{prefix}:{operation or 'Unknown'}"
    action = _IAM_ACTION.get(action, action)
    return Asked(protocol, who.service, action, _resources(prefix, operation or "", params, who.region, account))


def _partition(region: str) -> str:
    return "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"


def _json(body: bytes) -> dict:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _form(environ: Mapping, body: bytes) -> dict[str, str]:
    pairs = parse_qs(environ.get("QUERY_STRING", ""))
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        pairs.update(parse_qs(body.decode("utf-8", "replace")))
    return {key: values[0] for key, values in pairs.items() if values}


def _resources(prefix: str, operation: str, params: dict, region: str, account: str) -> tuple[str, ...]:
    arn = f"arn:{_partition(region)}"
    if prefix == "dynamodb":
        table = f"{arn}:dynamodb:{region}:{account}:table/"
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return tuple(table + name for name in sorted(params.get("RequestItems") or {}))
        if operation in ("TransactGetItems", "TransactWriteItems"):
            names = {part.get("TableName") for item in params.get("TransactItems") or [] if isinstance(item, dict)
                     for part in item.values() if isinstance(part, dict)}
            return tuple(table + name for name in sorted(n for n in names if isinstance(n, str)))
        name = params.get("TableName")
        if isinstance(name, str):
            if name.startswith("arn:"):
                return (name,)
            index = params.get("IndexName")
            return (table + name + (f"/index/{index}" if isinstance(index, str) and operation in ("Query", "Scan")
                                    else ""),)
    elif prefix == "logs":
        group = params.get("logGroupName")
        if isinstance(group, str):
            stream = params.get("logStreamName")
            return (f"{arn}:logs:{region}:{account}:log-group:{group}"
                    + (f":log-stream:{stream}" if isinstance(stream, str) else ""),)
    elif prefix == "sns":
        topic = params.get("TopicArn") or params.get("TargetArn")
        if topic:
            return (topic,)
    elif prefix == "cloudwatch":
        names = [value for key, value in params.items() if key == "AlarmName" or key.startswith("AlarmNames.member.")]
        if names:
            return tuple(f"{arn}:cloudwatch:{region}:{account}:alarm:{name}" for name in sorted(names))
    elif prefix == "lambda":
        name = params.get("FunctionName")
        if name:
            return (name if name.startswith("arn:") else f"{arn}:lambda:{region}:{account}:function:{name}",)
    elif prefix == "iam":
        if params.get("RoleName"):
            return (f"{arn}:iam::{account}:role/{params['RoleName']}",)
        if params.get("PolicyArn"):
            return (params["PolicyArn"],)
    return ("*",)


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
