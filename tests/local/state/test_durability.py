"""The local AWS keeps its state across a stop, a crash (SIGKILL) and a damaged journal.

Each test starts the real server (with the fake Lambda runtime) in its own state dir, stops or
kills it, and starts a new one on the same folder, as `python provision.py` would.
"""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from crudstack.local import daemon
from crudstack.local.state import journal
from tests.support.local_server import RunningServer, start_server, wait_until
from tests.local.server.test_server import Stack


@pytest.fixture
def servers():
    """Start servers on a folder with servers.start(folder); every one still running is stopped at the end."""
    started: list[RunningServer] = []

    class Servers:
        def start(self, state_dir, **kwargs):
            server = start_server(state_dir, **kwargs)
            started.append(server)
            return server

    yield Servers()
    for server in started:
        server.stop()


def crash(server: RunningServer) -> None:
    """SIGKILL: no clean shutdown, no last snapshot. Its process group goes too (the fake runtime's child)."""
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    # Its record is stale now; start_server must not mistake another program on that port for the new server.
    (server.state_dir / "server.json").unlink(missing_ok=True)


def recovery(server: RunningServer) -> dict:
    return json.loads((server.state_dir / "recovery.json").read_text())


def make_table(server: RunningServer, name: str = "items") -> None:
    server.client("dynamodb").create_table(
        TableName=name, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")


def put_items(server: RunningServer, count: int, table: str = "items") -> None:
    ddb = server.client("dynamodb")

    def put(i):
        ddb.put_item(TableName=table, Item={"id": {"S": f"item-{i}"}, "n": {"N": str(i)}})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(count)))


def item_count(server: RunningServer, table: str = "items") -> int:
    return server.client("dynamodb").scan(TableName=table, Select="COUNT")["Count"]


def test_a_clean_stop_keeps_tables_items_functions_and_the_deployed_api(servers, tmp_path):
    first = servers.start(tmp_path / "state")
    make_table(first)
    put_items(first, 100)
    stack = Stack(first)
    function_arn = stack.function("echo")
    stack.route("GET", "/items/{id}", function_arn, permit=f"arn:aws:execute-api:us-east-1:123456789012:{stack.api_id}/*/GET/items/*")
    deployment = stack.deploy()
    configuration = first.client("lambda").get_function(FunctionName=function_arn)["Configuration"]
    assert first.stop() == 0

    second = servers.start(tmp_path / "state")

    assert item_count(second) == 100
    apigw = second.client("apigateway")
    assert [a["id"] for a in apigw.get_rest_apis()["items"]] == [stack.api_id]
    assert apigw.get_stage(restApiId=stack.api_id, stageName="prod")["deploymentId"] == deployment
    assert second.client("lambda").get_function(FunctionName=function_arn)["Configuration"] == configuration
    served = requests.get(f"{second.endpoint}/restapis/{stack.api_id}/prod/_user_request_/items/7", timeout=10)
    assert served.status_code == 200 and served.json()["pathParameters"] == {"id": "7"}
    assert recovery(second)["replayed"] == 0  # a clean stop leaves a snapshot of everything


def test_every_acknowledged_write_survives_sigkill_with_the_same_generated_ids(servers, tmp_path):
    first = servers.start(tmp_path / "state")
    make_table(first)
    put_items(first, 300)
    apigw = first.client("apigateway")
    api_id = apigw.create_rest_api(name="after-the-items")["id"]
    resources = {r["path"]: r["id"] for r in apigw.get_resources(restApiId=api_id)["items"]}
    topic_arn = first.client("sns").create_topic(Name="alerts")["TopicArn"]
    subscription = first.client("sns").subscribe(TopicArn=topic_arn, Protocol="email", Endpoint="ops@example.com")
    crash(first)

    second = servers.start(tmp_path / "state")

    assert item_count(second) == 300
    assert second.client("dynamodb").get_item(TableName="items", Key={"id": {"S": "item-299"}})["Item"]["n"] == {"N": "299"}
    assert [a["id"] for a in second.client("apigateway").get_rest_apis()["items"]] == [api_id]
    assert {r["path"]: r["id"] for r in second.client("apigateway").get_resources(restApiId=api_id)["items"]} == resources
    listed = second.client("sns").list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    assert [s["SubscriptionArn"] for s in listed] == [subscription["SubscriptionArn"]]
    report = recovery(second)
    assert report["replayed"] >= 1 and report["dropped"] == [] and report["diverged"] == []


def test_a_truncated_last_record_is_dropped_reported_once_and_everything_before_it_kept(servers, tmp_path):
    first = servers.start(tmp_path / "state")
    make_table(first)
    put_items(first, 20)
    crash(first)
    data = tmp_path / "state" / "data"
    last_segment = journal.list_segments(data)[-1][1]
    with open(last_segment, "ab") as handle:  # what a crash in the middle of a write leaves
        handle.write(journal.encode({"lsn": 10_000, "kind": "http"}, b'{"TableName": "items"}')[:25])

    second = servers.start(tmp_path / "state")

    assert item_count(second) == 20
    dropped = recovery(second)["dropped"]
    assert len(dropped) == 1
    assert last_segment.name in dropped[0] and "25 bytes" in dropped[0]
    assert "the last record, cut short or damaged; dropped. Whether its request had been answered cannot be known" in dropped[0]
    assert "recovery: " + dropped[0] in second.log
    # provision.py shows it once (crudstack.cli.connect), then it is marked as reported
    assert daemon.unreported_recovery_problems(tmp_path / "state") == dropped
    assert daemon.unreported_recovery_problems(tmp_path / "state") == []


def test_state_that_cannot_be_read_stops_the_start_and_says_how_to_start_over(servers, tmp_path):
    first = servers.start(tmp_path / "state")
    make_table(first)
    assert first.stop() == 0
    for snapshot in (tmp_path / "state" / "data").glob("snapshot-*.pickle"):
        snapshot.write_bytes(b"CSNAP1\nnot json")

    with pytest.raises(AssertionError, match="server exited with 1"):
        servers.start(tmp_path / "state")

    err = (tmp_path / "state" / "stderr.txt").read_text()
    assert "cannot be read" in err and "python -m crudstack.local wipe" in err


def test_api_gateway_metrics_written_before_a_crash_are_still_there(servers, tmp_path):
    first = servers.start(tmp_path / "state")
    stack = Stack(first)
    stack.route("GET", "/ping", stack.function("echo"))
    stack.deploy()
    api_name = first.client("apigateway").get_rest_api(restApiId=stack.api_id)["name"]
    for _ in range(5):
        assert requests.get(stack.url("/ping"), timeout=10).status_code == 200

    def counted(server):
        points = server.client("cloudwatch").get_metric_statistics(
            Namespace="AWS/ApiGateway", MetricName="Count", Statistics=["Sum"], Period=60,
            Dimensions=[{"Name": "ApiName", "Value": api_name}, {"Name": "Stage", "Value": "prod"}],
            StartTime="2000-01-01T00:00:00Z", EndTime="2100-01-01T00:00:00Z")["Datapoints"]
        return sum(p["Sum"] for p in points)

    assert wait_until(lambda: counted(first) == 5, timeout=10)
    time.sleep(1.0)  # written in-process by the gateway: journaled without waiting, on disk within 0.5 s
    crash(first)

    second = servers.start(tmp_path / "state")

    assert counted(second) == 5


def test_alarm_state_history_and_sent_mail_survive_a_crash_and_nothing_is_sent_twice(servers, tmp_path):
    from crudstack.local.sns.outbox import Outbox

    # Snapshots only at a clean stop: the crash must leave these writes in the journal, to be replayed.
    first = servers.start(tmp_path / "state", env={"FAKE_SERVER_SNAPSHOT_ONLY_AT_STOP": "1"})
    sns, cloudwatch = first.client("sns"), first.client("cloudwatch")
    topic_arn = sns.create_topic(Name="alerts")["TopicArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="email", Endpoint="ops@example.com")
    cloudwatch.put_metric_alarm(AlarmName="errors", Namespace="Test", MetricName="Errors", Statistic="Sum", Period=60,
                                EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanOrEqualToThreshold",
                                AlarmActions=[topic_arn], TreatMissingData="ignore")  # no evaluator transitions
    cloudwatch.set_alarm_state(AlarmName="errors", StateValue="ALARM", StateReason="before the crash")
    sns.publish(TopicArn=topic_arn, Subject="Direct", Message="published")
    outbox = Outbox(tmp_path / "state" / "outbox")
    assert len(outbox.messages()) == 2
    history = cloudwatch.describe_alarm_history(AlarmName="errors")["AlarmHistoryItems"]
    crash(first)

    second = servers.start(tmp_path / "state")

    alarm = second.client("cloudwatch").describe_alarms(AlarmNames=["errors"])["MetricAlarms"][0]
    assert (alarm["StateValue"], alarm["StateReason"]) == ("ALARM", "before the crash")
    assert second.client("cloudwatch").describe_alarm_history(AlarmName="errors")["AlarmHistoryItems"] == history
    assert recovery(second)["replayed"] >= 5
    assert sorted(m.subject for m in outbox.messages()) == ['ALARM: "errors" in US East (N. Virginia)', "Direct"]
