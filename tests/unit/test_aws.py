"""The AWS door: which errors are worth another try, how calls are counted, and the
retry/find/delete behaviour, with an injected sleep so nothing here waits."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.exceptions
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from crudstack.aws import FOREIGN_ERRORS, Aws, CallStats, is_mutating, is_transient
from crudstack.errors import AwsCallFailed
from crudstack.realistic import SimClock


def client_error(code: str, message: str = "", status: int = 400, operation: str = "AnyOperation") -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


URL = "https://lambda.us-east-1.amazonaws.com/"

TRANSIENT = [
    ("ThrottlingException", client_error("ThrottlingException", "Rate exceeded")),
    ("Throttling (IAM, CloudWatch)", client_error("Throttling", "Rate exceeded")),
    ("TooManyRequestsException (Lambda, API Gateway)", client_error("TooManyRequestsException", "Too Many Requests", 429)),
    ("RequestLimitExceeded", client_error("RequestLimitExceeded")),
    ("ProvisionedThroughputExceededException", client_error("ProvisionedThroughputExceededException")),
    ("ServiceUnavailable 503", client_error("ServiceUnavailable", "", 503)),
    ("InternalFailure 500", client_error("InternalFailure", "", 500)),
    ("InternalServerError", client_error("InternalServerError")),
    ("an unknown code with status 503", client_error("SomethingNew", "Service Unavailable", 503)),
    ("an unknown code with status 502", client_error("BadGateway", "", 502)),
    ("role not yet assumable by Lambda",
     client_error("InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda.")),
    ("Lambda update in progress",
     client_error("ResourceConflictException", "The operation cannot be performed at this time. An update is in progress for resource: arn", 409)),
    ("DynamoDB table still being created", client_error("ResourceInUseException", "Attempt to change a resource which is still in use")),
    ("API Gateway concurrent modification", client_error("ConflictException", "Unable to complete operation due to concurrent modification. Please try again later.", 409)),
    ("Throttled (SNS)", client_error("Throttled", "Rate exceeded", 429)),
    ("ConcurrentModification (IAM)", client_error("ConcurrentModification", "The request was rejected because multiple requests to change this object were submitted simultaneously.", 409)),
    ("ConcurrentModificationException (CloudWatch)", client_error("ConcurrentModificationException", "More than one process tried to modify a resource at the same time.", 429)),
    ("OperationAbortedException (CloudWatch Logs)", client_error("OperationAbortedException", "Multiple concurrent requests to update the same resource were in conflict.")),
    ("ConcurrentAccess (SNS)", client_error("ConcurrentAccess", "Can't perform multiple operations on a tag simultaneously.")),
    ("EndpointConnectionError", botocore.exceptions.EndpointConnectionError(endpoint_url=URL)),
    ("ConnectTimeoutError", botocore.exceptions.ConnectTimeoutError(endpoint_url=URL)),
    ("ConnectionClosedError", botocore.exceptions.ConnectionClosedError(endpoint_url=URL)),
    ("ReadTimeoutError", botocore.exceptions.ReadTimeoutError(endpoint_url=URL)),
]

NOT_TRANSIENT = [
    ("AccessDenied (IAM)", client_error("AccessDenied", "User is not authorized to perform: iam:CreateRole", 403)),
    ("AccessDeniedException", client_error("AccessDeniedException", "not authorized", 400)),
    ("ValidationException", client_error("ValidationException", "1 validation error detected")),
    ("InvalidParameterValueException for another reason", client_error("InvalidParameterValueException", "Runtime python3.99 is not supported")),
    ("ResourceConflictException: function already exists", client_error("ResourceConflictException", "Function already exist: demo-F", 409)),
    ("ResourceInUseException: table already exists", client_error("ResourceInUseException", "Table already exists: demo-ItemsTable")),
    ("ConflictException: stage already exists", client_error("ConflictException", "Stage already exists", 409)),
    ("EntityAlreadyExists", client_error("EntityAlreadyExists", "Role with name x already exists.", 409)),
    ("ResourceNotFoundException", client_error("ResourceNotFoundException", "Function not found", 404)),
    ("ExpiredToken", client_error("ExpiredToken", "The security token included in the request is expired", 403)),
    ("NoCredentialsError", botocore.exceptions.NoCredentialsError()),
    ("ParamValidationError", botocore.exceptions.ParamValidationError(report="bad")),
    ("a plain ValueError", ValueError("boom")),
    ("KeyboardInterrupt", KeyboardInterrupt()),
]


@pytest.mark.parametrize("exc", [t[1] for t in TRANSIENT], ids=[t[0] for t in TRANSIENT])
def test_these_errors_are_transient_and_worth_another_try(exc):
    assert is_transient(exc) is True


@pytest.mark.parametrize("exc", [t[1] for t in NOT_TRANSIENT], ids=[t[0] for t in NOT_TRANSIENT])
def test_these_errors_are_final_and_not_retried(exc):
    assert is_transient(exc) is False


@pytest.mark.parametrize(("operation", "mutating"), [
    ("GetFunction", False), ("ListTagsOfResource", False), ("DescribeAlarms", False), ("HeadObject", False),
    ("Query", False), ("Scan", False), ("BatchGetItem", False), ("GetCallerIdentity", False), ("GetRestApis", False),
    ("CreateTable", True), ("PutRolePolicy", True), ("UpdateFunctionCode", True), ("DeleteRestApi", True),
    ("TagResource", True), ("AddPermission", True), ("RemovePermission", True), ("Subscribe", True),
    ("BatchWriteItem", True), ("PutMetricAlarm", True),
])
def test_an_operation_is_a_write_unless_its_name_says_it_reads(operation, mutating):
    assert is_mutating(operation) is mutating


def test_call_stats_split_reads_from_writes_and_list_every_write():
    stats = CallStats()
    for service, operation in [("lambda", "GetFunction"), ("lambda", "GetFunction"), ("dynamodb", "DescribeTable"),
                               ("lambda", "UpdateFunctionCode"), ("lambda", "UpdateFunctionCode"), ("iam", "CreateRole")]:
        stats.record(service, operation)

    assert stats.reads == 3
    assert stats.writes == 3
    assert stats.mutating_calls() == ["iam.CreateRole", "lambda.UpdateFunctionCode", "lambda.UpdateFunctionCode"]


def test_call_stats_reset_forgets_calls_and_retries():
    stats = CallStats()
    stats.record("iam", "CreateRole")
    stats.retries = 2

    stats.reset()

    assert (stats.reads, stats.writes, stats.retries, stats.mutating_calls()) == (0, 0, 0, [])


# -- the Aws door ---------------------------------------------------------------------------------------------------



@pytest.fixture
def aws(sleeps) -> Aws:
    return Aws(region="us-east-1", sleep=sleeps, max_attempts=5)


class Flaky:
    """A callable that fails with the given errors first, then answers."""

    def __init__(self, *errors, answer="done"):
        self.errors = list(errors)
        self.answer = answer
        self.attempts = 0

    def __call__(self, **kwargs):
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.answer


def test_a_call_is_retried_through_transient_errors_with_the_injected_sleep(aws, sleeps):
    flaky = Flaky(client_error("ThrottlingException"), botocore.exceptions.EndpointConnectionError(endpoint_url=URL),
                  client_error("ServiceUnavailable", status=503))

    assert aws.call(flaky, Name="x") == "done"

    assert flaky.attempts == 4
    assert aws.stats.retries == 3
    assert len(sleeps) == 3 and all(0 <= s <= aws.wait_max_s for s in sleeps)


def test_a_final_error_is_raised_after_one_attempt(aws, sleeps):
    flaky = Flaky(client_error("AccessDeniedException", status=403))

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        aws.call(flaky)

    assert raised.value.response["Error"]["Code"] == "AccessDeniedException"
    assert flaky.attempts == 1 and sleeps == [] and aws.stats.retries == 0


def test_retries_stop_at_max_attempts_and_raise_the_last_error_itself(aws, sleeps):
    flaky = Flaky(*[client_error("ThrottlingException", f"attempt {i}") for i in range(1, 10)])

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        aws.call(flaky)

    assert flaky.attempts == 5
    assert raised.value.response["Error"]["Message"] == "attempt 5"
    assert len(sleeps) == 4


def test_on_retry_hears_of_each_retry(aws):
    heard = []
    aws.on_retry = lambda what, exc, attempt: heard.append((type(exc).__name__, attempt))

    aws.call(Flaky(client_error("ThrottlingException"), client_error("ThrottlingException")))

    assert heard == [("ClientError", 1), ("ClientError", 2)]


def test_find_turns_the_given_not_found_codes_into_none(aws):
    assert aws.find(Flaky(client_error("ResourceNotFoundException", status=404)), service="dynamodb") is None


def test_find_raises_other_errors(aws):
    with pytest.raises(botocore.exceptions.ClientError):
        aws.find(Flaky(client_error("AccessDeniedException")), service="dynamodb")


def test_find_retries_transient_errors_before_answering(aws):
    assert aws.find(Flaky(client_error("ThrottlingException"), answer={"Table": {}}), service="dynamodb") == {"Table": {}}


def test_retry_unit_runs_the_whole_find_or_create_again(aws):
    made = []

    def find_or_create():
        if made:  # the retry looks again and finds what the lost call made
            return made[0]
        made.append("api-1")
        raise botocore.exceptions.ConnectionClosedError(endpoint_url=URL)

    assert aws.retry_unit(find_or_create) == "api-1"
    assert made == ["api-1"]


def test_wait_until_polls_with_the_injected_sleep_until_the_check_passes(aws, sleeps):
    answers = iter([None, False, {"State": "Active"}])

    assert aws.wait_until(lambda: next(answers), what="function") == {"State": "Active"}
    assert len(sleeps) == 2


def test_wait_until_gives_up_with_a_timeout_error_naming_what_it_waited_for(aws):
    with pytest.raises(TimeoutError, match="table demo-ItemsTable to be ACTIVE"):
        aws.wait_until(lambda: None, what="table demo-ItemsTable to be ACTIVE", timeout_s=0.001)


def test_retries_end_at_the_deadline_without_sleeping_past_it_and_say_how_long_they_tried():
    clock = SimClock()
    aws = Aws(region="us-east-1", sleep=clock.sleep, clock=clock, deadline_s=3)
    flaky = Flaky(*[client_error("ThrottlingException", "Rate exceeded")] * 100)

    with pytest.raises(AwsCallFailed) as raised, aws.foreign_errors():
        aws.call(flaky)

    assert clock.now == pytest.approx(3)   # the last sleep is cut short: the last attempt is made at the deadline
    assert flaky.attempts > 2
    assert raised.value.attempts == flaky.attempts
    assert raised.value.seconds == pytest.approx(3)


def test_the_deadline_not_a_count_of_attempts_decides_when_retries_stop():
    clock = SimClock()
    aws = Aws(region="us-east-1", sleep=clock.sleep, clock=clock)   # the defaults: 180 s, no cap on attempts
    flaky = Flaky(*[client_error("ThrottlingException", "Rate exceeded")] * 1000)

    with pytest.raises(AwsCallFailed) as raised, aws.foreign_errors():
        aws.call(flaky)

    assert clock.now == pytest.approx(180)
    assert flaky.attempts > 12   # what a fixed count of attempts used to stop at, after about 26 s of backoff
    assert raised.value.seconds == pytest.approx(180)


def too_many_requests(*, headers: dict | None = None, **parsed) -> botocore.exceptions.ClientError:
    """API Gateway's and Lambda's throttling answer, as botocore parses it (parsed: modelled fields such as retryAfterSeconds)."""
    return botocore.exceptions.ClientError(
        {"Error": {"Code": "TooManyRequestsException", "Message": "Too Many Requests"},
         "ResponseMetadata": {"HTTPStatusCode": 429, "HTTPHeaders": headers or {}}, **parsed}, "AnyOperation")


def simulated(**kwargs) -> tuple[Aws, SimClock]:
    clock = SimClock()
    return Aws(region="us-east-1", sleep=clock.sleep, clock=clock, **kwargs), clock


def test_a_retry_after_header_is_waited_out_before_the_next_attempt():
    aws, clock = simulated()

    assert aws.call(Flaky(too_many_requests(headers={"retry-after": "20"}))) == "done"

    assert clock.sleeps == [20]   # not the fraction of a second the first backoff would be


def test_a_retry_after_given_as_an_http_date_is_measured_from_the_responses_own_date():
    aws, clock = simulated()
    headers = {"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT", "date": "Wed, 21 Oct 2015 07:28:00 GMT"}

    aws.call(Flaky(too_many_requests(headers=headers)))

    assert clock.sleeps == [30]


def test_retry_after_seconds_as_api_gateway_and_lambda_model_it_is_waited_out():
    aws, clock = simulated()

    aws.call(Flaky(too_many_requests(retryAfterSeconds="12")))

    assert clock.sleeps == [12]


def test_a_retry_after_beyond_the_deadline_ends_the_retries_at_once_rather_than_trying_too_early():
    aws, clock = simulated(deadline_s=10)
    flaky = Flaky(*[too_many_requests(headers={"retry-after": "60"})] * 5)

    with pytest.raises(AwsCallFailed) as raised, aws.foreign_errors():
        aws.call(flaky)

    assert flaky.attempts == 1 and clock.sleeps == []
    assert raised.value.attempts == 1


class ThrottledOnce(BaseHTTPRequestHandler):
    """A loopback API Gateway whose first DeleteRestApi is throttled with Retry-After: 45, as AWS answers it."""

    hits = 0

    def do_DELETE(self):  # noqa: N802
        type(self).hits += 1
        if self.hits == 1:
            body = json.dumps({"message": "Too Many Requests"}).encode()
            self.send_response(429)
            self.send_header("x-amzn-ErrorType", "TooManyRequestsException")
            self.send_header("Retry-After", "45")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_botocores_parse_of_a_real_429_carries_the_retry_after_that_is_waited_out():
    ThrottledOnce.hits = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), ThrottledOnce)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        aws, clock = simulated(endpoint_url=f"http://127.0.0.1:{server.server_address[1]}")
        aws.call(aws.client("apigateway").delete_rest_api, restApiId="abc123")
    finally:
        server.shutdown()
        server.server_close()

    assert ThrottledOnce.hits == 2
    assert clock.sleeps == [45]


def throttle_first_answer(operation: str):
    """A before-call hook: operation's first call is throttled as API Gateway does, without a Retry-After."""
    calls = []

    def hook(model, **_):
        if model.name == operation:
            calls.append(model.name)
            if len(calls) == 1:
                parsed = {"Error": {"Code": "TooManyRequestsException", "Message": "Too Many Requests"},
                          "ResponseMetadata": {"HTTPStatusCode": 429, "HTTPHeaders": {}}}
                return AWSResponse("https://injected.invalid/", 429, {}, None), parsed
        return None

    return hook


def test_a_throttled_delete_rest_api_without_retry_after_waits_out_its_quota_of_one_call_in_30_seconds(moto_account):
    aws, clock = simulated()
    apigw = aws.client("apigateway")
    api_id = apigw.create_rest_api(name="demo-ItemsApi")["id"]
    aws.register("before-call", throttle_first_answer("DeleteRestApi"))

    aws.call(apigw.delete_rest_api, restApiId=api_id)

    assert clock.sleeps == [30]
    assert apigw.get_rest_apis()["items"] == []


def test_a_role_lambda_cannot_assume_yet_is_retried_past_a_short_deadline_for_as_long_as_iam_may_take():
    aws, clock = simulated(deadline_s=3)
    role_not_ready = client_error("InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda.")
    flaky = Flaky(*[role_not_ready] * 10_000)

    with pytest.raises(AwsCallFailed) as raised, aws.foreign_errors():
        aws.call(flaky)

    assert clock.now == pytest.approx(15 * 60)   # terraform-provider-aws's wait for the same error
    assert raised.value.seconds == pytest.approx(15 * 60)
    assert raised.value.attempts == flaky.attempts > 100


def test_wait_until_gives_up_at_the_deadline_of_the_injected_clock():
    clock = SimClock()
    aws = Aws(region="us-east-1", sleep=clock.sleep, clock=clock, deadline_s=10)

    with pytest.raises(TimeoutError, match="after 10 s"):
        aws.wait_until(lambda: None, what="function demo-F to be Active")

    assert clock.now == pytest.approx(10)
    assert max(clock.sleeps) <= 5


# -- counting the requests botocore sends -----------------------------------------------------------------------


@pytest.fixture
def moto_account():
    with mock_aws():
        yield


def throttle_first(operation: str):
    """A before-call hook: the first call of operation is answered with a throttling error, the rest go through."""
    calls = []

    def hook(model, **_):
        if model.name == operation:
            calls.append(model.name)
            if len(calls) == 1:
                parsed = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
                return AWSResponse("https://injected.invalid/", 400, {}, None), parsed
        return None

    return hook


def test_every_request_through_a_client_is_counted_by_service_and_operation_retries_included(aws, moto_account):
    ddb = aws.client("dynamodb")
    aws.register("before-call", throttle_first("CreateTable"))

    aws.paginate(ddb, "list_tables", "TableNames")
    assert aws.find_table("t") is None
    aws.call(ddb.create_table, TableName="t", BillingMode="PAY_PER_REQUEST",
             AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
             KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])

    assert dict(aws.stats.calls) == {("dynamodb", "ListTables"): 1, ("dynamodb", "DescribeTable"): 1, ("dynamodb", "CreateTable"): 2}
    assert (aws.stats.reads, aws.stats.writes, aws.stats.retries) == (2, 2, 1)
    assert aws.stats.mutating_calls() == ["dynamodb.CreateTable", "dynamodb.CreateTable"]


def test_the_account_id_is_asked_for_once(aws, moto_account):
    assert aws.account_id == "123456789012"
    assert aws.account_id == "123456789012"

    assert aws.stats.calls[("sts", "GetCallerIdentity")] == 1


def caller_identity_answer(arn: str | None):
    """A before-call hook: sts:GetCallerIdentity answers with this Arn (None: no Arn at all)."""

    def hook(model, **_):
        if model.name == "GetCallerIdentity":
            parsed = {"Account": "123456789012", "UserId": "AIDAEXAMPLE", "ResponseMetadata": {"HTTPStatusCode": 200}}
            if arn is not None:
                parsed["Arn"] = arn
            return AWSResponse("https://injected.invalid/", 200, {}, None), parsed
        return None

    return hook


def test_the_partition_and_the_account_come_from_one_caller_identity_call(moto_account):
    aws = Aws(region="cn-north-1", sleep=lambda seconds: None)

    assert (aws.partition, aws.account_id, aws.dns_suffix) == ("aws-cn", "123456789012", "amazonaws.com.cn")
    assert aws.partition == "aws-cn"
    assert aws.stats.calls[("sts", "GetCallerIdentity")] == 1


def test_the_callers_arn_names_the_partition_even_where_the_region_would_say_otherwise(aws, moto_account):
    aws.register("before-call", caller_identity_answer("arn:aws-us-gov:iam::123456789012:user/ops"))

    assert aws.partition == "aws-us-gov"


@pytest.mark.parametrize("arn", [None, "", "not-an-arn"])
def test_an_answer_without_a_well_formed_arn_falls_back_to_the_partition_of_the_region(arn, moto_account):
    aws = Aws(region="us-gov-west-1", sleep=lambda seconds: None)
    aws.register("before-call", caller_identity_answer(arn))

    assert aws.partition == "aws-us-gov"
    assert aws.dns_suffix == "amazonaws.com"


def test_a_registered_hook_reaches_clients_made_before_and_after(aws, moto_account):
    seen = []
    before = aws.client("sns")
    aws.register("before-call", lambda model, **_: seen.append(model.name))
    after = aws.client("sqs")

    before.list_topics()
    after.list_queues()

    assert seen == ["ListTopics", "ListQueues"]


class Unavailable(BaseHTTPRequestHandler):
    """A loopback DynamoDB that always answers 503, counting the requests it gets."""

    hits = 0

    def do_POST(self):  # noqa: N802
        type(self).hits += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ServiceUnavailableException", "message": "try later"}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def unavailable_endpoint():
    Unavailable.hits = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_botocore_does_not_retry_on_its_own_so_every_attempt_is_ours_and_counted(unavailable_endpoint, sleeps):
    aws = Aws(region="us-east-1", endpoint_url=unavailable_endpoint, sleep=sleeps, max_attempts=3)

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        aws.call(aws.client("dynamodb").list_tables)

    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert Unavailable.hits == 3  # botocore's standard mode alone would have sent 3 per call, 9 in all
    assert aws.stats.calls[("dynamodb", "ListTables")] == 3
    assert aws.stats.retries == 2 and len(sleeps) == 2


def test_the_caller_identity_is_asked_once_however_many_threads_need_it_at_once():
    """Plans read in many threads; each ARN they write needs the account: one sts:GetCallerIdentity a run."""
    with mock_aws():
        aws = Aws(region="us-east-1")
        asked = []
        aws.register("before-call", lambda model, **_: asked.append(model.name) or time.sleep(0.2))
        threads = [threading.Thread(target=lambda: aws.account_id) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert asked == ["GetCallerIdentity"]


def test_threads_asking_for_a_new_service_s_client_at_once_get_one_client():
    """A plan's threads and Aws.prepare's thread ask for the same clients at once: one each, hooked once."""
    made = []

    class SlowSession:
        def client(self, service, **kwargs):
            made.append(service)
            time.sleep(0.1)   # botocore loading the service's model
            return botocore.session.get_session().create_client(
                service, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing", **kwargs)

    aws = Aws(region="us-east-1", session=SlowSession())
    clients = []
    threads = [threading.Thread(target=lambda: clients.append(aws.client("lambda"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == ["lambda"] and len({id(c) for c in clients}) == 1


def test_a_hook_registered_while_prepare_makes_the_clients_is_on_every_client_once():
    """The CLI hooks the run's Aws (Ctrl-C, chaos, --verbose) while Aws.prepare still makes clients in its thread."""
    class SlowSession:
        def client(self, service, **kwargs):
            time.sleep(0.05)
            return botocore.session.get_session().create_client(
                service, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing", **kwargs)

    with mock_aws():
        aws = Aws(region="us-east-1", session=SlowSession())
        heard = []
        making = aws.prepare(("sts", "lambda", "iam", "sns"))
        aws.register("before-call", lambda model, **_: heard.append(model.name))
        making.join()
        aws.call(aws.client("sts").get_caller_identity)
        aws.call(aws.client("lambda").list_functions)
        aws.call(aws.client("iam").list_roles)
        aws.call(aws.client("sns").list_topics)
    assert heard == ["GetCallerIdentity", "ListFunctions", "ListRoles", "ListTopics"]


def test_every_kind_of_botocore_exception_is_one_the_aws_door_maps():
    # A model's missing attribute is botocore's bug or ours, not an answer of AWS: it stays a traceback.
    left_as_bugs = (botocore.exceptions.UndefinedModelAttributeError, Warning)
    kinds = [kind for kind in vars(botocore.exceptions).values()
             if isinstance(kind, type) and issubclass(kind, Exception) and not issubclass(kind, left_as_bugs)]
    assert len(kinds) > 50
    assert [kind.__name__ for kind in kinds if not issubclass(kind, FOREIGN_ERRORS)] == []


@pytest.mark.parametrize("error", [
    botocore.exceptions.ClientError({"Error": {"Code": "ResourceInUseException", "Message": "busy"}}, "CreateTable"),
    botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
    botocore.exceptions.NoCredentialsError(),
    TimeoutError("table demo-ItemsTable to be ACTIVE"),
])
def test_a_foreign_error_becomes_ours_with_the_call_it_was_about(error):
    aws = Aws(region="us-east-1", sleep=lambda s: None)
    aws._note_call({"TableName": "demo-ItemsTable"}, type("Model", (), {
        "name": "CreateTable", "service_model": type("Service", (), {"service_name": "dynamodb"})()})())

    with pytest.raises(AwsCallFailed) as raised, aws.foreign_errors():
        raise error

    mapped = raised.value
    assert (mapped.error, mapped.operation, mapped.service, mapped.target, mapped.attempts) == (
        error, "CreateTable", "dynamodb", "table demo-ItemsTable", 1)
    assert mapped.__cause__ is error and not hasattr(error, "crudstack_attempts")


@pytest.mark.parametrize(("service", "code", "verb", "args"), [
    ("dynamodb", "ResourceNotFoundException", "find_table", ("t",)),
    ("dynamodb", "ResourceNotFoundException", "find_table_tags", ("arn:aws:dynamodb:us-east-1:1:table/t",)),
    ("iam", "NoSuchEntity", "find_role", ("r",)),
    ("iam", "NoSuchEntity", "find_role_policy", ("r", "p")),
    ("lambda", "ResourceNotFoundException", "find_function", ("f",)),
    ("lambda", "ResourceNotFoundException", "find_function_configuration", ("f",)),
    ("lambda", "ResourceNotFoundException", "find_function_policy", ("f",)),
    ("apigateway", "NotFoundException", "find_stage", ("a", "prod")),
    ("apigateway", "NotFoundException", "find_deployment", ("a", "d")),
])
def test_each_find_verb_answers_none_for_its_services_not_found_and_raises_any_other_error(aws, service, code, verb, args):
    from botocore.stub import Stubber

    client = aws.client(service)
    with Stubber(client) as stub:
        stub.add_client_error(ANY_OPERATION[verb], service_error_code=code, http_status_code=404)
        assert getattr(aws, verb)(*args) is None
        stub.add_client_error(ANY_OPERATION[verb], service_error_code="AccessDeniedException", http_status_code=403)
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDeniedException"):
            getattr(aws, verb)(*args)


ANY_OPERATION = {"find_table": "describe_table", "find_table_tags": "list_tags_of_resource", "find_role": "get_role",
                 "find_role_policy": "get_role_policy", "find_function": "get_function",
                 "find_function_configuration": "get_function_configuration", "find_function_policy": "get_policy",
                 "find_stage": "get_stage", "find_deployment": "get_deployment"}


def test_look_makes_one_call_and_answers_none_for_not_found(aws):
    from botocore.stub import Stubber

    client = aws.client("apigateway")
    with Stubber(client) as stub:
        stub.add_client_error("get_usage_plan", service_error_code="NotFoundException", http_status_code=404)
        stub.add_response("get_usage_plan", {"id": "u1", "name": "plan"})
        assert aws.look("apigateway", "get_usage_plan", usagePlanId="u1") is None
        assert aws.look("apigateway", "get_usage_plan", usagePlanId="u1")["id"] == "u1"


def test_no_step_spells_an_aws_error_code_the_aws_doors_tables_do():
    import re
    from pathlib import Path

    steps = Path(__file__).resolve().parents[2] / "crudstack" / "steps"
    for path in [*steps.glob("*.py"), steps.parent / "adopt.py"]:
        source = path.read_text()
        assert not re.search(r"error_code\([^)]*\)\s*(not\s+)?in\b", source), path.name
        assert not re.search(r'\(\s*"[A-Z]\w*(Exception|Entity|NotFound|Exists)",', source), path.name


def test_an_aws_door_that_is_not_paced_never_waits_for_a_turn_and_a_paced_one_does():
    """The local AWS on moto throttles nothing: crudstack.cli.connect turns pacing off there (not on AWS, nor on
    the local AWS playing one, behaviour: realistic), which cost a fresh local provision about 5 s."""
    with mock_aws():
        for paced in (False, True):
            slept = []
            aws = Aws(region="us-east-1", sleep=slept.append)
            aws.paced = paced
            cloudwatch = aws.client("cloudwatch")
            for _ in range(20):   # DescribeAlarms: 9 a second
                aws.call(cloudwatch.describe_alarms)
            assert bool(aws.limiter.waits) is paced, (paced, aws.limiter.waits)
