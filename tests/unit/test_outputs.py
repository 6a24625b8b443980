"""The files written after a provision: built from the --json document alone, and the example
requests in them are ones the real handlers accept."""

import importlib
import json
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from crudstack.outputs import (POSTMAN_SCHEMA, example_body, ordered_routes, postman_collection, rest_client_file,
                               variable_for, write_outputs)

LAMBDAS_DIR = Path(__file__).resolve().parents[2] / "lambdas"
URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod"


@pytest.fixture
def doc() -> dict:
    """The routes part of a provision's --json document, in config order (not the order outputs use)."""
    routes = [("POST", "/items", "CreateItemFunction"), ("GET", "/items", "GetItemsFunction"),
              ("GET", "/items/{id}", "GetItemFunction"), ("PUT", "/items/{id}", "UpdateItemFunction"),
              ("DELETE", "/items/{id}", "DeleteItemFunction")]
    return {"stack": "demo", "target": "aws", "invoke_url": URL,
            "routes": [{"method": m, "path": p, "url": URL + p, "function": f"demo-{f}"} for m, p, f in reversed(routes)]}


def test_a_path_id_becomes_a_variable_named_after_its_collection():
    assert variable_for("/items/{id}", "id") == "itemId"
    assert variable_for("/orders/{id}/lines", "id") == "orderId"
    assert variable_for("/orders/{orderId}", "orderId") == "orderId"


def test_routes_are_ordered_so_that_the_create_comes_before_the_requests_needing_its_id(doc):
    order = [(r["method"], r["path"]) for r in ordered_routes(doc["routes"])]

    assert order == [("POST", "/items"), ("GET", "/items"), ("GET", "/items/{id}"), ("PUT", "/items/{id}"), ("DELETE", "/items/{id}")]


def test_postman_collection_is_v2_1_with_base_url_set_to_the_invoke_url(doc):
    collection = postman_collection(doc)

    assert collection["info"]["schema"] == POSTMAN_SCHEMA
    variables = {v["key"]: v["value"] for v in collection["variable"]}
    assert variables == {"baseUrl": URL, "itemId": ""}


def test_postman_collection_has_one_request_per_route_with_the_id_as_a_variable(doc):
    requests = [item["request"] for item in postman_collection(doc)["item"]]

    assert [(r["method"], r["url"]["raw"]) for r in requests] == [
        ("POST", "{{baseUrl}}/items"), ("GET", "{{baseUrl}}/items"), ("GET", "{{baseUrl}}/items/{{itemId}}"),
        ("PUT", "{{baseUrl}}/items/{{itemId}}"), ("DELETE", "{{baseUrl}}/items/{{itemId}}")]
    assert requests[2]["url"]["host"] == ["{{baseUrl}}"]
    assert requests[2]["url"]["path"] == ["items", "{{itemId}}"]


def test_postman_requests_with_a_body_send_json_and_the_others_send_none(doc):
    requests = {(i["request"]["method"], i["request"]["url"]["raw"]): i["request"] for i in postman_collection(doc)["item"]}

    post = requests[("POST", "{{baseUrl}}/items")]
    assert json.loads(post["body"]["raw"]) == example_body("POST")
    assert post["header"] == [{"key": "Content-Type", "value": "application/json"}]
    assert json.loads(requests[("PUT", "{{baseUrl}}/items/{{itemId}}")]["body"]["raw"]) == example_body("PUT")
    assert "body" not in requests[("GET", "{{baseUrl}}/items/{{itemId}}")]
    assert "body" not in requests[("DELETE", "{{baseUrl}}/items/{{itemId}}")]


def test_the_postman_create_request_stores_the_new_id_for_the_others(doc):
    post, *others = postman_collection(doc)["item"]

    script = "\n".join(post["event"][0]["script"]["exec"])
    assert post["event"][0]["listen"] == "test"
    assert "pm.collectionVariables.set('itemId', item.id)" in script
    assert all("event" not in item for item in others)


def test_endpoints_http_sets_base_url_and_has_one_request_per_route(doc):
    text = rest_client_file(doc)

    assert f"@baseUrl = {URL}\n" in text
    request_lines = [line for line in text.splitlines() if line.split(" ")[0] in ("GET", "POST", "PUT", "DELETE")]
    assert request_lines == ["POST {{baseUrl}}/items", "GET {{baseUrl}}/items", "GET {{baseUrl}}/items/{{itemId}}",
                             "PUT {{baseUrl}}/items/{{itemId}}", "DELETE {{baseUrl}}/items/{{itemId}}"]
    assert text.count("\n###") == 5


def test_endpoints_http_takes_the_item_id_from_the_named_create_request(doc):
    text = rest_client_file(doc)

    assert "@itemId = {{createItem.response.body.$.item.id}}" in text
    assert text.index("# @name createItem") < text.index("POST {{baseUrl}}/items")


def test_endpoints_http_puts_the_json_body_after_a_blank_line(doc):
    blocks = rest_client_file(doc).split("\n###")
    post = next(b for b in blocks if "\nPOST " in b)

    head, body = post.strip().split("\n\n")
    assert head.endswith("Content-Type: application/json")
    assert json.loads(body) == example_body("POST")


def test_write_outputs_writes_the_three_files_and_stack_json_is_the_document(doc, tmp_path):
    folder = tmp_path / "out"

    paths = write_outputs(doc, folder)

    assert sorted(p.name for p in paths) == ["endpoints.http", "postman_collection.json", "stack.json"]
    stack = json.loads((folder / "stack.json").read_text())
    assert stack == doc
    assert stack["outputs"]["files"] == [str(p) for p in paths]
    assert json.loads((folder / "postman_collection.json").read_text()) == postman_collection(doc)
    assert (folder / "endpoints.http").read_text() == rest_client_file(doc)


# -- the example requests work against the real handlers -----------------------------------------------


@pytest.fixture
def handlers(monkeypatch):
    monkeypatch.setenv("TABLE_NAME", "ItemsTable")
    with mock_aws():
        boto3.resource("dynamodb", region_name="us-east-1").create_table(
            TableName="ItemsTable", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
        monkeypatch.syspath_prepend(str(LAMBDAS_DIR))
        names = ("common", "create_item", "update_item", "get_item")
        for name in names:  # a cold start bound to this mocked account
            monkeypatch.delitem(sys.modules, name, raising=False)
        yield {name: importlib.import_module(name) for name in names}
        for name in names:
            sys.modules.pop(name, None)


def _proxy_event(request: dict, item_id: str | None) -> dict:
    """What API Gateway (REST, Lambda proxy) would send for a Postman request."""
    path = "/" + "/".join(item_id if part == "{{itemId}}" else part for part in request["url"]["path"])
    return {"resource": "/items/{id}" if item_id else "/items", "path": path, "httpMethod": request["method"],
            "headers": {h["key"]: h["value"] for h in request["header"]}, "queryStringParameters": None,
            "pathParameters": {"id": item_id} if item_id else None, "body": request.get("body", {}).get("raw"),
            "isBase64Encoded": False, "requestContext": {"requestId": "test", "stage": "prod"}}


def test_the_example_create_and_update_are_accepted_by_the_handlers(doc, handlers):
    items = {item["request"]["method"] + " " + item["request"]["url"]["raw"]: item["request"] for item in postman_collection(doc)["item"]}

    created = handlers["create_item"].lambda_handler(_proxy_event(items["POST {{baseUrl}}/items"], None), None)
    assert created["statusCode"] == 201
    item_id = json.loads(created["body"])["item"]["id"]  # where the collection's script reads it
    updated = handlers["update_item"].lambda_handler(_proxy_event(items["PUT {{baseUrl}}/items/{{itemId}}"], item_id), None)
    assert updated["statusCode"] == 200
    got = handlers["get_item"].lambda_handler(_proxy_event(items["GET {{baseUrl}}/items/{{itemId}}"], item_id), None)
    assert json.loads(got["body"])["name"] == example_body("PUT")["name"]
