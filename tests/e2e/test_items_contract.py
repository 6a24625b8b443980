"""The items API contract (openapi.yaml) through the local invoke URL, status code by status code,
then CORS as a browser meets it, then many clients at once.

The stack is provisioned once for every contract module (contract_stack in conftest.py): what
answers is the deployed Lambda code behind the local API Gateway, with the DynamoDB writes as
atomic as on AWS.
"""

from __future__ import annotations

import concurrent.futures
import random
import threading
import uuid
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e.conftest import CONTRACT_CONCURRENCY, CONTRACT_ORIGINS, empty_table

MISSING = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"


@pytest.fixture(scope="module")
def items_url(contract_stack) -> str:
    return f"{contract_stack.invoke_url}/items"


@pytest.fixture(scope="module")
def web():
    with requests.Session() as session:
        yield session


def create(web, items_url, body=None) -> dict:
    answer = web.post(items_url, json=body or {"name": "Widget"}, timeout=30)
    assert answer.status_code == 201, answer.text
    return answer.json()["item"]


def assert_error(answer, status: int, *fields: str) -> dict:
    """A function's error answer: the status, JSON {message, errors}, and the fields it names."""
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert set(body) == {"message", "errors"} and body["message"]
    assert {problem["field"] for problem in body["errors"]} == set(fields)
    return body


# --- every status code ----------------------------------------------------------------------------


def test_post_is_201_with_the_tutorial_shape_a_location_that_leads_to_the_item_and_an_etag(contract_stack, web, items_url):
    answer = web.post(items_url, json={"name": "  Lamp ", "description": "Desk lamp"}, timeout=30)

    assert answer.status_code == 201
    body = answer.json()
    assert body["message"] == "Item created successfully!"
    item = body["item"]
    assert (item["name"], item["description"], item["version"]) == ("Lamp", "Desk lamp", 1)
    assert answer.headers["ETag"] == '"1"'
    location = answer.headers["Location"]
    assert location == urlsplit(items_url).path + "/" + item["id"]
    followed = web.get(f"{contract_stack.endpoint}{location}", timeout=30)
    assert (followed.status_code, followed.json()) == (200, item)


def test_the_location_follows_the_url_form_the_client_used(contract_stack, web):
    api_id = contract_stack.document["resources"]["rest_api"]["id"]
    other_form = f"{contract_stack.endpoint}/_aws/execute-api/{api_id}/prod/items"

    answer = web.post(other_form, json={"name": "Other form"}, timeout=30)

    assert answer.status_code == 201
    assert answer.headers["Location"] == f"/_aws/execute-api/{api_id}/prod/items/{answer.json()['item']['id']}"


def test_get_one_is_200_with_its_etag_and_404_once_it_is_gone(web, items_url):
    item = create(web, items_url)

    one = web.get(f"{items_url}/{item['id']}", timeout=30)
    assert (one.status_code, one.json(), one.headers["ETag"]) == (200, item, '"1"')
    assert web.delete(f"{items_url}/{item['id']}", timeout=30).json() == {"message": "Item deleted", "id": item["id"]}
    assert_error(web.get(f"{items_url}/{item['id']}", timeout=30), 404)
    assert_error(web.delete(f"{items_url}/{item['id']}", timeout=30), 404)


def test_put_is_200_with_the_next_version_and_412_for_a_stale_etag_writing_nothing(web, items_url):
    item = create(web, items_url)
    url = f"{items_url}/{item['id']}"

    updated = web.put(url, json={"description": "new"}, headers={"If-Match": '"1"'}, timeout=30)
    stale = web.put(url, json={"name": "lost"}, headers={"If-Match": '"1"'}, timeout=30)

    assert updated.status_code == 200
    assert (updated.json()["version"], updated.json()["description"], updated.headers["ETag"]) == (2, "new", '"2"')
    assert_error(stale, 412, "If-Match")
    assert stale.headers["ETag"] == '"2"'
    assert web.get(url, timeout=30).json() == updated.json()


def test_put_of_a_missing_item_is_404_and_creates_nothing(web, items_url):
    assert_error(web.put(f"{items_url}/{MISSING}", json={"name": "ghost"}, timeout=30), 404)
    assert_error(web.get(f"{items_url}/{MISSING}", timeout=30), 404)


def test_delete_with_a_stale_etag_is_412_and_keeps_the_item(web, items_url):
    item = create(web, items_url)
    url = f"{items_url}/{item['id']}"
    web.put(url, json={"name": "v2"}, timeout=30)

    assert_error(web.delete(url, headers={"If-Match": '"1"'}, timeout=30), 412, "If-Match")
    assert web.get(url, timeout=30).status_code == 200
    assert web.delete(url, headers={"If-Match": '"2"'}, timeout=30).status_code == 200


def test_an_item_the_tutorials_own_functions_wrote_is_read_at_version_1_then_updated_and_deleted(
        contract_stack, web, items_url):
    empty_table(contract_stack)  # so that the list's first page holds it
    # Straight into the table, as the console tutorial's functions store it: id, name, description only.
    item_id = str(uuid.uuid4())
    contract_stack.client("dynamodb").put_item(TableName=contract_stack.name("ItemsTable"), Item={
        "id": {"S": item_id}, "name": {"S": "Lamp"}, "description": {"S": "Desk lamp"}})
    url = f"{items_url}/{item_id}"

    read = web.get(url, timeout=30)
    listed = web.get(items_url, timeout=30)
    stale = web.put(url, json={"name": "lost"}, headers={"If-Match": '"5"'}, timeout=30)
    updated = web.put(url, json={"name": "Lamp 2"}, headers={"If-Match": '"1"'}, timeout=30)

    expected = {"id": item_id, "name": "Lamp", "description": "Desk lamp", "createdAt": None, "updatedAt": None, "version": 1}
    assert (read.status_code, read.json(), read.headers["ETag"]) == (200, expected, '"1"')
    assert (listed.status_code, listed.json()["items"]) == (200, [expected])
    assert_error(stale, 412, "If-Match")
    assert stale.headers["ETag"] == '"1"'
    assert (updated.status_code, updated.headers["ETag"], updated.json()["version"]) == (200, '"2"', 2)
    assert updated.json()["updatedAt"] and updated.json()["createdAt"] is None
    assert_error(web.delete(url, headers={"If-Match": '"1"'}, timeout=30), 412, "If-Match")
    assert web.delete(url, headers={"If-Match": '"2"'}, timeout=30).status_code == 200


@pytest.mark.parametrize("send, fields", [
    (dict(data="{not json", headers={"Content-Type": "application/json"}), {"(body)"}),
    (dict(json={"name": ""}), {"name"}),
    (dict(json={"name": "Pen", "colour": "red", "version": 3}), {"colour", "version"}),
    (dict(json={"description": "no name"}), {"name"}),
    (dict(json=["Pen"]), {"(body)"}),
])
def test_a_bad_post_body_is_400_naming_each_field(web, items_url, send, fields):
    assert_error(web.post(items_url, timeout=30, **send), 400, *fields)


@pytest.mark.parametrize("path, query, headers, field", [
    ("/" + "x" * 2049, None, None, "id"),   # any id names an item, but none is over 2048 bytes
    ("", {"limit": "0"}, None, "limit"),
    ("", {"limit": "abc"}, None, "limit"),
    ("", {"nextToken": "garbled"}, None, "nextToken"),
    ("", {"limt": "5"}, None, "limt"),
])
def test_a_bad_path_id_or_query_is_400_naming_it(web, items_url, path, query, headers, field):
    assert_error(web.get(items_url + path, params=query, headers=headers, timeout=30), 400, field)


def test_an_id_that_is_not_a_uuid_is_a_404_when_no_item_has_it(web, items_url):
    answer = web.get(f"{items_url}/not-a-uuid", timeout=30)

    assert (answer.status_code, answer.json()["message"]) == (404, "Item not-a-uuid not found")


def test_an_if_match_that_is_no_etag_is_400(web, items_url):
    item = create(web, items_url)

    assert_error(web.put(f"{items_url}/{item['id']}", json={"name": "x"}, headers={"If-Match": "latest"}, timeout=30),
                 400, "If-Match")


def test_a_body_over_64_kib_is_413(web, items_url):
    assert_error(web.post(items_url, json={"name": "Big", "description": "x" * 70_000}, timeout=30), 413, "(body)")


def test_a_body_that_is_not_json_is_415(web, items_url):
    assert_error(web.post(items_url, data="name=Pen", headers={"Content-Type": "application/x-www-form-urlencoded"},
                          timeout=30), 415, "Content-Type")


def test_a_method_the_api_does_not_have_is_api_gateways_403(web, items_url):
    answer = web.patch(f"{items_url}/{MISSING}", json={"name": "x"}, timeout=30)

    assert (answer.status_code, answer.json()) == (403, {"message": "Missing Authentication Token"})


# --- CORS, as a browser meets it -----------------------------------------------------------------------


@pytest.mark.parametrize("path, methods", [("", "GET,POST,OPTIONS"), (f"/{MISSING}", "DELETE,GET,PUT,OPTIONS")])
def test_the_preflight_is_answered_by_api_gateways_mock_on_both_resources(web, items_url, path, methods):
    answer = web.options(items_url + path, headers={"Origin": CONTRACT_ORIGINS[0], "Access-Control-Request-Method": "PUT",
                                                    "Access-Control-Request-Headers": "content-type,if-match"}, timeout=30)

    assert answer.status_code == 200
    # Two origins are configured: a static answer cannot name one, so it allows "*" (see config.yaml).
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.headers["Access-Control-Allow-Methods"] == methods
    assert {"content-type", "if-match"} <= {h.lower() for h in answer.headers["Access-Control-Allow-Headers"].split(",")}
    assert answer.headers["Access-Control-Max-Age"] == "600"
    assert answer.content == b""


def test_an_allowed_origin_gets_its_cors_headers_on_success_and_on_errors(web, items_url):
    origin = {"Origin": CONTRACT_ORIGINS[1]}
    created = web.post(items_url, json={"name": "From a page"}, headers=origin, timeout=30)
    missing = web.get(f"{items_url}/{MISSING}", headers=origin, timeout=30)
    bad = web.post(items_url, data="{", headers={**origin, "Content-Type": "application/json"}, timeout=30)

    for answer in (created, missing, bad):
        assert answer.headers["Access-Control-Allow-Origin"] == CONTRACT_ORIGINS[1]
        assert answer.headers["Access-Control-Expose-Headers"] == "ETag, Location"
        assert answer.headers["Vary"] == "Origin"
    assert (created.status_code, missing.status_code, bad.status_code) == (201, 404, 400)


def test_a_page_from_another_origin_is_refused_with_403_and_changes_nothing(web, items_url):
    item = create(web, items_url)

    refused = web.put(f"{items_url}/{item['id']}", json={"name": "hijacked"}, headers={"Origin": "https://evil.example"}, timeout=30)

    assert_error(refused, 403, "Origin")
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert web.get(f"{items_url}/{item['id']}", timeout=30).json()["name"] == "Widget"


# --- many clients at once -------------------------------------------------------------------------------


def test_twenty_parallel_puts_with_one_etag_give_one_200_and_nineteen_412s(web, items_url):
    assert CONTRACT_CONCURRENCY >= 20, "a warm pool this size runs all twenty at once (beyond it they take turns)"
    item = create(web, items_url)
    url = f"{items_url}/{item['id']}"
    start = threading.Barrier(20)

    def put(n: int) -> int:
        with requests.Session() as session:
            start.wait()
            return session.put(url, json={"name": f"writer {n}"}, headers={"If-Match": '"1"'}, timeout=60).status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(put, range(20)))

    assert sorted(statuses) == [200] + [412] * 19
    final = web.get(url, timeout=30)
    assert final.json()["version"] == 2 and final.headers["ETag"] == '"2"'


def test_a_thousand_creates_from_eight_threads_are_all_readable_and_paged_exactly_once(contract_stack, items_url):
    empty_table(contract_stack)
    local = threading.local()

    def create_one(n: int) -> str:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        answer = local.session.post(items_url, json={"name": f"item {n}"}, timeout=60)
        assert answer.status_code == 201, answer.text
        return answer.json()["item"]["id"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        created = list(pool.map(create_one, range(1000)))

    assert len(set(created)) == 1000
    with requests.Session() as web:
        listed, token, pages = [], None, 0
        while True:
            page = web.get(items_url, params={"limit": 100, **({"nextToken": token} if token else {})}, timeout=60).json()
            listed += [item["id"] for item in page["items"]]
            pages += 1
            token = page["nextToken"]
            if token is None:
                break
        assert len(listed) == len(set(listed)) == 1000, "an item was skipped or repeated"
        assert set(listed) == set(created)
        assert pages == 10
        for item_id in random.Random(4).sample(created, 50):
            assert web.get(f"{items_url}/{item_id}", timeout=30).status_code == 200


@pytest.mark.parametrize("limit", [1, 7, 25])
def test_pages_of_hundreds_of_items_list_each_exactly_once(contract_stack, items_url, limit):
    empty_table(contract_stack)
    dynamodb = contract_stack.client("dynamodb")
    ids = {str(uuid.uuid4()) for _ in range(300)}
    for item_id in ids:  # straight into the table: this test is about reading them back
        dynamodb.put_item(TableName=contract_stack.name("ItemsTable"), Item={
            "id": {"S": item_id}, "name": {"S": "n"}, "description": {"S": ""}, "createdAt": {"S": "2025-01-01T00:00:00.000Z"},
            "updatedAt": {"S": "2025-01-01T00:00:00.000Z"}, "version": {"N": "1"}})

    listed, token = [], None
    with requests.Session() as web:
        while True:
            answer = web.get(items_url, params={"limit": limit, **({"nextToken": token} if token else {})}, timeout=60)
            page = answer.json()
            assert answer.status_code == 200 and page["count"] == len(page["items"]) and 0 < page["count"] <= limit
            listed += [item["id"] for item in page["items"]]
            token = page["nextToken"]
            if token is None:
                break

    assert sorted(listed) == sorted(ids), "an item was skipped or repeated"
