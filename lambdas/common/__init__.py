"""What every handler of the items API shares (openapi.yaml at the repository root is the contract).

Each function's zip holds its own module plus this package, and the Lambda
Python runtime adds only boto3, so this uses nothing beyond boto3 and the
standard library.

- ``common.http``: errors, responses, CORS, request body / header / query parsing, ``api_handler``.
- ``common.items``: the item's fields and rules, ETags and If-Match, page tokens.
- here: ``TABLE`` (built once per container) and the conditional write shared by PUT and DELETE.
"""
import dataclasses
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
    MAX_VERSION,
    etag,
    has_legacy_version,
    if_match,
    new_id,
    now,
    page_limit,
    page_token,
    path_id,
    read_page_token,
    to_api,
    version_of,
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


# The normal write, then, for an item written outside the API, one pinned to the version it
# holds, then (only if another writer changed the item in between) one more.
MAX_WRITE_ATTEMPTS = 3
_VERSION_NAME = {"#version": "version"}
_DESERIALIZER = TypeDeserializer()


@dataclasses.dataclass(frozen=True)
class Precondition:
    """One write attempt's ConditionExpression with its placeholders, and the version a PUT stores."""

    condition: str
    names: dict
    values: dict
    # None: the stored version is a whole number and the write adds 1 to it (SET #version = #version + :one).
    next_version: int | None = None


def write_condition(expected, *, adds_to_version: bool = False) -> Precondition:
    """The condition of the first write to an existing item under If-Match (``expected``, from ``if_match``).

    The version check is part of the write itself, so two clients holding the same ETag can
    never both succeed: DynamoDB applies one write and fails the other's condition.

    A PUT (``adds_to_version``) adds 1 to the stored version, so its condition also insists that the
    version is a number from 1 to MAX_VERSION. On any other item (common.items: a version missing,
    not a number, below 1, too large) the condition fails rather than the arithmetic, DynamoDB hands
    the item back, and ``write_conditionally`` tries again pinned to what it holds. attribute_type
    comes first because the local DynamoDB (moto) raises on comparing a string with a number.
    DELETE does no arithmetic and keeps the plain existence check.

    Without If-Match, the PUT's old condition, attribute_exists(id), would be cheaper (moto parses
    this one in about 0.1 ms more), but it cannot stay: a version of 0 or -3 passes it, "+ 1" still
    reads as version 1, and the ETag would not move on with the write.
    """
    if expected is None or expected == "*":
        if not adds_to_version:
            return Precondition("attribute_exists(id)", {}, {})
        return Precondition("attribute_type(#version, :number) AND #version BETWEEN :one AND :max_version",
                            _VERSION_NAME, {":number": "N", ":one": 1, ":max_version": MAX_VERSION})
    if not expected:  # only weak ETags or "0": they never match, but a missing item is still a 404
        return Precondition("attribute_exists(id) AND attribute_not_exists(id)", {}, {})
    placeholders = [f":expected{i}" for i in range(len(expected))]
    values = dict(zip(placeholders, expected))
    # IN alone would do on AWS; moto finds a boolean true equal to 1, and "true + 1" then fails.
    guard = "attribute_type(#version, :number)" if adds_to_version else "attribute_exists(id)"
    if adds_to_version:
        values[":number"] = "N"
    return Precondition(f"{guard} AND #version IN ({', '.join(placeholders)})", _VERSION_NAME, values)


def legacy_precondition(stored: dict | None, version: int) -> Precondition:
    """The condition of a write to an item whose stored version is not one the API would store, given
    that attribute as DynamoDB returned it with a failed condition (``stored``: {"N": "2.5"}, or None
    when there is none). It holds only while the item still has that very version, so the write stays
    one atomic compare-and-set; the PUT stores ``version + 1`` instead of adding 1 to what is there."""
    if stored is None:
        return Precondition("attribute_exists(id) AND attribute_not_exists(#version)", _VERSION_NAME, {}, version + 1)
    (type_code, _), = stored.items()
    if type_code == "N":
        return Precondition("#version = :stored_version", _VERSION_NAME,
                            {":stored_version": _DESERIALIZER.deserialize(stored)}, version + 1)
    # Every value of another type reads as version 1: its type is what must not have changed.
    return Precondition("attribute_type(#version, :stored_type)", _VERSION_NAME, {":stored_type": type_code}, version + 1)


def write_conditionally(item_id: str, expected, write, *, adds_to_version: bool = False):
    """``write(precondition)``: one conditional DynamoDB write (with ReturnValuesOnConditionCheckFailure=ALL_OLD),
    tried until it succeeds; its result is returned.

    A failed condition becomes 404 (no such item) or 412 (If-Match names another version), from the
    item DynamoDB returns with the failure: it is never read separately. Only an item written
    outside the API, whose version the first condition cannot accept, gets a second attempt
    (``legacy_precondition``), and a third only if another writer changed the item in between.
    """
    precondition = write_condition(expected, adds_to_version=adds_to_version)
    for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
        try:
            return write(precondition)
        except TABLE.meta.client.exceptions.ConditionalCheckFailedException as exc:
            current = exc.response.get("Item")
        if not current:
            raise item_not_found(item_id) from None
        stored = current.get("version")
        item = {} if stored is None else {"version": _DESERIALIZER.deserialize(stored)}
        version = version_of(item)
        if expected not in (None, "*") and version not in expected:
            raise version_mismatch(item_id, version)
        if attempt == MAX_WRITE_ATTEMPTS:
            break
        precondition = legacy_precondition(stored, version) if has_legacy_version(item) \
            else write_condition(expected, adds_to_version=adds_to_version)
    current_etag = etag({"version": version})
    raise PreconditionFailed(
        f"Item {item_id} was changed by another writer during each of {MAX_WRITE_ATTEMPTS} attempts to write it; "
        f"it is at version {version} (ETag {current_etag}) now: read it again and retry",
        [problem("header", "If-Match", f"the item is at ETag {current_etag}")],
        {"ETag": current_etag},
    )


def version_mismatch(item_id: str, version: int) -> PreconditionFailed:
    current_etag = etag({"version": version})
    return PreconditionFailed(
        f"Item {item_id} has changed: it is at version {version} (ETag {current_etag}), not the one If-Match names; "
        "read it again and retry with its ETag",
        [problem("header", "If-Match", f"must name the current ETag {current_etag}")],
        {"ETag": current_etag},
    )
