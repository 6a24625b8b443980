"""What an AWS API request asks for, in IAM's terms: who signed it, the action, the resources.

Who signed it and which operation it is were worked out at the edge (crudstack/local/request.py).
The action is `<prefix>:<operation>`. Resources are the ARNs the Service Authorization Reference names
for the operation, for the operations the tutorial's services have
(https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html: a
table, or table/<t>/index/<i> for a Query or Scan of an index); an operation with no
resource-level permissions is checked against "*".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import parse_qs

from crudstack.aws import partition_of_region
from crudstack.local.request import ENVIRON_KEY, Signer, parse, rest_operation, signer

__all__ = ["Asked", "Signer", "asked", "rest_operation", "signer"]

# SigV4 signing names that differ from the IAM service prefix.
_IAM_PREFIX = {"monitoring": "cloudwatch"}
# Operations whose IAM action has another name
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html).
_IAM_ACTION = {"lambda:Invoke": "lambda:InvokeFunction", "lambda:InvokeWithResponseStream": "lambda:InvokeFunction",
               "lambda:InvokeAsync": "lambda:InvokeFunction"}


@dataclass(frozen=True)
class Asked:
    protocol: str           # json | query | rest: how a refusal must be written
    service: str            # the signing name
    action: str             # dynamodb:DeleteItem
    resources: tuple[str, ...]


def asked(environ: Mapping, body: bytes, who: Signer, account: str) -> Asked:
    prefix = _IAM_PREFIX.get(who.service, who.service)
    request = environ.get(ENVIRON_KEY) or parse(environ, body)
    operation, protocol = request.operation, request.protocol
    if protocol == "json":
        params = _json(body)
    elif protocol == "query":
        params = _form(environ, body)
    elif protocol == "rest" and who.service == "apigateway":  # API Gateway's IAM actions are HTTP methods on paths
        path = environ.get("PATH_INFO", "")
        return Asked(protocol, who.service, f"apigateway:{environ.get('REQUEST_METHOD', 'GET')}",
                     (f"arn:{partition_of_region(who.region)}:apigateway:{who.region}::{path}",))
    elif protocol == "rest":
        operation, params = rest_operation(who.service, environ.get("REQUEST_METHOD", "GET"),
                                           environ.get("PATH_INFO", ""))
    else:
        params = {}
    action = f"{prefix}:{operation or 'Unknown'}"
    action = _IAM_ACTION.get(action, action)
    return Asked(protocol, who.service, action, _resources(prefix, operation or "", params, who.region, account))


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
    arn = f"arn:{partition_of_region(region)}"
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


