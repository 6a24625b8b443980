"""The item resource: its fields and their rules, its ETag, and the list's page tokens.

An item as clients see it (openapi.yaml, schema Item)::

    id           a UUID when POST makes it; the path id may be any id the table can hold (ID_MAX_BYTES),
                 matched exactly (case counts), since the tutorial's own functions let clients pick ids
    name         string, 1..200 characters once leading/trailing spaces are trimmed (stored trimmed)
    description  string, at most 2000 characters (default "")
    createdAt    ISO 8601 UTC, set on create
    updatedAt    ISO 8601 UTC, set on create and on each update
    version      integer, 1 on create, +1 on each update; the ETag is its quoted value, "3"

Items written outside this API (by the console tutorial's own functions, which store only id,
name and description, by the DynamoDB console, by a script) are shown by these rules, all here
so that GET, the list, PUT and DELETE read an item the same way (openapi.yaml and README say the same)::

    name, description  a string as stored; a number as its decimal text ("12.5"); a boolean as
                       "true"/"false"; missing or any other type (null, binary, set, list, map) as ""
    createdAt,         the stored string when it is an RFC 3339 date-time (the Item schema's
    updatedAt          format), else null: missing, another type, or other text
    version            a whole number from 1 to MAX_VERSION as stored; a fraction in that range
                       as its whole part (2.5 reads 2); anything else (missing, below 1, beyond
                       MAX_VERSION, not a number) reads as 1. The ETag follows the version read.

A write makes such an item an ordinary one: PUT stores the version read plus one, and updatedAt
(common.write_condition says how it stays one conditional write).
"""
import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import uuid
from decimal import Decimal

from common.http import BadRequest, invalid, json_type, problem

NAME_MAX = 200
DESCRIPTION_MAX = 2000
WRITABLE = ("name", "description")
READ_ONLY = ("id", "createdAt", "updatedAt", "version")

# A partition key value is at most 2048 bytes of UTF-8, so no stored item has a longer id:
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html ("Partition key length").
# A longer path id is a 400 naming the limit, not a DynamoDB ValidationException (500).
ID_MAX_BYTES = 2048
# An ETag we made ("3"), or the bare number; at most 18 digits, so it always fits a DynamoDB number.
_ETAG = re.compile(r'^(?:"(\d{1,18})"|(\d{1,18}))$')
_WEAK_ETAG = re.compile(r'^W/"[^",]*"$')
MAX_IF_MATCH_TAGS = 20
# The largest version an If-Match can name (18 digits, above). A larger stored one reads as 1,
# so that such an item can still be written under If-Match.
MAX_VERSION = 10**18 - 1
# RFC 3339 date-time, what openapi.yaml's "format: date-time" means, as strict as the validator that
# schemathesis uses: upper-case T and Z, no leap second (the day of the month is checked apart).
_DATE_TIME = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])-(\d{2})T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?"
                        r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$", re.ASCII)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return str(uuid.uuid4())


def path_id(event) -> str:
    """The item the path names, exactly as given. Not only UUIDs: the console tutorial's functions store
    whatever id the client sends ("123", "abcdef234"), and an adopted table keeps those items. Nor folded
    to lower case: DynamoDB keys are case-sensitive, so "Item-1" and "item-1" are two items."""
    item_id = (event.get("pathParameters") or {}).get("id")
    if not isinstance(item_id, str) or not item_id:
        raise BadRequest("Path parameter 'id' is missing: put the item's id after /items/",
                         [problem("path", "id", "is required")])
    try:
        size = len(item_id.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: DynamoDB stores UTF-8 only, so no item has this id
        raise BadRequest("Path parameter 'id' is not valid Unicode text (it holds a lone surrogate)",
                         [problem("path", "id", "must be valid Unicode text")]) from None
    if size > ID_MAX_BYTES:
        raise BadRequest(f"Path parameter 'id' is {size} bytes long; an item id is at most {ID_MAX_BYTES} bytes "
                         "(UTF-8), so no item has it: check the URL",
                         [problem("path", "id", f"must be at most {ID_MAX_BYTES} bytes as UTF-8, got {size}")])
    return item_id


def to_api(item: dict) -> dict:
    """The stored item as the contract shows it: its fields only, in this order, whatever wrote it
    (the rules for items written outside the API are in the module docstring)."""
    return {
        "id": item["id"],
        "name": _text(item.get("name")),
        "description": _text(item.get("description")),
        "createdAt": _date_time(item.get("createdAt")),
        "updatedAt": _date_time(item.get("updatedAt")),
        "version": version_of(item),
    }


def etag(item: dict) -> str:
    return f'"{version_of(item)}"'


def _is_number(value) -> bool:
    # boto3 reads a DynamoDB number as a Decimal; an item the API has just made holds an int. bool is an int too.
    return isinstance(value, (Decimal, int)) and not isinstance(value, bool)


def version_of(item: dict) -> int:
    """The version an item reads as. A fraction reads as its whole part, not as 1, because DynamoDB
    conditions cannot tell 2.5 from 2: a PUT without If-Match adds 1 to it like to any version
    (3.5, read 3), and the ETag must move on with every write."""
    value = item.get("version")
    if _is_number(value) and 1 <= value <= MAX_VERSION:
        return int(value)
    return 1


def has_legacy_version(item: dict) -> bool:
    """True when the stored version is not the whole number ``version_of`` reads: a write must then
    store the next version itself rather than add 1 to what is there."""
    value = item.get("version")
    return not _is_number(value) or value != version_of(item)


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        return format(Decimal(value).normalize(), "f")  # plain digits: 12.50 -> "12.5", 1E+2 -> "100"
    return ""


def _date_time(value):
    # Not datetime.fromisoformat: what it accepts changed in Python 3.11, and config.yaml allows python3.10.
    match = _DATE_TIME.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    try:
        dt.date(*map(int, match.groups()))
    except ValueError:  # the right shape, not a real day: 31 April, year 0
        return None
    return value


# --- Writable fields ----------------------------------------------------------


def _check_string(field: str, value, problems: list):
    if not isinstance(value, str):
        problems.append(problem("body", field, f"must be a string, got {json_type(value)}"))
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (\ud800) from the JSON text: DynamoDB stores UTF-8 only
        problems.append(problem("body", field, "must be valid Unicode text (it holds a lone surrogate)"))
        return None
    return value


def _check_name(value, problems: list):
    value = _check_string("name", value, problems)
    if value is None:
        return None
    value = value.strip()
    if not 1 <= len(value) <= NAME_MAX:
        problems.append(problem("body", "name", f"must be 1 to {NAME_MAX} characters once trimmed, got {len(value)}"))
        return None
    return value


def _check_description(value, problems: list):
    value = _check_string("description", value, problems)
    if value is not None and len(value) > DESCRIPTION_MAX:
        problems.append(problem("body", "description", f"must be at most {DESCRIPTION_MAX} characters, got {len(value)}"))
        return None
    return value


CHECKS = {"name": _check_name, "description": _check_description}


def writable_fields(body: dict, *, creating: bool) -> dict:
    """The writable fields of ``body``, checked; every problem is reported at once (400).

    Read-only fields are refused rather than ignored: a client that sends a version
    expecting it to be used learns it is not (If-Match is how to name a version).
    """
    problems = []
    fields = {}
    for field, value in body.items():
        if field in READ_ONLY:
            problems.append(problem("body", field, "is read-only (set by the server); send only name and description"
                                    + ("" if field != "version" else ", and the version in If-Match")))
        elif field not in CHECKS:
            problems.append(problem("body", field, f"unknown field; allowed: {', '.join(WRITABLE)}"))
        else:
            checked = CHECKS[field](value, problems)
            if checked is not None:
                fields[field] = checked
    if creating and "name" not in body:
        problems.append(problem("body", "name", "is required"))
    if not creating and not any(field in body for field in WRITABLE):
        problems.append(problem("body", "(body)", f"must contain at least one of: {', '.join(WRITABLE)}"))
    if problems:
        raise invalid("body", problems)
    if creating:
        fields.setdefault("description", "")
    return fields


# --- If-Match -----------------------------------------------------------------


def if_match(header_value):
    """If-Match as what it allows: None (no header: any version), "*" (the item must exist),
    or the versions it names. A weak tag (W/"3") never matches, as RFC 9110 wants for If-Match."""
    if header_value is None:
        return None
    value = header_value.strip()
    if value == "*":
        return "*"
    versions = []
    tags = [tag.strip() for tag in value.split(",")]
    for tag in tags:
        if _WEAK_ETAG.match(tag):
            continue
        match = _ETAG.match(tag)
        if match is None:
            raise BadRequest(
                f"If-Match {header_value[:60]!r} is not an ETag of this API: send the ETag of an earlier answer, "
                'like "3", or * for any version',
                [problem("header", "If-Match", 'must be an ETag like "3", a list of them, or *')])
        version = int(match.group(1) or match.group(2))
        if version >= 1:  # versions start at 1: "0" names none (not even an item stored with 0, which reads 1)
            versions.append(version)
    if len(tags) > MAX_IF_MATCH_TAGS:
        raise BadRequest(f"If-Match names {len(tags)} ETags; at most {MAX_IF_MATCH_TAGS} are accepted",
                         [problem("header", "If-Match", f"must name at most {MAX_IF_MATCH_TAGS} ETags")])
    return versions


# --- Page tokens --------------------------------------------------------------


def _token_key(table_name: str) -> bytes:
    return hashlib.sha256(f"crudstack page token of {table_name}".encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def page_token(table_name: str, last_id: str) -> str:
    """Opaque to clients: the id the next page starts after, with a MAC so that a garbled or
    hand-made token is a 400 and never reaches DynamoDB. (Its key is derived from the table
    name, so it catches mistakes and tokens of another stack, not a determined forger; all a
    forged token could do is start a listing at another place.)"""
    payload = _b64(json.dumps({"after": last_id}, separators=(",", ":")).encode())
    mac = _b64(hmac.new(_token_key(table_name), payload.encode(), "sha256").digest()[:12])
    return f"{payload}.{mac}"


def read_page_token(table_name: str, token: str) -> str:
    bad = BadRequest("nextToken is not valid: pass the nextToken of an earlier page unchanged, or leave it out",
                     [problem("query", "nextToken", "must be a nextToken from an earlier page of this list")])
    payload, _, mac = token.partition(".")
    expected = _b64(hmac.new(_token_key(table_name), payload.encode("utf-8", "replace"), "sha256").digest()[:12])
    if not hmac.compare_digest(mac.encode("utf-8", "replace"), expected.encode()):
        raise bad
    try:
        after = json.loads(_unb64(payload))["after"]
    except (ValueError, KeyError, TypeError):
        raise bad from None
    if not isinstance(after, str) or not after:
        raise bad
    return after


def page_limit(value, default: int, maximum: int) -> int:
    if value is None:
        return default
    if not (value.isascii() and value.isdigit() and len(value) <= 6 and 1 <= int(value) <= maximum):
        raise invalid("query", [problem("query", "limit", f"must be a whole number from 1 to {maximum}, got {value[:20]!r}")])
    return int(value)
