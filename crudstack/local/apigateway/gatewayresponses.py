"""Gateway responses: an API's customizations (PutGatewayResponse) of the answers API Gateway makes itself.

For an answer of type T (MISSING_AUTHENTICATION_TOKEN, INVALID_API_KEY, THROTTLED ...) the deployed
customization of T applies if there is one; otherwise that of DEFAULT_4XX or DEFAULT_5XX (by T's
status), whose status code, if it sets one, replaces T's; otherwise the built-in answer stands
(docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html: "If the
response type is unspecified, this response defaults to the DEFAULT_4XX type"; the same precedence
as LocalStack's get_gateway_response_or_default, localstack/services/apigateway/next_gen/execute_api/
gateway_response.py).

A customization's responseParameters map `gatewayresponse.header.X` from a static 'value', a request
header, query string or path parameter (method.request.header.Y, method.request.querystring.q,
method.request.path.p) or a stage variable (stageVariables.v); its responseTemplates body may use
$context.error.message, $context.error.messageString (the message as a quoted JSON string),
$context.error.responseType, a few other $context variables and $stageVariables.v; the built-in body is
{"message":$context.error.messageString}
(docs.aws.amazon.com/apigateway/latest/developerguide/set-up-gateway-response-using-the-console.html).
Other VTL is not evaluated: a template using it is sent as written, and a line is logged.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Mapping
from urllib.parse import parse_qsl

from crudstack.local.apigateway.events import GatewayRequest, RequestIds
from crudstack.local.apigateway.models import DeployedGatewayResponse, StageTarget
from crudstack.local.apigateway.responses import HttpResponse

log = logging.getLogger(__name__)

_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z0-9_.]+)\}|(?P<bare>(?:context|stageVariables)(?:\.[A-Za-z0-9_]+)+))")
_DIRECTIVE = re.compile(r"#(?:set|if|elseif|else|end|foreach)\b")


def customize(response: HttpResponse, target: StageTarget, request: GatewayRequest, ids: RequestIds,
              path_parameters: Mapping[str, str] | None = None, resource_path: str | None = None) -> HttpResponse:
    """The gateway's own answer `response` with the API's deployed customization applied, if any."""
    api = target.api
    response_type = response.response_type
    if not api.gateway_responses or response_type is None:
        return response
    family = "DEFAULT_5XX" if response.status >= 500 else "DEFAULT_4XX"
    specific = api.gateway_response(response_type) if response_type != family else None
    chosen = specific or api.gateway_response(family)
    if chosen is None:
        return response
    status = chosen.status_code or response.status

    variables = _variables(response, target, request, ids, resource_path)
    content_type, template = _pick_template(chosen.templates)
    if template:
        if _DIRECTIVE.search(template):
            log.warning("%s/%s: the %s gateway response template uses VTL directives, which the local gateway "
                        "does not evaluate; it is sent as written", api.api_id, target.stage, chosen.response_type)
        body = _VARIABLE.sub(lambda m: variables.get(m.group("braced") or m.group("bare"), m.group(0)), template).encode()
    else:
        content_type, body = "application/json", response.body
    headers = [(name, value) for name, value in response.headers if name.lower() != "content-type"]
    headers.insert(0, ("Content-Type", content_type))
    mapped = _headers(chosen, request, path_parameters or {}, target.stage_variables)
    mapped_names = {name.lower() for name, _ in mapped}
    headers = [(name, value) for name, value in headers if name.lower() not in mapped_names] + mapped
    return HttpResponse(status, headers, body, response_type, response.message)


def _pick_template(templates: Mapping[str, str]) -> tuple[str, str | None]:
    if not templates:
        return "application/json", None
    if "application/json" in templates:
        return "application/json", templates["application/json"]
    content_type = next(iter(templates))
    return content_type, templates[content_type]


def _variables(response: HttpResponse, target: StageTarget, request: GatewayRequest, ids: RequestIds,
               resource_path: str | None) -> dict[str, str]:
    message = response.message or ""
    variables = {
        "context.error.message": message,
        "context.error.messageString": json.dumps(message),
        "context.error.responseType": response.response_type or "",
        "context.requestId": ids.request_id,
        "context.extendedRequestId": ids.extended_request_id,
        "context.apiId": request.api_id,
        "context.stage": target.stage,
        "context.httpMethod": request.http_method,
        "context.path": request.url_path or f"/{target.stage}{request.path}",
        "context.resourcePath": resource_path or "",
        "context.accountId": target.api.account_id,
        "context.identity.sourceIp": request.source_ip,
    }
    variables.update({f"stageVariables.{k}": v for k, v in target.stage_variables.items()})
    return variables


def _headers(chosen: DeployedGatewayResponse, request: GatewayRequest, path_parameters: Mapping[str, str],
             stage_variables: Mapping[str, str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    query: dict[str, str] | None = None
    for target_name, source in chosen.parameters.items():
        if not target_name.startswith("gatewayresponse.header."):
            continue
        name = target_name[len("gatewayresponse.header."):]
        value: str | None = None
        if len(source) >= 2 and source[0] == source[-1] == "'":
            value = source[1:-1]
        elif source.startswith("method.request.header."):
            wanted = source[len("method.request.header."):].lower()
            value = next((v for k, v in request.headers if k.lower() == wanted), None)
        elif source.startswith("method.request.querystring."):
            if query is None:
                query = dict(parse_qsl(request.query_string, keep_blank_values=True))
            value = query.get(source[len("method.request.querystring."):])
        elif source.startswith("method.request.path."):
            value = path_parameters.get(source[len("method.request.path."):])
        elif source.startswith("stageVariables."):
            value = stage_variables.get(source[len("stageVariables."):])
        else:
            log.warning("gateway response %s: header %s maps %r, which the local gateway does not resolve",
                        chosen.response_type, name, source)
        if value is not None:  # a mapped request value that is absent adds no header
            out.append((name, value))
    return out
