"""What every handler of the items API shares (openapi.yaml at the repository root is the contract).

Each function's zip holds its own module plus this package, and the Lambda
Python runtime adds only boto3, so this uses nothing beyond boto3 and the
standard library.

- ``common.http``: errors, responses, CORS, request body / header / query parsing, ``api_handler``.
- ``common.items``: the item's fields and rules, ETags and If-Match, page tokens.
- here: ``TABLE`` (built once per container) and the conditional-write rule shared by PUT and DELETE.
"""
import contextlib
import os

import boto3
from boto3.dynamodb.types import TypeDeserializer

from common.http import (  # noqa: F401  (re-exported for the handlers)
    BadRequest,
    NotFound,
    PreconditionFailed,
    api_handler,
    header,
    logger,
    problem,
    query_parameters,
    read_body,
    response,
)
from common.items import (  # noqa: F401
    etag,
    if_match,
    new_id,
    now,
    page_limit,
    page_token,
    path_id,
    read_page_token,
    to_api,
    writable_fields,
)

try:
    TABLE_NAME = os.environ["TABLE_NAME"]
except KeyError:
    raise RuntimeError(
        "TABLE_NAME is not set: give the function the DynamoDB table name in its environment"
    ) from None

# Built once per container, at import, so warm invocations reuse its connections.
# The endpoint and region come from the standard AWS_ENDPOINT_URL / AWS_REGION.
TABLE = boto3.resource("dynamodb").Table(TABLE_NAME)


def item_not_found(item_id: str) -> NotFound:
    return NotFound(f"Item {item_id} not found")


def write_condition(expected) -> tuple[str, dict]:
    """The ConditionExpression (and its values) of a write to an existing item under If-Match.

    The version check is part of the write itself, so two clients holding the same ETag can
    never both succeed: DynamoDB applies one write and fails the other's condition.
    """
    if expected is None or expected == "*":
        return "attribute_exists(id)", {}
    if not expected:  # only weak ETags: they never match, but a missing item is still a 404
        return "attribute_exists(id) AND attribute_not_exists(id)", {}
    names = [f":expected{i}" for i in range(len(expected))]
    return f"attribute_exists(id) AND #version IN ({', '.join(names)})", dict(zip(names, expected))


@contextlib.contextmanager
def conditional_write(item_id: str, expected):
    """Turn a failed write condition into 404 (no such item) or 412 (another version), from the
    item DynamoDB returns with the failure (ReturnValuesOnConditionCheckFailure=ALL_OLD)."""
    try:
        yield
    except TABLE.meta.client.exceptions.ConditionalCheckFailedException as exc:
        current = exc.response.get("Item")
        if not current:
            raise item_not_found(item_id) from None
        version = TypeDeserializer().deserialize(current["version"])
        current_etag = etag({"version": version})
        raise PreconditionFailed(
            f"Item {item_id} has changed: it is at version {version} (ETag {current_etag}), not the one If-Match names; "
            "read it again and retry with its ETag",
            [problem("header", "If-Match", f"must name the current ETag {current_etag}")],
            {"ETag": current_etag},
        ) from None
