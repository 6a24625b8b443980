"""Alarms that fire and SNS that delivers, in the local AWS over real HTTP on loopback.

The server runs in a subprocess with the fake Lambda runtime; e-mails land in its outbox, a Lambda
subscription in tests.support.fakes' event log, an HTTP subscription on a little server of ours.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
import uuid

import pytest

from crudstack.local.sns.outbox import Outbox
from tests.support.local_server import function_zip, wait_until

ROLE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


@pytest.fixture(scope="module")
def cloudwatch(server):
    return server.client("cloudwatch")


@pytest.fixture(scope="module")
def sns(server):
    return server.client("sns")


@pytest.fixture
def topic(sns):
    """A topic with an e-mail subscription of its own (a unique address: the outbox is shared)."""
    arn = sns.create_topic(Name=f"alerts-{uuid.uuid4().hex[:8]}")["TopicArn"]
    address = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    sns.subscribe(TopicArn=arn, Protocol="email", Endpoint=address)
    return arn, address


def mails(server, address):
    return [m for m in Outbox(server.state_dir / "outbox").messages() if m.to == address]


def put_alarm(cloudwatch, topic_arn, name=None, **overrides):
    name = name or f"alarm-{uuid.uuid4().hex[:8]}"
    spec = dict(AlarmName=name, Namespace="Test", MetricName="Errors", Dimensions=[{"Name": "Fn", "Value": name}],
                Statistic="Sum", Period=10, EvaluationPeriods=1, Threshold=1.0,
                ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching",
                AlarmActions=[topic_arn], OKActions=[topic_arn])
    spec.update(overrides)
    cloudwatch.put_metric_alarm(**{k: v for k, v in spec.items() if v is not None})
    return name


def state(cloudwatch, name):
    return cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]


def test_a_new_alarm_starts_with_insufficient_data_and_an_update_keeps_its_state(server, cloudwatch, topic):
    # "ignore": the evaluator, which looks at an alarm again once it is updated, leaves it as it is
    name = put_alarm(cloudwatch, topic[0], TreatMissingData="ignore", Period=60)
    assert state(cloudwatch, name)["StateValue"] == "INSUFFICIENT_DATA"

    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="testing")
    put_alarm(cloudwatch, topic[0], name=name, TreatMissingData="ignore", Period=60, Threshold=5.0)

    after = state(cloudwatch, name)
    assert (after["StateValue"], after["StateReason"], after["Threshold"]) == ("ALARM", "testing", 5.0)
    history = cloudwatch.describe_alarm_history(AlarmName=name, HistoryItemType="ConfigurationUpdate")["AlarmHistoryItems"]
    assert [h["HistorySummary"] for h in history] == [f'Alarm "{name}" updated', f'Alarm "{name}" created']


def test_set_alarm_state_notifies_the_topic_by_email_and_is_in_the_alarm_history(server, cloudwatch, topic):
    topic_arn, address = topic
    name = put_alarm(cloudwatch, topic_arn, Period=60, TreatMissingData="ignore")  # the evaluator leaves it alone

    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="Threshold Crossed: a test")

    delivered = wait_until(lambda: mails(server, address), timeout=10)
    assert len(delivered) == 1
    mail = delivered[0]
    assert mail.subject == f'ALARM: "{name}" in US East (N. Virginia)'
    assert f'your Amazon CloudWatch Alarm "{name}" in the US East (N. Virginia) region has entered the ALARM state, ' \
           f'because "Threshold Crossed: a test"' in mail.body
    assert "- State Change:               INSUFFICIENT_DATA -> ALARM" in mail.body
    history = cloudwatch.describe_alarm_history(AlarmName=name)["AlarmHistoryItems"]
    assert [h["HistoryItemType"] for h in history] == ["Action", "StateUpdate", "ConfigurationUpdate"]  # newest first
    assert history[0]["HistorySummary"] == f"Successfully executed action {topic_arn}"
    assert history[1]["HistorySummary"] == "Alarm updated from INSUFFICIENT_DATA to ALARM"
    assert json.loads(history[1]["HistoryData"])["newState"] == {"stateValue": "ALARM", "stateReason": "Threshold Crossed: a test"}


def test_the_evaluator_drives_an_alarm_to_alarm_and_back_to_ok_from_the_metrics(server, cloudwatch, sns, topic):
    topic_arn, address = topic
    sns.subscribe(TopicArn=topic_arn, Protocol="email-json", Endpoint=f"json-{address}")
    name = put_alarm(cloudwatch, topic_arn)
    # The first evaluation: no data, treated as not breaching.
    assert wait_until(lambda: state(cloudwatch, name)["StateValue"] == "OK", timeout=15)

    cloudwatch.put_metric_data(Namespace="Test", MetricData=[
        {"MetricName": "Errors", "Dimensions": [{"Name": "Fn", "Value": name}], "Value": 3.0, "Unit": "Count"}])
    started = time.monotonic()
    assert wait_until(lambda: state(cloudwatch, name)["StateValue"] == "ALARM", timeout=20)
    assert time.monotonic() - started <= 10 + 5 + 1  # one period, the settling delay, one tick

    alarm = state(cloudwatch, name)
    assert alarm["StateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [3.0 (")
    assert json.loads(alarm["StateReasonData"])["recentDatapoints"] == [3.0]
    as_json = wait_until(lambda: [m for m in mails(server, f"json-{address}") if m.subject.startswith("ALARM")], timeout=10)
    notification = json.loads(as_json[0].body)
    assert notification["Type"] == "Notification" and notification["TopicArn"] == topic_arn
    message = json.loads(notification["Message"])
    assert (message["AlarmName"], message["OldStateValue"], message["NewStateValue"]) == (name, "OK", "ALARM")
    assert message["Trigger"]["MetricName"] == "Errors" and message["Trigger"]["Statistic"] == "SUM"
    assert message["NewStateReason"] == alarm["StateReason"]

    # No more errors: the next period has no data, which this alarm treats as not breaching.
    assert wait_until(lambda: state(cloudwatch, name)["StateValue"] == "OK", timeout=20)
    # the state is visible a moment before the mail is written
    assert wait_until(lambda: [m.subject.split(":")[0] for m in mails(server, address)] == ["OK", "ALARM", "OK"], timeout=10)


def test_a_p99_alarm_takes_the_percentile_of_the_values(server, cloudwatch, topic):
    name = put_alarm(cloudwatch, topic[0], MetricName="Duration", Statistic=None, ExtendedStatistic="p99",
                     Threshold=500.0, ComparisonOperator="GreaterThanThreshold")
    values = [10.0] * 98 + [900.0, 1000.0]  # p99 is 900 (nearest rank)
    cloudwatch.put_metric_data(Namespace="Test", MetricData=[
        {"MetricName": "Duration", "Dimensions": [{"Name": "Fn", "Value": name}], "Values": values}])

    assert wait_until(lambda: state(cloudwatch, name)["StateValue"] == "ALARM", timeout=20)
    assert "[900.0 (" in state(cloudwatch, name)["StateReason"]


def test_disabled_alarm_actions_change_the_state_but_send_nothing(server, cloudwatch, topic):
    topic_arn, address = topic
    name = put_alarm(cloudwatch, topic_arn, Period=60, TreatMissingData="ignore")  # the evaluator leaves it alone
    cloudwatch.disable_alarm_actions(AlarmNames=[name])

    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="quiet")

    assert state(cloudwatch, name)["StateValue"] == "ALARM" and state(cloudwatch, name)["ActionsEnabled"] is False
    time.sleep(0.5)
    assert mails(server, address) == []
    cloudwatch.enable_alarm_actions(AlarmNames=[name])
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="loud")
    assert [m.subject.split(":")[0] for m in wait_until(lambda: mails(server, address), timeout=10)] == ["OK"]


def test_a_message_published_to_a_topic_reaches_an_email_subscription_as_one_outbox_file(server, sns, topic):
    topic_arn, address = topic

    message_id = sns.publish(TopicArn=topic_arn, Subject="Hello", Message="Body of the message\nsecond line")["MessageId"]

    delivered = wait_until(lambda: mails(server, address), timeout=10)
    assert [(m.subject, m.protocol) for m in delivered] == [("Hello", "email")]
    assert delivered[0].body.startswith("Body of the message\nsecond line\n\n--\nIf you wish to stop receiving")
    assert f"X-Amz-Sns-Message-Id: {message_id}" in delivered[0].path.read_text()
    sns.publish(TopicArn=topic_arn, Message="no subject")
    assert [m.subject for m in wait_until(lambda: mails(server, address)[1:], timeout=10)] == ["AWS Notification Message"]


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_an_http_subscription_on_this_machine_gets_the_notification_posted(server, sns, topic):
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        sns.subscribe(TopicArn=topic[0], Protocol="http", Endpoint=endpoint)

        sns.publish(TopicArn=topic[0], Subject="To the hook", Message="posted")

        got = wait_until(lambda: _Receiver.received, timeout=10)
        headers, body = got[0]
        assert headers["x-amz-sns-message-type"] == "Notification"
        assert (body["Type"], body["Subject"], body["Message"], body["TopicArn"]) == ("Notification", "To the hook", "posted", topic[0])
    finally:
        receiver.shutdown()
        receiver.server_close()


def test_an_http_subscription_elsewhere_is_not_sent_and_the_outbox_says_so(server, sns, topic):
    sns.subscribe(TopicArn=topic[0], Protocol="https", Endpoint="https://hooks.example.com/alerts")

    sns.publish(TopicArn=topic[0], Subject="Away", Message="stays here")

    note = wait_until(lambda: [m for m in Outbox(server.state_dir / "outbox").messages()
                               if m.to == "https://hooks.example.com/alerts"], timeout=10)
    assert note[0].subject == "Not sent: Away"
    assert "hooks.example.com is not on this machine" in note[0].body


def test_a_lambda_subscription_runs_the_function_with_snss_event(server, sns, topic):
    iam, lam = server.client("iam"), server.client("lambda")
    role = iam.create_role(RoleName=f"sns-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
    arn = lam.create_function(FunctionName=f"on-alert-{uuid.uuid4().hex[:6]}", Runtime="python3.12", Role=role,
                              Handler="handler.handler", Code={"ZipFile": function_zip()})["FunctionArn"]
    subscription = sns.subscribe(TopicArn=topic[0], Protocol="lambda", Endpoint=arn)["SubscriptionArn"]

    message_id = sns.publish(TopicArn=topic[0], Subject="For the function", Message="hello")["MessageId"]

    def events():
        path = server.state_dir / "fake-events.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if json.loads(line)["function"] == arn]

    got = wait_until(events, timeout=10)
    record = got[0]["event"]["Records"][0]
    assert (got[0]["source"], record["EventSource"], record["EventSubscriptionArn"]) == ("sns", "aws:sns", subscription)
    assert (record["Sns"]["MessageId"], record["Sns"]["Subject"], record["Sns"]["Message"]) == (message_id, "For the function", "hello")


def test_history_can_be_filtered_by_type_and_date_and_paged(server, cloudwatch, topic):
    name = put_alarm(cloudwatch, topic[0], Period=60, TreatMissingData="ignore")  # the evaluator leaves it alone
    for state_value in ("ALARM", "OK", "ALARM"):
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=state_value, StateReason=state_value)

    updates = cloudwatch.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate", MaxRecords=2)
    rest = cloudwatch.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate", NextToken=updates["NextToken"])
    oldest_first = cloudwatch.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate", ScanBy="TimestampAscending")
    future = cloudwatch.describe_alarm_history(AlarmName=name, StartDate=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))

    summaries = [h["HistorySummary"] for h in updates["AlarmHistoryItems"] + rest["AlarmHistoryItems"]]
    assert summaries == ["Alarm updated from OK to ALARM", "Alarm updated from ALARM to OK",
                         "Alarm updated from INSUFFICIENT_DATA to ALARM"]
    assert [h["HistorySummary"] for h in oldest_first["AlarmHistoryItems"]] == list(reversed(summaries))
    assert future["AlarmHistoryItems"] == []
