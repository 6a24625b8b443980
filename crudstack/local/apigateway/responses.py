"""HTTP answers: the one type every layer returns, and the answers API Gateway makes itself."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes



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


_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently", 302: "Found",
            304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 422: "Unprocessable Entity", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
