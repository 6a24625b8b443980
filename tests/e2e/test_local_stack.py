"""The user's journey on a machine with no AWS account: provision, call the API over HTTP, tear down.

Each test runs the real commands in subprocesses (see conftest.py); the HTTP calls go to the
invoke URL provision printed, so what answers is the deployed Lambda code in the local runtime.
The tests run in file order and the last one tears the stack down.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import requests

from tests.e2e.conftest import alive, descendants


@pytest.fixture(scope="module")
def items_url(deployed_stack) -> str:
    return f"{deployed_stack.invoke_url}/items"


def wait_for(predicate, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_provision_without_aws_settings_prints_a_local_invoke_url_and_curl_commands(deployed_stack):
    printed = re.findall(r"http://127\.0\.0\.1:(\d+)/restapis/(\w+)/prod/_user_request_", deployed_stack.provision_output)
    assert printed, deployed_stack.provision_output
    port, api_id = printed[0]
    assert int(port) == deployed_stack.port
    assert api_id == deployed_stack.document["resources"]["rest_api"]["id"]
    assert f"curl -X POST '{deployed_stack.invoke_url}/items'" in deployed_stack.provision_output


def test_the_local_aws_outlives_provision_and_a_second_provision_reuses_it_and_changes_nothing(deployed_stack):
    pid = deployed_stack.server_pid()
    assert pid is not None

    again = deployed_stack.provision("--json")

    assert again.returncode == 0, again.stderr
    document = json.loads(again.stdout)
    assert document["invoke_url"] == deployed_stack.invoke_url
    assert document["aws_calls"]["writes"] == 0
    assert {change["action"] for step in document["steps"] for change in step["changes"]} == {"unchanged"}
    assert deployed_stack.server_pid() == pid


def test_post_through_the_invoke_url_creates_the_item_in_the_local_dynamodb_table(deployed_stack, items_url):
    answer = requests.post(items_url, json={"name": "Widget", "description": "A test item"}, timeout=30)

    assert answer.status_code == 201
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert body["message"] == "Item created successfully!"
    assert body["item"]["name"] == "Widget" and body["item"]["description"] == "A test item"
    stored = deployed_stack.client("dynamodb").get_item(
        TableName=deployed_stack.name("ItemsTable"), Key={"id": {"S": body["item"]["id"]}})
    assert stored["Item"]["name"] == {"S": "Widget"}


def test_get_list_get_one_put_and_delete_give_the_tutorials_answers(items_url):
    created = requests.post(items_url, json={"name": "Lamp", "description": "Desk lamp"}, timeout=30).json()["item"]
    item_url = f"{items_url}/{created['id']}"

    listed = requests.get(items_url, timeout=30)
    assert listed.status_code == 200
    assert created["id"] in {item["id"] for item in listed.json()["items"]}

    one = requests.get(item_url, timeout=30)
    assert one.status_code == 200
    assert one.json()["name"] == "Lamp"

    updated = requests.put(item_url, json={"name": "Floor lamp"}, timeout=30)
    assert updated.status_code == 200
    assert requests.get(item_url, timeout=30).json()["name"] == "Floor lamp"

    deleted = requests.delete(item_url, timeout=30)
    assert deleted.status_code in (200, 204)
    gone = requests.get(item_url, timeout=30)
    assert gone.status_code == 404
    assert "message" in gone.json()


def test_an_unknown_route_answers_api_gateways_missing_authentication_token(deployed_stack):
    answer = requests.get(f"{deployed_stack.invoke_url}/nothing-here", timeout=30)

    assert answer.status_code == 403
    assert answer.json() == {"message": "Missing Authentication Token"}


def test_with_the_default_config_any_page_may_call_the_api(items_url):
    preflight = requests.options(items_url, headers={"Origin": "https://any.example", "Access-Control-Request-Method": "POST"},
                                 timeout=30)
    created = requests.post(items_url, json={"name": "From any page"}, headers={"Origin": "https://any.example"}, timeout=30)

    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET,POST,OPTIONS"
    assert created.status_code == 201
    assert created.headers["Access-Control-Allow-Origin"] == "*"


def test_every_invocation_leaves_start_and_report_lines_in_the_functions_log_group(deployed_stack, items_url):
    requests.post(items_url, json={"name": "Logged"}, timeout=30)
    logs = deployed_stack.client("logs")
    group = f"/aws/lambda/{deployed_stack.name('CreateItemFunction')}"

    def messages() -> list[str]:
        events = logs.filter_log_events(logGroupName=group)["events"]
        text = [event["message"] for event in events]
        return text if any(m.startswith("REPORT RequestId:") for m in text) else []

    lines = wait_for(messages)
    assert any(m.startswith("START RequestId:") for m in lines), lines
    report = next(m for m in lines if m.startswith("REPORT RequestId:"))
    assert "Duration:" in report and "Billed Duration:" in report and "Max Memory Used:" in report


def test_teardown_removes_the_stack_and_stops_the_local_aws_with_nothing_left_running(deployed_stack):
    pid = deployed_stack.server_pid()
    children = descendants(pid)
    assert children, "the local AWS should have Lambda worker processes after the calls above"

    kept = deployed_stack.run("teardown.py", "--yes")
    assert kept.returncode == 4, "a table holding items is kept without --delete-data"
    assert "--delete-data" in kept.stdout + kept.stderr

    result = deployed_stack.run("teardown.py", "--yes", "--delete-data")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "stopped" in result.stdout
    assert wait_for(lambda: not alive(pid)), "the local AWS is still running"
    assert wait_for(lambda: not any(alive(child) for child in children)), "a worker process was left behind"
    assert not (deployed_stack.state_dir / "server.json").exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(deployed_stack.invoke_url + "/items", timeout=5)
