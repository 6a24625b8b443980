"""Step 4, the console's "Enable CORS": what each resource's OPTIONS method (a MOCK integration) answers
a browser's preflight, and the same CORS headers on API Gateway's own error answers (the gateway
responses DEFAULT_4XX and DEFAULT_5XX), so a page sees a 403, 429 or 5xx rather than an opaque CORS
failure. steps/api.py makes the OPTIONS methods; this says what they and the gateway responses hold."""

from __future__ import annotations

from crudstack.calls import Call, Ref
from crudstack.plan import Action, Context

PREFLIGHT = "CORS preflight"
# What the console's "Enable CORS" allows by default, plus If-Match (our PUT and DELETE take one).
CORS_ALLOW_HEADERS = "Content-Type,If-Match,Authorization,X-Amz-Date,X-Api-Key,X-Amz-Security-Token"
MOCK_REQUEST_TEMPLATES = {"application/json": '{"statusCode": 200}'}
# The gateway responses we set: every 4xx and 5xx API Gateway makes itself falls back on these two unless a
# more specific type is customised ("Gateway response types",
# https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html).
GATEWAY_RESPONSE_TYPES = ("DEFAULT_4XX", "DEFAULT_5XX")
# The body AWS gives both by default (same page): kept, so only the headers change.
GATEWAY_RESPONSE_TEMPLATES = {"application/json": '{"message":$context.error.messageString}'}
GATEWAY_RESPONSE = "gateway response"


def gateway_response_parameters(cors_headers: dict[str, str]) -> dict[str, str]:
    """The headers of a gateway response as static values: 'value' in single quotes, as PutGatewayResponse's
    responseParameters take them (https://docs.aws.amazon.com/apigateway/latest/developerguide/
    api-gateway-gatewayResponse-definition.html)."""
    return {f"gatewayresponse.header.{name}": f"'{value}'" for name, value in sorted(cors_headers.items())}


def gateway_response_shape(response: dict | None) -> dict:
    response = response or {}
    return {"headers": dict(sorted((response.get("responseParameters") or {}).items())),
            "templates": dict(sorted((response.get("responseTemplates") or {}).items()))}


def current_gateway_responses(ctx: Context, api_id: str) -> dict[str, dict]:
    """responseType -> the response, for those customised (AWS lists every type, defaults included)."""
    apigw = ctx.aws.client("apigateway")
    return {r["responseType"]: r for r in ctx.aws.paginate(apigw, "get_gateway_responses", "items", restApiId=api_id)
            if not r.get("defaultResponse")}


def gateway_responses_fingerprint(responses: list[dict]) -> list:
    """What a deployment takes of the gateway responses: AWS applies a changed one only once the API is
    deployed again ("Set up a gateway response ... redeploy the API", same definition page)."""
    return sorted([r["responseType"], r.get("statusCode"), gateway_response_shape(r)] for r in responses
                  if not r.get("defaultResponse"))


def plan_gateway_responses(ctx: Context, cors_headers: dict[str, str], current: dict[str, dict]) -> list[tuple[str, Action, dict, Call]]:
    """(type, action, diffs, the put) for each gateway response that is not as config.yaml asks."""
    wanted = {"headers": gateway_response_parameters(cors_headers), "templates": GATEWAY_RESPONSE_TEMPLATES}
    planned = []
    for kind in GATEWAY_RESPONSE_TYPES:
        got = current.get(kind)
        shape = gateway_response_shape(got)
        if got is not None and shape == wanted:
            continue
        diffs = {}
        if got is not None:
            for key in sorted(set(shape["headers"]) | set(wanted["headers"])):
                if shape["headers"].get(key) != wanted["headers"].get(key):
                    diffs[key.removeprefix("gatewayresponse.header.")] = (shape["headers"].get(key), wanted["headers"].get(key))
            if shape["templates"] != wanted["templates"]:
                diffs["body"] = (shape["templates"], wanted["templates"])
        put = Call("apigateway", "put_gateway_response", {"restApiId": Ref("api_id"), "responseType": kind,
                                                          "responseParameters": wanted["headers"],
                                                          "responseTemplates": dict(GATEWAY_RESPONSE_TEMPLATES)})
        planned.append((kind, Action.CREATE if got is None else Action.UPDATE, diffs, put))
    return planned


def preflight_headers(ctx: Context, methods: list[str]) -> dict[str, str]:
    """The headers the OPTIONS answer of a resource serving `methods` carries.

    A MOCK integration answers with static values, so it cannot echo one of several allowed
    origins per request: with one origin configured it names that origin; with several it
    allows "*", and the functions refuse (403) a request from an origin not listed.
    """
    cors = ctx.config.api.cors
    origins = cors.allowed_origins
    return {
        "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
        "Access-Control-Allow-Methods": ",".join(sorted(methods) + ["OPTIONS"]),
        "Access-Control-Allow-Origin": origins[0] if len(origins) == 1 else "*",
        "Access-Control-Max-Age": str(cors.max_age_s),
    }


def gateway_response_headers(ctx: Context) -> dict[str, str]:
    """The CORS headers of API Gateway's own error answers: the preflight's, for every method of the API
    (Max-Age belongs to a preflight answer only)."""
    methods = sorted({fn.method for fn in ctx.config.lambda_.functions.values()})
    return {k: v for k, v in preflight_headers(ctx, methods).items() if k != "Access-Control-Max-Age"}


def wanted_preflights(ctx: Context) -> dict[str, dict[str, str]]:
    """path -> preflight headers, for each resource that serves a route."""
    methods: dict[str, list[str]] = {}
    for fn in ctx.config.lambda_.functions.values():
        methods.setdefault(fn.path, []).append(fn.method)
    return {path: preflight_headers(ctx, found) for path, found in sorted(methods.items())}


def preflight_shape(method: dict | None) -> dict:
    """An OPTIONS method as get_resources(embed=["methods"]) shows it, reduced to what we set."""
    method = method or {}
    integration = method.get("methodIntegration") or {}
    method_response = (method.get("methodResponses") or {}).get("200") or {}
    integration_response = (integration.get("integrationResponses") or {}).get("200") or {}
    templates = integration_response.get("responseTemplates") or {}
    return {
        "authorization": method.get("authorizationType"),
        "integration": integration.get("type"),
        "request_templates": integration.get("requestTemplates") or {},
        "declared_headers": sorted(method_response.get("responseParameters") or {}),
        "headers": dict(sorted((integration_response.get("responseParameters") or {}).items())),
        # AWS keeps the empty body template as "", moto as None.
        "body": {mime: body or "" for mime, body in templates.items()},
    }


def wanted_preflight_shape(headers: dict[str, str]) -> dict:
    return {
        "authorization": "NONE",
        "integration": "MOCK",
        "request_templates": MOCK_REQUEST_TEMPLATES,
        "declared_headers": sorted(f"method.response.header.{name}" for name in headers),
        "headers": {f"method.response.header.{name}": f"'{value}'" for name, value in sorted(headers.items())},
        "body": {"application/json": ""},
    }
