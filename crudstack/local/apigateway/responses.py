"""HTTP answers: the one type every layer returns, and the answers API Gateway makes itself."""

from __future__ import annotations

import json
from dataclasses import dataclass

from crudstack.local.apigateway.exceptions import Refused


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    # Set on the answers API Gateway makes itself: the gateway response type a customization of
    # which applies (gatewayresponses.py), and $context.error.message.
    response_type: str | None = None
    message: str | None = None


_ERROR_TYPES = {"MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException"}


def gateway_error(status: int, body: bytes, response_type: str = "DEFAULT_4XX", error_type: str | None = None) -> HttpResponse:
    """An answer API Gateway makes itself, before any gateway response customization."""
    headers = [("Content-Type", "application/json")]
    error_type = error_type or _ERROR_TYPES.get(response_type) or ("InternalServerErrorException" if status in (500, 502) else None)
    if error_type:
        headers.append(("x-amzn-ErrorType", error_type))
    message = next(iter(json.loads(body).values()), None) if body else None
    return HttpResponse(status, headers, body, response_type, message)


def refusal(error: Refused) -> HttpResponse:
    """The answer to a request the gateway refused (authentication, API key, throttling, quota)."""
    body = json.dumps({error.body_key: error.message}, separators=(",", ":")).encode()
    return gateway_error(error.status, body, error.response_type, error.error_type)


# The bodies byte for byte as API Gateway sends them (the 403 one has no space after the colon), and
# the gateway response type whose customization applies to each
# (docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html).
MISSING_TOKEN = (403, b'{"message":"Missing Authentication Token"}', "MISSING_AUTHENTICATION_TOKEN")
# The Lambda API refused the invocation or the method is misconfigured: "Execution failed due to configuration error".
INTERNAL_ERROR = (500, b'{"message": "Internal server error"}', "API_CONFIGURATION_ERROR")
# The function failed or answered malformed: no type of its own, DEFAULT_5XX applies.
FUNCTION_ERROR = (502, b'{"message": "Internal server error"}', "DEFAULT_5XX")
TIMED_OUT = (504, b'{"message": "Endpoint request timed out"}', "INTEGRATION_TIMEOUT")
# The event is over the Lambda API's synchronous payload quota (6 MB; Lambda refuses it with 413
# RequestEntityTooLargeException, docs.aws.amazon.com/lambda/latest/api/API_Invoke.html "Errors").
# AWS does not document what API Gateway answers then; the local gateway passes Lambda's 413 on as its
# own REQUEST_TOO_LARGE (the type of its 10 MB payload limit), so a body too large is a 4xx at every size
# and the items API's 413 (README) holds between 6 and 10 MB too.
EVENT_TOO_LARGE = (413, b'{"message": "Request body too large: the Lambda event it makes is over 6 MB (6291456 bytes). '
                        b'Send a smaller body."}', "REQUEST_TOO_LARGE")


_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently", 302: "Found",
            304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 422: "Unprocessable Entity", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
