"""The files written after a provision: built from the --json document alone, and the example
requests in them are ones the real handlers accept."""

import importlib
import json
import re
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

import crudstack.outputs
from crudstack.outputs import (POSTMAN_SCHEMA, browser_client, example_body, ordered_routes, postman_collection,
                               rest_client_file, variable_for, write_outputs)

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


def route_items(collection: dict) -> list[dict]:
    return [item for item in collection["item"] if "request" in item]


def script(item: dict) -> str:
    return "\n".join(item["event"][0]["script"]["exec"])


def test_postman_collection_is_v2_1_with_base_url_set_to_the_invoke_url(doc):
    collection = postman_collection(doc)

    assert collection["info"]["schema"] == POSTMAN_SCHEMA
    variables = {v["key"]: v["value"] for v in collection["variable"]}
    assert variables == {"baseUrl": URL, "itemId": "", "itemEtag": "", "checkItemId": ""}


def test_postman_collection_has_one_request_per_route_with_the_id_as_a_variable(doc):
    requests = [item["request"] for item in route_items(postman_collection(doc))]

    assert [(r["method"], r["url"]["raw"]) for r in requests] == [
        ("POST", "{{baseUrl}}/items"), ("GET", "{{baseUrl}}/items?limit=25"), ("GET", "{{baseUrl}}/items/{{itemId}}"),
        ("PUT", "{{baseUrl}}/items/{{itemId}}"), ("DELETE", "{{baseUrl}}/items/{{itemId}}")]
    assert requests[1]["url"]["query"] == [{"key": "limit", "value": "25"}]
    assert requests[2]["url"]["host"] == ["{{baseUrl}}"]
    assert requests[2]["url"]["path"] == ["items", "{{itemId}}"]


def test_postman_requests_with_a_body_send_json_and_writes_send_the_etag_they_read(doc):
    requests = {(i["request"]["method"], i["request"]["url"]["path"][-1]): i["request"] for i in route_items(postman_collection(doc))}

    post = requests[("POST", "items")]
    assert json.loads(post["body"]["raw"]) == example_body("POST")
    assert post["header"] == [{"key": "Content-Type", "value": "application/json"}]
    put = requests[("PUT", "{{itemId}}")]
    assert json.loads(put["body"]["raw"]) == example_body("PUT")
    assert put["header"] == [{"key": "Content-Type", "value": "application/json"}, {"key": "If-Match", "value": "{{itemEtag}}"}]
    assert requests[("DELETE", "{{itemId}}")]["header"] == [{"key": "If-Match", "value": "{{itemEtag}}"}]
    assert "body" not in requests[("GET", "{{itemId}}")] and requests[("GET", "{{itemId}}")]["header"] == []


def test_every_postman_request_checks_its_status_and_keeps_the_latest_etag(doc):
    post, listing, get, put, delete = route_items(postman_collection(doc))

    assert post["event"][0]["listen"] == "test"
    assert "pm.collectionVariables.set('itemId', item.id)" in script(post)
    for item, status in ((post, 201), (listing, 200), (get, 200), (put, 200), (delete, 200)):
        assert f"pm.response.to.have.status({status})" in script(item)
    for item in (post, get, put):
        assert "pm.collectionVariables.set('itemEtag', pm.response.headers.get('ETag'))" in script(item)
    assert "itemEtag" not in script(delete) and "itemEtag" not in script(listing)


def test_the_contract_checks_folder_expects_the_refusals_of_openapi_yaml(doc):
    folder = postman_collection(doc)["item"][-1]

    assert folder["name"] == "Contract checks"
    expected = {item["name"]: int(re.search(r"have.status\((\d+)\)", script(item)).group(1)) for item in folder["item"]}
    assert list(expected.values()) == [201, 412, 412, 200, 400, 415, 404]


def test_an_api_without_an_item_update_gets_no_contract_checks(doc):
    doc["routes"] = [r for r in doc["routes"] if r["method"] != "PUT"]

    assert all("request" in item for item in postman_collection(doc)["item"])


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


def test_endpoints_http_sends_the_created_items_etag_on_put_and_delete(doc):
    blocks = rest_client_file(doc).split("\n###")

    for method in ("PUT", "DELETE"):
        block = next(b for b in blocks if f"\n{method} " in b)
        assert "If-Match: {{createItem.response.headers.ETag}}" in block
    assert "If-Match" not in next(b for b in blocks if "\nGET {{baseUrl}}/items/" in b)


def test_endpoints_http_puts_the_json_body_after_a_blank_line(doc):
    blocks = rest_client_file(doc).split("\n###")
    post = next(b for b in blocks if "\nPOST " in b)

    head, body = post.strip().split("\n\n")
    assert head.endswith("Content-Type: application/json")
    assert json.loads(body) == example_body("POST")


def test_write_outputs_writes_the_four_files_and_stack_json_is_the_document(doc, tmp_path):
    folder = tmp_path / "out"

    paths = write_outputs(doc, folder)

    assert sorted(p.name for p in paths) == ["endpoints.http", "items.html", "postman_collection.json", "stack.json"]
    stack = json.loads((folder / "stack.json").read_text())
    assert stack == doc
    assert stack["outputs"]["files"] == [str(p) for p in paths]
    assert json.loads((folder / "postman_collection.json").read_text()) == postman_collection(doc)
    assert (folder / "endpoints.http").read_text() == rest_client_file(doc)
    assert (folder / "items.html").read_text() == browser_client(URL)


def test_the_browser_client_in_outputs_has_the_invoke_url_filled_in():
    page = browser_client(URL)

    assert f'id="invoke-url" type="url" value="{URL}"' in page
    assert page.count(URL) == 1


def test_the_invoke_url_is_escaped_into_the_browser_clients_html():
    page = browser_client('http://x/"><script>alert(1)</script>')

    assert "<script>alert(1)" not in page
    assert 'value="http://x/&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page


def test_the_browser_client_left_blank_in_the_repository_asks_for_the_url():
    page = (Path(crudstack.outputs.__file__).parent / "browser" / "items.html").read_text()

    assert 'id="invoke-url" type="url" value=""' in page
    assert browser_client(None) == page


def test_with_api_key_the_browser_client_in_outputs_has_the_keys_value_in_its_x_api_key_field(doc, tmp_path):
    write_outputs(with_auth(doc, "api_key"), tmp_path)

    page = (tmp_path / "items.html").read_text()
    assert f'id="api-key" autocomplete="off" value="{KEY}"' in page
    assert f'id="invoke-url" type="url" value="{URL}"' in page


@pytest.mark.parametrize("mode", ["none", "iam"])
def test_without_api_key_the_browser_clients_key_field_stays_empty(doc, tmp_path, mode):
    write_outputs(with_auth(doc, mode), tmp_path)

    assert 'id="api-key" autocomplete="off">' in (tmp_path / "items.html").read_text()


def test_the_api_key_is_escaped_into_the_browser_clients_html():
    page = browser_client(URL, '"><script>alert(1)</script>')

    assert "<script>alert(1)" not in page
    assert 'value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page


def test_a_browser_client_that_lost_its_url_field_is_an_error_not_a_page_without_url(monkeypatch, tmp_path):
    (tmp_path / "items.html").write_text("<input id=invoke-url>")
    monkeypatch.setattr(crudstack.outputs.resources, "files", lambda package: tmp_path)

    with pytest.raises(ValueError, match="lost its invoke URL field"):
        browser_client(URL)


# -- the example requests work against the real handlers -----------------------------------------------


@pytest.fixture
def handlers(monkeypatch):
    monkeypatch.setenv("TABLE_NAME", "ItemsTable")
    monkeypatch.delenv("ALLOWED_ORIGINS", raising=False)
    with mock_aws():
        boto3.resource("dynamodb", region_name="us-east-1").create_table(
            TableName="ItemsTable", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
        monkeypatch.syspath_prepend(str(LAMBDAS_DIR))
        names = ("common.http", "common.items", "common", "create_item", "get_items", "get_item", "update_item", "delete_item")
        for name in names:  # a cold start bound to this mocked account
            monkeypatch.delitem(sys.modules, name, raising=False)
        yield {name: importlib.import_module(name) for name in names}
        for name in names:
            sys.modules.pop(name, None)


HANDLER_FOR = {("POST", False): "create_item", ("GET", False): "get_items", ("GET", True): "get_item",
               ("PUT", True): "update_item", ("DELETE", True): "delete_item"}


class Postman:
    """Runs a collection's requests against the handlers, as API Gateway would hand them over,
    filling {{variables}} and keeping what the scripts keep (ids from the body, ETags from headers)."""

    def __init__(self, handlers):
        self.handlers = handlers
        self.variables: dict[str, str] = {}

    def fill(self, text: str) -> str:
        return re.sub(r"\{\{(\w+)\}\}", lambda m: self.variables.get(m.group(1), ""), text)

    def send(self, item: dict) -> dict:
        request = item["request"]
        path = [self.fill(part) for part in request["url"]["path"]]
        item_id = path[1] if len(path) > 1 else None
        headers = {h["key"]: self.fill(h["value"]) for h in request["header"]}
        query = {q["key"]: q["value"] for q in request["url"].get("query", [])}
        event = {"resource": "/items/{id}" if item_id else "/items", "path": "/" + "/".join(path), "httpMethod": request["method"],
                 "headers": headers, "queryStringParameters": query or None,
                 "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
                 "pathParameters": {"id": item_id} if item_id else None, "body": request.get("body", {}).get("raw"),
                 "isBase64Encoded": False, "requestContext": {"requestId": "test", "stage": "prod", "path": "/prod/items"}}
        answer = self.handlers[HANDLER_FOR[(request["method"], bool(item_id))]].lambda_handler(event, None)
        body = json.loads(answer["body"])
        for var in re.findall(r"pm.collectionVariables.set\('(\w+)', item\.id\)", script(item)):
            self.variables[var] = (body.get("item") or {}).get("id", "")
        for var in re.findall(r"pm.collectionVariables.set\('(\w+)', pm.response.json\(\).item.id\)", script(item)):
            self.variables[var] = body["item"]["id"]
        for var in re.findall(r"pm.collectionVariables.set\('(\w+)', pm.response.headers.get\('ETag'\)\)", script(item)):
            if "ETag" in answer["headers"]:
                self.variables[var] = answer["headers"]["ETag"]
        return answer


def test_running_the_collection_in_order_gets_every_status_its_tests_expect(doc, handlers):
    postman = Postman(handlers)
    collection = postman_collection(doc)
    items = route_items(collection) + collection["item"][-1]["item"]

    for item in items:
        expected = int(re.search(r"have.status\((\d+)\)", script(item)).group(1))
        answer = postman.send(item)
        assert answer["statusCode"] == expected, (item["name"], answer["body"])


# -- who may call the API (api.auth) ---------------------------------------------------------------------


KEY = "a" * 40


def with_auth(doc: dict, mode: str) -> dict:
    doc = {**doc, "region": "eu-west-1", "auth": {"mode": mode}}
    if mode == "api_key":
        doc["auth"]["api_key"] = {"name": "demo-ItemsApi-key", "id": "k1", "value": KEY, "header": "x-api-key"}
    return doc


def test_an_open_api_gets_no_auth_in_postman_nor_in_endpoints_http(doc):
    for document in (doc, with_auth(doc, "none")):
        assert "auth" not in postman_collection(document)
        text = rest_client_file(document)
        assert "x-api-key" not in text and "Authorization" not in text


def test_with_api_key_every_postman_request_inherits_an_x_api_key_header_holding_the_keys_value(doc):
    collection = postman_collection(with_auth(doc, "api_key"))

    assert collection["auth"]["type"] == "apikey"
    assert {f["key"]: f["value"] for f in collection["auth"]["apikey"]} == {"key": "x-api-key", "value": "{{apiKey}}", "in": "header"}
    assert {v["key"]: v["value"] for v in collection["variable"]}["apiKey"] == KEY
    assert all("auth" not in item["request"] for item in route_items(collection))   # inherited from the collection


def test_with_api_key_every_endpoints_http_request_sends_the_key_right_after_its_request_line(doc):
    text = rest_client_file(with_auth(doc, "api_key"))

    assert f"@apiKey = {KEY}\n" in text
    blocks = text.split("\n###")[1:]
    assert len(blocks) == 5
    for block in blocks:
        lines = block.splitlines()
        request = next(i for i, line in enumerate(lines) if line.split(" ")[0] in ("GET", "POST", "PUT", "DELETE"))
        assert lines[request + 1] == "x-api-key: {{apiKey}}"


def test_with_iam_postman_signs_for_execute_api_in_the_stacks_region_with_credentials_left_to_the_user(doc):
    collection = postman_collection(with_auth(doc, "iam"))

    fields = {f["key"]: f["value"] for f in collection["auth"]["awsv4"]}
    assert collection["auth"]["type"] == "awsv4"
    assert (fields["service"], fields["region"]) == ("execute-api", "eu-west-1")
    variables = {v["key"]: v["value"] for v in collection["variable"]}
    assert variables["awsAccessKeyId"] == variables["awsSecretAccessKey"] == ""


def test_with_iam_every_endpoints_http_request_is_signed_from_the_environments_credentials(doc):
    text = rest_client_file(with_auth(doc, "iam"))

    signed = [line for line in text.splitlines() if line.startswith("Authorization: AWS ")]
    assert len(signed) == 5
    assert "{{$processEnv AWS_ACCESS_KEY_ID}} {{$processEnv AWS_SECRET_ACCESS_KEY}}" in signed[0]
    assert signed[0].endswith("region:{{awsRegion}} service:execute-api") and "@awsRegion = eu-west-1" in text
