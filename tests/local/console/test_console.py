"""The console over HTTP, on a real local AWS (tests.support.fake_server): its page and files with a
strict CSP, its JSON API reading the local AWS, and its refusals (403 JSON) of other hosts and origins."""

from __future__ import annotations

import http.client
import json
import re
import time

import pytest

from crudstack.local.console.responses import CSP, STATIC
from crudstack.local.sns.outbox import OUTBOX_DIR, Outbox

STACK = "cons"
TAGS = [{"Key": "managed-by", "Value": "crudstack"}, {"Key": "crudstack-stack", "Value": STACK}]
TABLE = f"{STACK}-ItemsTable"


def call(server, path, method="GET", host=None, origin=None, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        sent = {"Host": host or f"127.0.0.1:{server.port}", **(headers or {})}
        if origin is not None:
            sent["Origin"] = origin
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        data = response.read()
        return response.status, dict(response.getheaders()), data
    finally:
        conn.close()


def api(server, path, **kwargs):
    status, headers, data = call(server, "/_console/api/" + path, **kwargs)
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(data)


def own_origin(server):
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def stack(server):
    """A stack's table with three items (tagged as provision tags it), an alarm, and a table of someone else's."""
    dynamodb = server.client("dynamodb")
    for name, tags in ((TABLE, TAGS), (f"{STACK}-NotOurs", [])):
        dynamodb.create_table(TableName=name, AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                              KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST",
                              **({"Tags": tags} if tags else {}))
    for number in range(3):
        dynamodb.put_item(TableName=TABLE, Item={"id": {"S": f"id-{number}"}, "name": {"S": f"item {number}"},
                                                 "version": {"N": str(number + 1)}, "price": {"N": "2.5"}})
    server.client("cloudwatch").put_metric_alarm(
        AlarmName=f"{STACK}-ItemsApi-5XXError", Namespace="AWS/ApiGateway", MetricName="5XXError",
        Dimensions=[{"Name": "ApiName", "Value": f"{STACK}-ItemsApi"}, {"Name": "Stage", "Value": "prod"}],
        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
        Tags=TAGS)
    return server


# -- the page -----------------------------------------------------------------------------------------------


def test_the_page_is_served_with_a_strict_content_security_policy(server):
    status, headers, body = call(server, "/_console")

    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"] == CSP
    assert "default-src 'none'" in CSP and "script-src 'self'" in CSP and "connect-src 'self'" in CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert b'<script src="/_console/console.js" defer></script>' in body


@pytest.mark.parametrize("path, content_type", [("/_console/console.js", "text/javascript; charset=utf-8"),
                                                ("/_console/console.css", "text/css; charset=utf-8")])
def test_the_script_and_style_sheet_are_served_with_their_types(server, path, content_type):
    status, headers, body = call(server, path)

    assert status == 200 and headers["Content-Type"] == content_type and len(body) > 1000


def test_the_page_loads_nothing_from_elsewhere(server):
    for path in {"/_console" + p for p in STATIC}:
        body = call(server, path)[2].decode()
        # The only absolute URL is SVG's namespace name, which is never fetched.
        assert re.findall(r"https?://[^\s\"'`]+", body.replace("http://www.w3.org/2000/svg", "")) == [], path
        assert "<script>" not in body and " style=" not in body  # nothing inline: the CSP would block it


def test_an_unknown_console_page_is_a_404_json(server):
    status, headers, body = call(server, "/_console/nothing")

    assert status == 404 and json.loads(body) == {"message": "no console page /_console/nothing; open /_console"}


# -- refusals ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/_console", "/_console/api/stacks"])
def test_another_host_name_is_refused_with_403_json(server, path):
    status, headers, body = call(server, path, host=f"evil.example:{server.port}")

    assert status == 403 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["message"].startswith(f"Host evil.example:{server.port} is not this machine")


def test_a_page_of_another_origin_is_refused_with_403_json(server):
    status, body = api(server, "stacks", origin="http://evil.example")

    assert status == 403
    assert body["message"].startswith(f"Origin http://evil.example is not the console's own ({own_origin(server)})")


def test_a_test_invoke_without_the_consoles_origin_is_refused(server):
    status, body = api(server, "invoke?region=us-east-1&function=x", method="POST", body=b"{}")

    assert status == 403 and "must carry the console's Origin header" in body["message"]


def test_the_console_answers_on_localhost_too(server):
    status, headers, _ = call(server, "/_console", host=f"localhost:{server.port}")

    assert status == 200


def test_the_health_check_is_behind_the_control_planes_guard_not_the_consoles(server):
    # Merged with issue 13's control-plane guard: the health check now refuses a rebound Host too,
    # with that guard's answer (its rule named), not the console's.
    status, _, body = call(server, "/_localaws/health", host=f"evil.example:{server.port}")

    assert status == 403 and json.loads(body)["rule"] == "loopback-host"


# -- the API -------------------------------------------------------------------------------------------------


def test_the_stacks_are_found_by_their_tags(stack):
    status, body = api(stack, "stacks")

    assert status == 200
    assert {"region": "us-east-1", "stack": STACK} in body["stacks"] and "us-east-1" in body["regions"]


def test_the_overview_lists_the_stacks_table_and_alarm_with_their_states(stack):
    status, body = api(stack, f"stack?region=us-east-1&stack={STACK}")

    assert status == 200
    step1 = body["steps"][0]
    assert step1["title"] == "DynamoDB table"
    assert [(r["name"], r["state"]) for r in step1["resources"]] == [(TABLE, "ACTIVE")]  # not NotOurs: untagged
    alarms = [r for r in body["steps"][6]["resources"] if r["kind"] == "alarm"]
    assert [a["name"] for a in alarms] == [f"{STACK}-ItemsApi-5XXError"]
    assert body["table"] == TABLE and body["invoke_url"] is None  # nothing deployed in this local AWS


def test_a_stack_with_nothing_is_a_404_that_says_what_to_do(stack):
    status, body = api(stack, "stack?region=us-east-1&stack=nobody")

    assert status == 404 and "run python provision.py" in body["message"]


def test_a_missing_parameter_is_a_400_naming_it(stack):
    status, body = api(stack, "stack?region=us-east-1")

    assert status == 400 and body["message"] == "missing query parameter: stack"


def test_items_come_in_pages_that_neither_skip_nor_repeat(stack):
    status, first = api(stack, f"items?region=us-east-1&table={TABLE}&limit=2")
    assert status == 200 and first["count"] == 2 and first["next"]

    status, second = api(stack, f"items?region=us-east-1&table={TABLE}&limit=2&next={first['next']}")

    assert status == 200 and second["next"] is None
    ids = [i["id"] for i in first["items"] + second["items"]]
    assert sorted(ids) == ["id-0", "id-1", "id-2"]
    assert {i["price"] for i in first["items"]} == {2.5} and {type(i["version"]) for i in first["items"]} == {int}


@pytest.mark.parametrize("query, message", [
    ("limit=0", "limit must be 1 to 100, not 0"),
    ("limit=abc", "limit must be a whole number, not 'abc'"),
    ("next=%25%25%25", "next is not a token this console gave"),
    ("next=WzFd", "next is not a token this console gave"),  # base64 of [1]
])
def test_a_bad_page_request_is_a_400(stack, query, message):
    status, body = api(stack, f"items?region=us-east-1&table={TABLE}&{query}")

    assert status == 400 and body["message"].startswith(message)


def test_items_of_a_missing_table_are_a_404(stack):
    status, body = api(stack, "items?region=us-east-1&table=nope")

    assert status == 404 and body["message"] == "no table 'nope' in us-east-1"


def test_an_unknown_api_is_a_404_and_a_wrong_method_a_400(stack):
    assert api(stack, "nothing")[0] == 404
    status, body = api(stack, "stacks", method="POST", origin=own_origin(stack), body=b"")
    assert status == 400 and body["message"] == "POST is not allowed on /_console/api/stacks"


def test_a_test_event_that_is_not_json_is_a_400(stack):
    status, body = api(stack, "invoke?region=us-east-1&function=x", method="POST", origin=own_origin(stack),
                       body=b"{not json")

    assert status == 400 and body["message"].startswith("the test event is not valid JSON")


def test_a_test_invoke_of_a_missing_function_is_a_404(tmp_path):
    # The fake runtime answers a missing function with a 500; Lambda's (and the local runtime's) answer is
    # ResourceNotFoundException, stubbed here.
    import boto3
    from botocore.stub import Stubber

    from crudstack.local.console.exceptions import NotFound
    from crudstack.local.console.data import ConsoleData

    lam = boto3.client("lambda", region_name="us-east-1", endpoint_url="http://127.0.0.1:1")
    stubber = Stubber(lam)
    stubber.add_client_error("invoke", service_error_code="ResourceNotFoundException", http_status_code=404)
    data = ConsoleData("http://127.0.0.1:1", Outbox(tmp_path))
    data._clients[("lambda", "us-east-1")] = lam

    with stubber, pytest.raises(NotFound, match="no function 'nope' in us-east-1"):
        data.invoke("us-east-1", "nope", b"{}")


def test_logs_of_a_function_never_invoked_are_empty(stack):
    status, body = api(stack, "logs?region=us-east-1&function=never")

    assert status == 200 and body == {"function": "never", "group": "/aws/lambda/never", "events": []}


def test_the_api_chart_shows_the_metric_and_the_alarms_threshold(stack):
    stack.client("cloudwatch").put_metric_data(Namespace="AWS/ApiGateway", MetricData=[
        {"MetricName": "5XXError", "Value": 3, "Unit": "Count",
         "Dimensions": [{"Name": "ApiName", "Value": f"{STACK}-ItemsApi"}, {"Name": "Stage", "Value": "prod"}]}])

    status, body = api(stack, f"metrics?region=us-east-1&stack={STACK}")

    assert status == 200
    chart = next(c for c in body["charts"] if c["title"] == "API 5XXError")
    assert [s["label"] for s in chart["series"]] == [f"{STACK}-ItemsApi prod"]
    assert [p[1] for p in chart["series"][0]["points"] if p[1] is not None] == [3.0]
    assert chart["thresholds"] == [{"alarm": f"{STACK}-ItemsApi-5XXError", "value": 1.0, "series": f"{STACK}-ItemsApi prod",
                                    "state": "INSUFFICIENT_DATA", "operator": "GreaterThanOrEqualToThreshold"}]
    assert [a["name"] for a in body["alarms"]] == [f"{STACK}-ItemsApi-5XXError"]


def test_the_outbox_lists_the_delivered_mail_newest_first(stack):
    outbox = Outbox(stack.state_dir / OUTBOX_DIR)
    now = time.time()
    for offset, subject in ((0, "older"), (1, "newer")):
        outbox.write(to="ops@example.com", subject=subject, body=f"{subject} body", protocol="email", headers={},
                     at=now + offset)

    status, body = api(stack, "outbox")

    assert status == 200
    assert [(m["subject"], m["to"], m["body"]) for m in body["messages"][:2]] == [
        ("newer", "ops@example.com", "newer body\n"), ("older", "ops@example.com", "older body\n")]
