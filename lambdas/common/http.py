"""The HTTP side of the items API: errors, responses, CORS and request parsing.

Nothing here touches DynamoDB, so every rule can be tested with a plain event.

Exceptions (each answers with JSON ``{"message": ..., "errors": [...]}``)::

    ApiError                  -> 500
     +-- BadRequest           -> 400  bad JSON, bad field, bad path id, bad query, bad If-Match
     +-- OriginNotAllowed     -> 403  an Origin header outside config.yaml's api.cors.allowed_origins
     +-- NotFound             -> 404
     +-- PreconditionFailed   -> 412  If-Match names another version
     +-- PayloadTooLarge      -> 413  body over 64 KiB
     +-- UnsupportedMediaType -> 415  a body that is not application/json
"""
import base64
import binascii
import functools
import json
import logging
import os
import sys
from decimal import Decimal

# In Lambda the runtime already gives the root logger a handler (to CloudWatch
# Logs), so basicConfig does nothing there. In a plain process (a local
# runtime, a script) it sends the logs to stdout, which is what gets collected.
logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(name)s %(message)s")
logging.getLogger().setLevel(logging.INFO)
logger = logging.getLogger("items-api")

MAX_BODY_BYTES = 64 * 1024
# API Gateway hands a Lambda proxy integration a body whose Content-Type is not in the API's binaryMediaTypes
# as text, "a UTF-8-encoded JSON string" (docs.aws.amazon.com/apigateway/latest/developerguide/
# api-gateway-payload-encodings.html), with isBase64Encoded false; bytes that are not UTF-8 do not survive that
# (uploads sent without binaryMediaTypes arrive corrupted: HHS/simpler-grants-gov#7648), and the local gateway
# puts U+FFFD in their place. The function never sees the bytes, so a raw U+FFFD in such a body is taken for
# them: storing it would turn a client's bad bytes into a different, valid string.
REPLACEMENT_CHARACTER = "\ufffd"
# Headers a browser page may read from our answers (it sees only "simple" ones otherwise):
# the ETag to send back in If-Match, the Location of a new item.
EXPOSED_HEADERS = "ETag, Location"


def allowed_origins() -> tuple[str, ...]:
    """config.yaml's api.cors.allowed_origins, as the functions step put it in ALLOWED_ORIGINS."""
    raw = os.environ.get("ALLOWED_ORIGINS", "*")
    return tuple(origin.strip() for origin in raw.split(",") if origin.strip()) or ("*",)


ALLOWED_ORIGINS = allowed_origins()


# --- Errors -------------------------------------------------------------------


def problem(location: str, field: str, message: str) -> dict:
    """One entry of an error's "errors": where (body, path, query, header), which field, what is wrong."""
    return {"location": location, "field": field, "message": message}


class ApiError(Exception):
    status = 500

    def __init__(self, message: str, errors=(), headers=None):
        super().__init__(message)
        self.message = message
        self.errors = list(errors)
        self.headers = dict(headers or {})


class BadRequest(ApiError):
    status = 400


class OriginNotAllowed(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class PreconditionFailed(ApiError):
    status = 412


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


def invalid(location: str, problems: list) -> BadRequest:
    """A 400 listing every problem found, so a client fixes its request in one go."""
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return BadRequest(f"Invalid request {location}: {summary}", problems)


# --- Responses ----------------------------------------------------------------


class ItemEncoder(json.JSONEncoder):
    """JSON for what boto3 reads from DynamoDB: every number arrives as a Decimal.

    A whole one becomes an int, exact at any size. Any other becomes the nearest
    float: JSON clients read numbers as IEEE doubles anyway; when digits are lost
    we log it rather than drop them silently.
    """

    def default(self, o):
        if isinstance(o, Decimal):
            if o == o.to_integral_value():
                return int(o)
            number = float(o)
            if Decimal(repr(number)) != o:
                logger.warning("Number %s is sent as %r: JSON cannot carry more precision", o, number)
            return number
        return super().default(o)


def response(status: int, body, headers=None) -> dict:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps(body, cls=ItemEncoder),
    }


def error_response(exc: ApiError) -> dict:
    return response(exc.status, {"message": exc.message, "errors": exc.errors}, exc.headers)


# --- Requests: headers, CORS --------------------------------------------------


def header(event: dict, name: str):
    """A request header's value, whatever its case (API Gateway passes names as the client sent them)."""
    wanted = name.lower()
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == wanted:
            return value
    return None


def cors_headers(origin) -> dict:
    """The CORS headers for an answer to a request from ``origin`` (None: not a browser's cross-origin call)."""
    if "*" in ALLOWED_ORIGINS:
        return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSED_HEADERS}
    # The answer depends on the Origin header: caches must keep one copy per origin.
    headers = {"Vary": "Origin"}
    if origin in ALLOWED_ORIGINS:
        headers.update({"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": EXPOSED_HEADERS})
    return headers


def check_origin(origin) -> None:
    """Refuse a request from a page whose origin config.yaml does not allow.

    The preflight is a static MOCK answer, which cannot pick one of several allowed
    origins per request: with more than one, it allows "*", and this check is what
    keeps another site's page from changing items (the browser would only hide the answer).
    """
    if origin is not None and "*" not in ALLOWED_ORIGINS and origin not in ALLOWED_ORIGINS:
        raise OriginNotAllowed(
            f"Origin {origin} is not allowed to call this API; add it to api.cors.allowed_origins in config.yaml",
            [problem("header", "Origin", f"must be one of: {', '.join(ALLOWED_ORIGINS)}")],
        )


def _route(event) -> str:
    # A direct invoke (console test, CLI) can send any JSON, not only a proxy event.
    if not isinstance(event, dict):
        return f"non-API event {type(event).__name__}"
    # Escaped: a path can hold a lone surrogate (an id no item can have), which no log stream can encode.
    return f"{event.get('httpMethod')} {event.get('path')}".encode("utf-8", "backslashreplace").decode("utf-8")


def api_handler(handler):
    """Make ``handler`` answer every request with JSON and CORS headers, whatever happens inside it."""

    @functools.wraps(handler)
    def wrapper(event, context):
        origin = header(event, "Origin") if isinstance(event, dict) else None
        try:
            check_origin(origin)
            result = handler(event, context)
        except ApiError as exc:
            logger.info("%s -> %s: %s", _route(event), exc.status, exc.message)
            result = error_response(exc)
        except Exception:
            # The traceback goes to the logs (CloudWatch), never to the client.
            logger.exception("Unhandled error in %s", _route(event))
            result = error_response(ApiError("Internal server error"))
        result["headers"].update(cors_headers(origin))
        return result

    return wrapper


# --- Requests: body -----------------------------------------------------------


def _reject_constant(name: str):
    # Python's json accepts NaN and Infinity; JSON does not, and neither does DynamoDB.
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"field {key!r} appears twice")
        seen[key] = value
    return seen


def json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _check_content_type(event: dict) -> None:
    content_type = header(event, "Content-Type")
    mime, _, params = (content_type or "").partition(";")
    mime = mime.strip().lower()
    charset = next((p.split("=", 1)[1].strip().strip('"').lower() for p in params.split(";")
                    if p.strip().lower().startswith("charset=")), "utf-8")
    if not (mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))) \
            or charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(
            f"Content-Type {content_type or '(none)'} is not supported: send the body as JSON with "
            "Content-Type: application/json",
            [problem("header", "Content-Type", "must be application/json (UTF-8)")],
        )


def read_body(event) -> dict:
    """The request body as a JSON object, numbers as Decimal (what boto3 stores).

    Checked in the order a client can fix things: size (413), media type (415), then JSON (400).
    """
    raw = event.get("body")
    if raw is None or raw == "":
        raise BadRequest("Request body is required: a JSON object", [problem("body", "(body)", "is required")])
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("Request body is not valid base64", [problem("body", "(body)", "is not valid base64")]) from None
    else:
        data = raw.encode("utf-8", errors="surrogatepass")
    if len(data) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"Request body is {len(data)} bytes; the limit is {MAX_BODY_BYTES} bytes (64 KiB)",
                              [problem("body", "(body)", f"must be at most {MAX_BODY_BYTES} bytes")])
    _check_content_type(event)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("Request body is not valid UTF-8", [problem("body", "(body)", "is not valid UTF-8")]) from None
    if REPLACEMENT_CHARACTER in text and not event.get("isBase64Encoded"):
        raise BadRequest("Request body is not valid UTF-8", [problem(
            "body", "(body)", "is not valid UTF-8: it holds U+FFFD, which stands for bytes that are not UTF-8; "
                              "send the body as UTF-8 (the character U+FFFD itself as the JSON escape \\ufffd)")])
    try:
        body = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError) as exc:  # RecursionError: thousands of nested brackets
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise BadRequest(f"Request body is not valid JSON: {reason}", [problem("body", "(body)", f"is not valid JSON: {reason}")]) from None
    if not isinstance(body, dict):
        raise BadRequest(f"Request body must be a JSON object, got {json_type(body)}",
                         [problem("body", "(body)", f"must be a JSON object, got {json_type(body)}")])
    return body


# --- Requests: query string ---------------------------------------------------


def query_parameters(event: dict, allowed: tuple[str, ...]) -> dict:
    """The query parameters, each given at most once; an unknown one is a 400 (a typo like ?limt=5
    would otherwise be ignored silently)."""
    multi = event.get("multiValueQueryStringParameters") or {}
    single = event.get("queryStringParameters") or {}
    problems = []
    for name in sorted(set(multi) | set(single)):
        if name not in allowed:
            problems.append(problem("query", name, f"unknown parameter; allowed: {', '.join(allowed)}"))
        elif len(multi.get(name) or [None]) > 1:
            problems.append(problem("query", name, "must be given once"))
    if problems:
        raise invalid("query", problems)
    return {name: value for name, value in single.items()}
