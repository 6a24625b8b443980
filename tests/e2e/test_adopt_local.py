"""`provision.py --adopt` on the embedded local AWS: the console tutorial's stack, built there with plain boto3
calls and filled with 100 items through its own invoke URL by its own functions, taken over in place."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import requests

from crudstack.local.daemon import ensure_running
from tests.e2e.conftest import make_stack
from tests.support import console_stack


def _id(i: int) -> str:
    """The tutorial lets the client pick ids, and AWS's own walkthrough sends "123" and "abcdef234": bare
    numbers, letters and digits, in either case, never a UUID. Our handlers must reach each one by its id."""
    return ("{}", "abc{}", "abcdef{}", "Item-{}")[i % 4].format(i)


def _all_items(url: str) -> tuple[list[dict], int]:
    """Every item, page by page (our contract: items, count, nextToken); and how many pages it took."""
    items, token, pages = [], None, 0
    while True:
        answer = requests.get(f"{url}/items", params={"limit": 30, **({"nextToken": token} if token else {})}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items += body["items"]
        pages += 1
        token = body["nextToken"]
        if not token:
            return items, pages


def test_the_console_stack_is_adopted_with_its_items_and_invoke_url_then_reruns_write_nothing_and_teardown_keeps_the_table(tmp_path):
    stack = make_stack(tmp_path / "adopt", {"stack": "tutorial", "names": "tutorial"})
    try:
        endpoint = ensure_running(stack.port, stack.state_dir)
        made = console_stack.build(stack.client)
        url = f"{endpoint}/restapis/{made['api_id']}/prod/_user_request_"

        def create(i: int) -> int:
            return requests.post(f"{url}/items", json={"id": _id(i), "name": f"name {i}", "description": "console"},
                                 timeout=60).status_code

        with ThreadPoolExecutor(8) as pool:   # the tutorial's own CreateItemFunction writes them
            assert set(pool.map(create, range(100))) == {200}
        assert len(requests.get(f"{url}/items", timeout=30).json()) == 100    # the tutorial's answer: a bare list

        result = stack.provision("--adopt", "--json")
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
        assert "take over table ItemsTable" in result.stderr and "Plan:" in result.stderr  # shown before the writes
        doc = json.loads(result.stdout)
        assert doc["invoke_url"] == url                                        # the same invoke URL

        items, pages = _all_items(url)                                         # our contract, on the same URL
        assert len({item["id"] for item in items}) == 100 and pages == 4
        assert all(item["name"].startswith("name ") and item["version"] == 1 for item in items)
        for i in range(100):                                                   # each one by its own id
            one = requests.get(f"{url}/items/{_id(i)}", timeout=30)            # (the fifth route, added)
            assert one.status_code == 200, (_id(i), one.text)
            assert one.headers["ETag"] == '"1"' and one.json()["id"] == _id(i) and one.json()["description"] == "console"
            stale = requests.put(f"{url}/items/{_id(i)}", json={"name": "renamed"}, headers={"If-Match": '"5"'}, timeout=30)
            assert stale.status_code == 412, (_id(i), stale.text)
            put = requests.put(f"{url}/items/{_id(i)}", json={"name": f"renamed {i}"}, headers={"If-Match": '"1"'}, timeout=30)
            assert (put.status_code, put.headers.get("ETag")) == (200, '"2"'), (_id(i), put.text)
            assert put.json()["id"] == _id(i) and put.json()["name"] == f"renamed {i}"
        assert requests.get(f"{url}/items/{_id(3).lower()}", timeout=30).status_code == 404    # "item-3" is another id
        assert requests.get(f"{url}/items/{_id(0)}", timeout=30).json()["version"] == 2
        alarms = stack.client("cloudwatch").describe_alarms()["MetricAlarms"]
        assert len(alarms) == 17

        again = stack.provision("--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["aws_calls"]["writes"] == 0

        down = stack.run("teardown.py", "--yes", "--json", "--keep-running")
        assert down.returncode == 4, down.stderr                               # the table holds items: kept
        ddb = stack.client("dynamodb")
        assert ddb.scan(TableName="ItemsTable", Select="COUNT")["Count"] == 100
        assert ddb.get_item(TableName="ItemsTable", Key={"id": {"S": "abc1"}})["Item"]["name"] == {"S": "renamed 1"}
        assert stack.client("lambda").list_functions()["Functions"] == []
        assert stack.client("apigateway").get_rest_apis()["items"] == []
        assert "LambdaDynamoDBRole" not in [r["RoleName"] for r in stack.client("iam").list_roles()["Roles"]]
    finally:
        stack.run("teardown.py", "--yes", "--delete-data", timeout=120)
        stack.kill_everything()
