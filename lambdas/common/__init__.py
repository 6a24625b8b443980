"""What every handler of the items API shares.

Each function's zip holds its own module plus this package, and the Lambda
Python runtime adds only boto3, so this uses nothing beyond boto3 and the
standard library.

- ``TABLE``: the DynamoDB table, built once per container.
- ``response`` / ``error``: the API Gateway proxy response.
- ``read_body``, ``path_id``, ``validate_new_item``, ``validate_item_update``:
  request parsing and validation, all in one place.
- ``api_handler``: wraps a handler so that a client error becomes a 4xx, and
  anything unexpected becomes a logged 500 with no stack trace in the body.

Exceptions::

    ApiError          -> the status and message sent to the client
     +-- BadRequest   -> 400
     +-- NotFound     -> 404
"""
import base64
import binascii
import contextlib
import functools
import json
import logging
import os
import sys
from dataclasses import dataclass
from decimal import Decimal

import boto3
from boto3.dynamodb.types import Binary

# In Lambda the runtime already gives the root logger a handler (to CloudWatch
# Logs), so basicConfig does nothing there. In a plain process (a local
# runtime, a script) it sends the logs to stdout, which is what gets collected.
logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(name)s %(message)s")
logging.getLogger().setLevel(logging.INFO)
logger = logging.getLogger("items-api")

try:
    TABLE_NAME = os.environ["TABLE_NAME"]
except KeyError:
    raise RuntimeError(
        "TABLE_NAME is not set: give the function the DynamoDB table name in its environment"
    ) from None

# Built once per container, at import, so warm invocations reuse its connections.
# The endpoint and region come from the standard AWS_ENDPOINT_URL / AWS_REGION.
TABLE = boto3.resource("dynamodb").Table(TABLE_NAME)

# DynamoDB refuses partition keys longer than this (in UTF-8 bytes).
MAX_ID_BYTES = 2048


# --- Errors -------------------------------------------------------------------


class ApiError(Exception):
    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    status = 400


class NotFound(ApiError):
    status = 404


def item_not_found(item_id: str) -> NotFound:
    return NotFound(f"Item {item_id} not found")


@contextlib.contextmanager
def missing_item_is_404(item_id: str):
    """Turn a failed ``attribute_exists(id)`` condition into a 404 for ``item_id``."""
    try:
        yield
    except TABLE.meta.client.exceptions.ConditionalCheckFailedException:
        raise item_not_found(item_id) from None


# --- Responses ----------------------------------------------------------------


class ItemEncoder(json.JSONEncoder):
    """JSON for what boto3 reads from DynamoDB.

    Every DynamoDB number arrives as a Decimal. A whole one becomes an int, exact
    at any size. Any other becomes the nearest float: JSON clients read numbers as
    IEEE doubles anyway, so digits beyond a double's ~17 could not survive the
    trip; when some are lost we log it rather than drop them silently.
    Sets (SS/NS) become sorted lists and binary (B) base64 text.
    """

    def default(self, o):
        if isinstance(o, Decimal):
            if o == o.to_integral_value():
                return int(o)
            number = float(o)
            if Decimal(repr(number)) != o:
                logger.warning("Number %s is sent as %r: JSON cannot carry more precision", o, number)
            return number
        if isinstance(o, (set, frozenset)):
            return sorted(o)
        if isinstance(o, Binary):
            return base64.b64encode(o.value).decode("ascii")
        return super().default(o)


def response(status: int, body) -> dict:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body, cls=ItemEncoder),
    }


def error(status: int, message: str) -> dict:
    return response(status, {"message": message})


def _route(event) -> str:
    # A direct invoke (console test, CLI) can send any JSON, not only a proxy event.
    if not isinstance(event, dict):
        return f"non-API event {type(event).__name__}"
    return f"{event.get('httpMethod')} {event.get('path')}"


def api_handler(handler):
    """Make ``handler`` answer every request with JSON, whatever happens inside it."""

    @functools.wraps(handler)
    def wrapper(event, context):
        try:
            return handler(event, context)
        except ApiError as exc:
            logger.info("%s -> %s: %s", _route(event), exc.status, exc.message)
            return error(exc.status, exc.message)
        except Exception:
            # The traceback goes to the logs (CloudWatch), never to the client.
            logger.exception("Unhandled error in %s", _route(event))
            return error(500, "Internal server error")

    return wrapper


# --- Requests -----------------------------------------------------------------


def _reject_constant(name: str):
    # Python's json accepts NaN and Infinity; JSON does not, and neither does DynamoDB.
    raise ValueError(f"{name} is not valid JSON")


def _json_type(value) -> str:
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


def read_body(event) -> dict:
    """The request body as a JSON object, numbers as Decimal (what boto3 stores)."""
    raw = event.get("body")
    if raw is None or raw == "":
        raise BadRequest("Request body is required")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("Request body is not valid base64") from None
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("Request body is not valid UTF-8") from None
    try:
        body = json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
    except ValueError as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"Request body must be a JSON object, got {_json_type(body)}")
    return body


def path_id(event) -> str:
    item_id = (event.get("pathParameters") or {}).get("id")
    if not item_id:
        raise BadRequest("Path parameter 'id' is required")
    if len(item_id.encode("utf-8")) > MAX_ID_BYTES:
        raise BadRequest(f"Path parameter 'id' is longer than {MAX_ID_BYTES} bytes")
    return item_id


@dataclass(frozen=True)
class FieldRule:
    required: bool  # on create
    blank_ok: bool
    default: str | None = None  # stored when omitted on create


# The fields a client may write; anything else in the body is ignored.
ITEM_FIELDS = {
    "name": FieldRule(required=True, blank_ok=False),
    "description": FieldRule(required=False, blank_ok=True, default=""),
}


def _check_field(name: str, value, rule: FieldRule) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"Field '{name}' must be a string, got {_json_type(value)}")
    if not rule.blank_ok and not value.strip():
        raise BadRequest(f"Field '{name}' must not be empty")
    return value


def validate_new_item(body: dict) -> dict:
    """Every writable field of a new item: given ones checked, missing ones defaulted."""
    fields = {}
    for name, rule in ITEM_FIELDS.items():
        if name in body:
            fields[name] = _check_field(name, body[name], rule)
        elif rule.required:
            raise BadRequest(f"Field '{name}' is required")
        else:
            fields[name] = rule.default
    return fields


def validate_item_update(body: dict) -> dict:
    """The writable fields present in ``body``, checked; at least one is needed."""
    fields = {
        name: _check_field(name, body[name], rule)
        for name, rule in ITEM_FIELDS.items()
        if name in body
    }
    if not fields:
        raise BadRequest(f"Request body must contain at least one of: {', '.join(ITEM_FIELDS)}")
    return fields
