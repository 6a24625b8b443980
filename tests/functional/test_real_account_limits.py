"""Issue 20 on the model of a real account (crudstack/realistic.py, over moto, in simulated time): rate quotas
outside API Gateway and Lambda, overlapping changes to one REST API, accepted error codes that must not swallow a
transient error, and lists that lag."""

from __future__ import annotations

from collections import defaultdict

import botocore.exceptions
import pytest

from crudstack.errors import AwsCallFailed

from crudstack.calls import Call
from crudstack.realistic import AccountModel, Delays, SimClock
from tests.functional.conftest import assert_one_complete_stack, seeded


@pytest.fixture(autouse=True)
def seeded_jitter():
    with seeded(17):
        yield


class OneRecord:
    """What a calls.py record needs of a run, for running one record alone."""

    def __init__(self, aws):
        self.aws, self.variables = aws, {}

    def check(self) -> None:
        pass

    def log(self, *_) -> None:
        pass


def throttled(model: AccountModel) -> list[str]:
    return [r for r in model.refused if r.endswith(":quota")]


# -- finding 6: quotas outside API Gateway and Lambda -------------------------------------------------------


def test_a_fresh_provision_sends_its_alarms_no_faster_than_cloudwatch_allows_and_is_never_throttled(provision, config, clock):
    model = AccountModel(clock=clock, delays=Delays(table=2, role=2, function=2, resource=1))
    sent: dict[str, list[float]] = defaultdict(list)

    def note(model, **_):   # after the limiter's wait, on the calling thread's simulated time
        sent[model.name].append(clock())

    provision(config, clock=clock, attach=model.attach, hooks=(("before-call", note),))

    assert throttled(model) == []
    alarms = sorted(sent["PutMetricAlarm"])
    assert len(alarms) >= 17
    for i, at in enumerate(alarms):   # CloudWatch: 3 PutMetricAlarm a second
        assert len([t for t in alarms[i:] if t < at + 1]) <= 3 + 3, (at, alarms)
    assert alarms[-1] - alarms[0] >= (len(alarms) - 3) / 3 - 1e-6


def test_an_api_gateway_call_with_its_own_quota_still_waits_for_the_accounts_total(new_aws, clock):
    model = AccountModel(clock=clock)
    aws = new_aws(clock=clock)
    model.attach(aws)
    apigw = aws.client("apigateway")
    api = aws.call(apigw.create_rest_api, name="limits")
    clock.now += 60
    for _ in range(40):   # the total's burst: 40 requests of operations without a quota of their own
        aws.call(apigw.get_rest_api, restApiId=api["id"])

    for n in range(5):    # CreateResource has 5 a second of its own, but counts against the total too
        aws.call(apigw.create_resource, restApiId=api["id"], parentId=api["rootResourceId"], pathPart=f"p{n}")

    assert throttled(model) == []


def test_the_model_throttles_cloudwatch_alarm_writes_at_three_a_second(new_aws, clock):
    model = AccountModel(clock=clock)
    aws = new_aws(clock=clock)
    model.attach(aws)
    aws.limiter.acquire = lambda service, operation, **_: None   # no pacing: every call goes at once
    cw = aws.client("cloudwatch")
    refused = []
    for n in range(5):   # straight at the client: no retry
        try:
            cw.put_metric_alarm(AlarmName=f"a{n}", MetricName="Errors", Namespace="AWS/Lambda", Statistic="Sum", Period=60,
                                EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
        except botocore.exceptions.ClientError as exc:
            refused.append(exc.response["Error"]["Code"])

    assert refused == ["Throttling", "Throttling"]


def test_the_model_throttles_sns_tag_writes_at_ten_a_second(new_aws, clock):
    model = AccountModel(clock=clock)
    aws = new_aws(clock=clock)
    model.attach(aws)
    sns = aws.client("sns")
    arns = [sns.create_topic(Name=f"t{n}")["TopicArn"] for n in range(12)]
    aws.limiter.acquire = lambda service, operation, **_: None   # no pacing: every call goes at once
    refused = []
    for arn in arns:   # straight at the client: no retry; SNS API Reference, TagResource: 10 TPS
        try:
            sns.tag_resource(ResourceArn=arn, Tags=[{"Key": "stack", "Value": "demo"}])
        except botocore.exceptions.ClientError as exc:
            refused.append((exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]))

    assert refused == [("Throttled", 429), ("Throttled", 429)]


def test_many_topics_subscription_reads_at_once_wait_for_snss_rate_and_are_never_throttled(new_aws, clock):
    model = AccountModel(clock=clock)
    aws = new_aws(clock=clock)
    model.attach(aws)
    sns = aws.client("sns")
    arns = [aws.call(sns.create_topic, Name=f"t{n}")["TopicArn"] for n in range(45)]
    clock.now += 60
    started = clock()

    for arn in arns:   # ListSubscriptionsByTopic: 30 a second (SNS API Reference)
        aws.call(sns.list_subscriptions_by_topic, TopicArn=arn)

    assert throttled(model) == []
    assert clock() - started >= (45 - 30) / 30 - 1e-6   # the tool waited its turn instead of being refused


# -- finding 5: an accepted error code never swallows a transient error ------------------------------------


def test_a_concurrent_modification_conflict_that_outlasts_the_retries_is_a_failure_not_an_existing_method(new_aws, clock, aws_clients):
    model = AccountModel(clock=clock, delays=Delays(api_write=10_000))   # another change to the API never ends
    aws = new_aws(clock=clock)
    aws.deadline_s = 30
    model.attach(aws)
    apigw = aws.client("apigateway")
    api = aws.call(apigw.create_rest_api, name="busy")
    aws.call(apigw.put_method, restApiId=api["id"], resourceId=api["rootResourceId"], httpMethod="GET", authorizationType="NONE")
    # put_method accepts ConflictException as "the method exists already" (steps/api.py)
    put = Call("apigateway", "put_method", {"restApiId": api["id"], "resourceId": api["rootResourceId"], "httpMethod": "POST",
                                            "authorizationType": "NONE"}, ok=("ConflictException",))

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        put.run(OneRecord(aws))

    assert "concurrent modification" in str(raised.value)
    assert "PutMethod:concurrent" in model.refused
    methods = aws_clients.apigateway.get_resource(restApiId=api["id"], resourceId=api["rootResourceId"]).get("resourceMethods") or {}
    assert "POST" not in methods


def test_overlapping_changes_to_one_rest_api_are_retried_until_each_goes_through(provision, config, clock, aws_clients):
    model = AccountModel(clock=clock, delays=Delays(api_write=0.5))

    provision(config, clock=clock, attach=model.attach)

    assert any(r.endswith(":concurrent") for r in model.refused), model.refused
    assert_one_complete_stack(aws_clients, config)


# -- lists that lag ------------------------------------------------------------------------------------------


def test_a_new_rest_api_usage_plan_and_api_key_are_missing_from_their_lists_for_a_while(new_aws, clock):
    model = AccountModel(clock=clock, delays=Delays(lists=5))
    aws = new_aws(clock=clock)
    model.attach(aws)
    apigw = aws.client("apigateway")
    api = aws.call(apigw.create_rest_api, name="lagging")
    plan = aws.call(apigw.create_usage_plan, name="lagging-plan")
    key = aws.call(apigw.create_api_key, name="lagging-key", enabled=True)

    def listed() -> tuple:
        return (api["id"] in [a["id"] for a in aws.call(apigw.get_rest_apis)["items"]],
                plan["id"] in [p["id"] for p in aws.call(apigw.get_usage_plans)["items"]],
                key["id"] in [k["id"] for k in aws.call(apigw.get_api_keys)["items"]])

    assert listed() == (False, False, False)
    clock.now += 6
    assert listed() == (True, True, True)
    assert {"GetRestApis:unlisted", "GetUsagePlans:unlisted", "GetApiKeys:unlisted"} <= set(model.hidden)


def test_a_new_backup_is_missing_from_list_backups_for_a_while(new_aws, clock, aws_clients):
    model = AccountModel(clock=clock, delays=Delays(lists=5))
    aws = new_aws(clock=clock)
    model.attach(aws)
    aws_clients.dynamodb.create_table(TableName="lagging", BillingMode="PAY_PER_REQUEST",
                                      AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                                      KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    ddb = aws.client("dynamodb")
    backup = aws.call(ddb.create_backup, TableName="lagging", BackupName="lagging-1")["BackupDetails"]["BackupArn"]

    def listed() -> bool:
        return backup in [b["BackupArn"] for b in aws.call(ddb.list_backups, TableName="lagging")["BackupSummaries"]]

    assert not listed()
    clock.now += 6
    assert listed()
    assert "ListBackups:unlisted" in model.hidden


def test_a_provision_whose_lists_lag_makes_one_of_everything_and_a_rerun_changes_nothing(provision, config, clock, aws_clients):
    delays = Delays(table=2, role=2, function=2, resource=1, lists=5)
    model = AccountModel(clock=clock, delays=delays)
    provision(config, clock=clock, attach=model.attach)
    clock.now += delays.longest + 1

    again = provision(config, clock=clock, attach=model.attach)

    assert_one_complete_stack(aws_clients, config)
    assert again.mutating_calls == []
    assert throttled(model) == []


def test_simulated_threads_apart_in_time_keep_to_a_rate_together():
    from crudstack.aws import Limiter

    clock = SimClock()
    limiter = Limiter(clock=clock, sleep=clock.sleep)
    turns = []
    for start in (0.0,) * 5 + (10.0,) + (0.0,) * 5:   # threads whose own clocks are apart, asking in this order
        clock.enter(start)
        limiter.acquire("apigateway", "DeleteApiKey")
        turns.append(clock.leave())

    turns.sort()
    for i, at in enumerate(turns):   # 5 a second with a burst of 5: no stretch a..b holds more than 5 + 5 (b - a)
        for j in range(i, len(turns)):
            assert j - i + 1 <= 5 + 5 * (turns[j] - at) + 1e-9, turns


def test_a_thread_behind_in_simulated_time_gets_the_same_turns_whichever_thread_asks_first():
    """On a SimClock the threads' calls ask in the order they are scheduled, not in simulated time: a thread at
    t=0 asking after one at t=10 spent its burst must still go at once (a token bucket queueing calls in
    arrival order made it wait until after t=10, so a run's simulated length depended on scheduling)."""
    from crudstack.aws import Limiter

    def turns(order):
        clock = SimClock()
        limiter = Limiter(clock=clock, sleep=clock.sleep)
        ends = []
        for start in order:
            clock.enter(start)
            limiter.acquire("apigateway", "DeleteApiKey")   # 5 a second, burst 5
            ends.append((start, clock.leave()))
        return sorted(ends)

    ahead_first = turns((10.0,) * 5 + (0.0,) * 5)
    assert ahead_first == turns((0.0,) * 5 + (10.0,) * 5)
    assert ahead_first == [(0.0, 0.0)] * 5 + [(10.0, 10.0)] * 5   # five calls in each second: none waits


def test_two_runs_one_after_another_on_one_account_share_its_budget():
    """A teardown started the instant a provision ended (the functional tests' runs on one SimClock) spends
    the account's budget the provision left, not a full burst of its own."""
    from crudstack.aws import Aws, Budgets

    clock, account = SimClock(), Budgets()
    first, second = (Aws(region="us-east-1", clock=clock, sleep=clock.sleep, budgets=account) for _ in range(2))
    for _ in range(5):   # DeleteApiKey: 5 a second, burst 5
        first.limiter.acquire("apigateway", "DeleteApiKey")
    assert clock.now == 0.0
    second.limiter.acquire("apigateway", "DeleteApiKey")
    assert clock.now >= 0.2 - 1e-6 and second.limiter.waits   # its turn is the sixth of that second's


# -- the whole cycle, with a client writing through the API all along ----------------------------------------


class ApiClient:
    """A user's client that writes an item through the API every `every` simulated seconds while the API can
    take it: the stack's REST API has its stage and the create function exists. It writes as the create
    function does (put_item on the table), straight into moto, so none of its calls is the tool's. Every write
    that succeeded was acknowledged to the client."""

    def __init__(self, clock: SimClock, clients, config, every: float = 0.5):
        import threading

        self.clock, self.clients, self.config, self.every = clock, clients, config, every
        self.next_at = 0.0
        self.acknowledged: list[str] = []
        self.refused = 0
        self._lock = threading.Lock()

    def api_serves(self) -> bool:
        apis = [a for a in self.clients.apigateway.get_rest_apis(limit=500)["items"] if a["name"] == self.config.api_name]
        if not apis:
            return False
        stages = self.clients.apigateway.get_stages(restApiId=apis[0]["id"])["item"]
        if not any(s["stageName"] == self.config.api.stage for s in stages):
            return False
        creator = next(b for b, f in self.config.lambda_.functions.items() if f.method == "POST")
        names = [f["FunctionName"] for f in self.clients.awslambda.list_functions()["Functions"]]
        return self.config.function_name(creator) in names

    def hook(self, **_):
        with self._lock:
            if self.clock() < self.next_at:
                return None
            self.next_at = self.clock() + self.every
            if not self.api_serves():
                return None
            item_id = f"item-{len(self.acknowledged) + self.refused:04d}"
            try:
                self.clients.dynamodb.put_item(TableName=self.config.table_name, Item={"id": {"S": item_id}, "version": {"N": "1"}})
            except botocore.exceptions.ClientError:
                self.refused += 1   # the API answered an error: not acknowledged
                return None
            self.acknowledged.append(item_id)
        return None

    @property
    def event(self) -> tuple:
        return ("before-call", self.hook)


def test_a_whole_cycle_at_typical_delays_with_a_client_writing_all_along(provision, teardown, config, clock, aws_clients):
    """Issue 20's acceptance on the model: one of everything, a re-run of no writes, no throttled answer from
    AWS, and a teardown without --delete-data that keeps the table and every item the API acknowledged."""
    delays = Delays.typical()
    model = AccountModel(clock=clock, delays=delays)
    client = ApiClient(clock, aws_clients, config)

    provision(config, clock=clock, attach=model.attach, hooks=(client.event,))
    assert_one_complete_stack(aws_clients, config)
    clock.now += delays.longest + 1
    again = provision(config, clock=clock, attach=model.attach, hooks=(client.event,))
    assert again.mutating_calls == []
    clock.now += 5   # the user runs teardown a few seconds later
    gone = teardown(config, clock=clock, attach=model.attach, hooks=(client.event,))

    assert throttled(model) == [], model.refused
    assert client.acknowledged, "the client never found the API serving"
    assert gone.outcomes["DynamoDB table"] == "kept"
    kept = {i["id"]["S"] for i in aws_clients.dynamodb.scan(TableName=config.table_name, ConsistentRead=True)["Items"]}
    assert set(client.acknowledged) <= kept
    assert aws_clients.awslambda.list_functions()["Functions"] == []
    assert [a for a in aws_clients.apigateway.get_rest_apis()["items"] if a["name"] == config.api_name] == []


def test_a_lost_network_is_given_the_deadline_once_not_once_more_per_call(new_aws, clock):
    """A call that starts, or waits for its turn, after the network was found gone gets no new deadline: every
    call shares that fate, so a run whose network is lost ends within retry.deadline_s of the loss."""
    aws = new_aws(clock=clock)
    aws.deadline_s = 3

    def unreachable(**_):
        raise botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    aws.register("before-call", unreachable)
    cw = aws.client("cloudwatch")
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        aws.call(cw.describe_alarms)
    assert clock.now >= 3   # the first call kept trying for the deadline
    clock.now += 1
    started = clock.now

    with pytest.raises(AwsCallFailed) as raised, aws.foreign_errors():   # as a run's threads make calls
        aws.call(cw.describe_alarms)

    assert clock.now - started < 0.5   # not three seconds more
    assert raised.value.seconds >= 3   # reported as the time the network has been gone
