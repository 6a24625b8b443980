"""The five Lambda handlers, called with API Gateway (REST, proxy) events
against a moto DynamoDB table: the contract of openapi.yaml, status by status."""
import base64
import functools
import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
import uuid
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
import yaml
from moto import mock_aws
from openapi_schema_validator import OAS30Validator, oas30_format_checker

LAMBDAS_DIR = Path(__file__).resolve().parents[2] / "lambdas"
HANDLER_MODULES = ("common.http", "common.items", "common", "create_item", "get_items", "get_item", "update_item", "delete_item")
TABLE_NAME = "ItemsTable"
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
MISSING = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"


@pytest.fixture
def table(monkeypatch):
    monkeypatch.setenv("TABLE_NAME", TABLE_NAME)
    with mock_aws():
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        yield dynamodb.create_table(
            TableName=TABLE_NAME,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )


def import_handlers(monkeypatch) -> SimpleNamespace:
    # The handlers build their Table at import, as Lambda advises (one per warm
    # container), so we keep that code as it ships and import it here instead:
    # after mock_aws has started and the environment is set, and forgotten afterwards.
    monkeypatch.syspath_prepend(str(LAMBDAS_DIR))
    for name in HANDLER_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    return SimpleNamespace(**{name.replace(".", "_"): importlib.import_module(name) for name in HANDLER_MODULES})


@pytest.fixture
def handlers(table, monkeypatch):
    monkeypatch.delenv("ALLOWED_ORIGINS", raising=False)
    yield import_handlers(monkeypatch)
    for name in HANDLER_MODULES:
        sys.modules.pop(name, None)


@pytest.fixture
def strict_cors(table, monkeypatch):
    """The handlers of a stack whose config.yaml allows two origins only."""
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://app.example.com,http://localhost:3000")
    yield import_handlers(monkeypatch)
    for name in HANDLER_MODULES:
        sys.modules.pop(name, None)


def event(method, path, *, item_id=None, body=None, base64_body=False, headers=None, query=None,
          content_type="application/json"):
    """A REST API (v1) Lambda proxy event, as API Gateway sends it."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if base64_body:
        body = base64.b64encode(body.encode("utf-8")).decode("ascii")
    all_headers = dict(headers or {})
    if body is not None and content_type is not None:
        all_headers.setdefault("Content-Type", content_type)
    return {
        "resource": "/items/{id}" if item_id is not None else "/items",
        "path": path,
        "httpMethod": method,
        "headers": all_headers or None,
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"id": item_id} if item_id is not None else None,
        "body": body,
        "isBase64Encoded": base64_body,
        "requestContext": {"stage": "prod", "requestId": str(uuid.uuid4()), "path": f"/prod{path}"},
    }


def invoke(handlers, module, evt) -> dict:
    """Invoke a handler; return its proxy result after checking the envelope every answer shares."""
    result = getattr(handlers, module).lambda_handler(evt, None)
    assert isinstance(result["statusCode"], int)
    assert result["headers"]["Content-Type"] == "application/json"
    assert isinstance(result["body"], str)
    payload = json.loads(result["body"])
    if result["statusCode"] >= 400:
        assert set(payload) == {"message", "errors"}, payload
        assert isinstance(payload["message"], str) and isinstance(payload["errors"], list)
    return result


def call(handlers, module, evt):
    """(status, parsed body) of a handler's answer."""
    result = invoke(handlers, module, evt)
    return result["statusCode"], json.loads(result["body"])


def create(handlers, body):
    status, payload = call(handlers, "create_item", event("POST", "/items", body=body))
    assert status == 201, payload
    return payload["item"]


def stored(table, item_id):
    return table.get_item(Key={"id": item_id}, ConsistentRead=True).get("Item")


def fields_named(payload) -> set[str]:
    return {problem["field"] for problem in payload["errors"]}


def item_event(method, item_id, **kwargs):
    return event(method, f"/items/{item_id}", item_id=item_id, **kwargs)


# --- POST /items ------------------------------------------------------------------


def test_create_returns_201_with_the_tutorial_shape_location_and_etag(handlers, table):
    result = invoke(handlers, "create_item", event("POST", "/items", body={"name": "Pen", "description": "Blue ink"}))
    payload = json.loads(result["body"])

    assert result["statusCode"] == 201
    assert payload["message"] == "Item created successfully!"
    item = payload["item"]
    assert list(item) == ["id", "name", "description", "createdAt", "updatedAt", "version"]
    assert uuid.UUID(item["id"]).version == 4
    assert (item["name"], item["description"], item["version"]) == ("Pen", "Blue ink", 1)
    assert ISO_UTC.match(item["createdAt"]) and item["updatedAt"] == item["createdAt"]
    assert result["headers"]["Location"] == f"/prod/items/{item['id']}"
    assert result["headers"]["ETag"] == '"1"'
    assert stored(table, item["id"]) == {**item, "version": Decimal(1)}


def test_create_sends_the_version_as_a_json_integer(handlers, table):
    result = invoke(handlers, "create_item", event("POST", "/items", body={"name": "Pen"}))

    assert '"version": 1' in result["body"]


def test_create_trims_the_name_and_defaults_the_description_to_empty(handlers, table):
    item = create(handlers, {"name": "  Pen \n"})

    assert (item["name"], item["description"]) == ("Pen", "")
    assert stored(table, item["id"])["name"] == "Pen"


def test_create_accepts_the_longest_name_and_description(handlers, table):
    item = create(handlers, {"name": " " + "n" * 200 + " ", "description": "d" * 2000})

    assert len(item["name"]) == 200 and len(item["description"]) == 2000


def test_create_gives_every_item_its_own_id(handlers, table):
    first = create(handlers, {"name": "Pen"})
    second = create(handlers, {"name": "Pen"})

    assert first["id"] != second["id"]
    assert table.scan()["Count"] == 2


def test_the_location_of_a_new_item_follows_the_path_the_client_called(handlers, table):
    evt = event("POST", "/items", body={"name": "Pen"})
    evt["requestContext"]["path"] = "/restapis/abc123/prod/_user_request_/items/"

    result = invoke(handlers, "create_item", evt)

    item_id = json.loads(result["body"])["item"]["id"]
    assert result["headers"]["Location"] == f"/restapis/abc123/prod/_user_request_/items/{item_id}"


def test_create_never_overwrites_an_existing_item(handlers, table, monkeypatch):
    existing = create(handlers, {"name": "Original"})
    monkeypatch.setattr(handlers.create_item, "new_id", lambda: existing["id"])

    status, payload = call(handlers, "create_item", event("POST", "/items", body={"name": "Clash"}))

    assert (status, payload) == (500, {"message": "Internal server error", "errors": []})
    assert stored(table, existing["id"])["name"] == "Original"


def test_create_decodes_a_base64_body(handlers, table):
    evt = event("POST", "/items", body={"name": "Café", "description": "naïve"}, base64_body=True)

    status, payload = call(handlers, "create_item", evt)

    assert status == 201
    assert stored(table, payload["item"]["id"])["name"] == "Café"
    assert payload["item"]["description"] == "naïve"


@pytest.mark.parametrize(
    "body, field, message",
    [
        (None, "(body)", "is required"),
        ("", "(body)", "is required"),
        ("{not json", "(body)", "is not valid JSON"),
        ('{"name": NaN}', "(body)", "is not valid JSON: NaN is not valid JSON"),
        ('{"name": "a", "name": "b"}', "(body)", "is not valid JSON: field 'name' appears twice"),
        ("[" * 5000 + "]" * 5000, "(body)", "is not valid JSON: nested too deeply"),
        ('["Pen"]', "(body)", "must be a JSON object, got array"),
        ("null", "(body)", "must be a JSON object, got null"),
        ({"description": "no name"}, "name", "is required"),
        ({"name": ""}, "name", "must be 1 to 200 characters once trimmed, got 0"),
        ({"name": " \t "}, "name", "must be 1 to 200 characters once trimmed, got 0"),
        ({"name": "n" * 201}, "name", "must be 1 to 200 characters once trimmed, got 201"),
        ({"name": 42}, "name", "must be a string, got number"),
        ({"name": None}, "name", "must be a string, got null"),
        ({"name": "Pen", "description": "d" * 2001}, "description", "must be at most 2000 characters, got 2001"),
        ({"name": "Pen", "description": True}, "description", "must be a string, got boolean"),
        ('{"name": "\\ud800"}', "name", "must be valid Unicode text"),
        ({"name": "Pen", "colour": "red"}, "colour", "unknown field; allowed: name, description"),
        ({"name": "Pen", "id": MISSING}, "id", "is read-only"),
        ({"name": "Pen", "version": 7}, "version", "is read-only"),
        ({"name": "Pen", "createdAt": "2020-01-01T00:00:00.000Z"}, "createdAt", "is read-only"),
    ],
)
def test_create_rejects_a_bad_body_with_400_naming_the_field(handlers, table, body, field, message):
    status, payload = call(handlers, "create_item", event("POST", "/items", body=body))

    assert status == 400
    assert [p for p in payload["errors"] if p["field"] == field and p["message"].startswith(message)], payload
    assert message in payload["message"]
    assert table.scan()["Count"] == 0


def test_create_reports_every_problem_of_a_body_at_once(handlers, table):
    status, payload = call(handlers, "create_item", event("POST", "/items", body={"name": 1, "id": "x", "size": 3, "colour": "red"}))

    assert status == 400
    assert fields_named(payload) == {"name", "id", "size", "colour"}
    assert all(p["location"] == "body" for p in payload["errors"])


def test_create_rejects_a_body_over_64_kib_with_413(handlers, table):
    body = json.dumps({"name": "Pen", "description": "x" * (64 * 1024)})

    status, payload = call(handlers, "create_item", event("POST", "/items", body=body))

    assert status == 413
    assert "64 KiB" in payload["message"]
    assert table.scan()["Count"] == 0


def test_a_body_of_exactly_64_kib_is_not_too_large(handlers, table):
    padding = 64 * 1024 - len(json.dumps({"name": "Pen", "pad": ""}))
    body = json.dumps({"name": "Pen", "pad": "x" * padding})
    assert len(body) == 64 * 1024

    status, payload = call(handlers, "create_item", event("POST", "/items", body=body))

    assert (status, fields_named(payload)) == (400, {"pad"})


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/json; charset=latin-1", "multipart/form-data; boundary=x"])
def test_create_rejects_a_body_that_is_not_json_with_415(handlers, table, content_type):
    status, payload = call(handlers, "create_item", event("POST", "/items", body={"name": "Pen"}, content_type=content_type))

    assert status == 415
    assert payload["errors"] == [{"location": "header", "field": "Content-Type", "message": "must be application/json (UTF-8)"}]
    assert table.scan()["Count"] == 0


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON; charset=UTF-8", "application/merge-patch+json"])
def test_create_accepts_json_media_types_in_any_case(handlers, table, content_type):
    status, _ = call(handlers, "create_item", event("POST", "/items", body={"name": "Pen"}, content_type=content_type))

    assert status == 201


def test_create_rejects_a_base64_body_that_does_not_decode_or_is_not_utf8(handlers, table):
    broken = event("POST", "/items", body="not base64!")
    broken["isBase64Encoded"] = True
    latin = event("POST", "/items", body=base64.b64encode(b'{"name": "\xff"}').decode("ascii"))
    latin["isBase64Encoded"] = True

    assert call(handlers, "create_item", broken)[1]["message"] == "Request body is not valid base64"
    assert call(handlers, "create_item", latin)[1]["message"] == "Request body is not valid UTF-8"


def test_create_rejects_a_text_body_whose_invalid_utf8_arrived_as_replacement_characters(handlers, table):
    # What a gateway hands the function for raw bytes that are not UTF-8 when the body is passed as text
    # (crudstack/local/apigateway/events.py: decode with errors="replace"): the bytes are gone, U+FFFD stands in.
    sent = event("POST", "/items", body=b'{"name": "caf\xe9"}'.decode("utf-8", errors="replace"))

    status, payload = call(handlers, "create_item", sent)

    assert status == 400
    assert payload["message"] == "Request body is not valid UTF-8"
    assert payload["errors"][0]["field"] == "(body)" and "U+FFFD" in payload["errors"][0]["message"]
    assert table.scan()["Items"] == []


def test_create_accepts_the_replacement_character_sent_as_a_json_escape_or_in_a_base64_body(handlers, table):
    escaped = create(handlers, '{"name": "caf\\ufffd"}')
    raw = event("POST", "/items", body='{"name": "tea\ufffd"}', base64_body=True)

    assert escaped["name"] == "caf\ufffd"
    assert call(handlers, "create_item", raw)[1]["item"]["name"] == "tea\ufffd"


# --- GET /items -------------------------------------------------------------------


def list_page(handlers, **query):
    return call(handlers, "get_items", event("GET", "/items", query={k: str(v) for k, v in query.items()}))


def test_list_returns_the_items_the_count_and_no_token_when_all_fit(handlers, table):
    created = [create(handlers, {"name": f"Item {n}"}) for n in range(3)]

    status, payload = list_page(handlers)

    assert status == 200
    assert (payload["count"], payload["nextToken"]) == (3, None)
    assert sorted(payload["items"], key=lambda i: i["id"]) == sorted(created, key=lambda i: i["id"])


def test_list_of_an_empty_table_is_an_empty_page(handlers, table):
    assert list_page(handlers) == (200, {"items": [], "count": 0, "nextToken": None})


def test_list_gives_25_items_a_page_by_default(handlers, table):
    for n in range(30):
        table.put_item(Item={"id": str(uuid.uuid4()), "name": f"n{n}", "description": "", "createdAt": "t",
                             "updatedAt": "t", "version": 1})

    status, payload = list_page(handlers)

    assert (status, payload["count"], len(payload["items"])) == (200, 25, 25)
    assert payload["nextToken"]


@pytest.mark.parametrize("limit", [1, 7, 10, 100])
def test_pages_cover_every_item_exactly_once(handlers, table, limit):
    ids = {create(handlers, {"name": f"Item {n}"})["id"] for n in range(10)}
    seen, token, pages = [], None, 0
    while True:
        query = {"limit": limit, **({"nextToken": token} if token else {})}
        status, payload = list_page(handlers, **query)
        assert status == 200 and payload["count"] == len(payload["items"]) <= limit
        seen += [item["id"] for item in payload["items"]]
        pages += 1
        token = payload["nextToken"]
        if token is None:
            break

    assert sorted(seen) == sorted(ids)
    assert pages == -(-10 // limit)  # no empty last page


def test_a_token_still_works_after_the_last_item_of_its_page_is_deleted(handlers, table):
    ids = {create(handlers, {"name": f"Item {n}"})["id"] for n in range(6)}
    status, first = list_page(handlers, limit=3)
    call(handlers, "delete_item", item_event("DELETE", first["items"][-1]["id"]))

    status, second = list_page(handlers, limit=3, nextToken=first["nextToken"])

    assert status == 200
    assert {i["id"] for i in first["items"]} | {i["id"] for i in second["items"]} == ids


def test_list_follows_scan_pages_past_the_1mb_limit(handlers, table, monkeypatch):
    # Items written outside the API can be large: 12 of ~200 KB are ~2.4 MB, more than one Scan returns.
    for n in range(12):
        table.put_item(Item={"id": f"{n:08d}-0000-4000-8000-000000000000", "name": f"Big {n}", "description": "",
                             "createdAt": "t", "updatedAt": "t", "version": 1, "blob": f"{n}" * 200_000})
    scans = []
    real_scan = handlers.common.TABLE.scan

    def counting_scan(**kwargs):
        scans.append(dict(kwargs))
        return real_scan(**kwargs)

    monkeypatch.setattr(handlers.common.TABLE, "scan", counting_scan)

    status, payload = list_page(handlers, limit=100)

    assert status == 200
    assert len(scans) >= 3
    assert "ExclusiveStartKey" not in scans[0] and all("ExclusiveStartKey" in later for later in scans[1:])
    assert payload["count"] == 12 and payload["nextToken"] is None
    assert "blob" not in payload["items"][0]


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "2.5", "", "1" * 5000, "５"])
def test_a_limit_outside_1_to_100_is_400(handlers, table, limit):
    status, payload = list_page(handlers, limit=limit)

    assert status == 400
    assert fields_named(payload) == {"limit"}


@pytest.mark.parametrize("token", ["garbage", "", "a.b", "eyJhZnRlciI6IngifQ.AAAAAAAAAAAAAAAA", "%%%", "." * 300])
def test_a_garbled_next_token_is_400(handlers, table, token):
    create(handlers, {"name": "Pen"})

    status, payload = list_page(handlers, nextToken=token)

    assert status == 400
    assert fields_named(payload) == {"nextToken"}


def test_a_token_from_another_stacks_table_is_400(handlers, table):
    foreign = handlers.common_items.page_token("other-ItemsTable", MISSING)

    status, payload = list_page(handlers, nextToken=foreign)

    assert (status, fields_named(payload)) == (400, {"nextToken"})


def test_a_token_with_one_character_changed_is_400(handlers, table):
    for n in range(3):
        create(handlers, {"name": f"Item {n}"})
    token = list_page(handlers, limit=1)[1]["nextToken"]
    tampered = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]

    assert list_page(handlers, nextToken=tampered)[0] == 400


def test_unknown_or_repeated_query_parameters_are_400(handlers, table):
    typo = list_page(handlers, limt="5")
    repeated_event = event("GET", "/items", query={"limit": "5"})
    repeated_event["multiValueQueryStringParameters"] = {"limit": ["5", "6"]}
    repeated = call(handlers, "get_items", repeated_event)

    assert typo[0] == 400 and fields_named(typo[1]) == {"limt"}
    assert "allowed: limit, nextToken" in typo[1]["errors"][0]["message"]
    assert repeated[0] == 400 and repeated[1]["errors"][0]["message"] == "must be given once"


# --- GET /items/{id} --------------------------------------------------------------


def test_get_returns_the_item_and_its_etag(handlers, table):
    item = create(handlers, {"name": "Pen", "description": "Blue ink"})

    result = invoke(handlers, "get_item", item_event("GET", item["id"]))

    assert (result["statusCode"], json.loads(result["body"])) == (200, item)
    assert result["headers"]["ETag"] == '"1"'


def test_an_id_names_its_item_exactly_so_an_upper_case_copy_is_another_id(handlers, table):
    item = create(handlers, {"name": "Pen"})
    upper = item["id"].upper()

    assert call(handlers, "get_item", item_event("GET", upper)) == (404, {"message": f"Item {upper} not found", "errors": []})
    assert call(handlers, "get_item", item_event("GET", item["id"])) == (200, item)


# The ids the console tutorial's functions store: whatever the client sent (AWS's walkthrough sends "123" and
# "abcdef234"), and the longest one DynamoDB takes (2048 bytes of UTF-8: 1024 two-byte characters).
TUTORIAL_IDS = ["1", "123", "abcdef234", "Item-7", "item-7", "a b", "0b1c2d3e4f504a6b8c7d9e0f1a2b3c4d", "é" * 1024]


@pytest.mark.parametrize("item_id", TUTORIAL_IDS, ids=lambda item_id: item_id[:12])
def test_an_item_written_with_any_id_is_read_updated_and_deleted_by_that_id(handlers, table, item_id):
    table.put_item(Item={"id": item_id, "name": "Pen", "description": "console"})
    neighbour = item_id[:-1] + ("0" if item_id[-1] != "0" else "1")
    table.put_item(Item={"id": neighbour, "name": "Other"})

    assert call(handlers, "get_item", item_event("GET", item_id))[1]["name"] == "Pen"
    updated = put(handlers, item_id, {"name": "Ink"}, if_match='"1"')
    assert (updated["statusCode"], updated["headers"]["ETag"]) == (200, '"2"')
    assert stored(table, item_id)["name"] == "Ink"
    assert delete(handlers, item_id, if_match='"2"') == (200, {"message": "Item deleted", "id": item_id})
    assert call(handlers, "get_item", item_event("GET", item_id))[0] == 404
    assert stored(table, neighbour)["name"] == "Other"


@pytest.mark.parametrize("module, method", [("get_item", "GET"), ("update_item", "PUT"), ("delete_item", "DELETE")])
@pytest.mark.parametrize("item_id", ["123", "abcdef234", MISSING + "0"])
def test_a_missing_item_with_a_non_uuid_id_is_404(handlers, table, module, method, item_id):
    status, payload = call(handlers, module, item_event(method, item_id, body={"name": "x"}))

    assert (status, payload) == (404, {"message": f"Item {item_id} not found", "errors": []})


def test_get_shows_only_the_contracts_fields_of_an_item_written_elsewhere(handlers, table):
    stamp = "2025-01-31T12:00:00.000Z"
    table.put_item(Item={"id": MISSING, "name": "Pen", "createdAt": stamp, "updatedAt": stamp, "version": Decimal(4),
                         "price": Decimal("2.50")})

    status, payload = call(handlers, "get_item", item_event("GET", MISSING))

    assert (status, payload) == (200, {"id": MISSING, "name": "Pen", "description": "", "createdAt": stamp,
                                       "updatedAt": stamp, "version": 4})


def test_get_of_a_missing_item_is_404(handlers, table):
    status, payload = call(handlers, "get_item", item_event("GET", MISSING))

    assert (status, payload) == (404, {"message": f"Item {MISSING} not found", "errors": []})


@pytest.mark.parametrize("module, method", [("get_item", "GET"), ("update_item", "PUT"), ("delete_item", "DELETE")])
@pytest.mark.parametrize("item_id, message", [
    (None, "is required"),
    ("", "is required"),
    pytest.param("é" * 1025, "must be at most 2048 bytes as UTF-8, got 2050", id="1025 é"),  # no key is longer
    pytest.param("a" * 2049, "must be at most 2048 bytes as UTF-8, got 2049", id="2049 a"),
    # A lone surrogate in a test id cannot be encoded to report it: pytest-xdist's worker then crashes.
    pytest.param("\ud800", "must be valid Unicode text", id="lone surrogate"),
])
def test_a_path_id_no_item_can_have_is_400(handlers, table, module, method, item_id, message):
    evt = event(method, f"/items/{item_id}", body={"name": "x"})
    evt["pathParameters"] = {"id": item_id} if item_id is not None else None

    status, payload = call(handlers, module, evt)

    assert status == 400
    assert payload["errors"] == [{"location": "path", "field": "id", "message": message}]


# --- PUT /items/{id} --------------------------------------------------------------


def put(handlers, item_id, body, if_match=None):
    headers = {"If-Match": if_match} if if_match is not None else None
    return invoke(handlers, "update_item", item_event("PUT", item_id, body=body, headers=headers))


def test_update_changes_the_fields_given_and_bumps_the_version(handlers, table, monkeypatch):
    item = create(handlers, {"name": "Pen", "description": "Blue ink"})
    monkeypatch.setattr(handlers.update_item, "now", lambda: "2099-01-01T00:00:00.000Z")

    result = put(handlers, item["id"], {"description": "Red ink"})
    payload = json.loads(result["body"])

    assert result["statusCode"] == 200
    assert payload == {**item, "description": "Red ink", "version": 2, "updatedAt": "2099-01-01T00:00:00.000Z"}
    assert result["headers"]["ETag"] == '"2"'
    assert stored(table, item["id"])["version"] == 2


def test_update_can_change_name_and_description_together(handlers, table):
    item = create(handlers, {"name": "Pen", "description": "Blue ink"})

    payload = json.loads(put(handlers, item["id"], {"name": " Pencil ", "description": "HB"})["body"])

    assert (payload["name"], payload["description"], payload["version"]) == ("Pencil", "HB", 2)


def test_update_with_the_current_etag_succeeds(handlers, table):
    item = create(handlers, {"name": "Pen"})

    first = put(handlers, item["id"], {"name": "Pencil"}, if_match='"1"')
    second = put(handlers, item["id"], {"name": "Quill"}, if_match=first["headers"]["ETag"])

    assert (first["statusCode"], second["statusCode"]) == (200, 200)
    assert stored(table, item["id"])["version"] == 3


@pytest.mark.parametrize("if_match", ["*", "2", '"2"', '"5", "2"', 'W/"1", "2"'])
def test_update_accepts_any_if_match_naming_the_current_version(handlers, table, if_match):
    item = create(handlers, {"name": "Pen"})
    put(handlers, item["id"], {"name": "v2"})

    assert put(handlers, item["id"], {"name": "v3"}, if_match=if_match)["statusCode"] == 200


@pytest.mark.parametrize("if_match", ['"1"', "1", 'W/"2"', '"3", "4"'])
def test_update_with_a_stale_etag_is_412_and_writes_nothing(handlers, table, if_match):
    item = create(handlers, {"name": "Pen"})
    put(handlers, item["id"], {"name": "v2"})
    before = stored(table, item["id"])

    result = put(handlers, item["id"], {"name": "Lost update"}, if_match=if_match)

    assert result["statusCode"] == 412
    assert result["headers"]["ETag"] == '"2"'
    assert json.loads(result["body"])["errors"][0]["field"] == "If-Match"
    assert stored(table, item["id"]) == before


@pytest.mark.parametrize("if_match", ["yesterday", '"abc"', '"1', "", "W/", '"1";"2"', '"' + "9" * 19 + '"', ",".join(['"1"'] * 21)])
def test_update_with_an_if_match_that_is_no_etag_is_400(handlers, table, if_match):
    item = create(handlers, {"name": "Pen"})

    result = put(handlers, item["id"], {"name": "x"}, if_match=if_match)

    assert result["statusCode"] == 400
    assert fields_named(json.loads(result["body"])) == {"If-Match"}
    assert stored(table, item["id"])["name"] == "Pen"


@pytest.mark.parametrize("if_match", [None, "*", '"1"'])
def test_update_of_a_missing_item_is_404_and_creates_nothing(handlers, table, if_match):
    result = put(handlers, MISSING, {"name": "Boo"}, if_match=if_match)

    assert (result["statusCode"], json.loads(result["body"])) == (404, {"message": f"Item {MISSING} not found", "errors": []})
    assert table.scan()["Count"] == 0


@pytest.mark.parametrize(
    "body, field",
    [
        (None, "(body)"),
        ("{oops", "(body)"),
        ("[1, 2]", "(body)"),
        ({}, "(body)"),
        ({"name": ""}, "name"),
        ({"name": 7}, "name"),
        ({"description": None}, "description"),
        ({"name": "Ok", "colour": "red"}, "colour"),
        ({"name": "Ok", "version": 2}, "version"),
        ({"name": "Ok", "updatedAt": "now"}, "updatedAt"),
    ],
)
def test_update_rejects_a_bad_body_with_400_and_leaves_the_item_alone(handlers, table, body, field):
    item = create(handlers, {"name": "Pen", "description": "Blue ink"})
    before = stored(table, item["id"])

    result = put(handlers, item["id"], body)

    assert result["statusCode"] == 400
    assert field in fields_named(json.loads(result["body"]))
    assert stored(table, item["id"]) == before


def test_update_checks_the_id_before_the_body(handlers, table):
    too_long = "x" * 2049  # any id names an item now; only one no item can have is refused
    result = invoke(handlers, "update_item", event("PUT", f"/items/{too_long}", item_id=too_long, body="{oops"))

    assert fields_named(json.loads(result["body"])) == {"id"}


def test_update_keeps_attributes_written_outside_the_api(handlers, table):
    table.put_item(Item={"id": MISSING, "name": "Pen", "description": "", "createdAt": "t", "updatedAt": "t",
                         "version": 1, "price": Decimal("2.50")})

    assert put(handlers, MISSING, {"name": "Pencil"})["statusCode"] == 200
    assert stored(table, MISSING)["price"] == Decimal("2.50")


# --- DELETE /items/{id} -----------------------------------------------------------


def delete(handlers, item_id, if_match=None):
    headers = {"If-Match": if_match} if if_match is not None else None
    return call(handlers, "delete_item", item_event("DELETE", item_id, headers=headers))


def test_delete_removes_the_item_and_answers_200_with_its_id(handlers, table):
    item = create(handlers, {"name": "Pen"})
    keep = create(handlers, {"name": "Keep"})

    assert delete(handlers, item["id"]) == (200, {"message": "Item deleted", "id": item["id"]})
    assert stored(table, item["id"]) is None
    assert stored(table, keep["id"])["name"] == "Keep"


def test_delete_of_a_missing_item_is_404_also_the_second_time(handlers, table):
    item = create(handlers, {"name": "Pen"})

    assert delete(handlers, item["id"])[0] == 200
    assert delete(handlers, item["id"]) == (404, {"message": f"Item {item['id']} not found", "errors": []})
    assert delete(handlers, MISSING, if_match='"1"')[0] == 404


def test_delete_with_a_stale_etag_is_412_and_keeps_the_item(handlers, table):
    item = create(handlers, {"name": "Pen"})
    put(handlers, item["id"], {"name": "v2"})

    status, payload = delete(handlers, item["id"], if_match='"1"')

    assert status == 412
    assert "version 2" in payload["message"]
    assert stored(table, item["id"])["name"] == "v2"


def test_delete_with_the_current_etag_or_a_star_succeeds(handlers, table):
    first = create(handlers, {"name": "Pen"})
    second = create(handlers, {"name": "Ink"})

    assert delete(handlers, first["id"], if_match='"1"')[0] == 200
    assert delete(handlers, second["id"], if_match="*")[0] == 200
    assert table.scan()["Count"] == 0


def test_delete_with_an_if_match_that_is_no_etag_is_400(handlers, table):
    item = create(handlers, {"name": "Pen"})

    status, payload = delete(handlers, item["id"], if_match="latest")

    assert (status, fields_named(payload)) == (400, {"If-Match"})
    assert stored(table, item["id"]) is not None


# --- Items written outside the API --------------------------------------------------
# The console tutorial's own functions store only id, name and description; the DynamoDB
# console or a script can store anything. Each test writes such an item straight into the table.

LEGACY = "5a0e4a7c-1b2d-4c3e-9f80-123456789abc"
# What the tutorial's original functions store: no timestamps, no version.
TUTORIAL_ITEM = {"id": LEGACY, "name": "Pen", "description": "Blue ink"}
# Versions the API would never store, each with the attribute type DynamoDB keeps it as.
UNUSABLE_VERSIONS = {
    "missing": {},
    "a string": {"version": "abc"},
    "a number in a string": {"version": "7"},
    "zero": {"version": Decimal(0)},
    "negative": {"version": Decimal(-3)},
    "beyond what If-Match can name": {"version": Decimal(10**20)},
    "a boolean": {"version": True},
    "null": {"version": None},
    "a map": {"version": {"n": Decimal(2)}},
    "binary": {"version": b"\x01"},
}


@functools.cache
def item_validator() -> OAS30Validator:
    # openapi-schema-validator comes with moto[server] (requirements.txt), through openapi-spec-validator.
    document = yaml.safe_load((LAMBDAS_DIR.parent / "openapi.yaml").read_text(encoding="utf-8"))
    return OAS30Validator({"$ref": "#/components/schemas/Item", "components": document["components"]},
                          format_checker=oas30_format_checker)


def item_schema_problems(item) -> list[str]:
    """What in ``item`` breaks openapi.yaml's Item schema (formats such as date-time included)."""
    return [error.message for error in item_validator().iter_errors(item)]


def get_one(handlers, item_id):
    result = invoke(handlers, "get_item", item_event("GET", item_id))
    return result["statusCode"], json.loads(result["body"]), result["headers"].get("ETag")


def test_get_shows_an_item_of_the_tutorials_functions_at_version_1_without_timestamps(handlers, table):
    table.put_item(Item=TUTORIAL_ITEM)

    status, item, tag = get_one(handlers, LEGACY)

    assert (status, tag) == (200, '"1"')
    assert item == {**TUTORIAL_ITEM, "createdAt": None, "updatedAt": None, "version": 1}
    assert item_schema_problems(item) == []


def test_list_shows_items_written_outside_the_api_within_the_item_schema(handlers, table):
    odd = {
        "00000000-0000-4000-8000-000000000001": {},
        "00000000-0000-4000-8000-000000000002": {"name": Decimal(42), "description": True},
        "00000000-0000-4000-8000-000000000003": {"name": "", "description": ["a", "b"], "version": "abc"},
        "00000000-0000-4000-8000-000000000004": {"name": "x" * 500, "description": "y" * 3000, "version": Decimal("2.5"),
                                                 "createdAt": "yesterday", "updatedAt": Decimal(1700000000)},
    }
    for item_id, attributes in odd.items():
        table.put_item(Item={"id": item_id, **attributes})
    table.put_item(Item=TUTORIAL_ITEM)

    status, payload = list_page(handlers)

    assert (status, payload["count"]) == (200, 5)
    shown = {item["id"]: item for item in payload["items"]}
    for item in shown.values():
        assert item_schema_problems(item) == [], item
    assert shown[LEGACY] == {**TUTORIAL_ITEM, "createdAt": None, "updatedAt": None, "version": 1}
    assert shown["00000000-0000-4000-8000-000000000001"] == {
        "id": "00000000-0000-4000-8000-000000000001", "name": "", "description": "",
        "createdAt": None, "updatedAt": None, "version": 1}
    assert (shown["00000000-0000-4000-8000-000000000002"]["name"],
            shown["00000000-0000-4000-8000-000000000002"]["description"]) == ("42", "true")
    assert shown["00000000-0000-4000-8000-000000000003"]["description"] == ""
    assert shown["00000000-0000-4000-8000-000000000004"]["version"] == 2


@pytest.mark.parametrize("version", UNUSABLE_VERSIONS.values(), ids=UNUSABLE_VERSIONS.keys())
def test_get_reads_an_unusable_version_as_version_1(handlers, table, version):
    table.put_item(Item={**TUTORIAL_ITEM, **version})

    status, item, tag = get_one(handlers, LEGACY)

    assert (status, item["version"], tag) == (200, 1, '"1"')


def test_a_name_or_description_stored_as_a_number_or_boolean_is_shown_as_its_json_text(handlers, table):
    table.put_item(Item={**TUTORIAL_ITEM, "name": Decimal("12.50"), "description": False})

    status, item, _ = get_one(handlers, LEGACY)

    assert (status, item["name"], item["description"]) == (200, "12.5", "false")
    assert item_schema_problems(item) == []


def test_a_missing_name_and_a_description_of_another_type_are_shown_as_empty_strings(handlers, table):
    table.put_item(Item={"id": LEGACY, "description": {"colour": "blue"}})

    status, item, _ = get_one(handlers, LEGACY)

    assert (status, item["name"], item["description"]) == (200, "", "")
    assert item_schema_problems(item) == []


def test_timestamps_that_are_not_date_times_are_shown_as_null_and_others_as_stored(handlers, table):
    table.put_item(Item={**TUTORIAL_ITEM, "createdAt": "2024-05-01T10:00:00+02:00", "updatedAt": "last Tuesday"})

    status, item, _ = get_one(handlers, LEGACY)

    assert (status, item["createdAt"], item["updatedAt"]) == (200, "2024-05-01T10:00:00+02:00", None)
    assert item_schema_problems(item) == []


@pytest.mark.parametrize("version", UNUSABLE_VERSIONS.values(), ids=UNUSABLE_VERSIONS.keys())
def test_update_without_if_match_makes_an_item_with_an_unusable_version_version_2(handlers, table, version):
    table.put_item(Item={**TUTORIAL_ITEM, **version})

    result = put(handlers, LEGACY, {"name": "Pencil"})
    item = json.loads(result["body"])

    assert (result["statusCode"], result["headers"]["ETag"]) == (200, '"2"')
    assert (item["name"], item["description"], item["version"], item["createdAt"]) == ("Pencil", "Blue ink", 2, None)
    assert ISO_UTC.match(item["updatedAt"])
    assert stored(table, LEGACY)["version"] == 2
    assert put(handlers, LEGACY, {"name": "Quill"}, if_match='"2"')["headers"]["ETag"] == '"3"'


@pytest.mark.parametrize("version", UNUSABLE_VERSIONS.values(), ids=UNUSABLE_VERSIONS.keys())
def test_update_with_if_match_1_changes_an_item_with_an_unusable_version(handlers, table, version):
    table.put_item(Item={**TUTORIAL_ITEM, **version})

    result = put(handlers, LEGACY, {"description": "Red ink"}, if_match='"1"')

    assert (result["statusCode"], result["headers"]["ETag"]) == (200, '"2"')
    assert stored(table, LEGACY)["description"] == "Red ink"


@pytest.mark.parametrize("version", UNUSABLE_VERSIONS.values(), ids=UNUSABLE_VERSIONS.keys())
def test_update_with_a_stale_if_match_on_an_item_with_an_unusable_version_is_412_with_etag_1(handlers, table, version):
    table.put_item(Item={**TUTORIAL_ITEM, **version})
    before = stored(table, LEGACY)

    result = put(handlers, LEGACY, {"name": "Lost update"}, if_match='"5"')

    assert (result["statusCode"], result["headers"]["ETag"]) == (412, '"1"')
    assert "version 1" in json.loads(result["body"])["message"]
    assert stored(table, LEGACY) == before


@pytest.mark.parametrize("version", UNUSABLE_VERSIONS.values(), ids=UNUSABLE_VERSIONS.keys())
def test_delete_with_if_match_1_removes_an_item_with_an_unusable_version(handlers, table, version):
    table.put_item(Item={**TUTORIAL_ITEM, **version})

    assert delete(handlers, LEGACY, if_match='"1"') == (200, {"message": "Item deleted", "id": LEGACY})
    assert stored(table, LEGACY) is None


@pytest.mark.parametrize("version", UNUSABLE_VERSIONS.values(), ids=UNUSABLE_VERSIONS.keys())
def test_delete_with_a_stale_if_match_keeps_an_item_with_an_unusable_version(handlers, table, version):
    table.put_item(Item={**TUTORIAL_ITEM, **version})

    result = invoke(handlers, "delete_item", item_event("DELETE", LEGACY, headers={"If-Match": '"2"'}))

    assert (result["statusCode"], result["headers"]["ETag"]) == (412, '"1"')
    assert stored(table, LEGACY) is not None


def test_if_match_0_never_matches_not_even_an_item_stored_with_version_0(handlers, table):
    table.put_item(Item={**TUTORIAL_ITEM, "version": Decimal(0)})

    assert delete(handlers, LEGACY, if_match='"0"')[0] == 412
    assert put(handlers, LEGACY, {"name": "x"}, if_match='"0"')["statusCode"] == 412
    assert stored(table, LEGACY) == {**TUTORIAL_ITEM, "version": 0}


def test_a_fractional_version_reads_as_its_whole_part_and_an_if_match_put_stores_the_next_whole_number(handlers, table):
    table.put_item(Item={**TUTORIAL_ITEM, "version": Decimal("2.5")})

    assert get_one(handlers, LEGACY)[2] == '"2"'
    assert put(handlers, LEGACY, {"name": "x"}, if_match='"1"')["statusCode"] == 412
    result = put(handlers, LEGACY, {"name": "Pencil"}, if_match='"2"')

    assert (result["statusCode"], result["headers"]["ETag"]) == (200, '"3"')
    assert stored(table, LEGACY)["version"] == Decimal(3)


def test_an_update_without_if_match_moves_a_fractional_version_on_by_one(handlers, table):
    # DynamoDB's conditions cannot tell 2.5 from a whole number: the normal write adds 1 (3.5), read as 3.
    table.put_item(Item={**TUTORIAL_ITEM, "version": Decimal("2.5")})

    result = put(handlers, LEGACY, {"name": "Pencil"})

    assert (result["statusCode"], result["headers"]["ETag"], json.loads(result["body"])["version"]) == (200, '"3"', 3)
    assert get_one(handlers, LEGACY)[2] == '"3"'


def another_client_upgrades_the_legacy_item_after_our_first_attempt(handlers, table, monkeypatch) -> list:
    """Store the tutorial's item, and make another PUT move it to version 2 between our first write
    attempt and our second; returns the UpdateExpressions our handler sent, as it sends them."""
    table.put_item(Item=TUTORIAL_ITEM)
    real_update = handlers.common.TABLE.update_item
    calls = []

    def update_item(**kwargs):
        calls.append(kwargs["UpdateExpression"])
        if len(calls) == 2:
            table.update_item(Key={"id": LEGACY}, UpdateExpression="SET #v = :two",
                              ExpressionAttributeNames={"#v": "version"}, ExpressionAttributeValues={":two": 2})
        return real_update(**kwargs)

    monkeypatch.setattr(handlers.common.TABLE, "update_item", update_item)
    return calls


def test_an_update_that_loses_the_upgrade_of_a_legacy_item_to_another_update_takes_the_normal_path(handlers, table, monkeypatch):
    calls = another_client_upgrades_the_legacy_item_after_our_first_attempt(handlers, table, monkeypatch)

    result = put(handlers, LEGACY, {"name": "Pencil"})

    assert (result["statusCode"], result["headers"]["ETag"]) == (200, '"3"')
    assert len(calls) == 3


def test_an_if_match_1_update_that_loses_the_upgrade_of_a_legacy_item_is_412(handlers, table, monkeypatch):
    another_client_upgrades_the_legacy_item_after_our_first_attempt(handlers, table, monkeypatch)

    result = put(handlers, LEGACY, {"name": "Pencil"}, if_match='"1"')

    assert (result["statusCode"], result["headers"]["ETag"]) == (412, '"2"')
    assert stored(table, LEGACY)["name"] == "Pen"


def test_an_update_gives_up_with_412_when_another_writer_changes_the_legacy_version_before_every_attempt(
        handlers, table, monkeypatch):
    table.put_item(Item=TUTORIAL_ITEM)
    real_update = handlers.common.TABLE.update_item
    versions = iter(["abc", True, Decimal(0)])

    def another_writer_changes_it_each_time(**kwargs):
        table.put_item(Item={**TUTORIAL_ITEM, "version": next(versions)})
        return real_update(**kwargs)

    monkeypatch.setattr(handlers.common.TABLE, "update_item", another_writer_changes_it_each_time)

    result = put(handlers, LEGACY, {"name": "Pencil"})

    assert (result["statusCode"], result["headers"]["ETag"]) == (412, '"1"')
    assert "during each of 3 attempts" in json.loads(result["body"])["message"]
    assert stored(table, LEGACY)["name"] == "Pen"


def test_an_item_made_by_the_api_is_updated_and_deleted_in_one_dynamodb_call(handlers, table, monkeypatch):
    item = create(handlers, {"name": "Pen"})
    calls = []
    for verb in ("update_item", "delete_item"):
        real = getattr(handlers.common.TABLE, verb)
        monkeypatch.setattr(handlers.common.TABLE, verb,
                            lambda _real=real, _verb=verb, **kwargs: calls.append(_verb) or _real(**kwargs))

    assert put(handlers, item["id"], {"name": "Pencil"})["statusCode"] == 200
    assert put(handlers, item["id"], {"name": "Quill"}, if_match='"2"')["statusCode"] == 200
    assert delete(handlers, item["id"], if_match='"3"')[0] == 200
    assert calls == ["update_item", "update_item", "delete_item"]


# --- CORS ---------------------------------------------------------------------------


def test_by_default_every_answer_allows_any_origin_and_exposes_etag_and_location(handlers, table):
    ok = invoke(handlers, "create_item", event("POST", "/items", body={"name": "Pen"}, headers={"Origin": "https://a.example"}))
    missing = invoke(handlers, "get_item", item_event("GET", MISSING))
    bad = invoke(handlers, "create_item", event("POST", "/items", body="{"))

    for result in (ok, missing, bad):
        assert result["headers"]["Access-Control-Allow-Origin"] == "*"
        assert result["headers"]["Access-Control-Expose-Headers"] == "ETag, Location"


def test_an_allowed_origin_is_echoed_with_vary_origin(strict_cors, table):
    result = invoke(strict_cors, "create_item",
                    event("POST", "/items", body={"name": "Pen"}, headers={"origin": "http://localhost:3000"}))

    assert result["statusCode"] == 201
    assert result["headers"]["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert result["headers"]["Vary"] == "Origin"
    assert result["headers"]["Access-Control-Expose-Headers"] == "ETag, Location"


def test_an_error_answer_carries_the_cors_headers_too(strict_cors, table):
    result = invoke(strict_cors, "get_item", item_event("GET", "x" * 2049, headers={"Origin": "https://app.example.com"}))

    assert result["statusCode"] == 400
    assert result["headers"]["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_a_request_from_an_origin_not_allowed_is_403_and_changes_nothing(strict_cors, table):
    result = invoke(strict_cors, "create_item",
                    event("POST", "/items", body={"name": "Pen"}, headers={"Origin": "https://evil.example"}))

    assert result["statusCode"] == 403
    assert "api.cors.allowed_origins" in json.loads(result["body"])["message"]
    assert "Access-Control-Allow-Origin" not in result["headers"]
    assert result["headers"]["Vary"] == "Origin"
    assert table.scan()["Count"] == 0


def test_a_request_without_an_origin_is_served_without_allow_origin(strict_cors, table):
    result = invoke(strict_cors, "get_items", event("GET", "/items"))

    assert result["statusCode"] == 200
    assert "Access-Control-Allow-Origin" not in result["headers"]
    assert result["headers"]["Vary"] == "Origin"


# --- Whole flow and failures ------------------------------------------------------


def test_create_then_read_update_list_and_delete_round_trip(handlers, table):
    item = create(handlers, {"name": "Pen", "description": "Blue"})

    assert call(handlers, "get_item", item_event("GET", item["id"])) == (200, item)
    updated = json.loads(put(handlers, item["id"], {"name": "Pencil"}, if_match='"1"')["body"])
    assert (updated["name"], updated["version"]) == ("Pencil", 2)
    assert list_page(handlers) == (200, {"items": [updated], "count": 1, "nextToken": None})
    assert delete(handlers, item["id"], if_match='"2"')[0] == 200
    assert call(handlers, "get_item", item_event("GET", item["id"]))[0] == 404
    assert list_page(handlers) == (200, {"items": [], "count": 0, "nextToken": None})


def test_an_unexpected_error_is_a_json_500_with_the_traceback_logged(handlers, table, monkeypatch, caplog):
    def broken_get_item(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(handlers.common.TABLE, "get_item", broken_get_item)

    result = invoke(handlers, "get_item", item_event("GET", MISSING))

    assert result["statusCode"] == 500
    assert json.loads(result["body"]) == {"message": "Internal server error", "errors": []}
    assert result["headers"]["Access-Control-Allow-Origin"] == "*"
    assert "disk on fire" not in result["body"] and "Traceback" not in result["body"]
    assert f"Unhandled error in GET /items/{MISSING}" in caplog.text
    assert "RuntimeError: disk on fire" in caplog.text


def test_a_dynamodb_error_is_a_500_not_a_404(handlers, table, caplog):
    table.delete()  # every call now fails with ResourceNotFoundException

    status, payload = call(handlers, "get_item", item_event("GET", MISSING))

    assert (status, payload) == (500, {"message": "Internal server error", "errors": []})
    assert "ResourceNotFoundException" in caplog.text


def test_outside_lambda_the_traceback_of_a_500_goes_to_stdout(tmp_path):
    # A plain process (like a local runtime) has no logging handler of its own:
    # the handler must still put the traceback on stdout, where logs are collected.
    script = textwrap.dedent(
        """
        import json, sys
        sys.path.insert(0, sys.argv[1])
        import common, get_item

        def broken_get_item(**kwargs):
            raise RuntimeError("disk on fire")

        common.TABLE.get_item = broken_get_item
        result = get_item.lambda_handler({"httpMethod": "GET", "path": "/items/x", "pathParameters": {"id": "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"}}, None)
        sys.stderr.write(json.dumps(result))
        """
    )
    env = {
        **os.environ,
        "TABLE_NAME": TABLE_NAME,
        "AWS_DEFAULT_REGION": "us-east-1",
        # Loopback, closed: nothing is meant to be called, and nothing could leave the machine.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }

    run = subprocess.run(
        [sys.executable, "-c", script, str(LAMBDAS_DIR)],
        capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path,
    )

    assert run.returncode == 0, run.stderr
    assert json.loads(run.stderr)["statusCode"] == 500
    assert "Traceback (most recent call last)" in run.stdout
    assert "RuntimeError: disk on fire" in run.stdout


def test_a_missing_table_name_fails_the_cold_start_with_a_clear_message(table, monkeypatch):
    monkeypatch.delenv("TABLE_NAME")
    monkeypatch.syspath_prepend(str(LAMBDAS_DIR))
    for name in ("common", "common.http", "common.items"):
        monkeypatch.delitem(sys.modules, name, raising=False)

    try:
        with pytest.raises(RuntimeError, match="TABLE_NAME is not set"):
            importlib.import_module("common")
    finally:
        sys.modules.pop("common", None)


def test_an_event_that_is_not_from_api_gateway_is_a_logged_500(handlers, table, caplog):
    result = handlers.get_item.lambda_handler(["not", "a", "proxy", "event"], None)

    assert result["statusCode"] == 500
    assert json.loads(result["body"]) == {"message": "Internal server error", "errors": []}
    assert "Unhandled error in non-API event list" in caplog.text
