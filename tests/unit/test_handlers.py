"""The five Lambda handlers, called with API Gateway (REST, proxy) events
against a moto DynamoDB table."""
import base64
import importlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

LAMBDAS_DIR = Path(__file__).resolve().parents[2] / "lambdas"
HANDLER_MODULES = ("common", "create_item", "get_items", "get_item", "update_item", "delete_item")
TABLE_NAME = "ItemsTable"


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


@pytest.fixture
def handlers(table, monkeypatch):
    # The handlers build their Table at import, as Lambda advises (one per warm
    # container), so we keep that code as it ships and import it here instead:
    # after mock_aws has started and TABLE_NAME is set, and forgotten afterwards.
    # Each test gets a cold start bound to its own mocked account.
    monkeypatch.syspath_prepend(str(LAMBDAS_DIR))
    for name in HANDLER_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield SimpleNamespace(**{name: importlib.import_module(name) for name in HANDLER_MODULES})
    for name in HANDLER_MODULES:
        sys.modules.pop(name, None)


def event(method, path, *, item_id=None, body=None, base64_body=False):
    """A REST API (v1) Lambda proxy event, as API Gateway sends it."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if base64_body:
        body = base64.b64encode(body.encode("utf-8")).decode("ascii")
    return {
        "resource": "/items/{id}" if item_id is not None else "/items",
        "path": path,
        "httpMethod": method,
        "headers": None,
        "queryStringParameters": None,
        "pathParameters": {"id": item_id} if item_id is not None else None,
        "body": body,
        "isBase64Encoded": base64_body,
        "requestContext": {"stage": "prod", "requestId": str(uuid.uuid4())},
    }


def call(handlers, module, evt):
    """Invoke a handler; return (status, parsed body) after checking the envelope."""
    result = getattr(handlers, module).lambda_handler(evt, None)
    assert isinstance(result["statusCode"], int)
    assert result["headers"]["Content-Type"] == "application/json"
    assert isinstance(result["body"], str)
    return result["statusCode"], json.loads(result["body"])


def create(handlers, body):
    status, payload = call(handlers, "create_item", event("POST", "/items", body=body))
    assert status == 201, payload
    return payload["item"]


def stored(table, item_id):
    return table.get_item(Key={"id": item_id}, ConsistentRead=True).get("Item")


# --- POST /items ------------------------------------------------------------------


def test_create_returns_201_with_the_tutorial_shape(handlers, table):
    status, payload = call(
        handlers, "create_item", event("POST", "/items", body={"name": "Pen", "description": "Blue ink"})
    )

    assert status == 201
    assert payload["message"] == "Item created successfully!"
    assert set(payload["item"]) == {"id", "name", "description"}
    assert uuid.UUID(payload["item"]["id"]).version == 4
    assert payload["item"]["name"] == "Pen"
    assert payload["item"]["description"] == "Blue ink"
    assert stored(table, payload["item"]["id"]) == payload["item"]


def test_create_without_description_stores_an_empty_one(handlers, table):
    item = create(handlers, {"name": "Pen"})

    assert item["description"] == ""
    assert stored(table, item["id"]) == {"id": item["id"], "name": "Pen", "description": ""}


def test_create_gives_every_item_its_own_id(handlers, table):
    first = create(handlers, {"name": "Pen"})
    second = create(handlers, {"name": "Pen"})

    assert first["id"] != second["id"]
    assert table.scan()["Count"] == 2


def test_create_ignores_an_id_and_unknown_fields_in_the_body(handlers, table):
    existing = create(handlers, {"name": "Original"})

    item = create(handlers, {"name": "Intruder", "id": existing["id"], "colour": "red"})

    assert item["id"] != existing["id"]
    assert "colour" not in stored(table, item["id"])
    assert stored(table, existing["id"])["name"] == "Original"


def test_create_never_overwrites_an_existing_item(handlers, table, monkeypatch):
    existing = create(handlers, {"name": "Original"})
    monkeypatch.setattr(handlers.create_item.uuid, "uuid4", lambda: uuid.UUID(existing["id"]))

    status, payload = call(handlers, "create_item", event("POST", "/items", body={"name": "Clash"}))

    assert status == 500
    assert payload == {"message": "Internal server error"}
    assert stored(table, existing["id"])["name"] == "Original"


def test_create_decodes_a_base64_body(handlers, table):
    evt = event("POST", "/items", body={"name": "Café", "description": "naïve"}, base64_body=True)

    status, payload = call(handlers, "create_item", evt)

    assert status == 201
    assert stored(table, payload["item"]["id"])["name"] == "Café"
    assert payload["item"]["description"] == "naïve"


@pytest.mark.parametrize(
    "body, message",
    [
        (None, "Request body is required"),
        ("", "Request body is required"),
        ("{not json", "Request body is not valid JSON"),
        ('{"name": NaN}', "Request body is not valid JSON: NaN is not valid JSON"),
        ('["Pen"]', "Request body must be a JSON object, got array"),
        ('"Pen"', "Request body must be a JSON object, got string"),
        ("null", "Request body must be a JSON object, got null"),
        ({"description": "no name"}, "Field 'name' is required"),
        ({"name": ""}, "Field 'name' must not be empty"),
        ({"name": "   "}, "Field 'name' must not be empty"),
        ({"name": 42}, "Field 'name' must be a string, got number"),
        ({"name": None}, "Field 'name' must be a string, got null"),
        ({"name": ["Pen"]}, "Field 'name' must be a string, got array"),
        ({"name": "Pen", "description": 1.5}, "Field 'description' must be a string, got number"),
        ({"name": "Pen", "description": True}, "Field 'description' must be a string, got boolean"),
        ({"name": "Pen", "description": {}}, "Field 'description' must be a string, got object"),
    ],
)
def test_create_rejects_a_bad_body_with_400_naming_the_problem(handlers, table, body, message):
    status, payload = call(handlers, "create_item", event("POST", "/items", body=body))

    assert status == 400
    assert payload["message"].startswith(message)
    assert table.scan()["Count"] == 0


def test_create_rejects_a_base64_body_that_does_not_decode(handlers, table):
    evt = event("POST", "/items", body="not base64!")
    evt["isBase64Encoded"] = True

    status, payload = call(handlers, "create_item", evt)

    assert (status, payload) == (400, {"message": "Request body is not valid base64"})


def test_create_rejects_a_base64_body_that_is_not_utf8(handlers, table):
    evt = event("POST", "/items", body=base64.b64encode(b'{"name": "\xff"}').decode("ascii"))
    evt["isBase64Encoded"] = True

    status, payload = call(handlers, "create_item", evt)

    assert (status, payload) == (400, {"message": "Request body is not valid UTF-8"})


# --- GET /items -------------------------------------------------------------------


def test_list_returns_every_item_and_the_count(handlers, table):
    created = [create(handlers, {"name": f"Item {n}"}) for n in range(3)]

    status, payload = call(handlers, "get_items", event("GET", "/items"))

    assert status == 200
    assert payload["count"] == 3
    assert sorted(payload["items"], key=lambda i: i["id"]) == sorted(created, key=lambda i: i["id"])


def test_list_of_an_empty_table_is_an_empty_list(handlers, table):
    status, payload = call(handlers, "get_items", event("GET", "/items"))

    assert (status, payload) == (200, {"items": [], "count": 0})


def test_list_follows_scan_pages_past_the_1mb_limit(handlers, table, monkeypatch):
    # 12 items of ~200 KB are ~2.4 MB: DynamoDB (and moto) must split the Scan.
    created = {create(handlers, {"name": f"Big {n}", "description": f"{n}" * 200_000})["id"] for n in range(12)}
    scans = []
    real_scan = handlers.common.TABLE.scan

    def counting_scan(**kwargs):
        scans.append(kwargs)
        return real_scan(**kwargs)

    monkeypatch.setattr(handlers.common.TABLE, "scan", counting_scan)

    status, payload = call(handlers, "get_items", event("GET", "/items"))

    assert status == 200
    assert len(scans) >= 3
    assert "ExclusiveStartKey" not in scans[0]
    assert all("ExclusiveStartKey" in later for later in scans[1:])
    assert payload["count"] == 12
    assert {item["id"] for item in payload["items"]} == created


# --- GET /items/{id} --------------------------------------------------------------


def test_get_returns_the_item(handlers, table):
    item = create(handlers, {"name": "Pen", "description": "Blue ink"})

    status, payload = call(handlers, "get_item", event("GET", f"/items/{item['id']}", item_id=item["id"]))

    assert (status, payload) == (200, item)


def test_get_of_a_missing_item_is_404(handlers, table):
    status, payload = call(handlers, "get_item", event("GET", "/items/nope", item_id="nope"))

    assert (status, payload) == (404, {"message": "Item nope not found"})


def test_get_sends_stored_numbers_back_as_json_numbers(handlers, table):
    table.put_item(
        Item={
            "id": "n1",
            "name": "Numbers",
            "price": Decimal("19.99"),
            "quantity": Decimal("3"),
            "whole_with_point": Decimal("2.0"),
            "huge": Decimal("123456789012345678901234567890"),
            "negative": Decimal("-0.5"),
            "nested": {"weights": [Decimal("1.25"), Decimal("7")]},
        }
    )

    status, result = call(handlers, "get_item", event("GET", "/items/n1", item_id="n1"))
    raw = handlers.get_item.lambda_handler(event("GET", "/items/n1", item_id="n1"), None)["body"]

    assert status == 200
    assert result["price"] == 19.99 and isinstance(result["price"], float)
    assert result["quantity"] == 3 and isinstance(result["quantity"], int)
    assert result["whole_with_point"] == 2 and isinstance(result["whole_with_point"], int)
    assert result["huge"] == 123456789012345678901234567890
    assert result["negative"] == -0.5
    assert result["nested"] == {"weights": [1.25, 7]}
    assert '"price": 19.99' in raw and '"quantity": 3' in raw


def test_get_logs_a_number_too_precise_for_json(handlers, table, caplog):
    table.put_item(Item={"id": "pi", "name": "Pi", "value": Decimal("3.14159265358979323846264338327950288")})

    status, result = call(handlers, "get_item", event("GET", "/items/pi", item_id="pi"))

    assert status == 200
    assert result["value"] == 3.141592653589793
    assert "3.14159265358979323846264338327950288 is sent as 3.141592653589793" in caplog.text


def test_get_sends_sets_as_lists_and_binary_as_base64(handlers, table):
    table.put_item(
        Item={"id": "s1", "name": "Sets", "tags": {"b", "a"}, "sizes": {Decimal("2"), Decimal("1")}, "blob": b"\x00\x01"}
    )

    status, result = call(handlers, "get_item", event("GET", "/items/s1", item_id="s1"))

    assert status == 200
    assert result["tags"] == ["a", "b"]
    assert result["sizes"] == [1, 2]
    assert result["blob"] == "AAE="


@pytest.mark.parametrize("module, method", [("get_item", "GET"), ("update_item", "PUT"), ("delete_item", "DELETE")])
@pytest.mark.parametrize("path_parameters", [None, {}, {"id": ""}])
def test_a_route_without_an_id_is_400(handlers, table, module, method, path_parameters):
    evt = event(method, "/items/", body={"name": "x"})
    evt["pathParameters"] = path_parameters

    status, payload = call(handlers, module, evt)

    assert (status, payload) == (400, {"message": "Path parameter 'id' is required"})


def test_an_id_longer_than_dynamodb_allows_is_400(handlers, table):
    long_id = "é" * 1025  # 2050 bytes in UTF-8

    status, payload = call(handlers, "get_item", event("GET", f"/items/{long_id}", item_id=long_id))

    assert (status, payload) == (400, {"message": "Path parameter 'id' is longer than 2048 bytes"})


# --- PUT /items/{id} --------------------------------------------------------------


def test_update_changes_only_the_fields_given(handlers, table):
    item = create(handlers, {"name": "Pen", "description": "Blue ink"})

    evt = event("PUT", f"/items/{item['id']}", item_id=item["id"], body={"description": "Red ink"})
    status, payload = call(handlers, "update_item", evt)

    assert status == 200
    assert payload == {"id": item["id"], "name": "Pen", "description": "Red ink"}
    assert stored(table, item["id"]) == payload


def test_update_can_change_name_and_description_together(handlers, table):
    item = create(handlers, {"name": "Pen", "description": "Blue ink"})

    status, payload = call(
        handlers,
        "update_item",
        event("PUT", f"/items/{item['id']}", item_id=item["id"], body={"name": "Pencil", "description": "HB"}),
    )

    assert (status, payload) == (200, {"id": item["id"], "name": "Pencil", "description": "HB"})
    assert stored(table, item["id"]) == payload


def test_update_keeps_other_stored_attributes_and_their_numbers(handlers, table):
    table.put_item(Item={"id": "p1", "name": "Pen", "description": "", "price": Decimal("2.50")})

    status, payload = call(handlers, "update_item", event("PUT", "/items/p1", item_id="p1", body={"name": "Pencil"}))

    assert status == 200
    assert payload == {"id": "p1", "name": "Pencil", "description": "", "price": 2.5}


def test_update_of_a_missing_item_is_404_and_creates_nothing(handlers, table):
    status, payload = call(handlers, "update_item", event("PUT", "/items/ghost", item_id="ghost", body={"name": "Boo"}))

    assert (status, payload) == (404, {"message": "Item ghost not found"})
    assert table.scan()["Count"] == 0


@pytest.mark.parametrize(
    "body, message",
    [
        (None, "Request body is required"),
        ("{oops", "Request body is not valid JSON"),
        ("[1, 2]", "Request body must be a JSON object, got array"),
        ({}, "Request body must contain at least one of: name, description"),
        ({"colour": "red"}, "Request body must contain at least one of: name, description"),
        ({"name": ""}, "Field 'name' must not be empty"),
        ({"name": 7}, "Field 'name' must be a string, got number"),
        ({"description": None}, "Field 'description' must be a string, got null"),
        ({"name": "Ok", "description": ["x"]}, "Field 'description' must be a string, got array"),
    ],
)
def test_update_rejects_a_bad_body_with_400_and_leaves_the_item_alone(handlers, table, body, message):
    item = create(handlers, {"name": "Pen", "description": "Blue ink"})

    evt = event("PUT", f"/items/{item['id']}", item_id=item["id"], body=body)
    status, payload = call(handlers, "update_item", evt)

    assert status == 400
    assert payload["message"].startswith(message)
    assert stored(table, item["id"]) == item


def test_update_decodes_a_base64_body(handlers, table):
    item = create(handlers, {"name": "Pen"})

    evt = event("PUT", f"/items/{item['id']}", item_id=item["id"], body={"name": "Stylo"}, base64_body=True)
    status, payload = call(handlers, "update_item", evt)

    assert status == 200
    assert stored(table, item["id"])["name"] == "Stylo"


# --- DELETE /items/{id} -----------------------------------------------------------


def test_delete_removes_the_item(handlers, table):
    item = create(handlers, {"name": "Pen"})
    keep = create(handlers, {"name": "Keep"})

    status, payload = call(handlers, "delete_item", event("DELETE", f"/items/{item['id']}", item_id=item["id"]))

    assert (status, payload) == (200, {"message": "Item deleted", "id": item["id"]})
    assert stored(table, item["id"]) is None
    assert stored(table, keep["id"]) == keep


def test_delete_of_a_missing_item_is_404(handlers, table):
    status, payload = call(handlers, "delete_item", event("DELETE", "/items/ghost", item_id="ghost"))

    assert (status, payload) == (404, {"message": "Item ghost not found"})


def test_delete_twice_is_404_the_second_time(handlers, table):
    item = create(handlers, {"name": "Pen"})
    evt = event("DELETE", f"/items/{item['id']}", item_id=item["id"])

    first, _ = call(handlers, "delete_item", evt)
    second, payload = call(handlers, "delete_item", evt)

    assert (first, second) == (200, 404)
    assert payload == {"message": f"Item {item['id']} not found"}


# --- Whole flow and failures ------------------------------------------------------


def test_create_then_read_update_list_and_delete_round_trip(handlers, table):
    item = create(handlers, {"name": "Pen", "description": "Blue"})
    item_path = f"/items/{item['id']}"

    assert call(handlers, "get_item", event("GET", item_path, item_id=item["id"])) == (200, item)
    status, updated = call(handlers, "update_item", event("PUT", item_path, item_id=item["id"], body={"name": "Pencil"}))
    assert (status, updated["name"]) == (200, "Pencil")
    assert call(handlers, "get_items", event("GET", "/items")) == (200, {"items": [updated], "count": 1})
    assert call(handlers, "delete_item", event("DELETE", item_path, item_id=item["id"]))[0] == 200
    assert call(handlers, "get_item", event("GET", item_path, item_id=item["id"]))[0] == 404
    assert call(handlers, "get_items", event("GET", "/items")) == (200, {"items": [], "count": 0})


def test_an_unexpected_error_is_a_json_500_with_the_traceback_logged(handlers, table, monkeypatch, caplog):
    def broken_get_item(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(handlers.common.TABLE, "get_item", broken_get_item)

    result = handlers.get_item.lambda_handler(event("GET", "/items/x", item_id="x"), None)

    assert result["statusCode"] == 500
    assert json.loads(result["body"]) == {"message": "Internal server error"}
    assert "disk on fire" not in result["body"] and "Traceback" not in result["body"]
    assert "Unhandled error in GET /items/x" in caplog.text
    assert "Traceback (most recent call last)" in caplog.text
    assert "RuntimeError: disk on fire" in caplog.text


def test_a_dynamodb_error_is_a_500_not_a_404(handlers, table, monkeypatch, caplog):
    table.delete()  # every call now fails with ResourceNotFoundException

    status, payload = call(handlers, "get_item", event("GET", "/items/x", item_id="x"))

    assert (status, payload) == (500, {"message": "Internal server error"})
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
        result = get_item.lambda_handler({"httpMethod": "GET", "path": "/items/x", "pathParameters": {"id": "x"}}, None)
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
    monkeypatch.delitem(sys.modules, "common", raising=False)

    try:
        with pytest.raises(RuntimeError, match="TABLE_NAME is not set"):
            importlib.import_module("common")
    finally:
        sys.modules.pop("common", None)


def test_an_event_that_is_not_from_api_gateway_is_a_logged_500(handlers, table, caplog):
    result = handlers.get_item.lambda_handler(["not", "a", "proxy", "event"], None)

    assert result["statusCode"] == 500
    assert json.loads(result["body"]) == {"message": "Internal server error"}
    assert "Unhandled error in non-API event list" in caplog.text
