"""Retry policy in whole runs: throttling, 5xx, dropped connections and AWS's eventual
consistency are retried until the run succeeds; a refusal (AccessDenied) is not
retried and is reported with the step, the resource and what to do.

Faults are injected with a botocore before-call hook (the call never reaches
moto); the Aws's sleep is a recorder, so nothing here waits."""

from __future__ import annotations

import fnmatch
import re
from collections import Counter

import botocore.exceptions
import pytest
import yaml
from botocore.awsrequest import AWSResponse

import crudstack.cli
from crudstack.cli import provision_main
from crudstack.errors import DeploymentError
from crudstack.plan import Options
from tests.functional.conftest import assert_one_complete_stack, aws_error, rest_apis
from crudstack.realistic import AccountModel, Delays, SimClock

ROLE_NOT_READY = "The role defined for the function cannot be assumed by Lambda."
UPDATE_IN_PROGRESS = "The operation cannot be performed at this time. An update is in progress for resource: arn:aws:lambda:us-east-1:123456789012:function:demo-GetItemFunction"


def endpoint_unreachable():
    return botocore.exceptions.EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/")


TRANSIENT = [
    # (id, operation, fault, times)
    ("throttled-create-table", "CreateTable", aws_error("ThrottlingException", "Rate exceeded"), 3),
    ("throttled-read", "DescribeTable", aws_error("ThrottlingException", "Rate exceeded"), 2),
    ("too-many-requests-create-function", "CreateFunction", aws_error("TooManyRequestsException", "Rate exceeded", 429), 2),
    ("too-many-requests-create-rest-api", "CreateRestApi", aws_error("TooManyRequestsException", "Too Many Requests", 429), 2),
    ("503-unknown-code", "CreateResource", aws_error("SomethingUnexpected", "Service Unavailable", 503), 2),
    ("internal-error", "PutIntegration", aws_error("InternalFailure", "We encountered an internal error", 500), 2),
    ("connection-error", "CreateTable", endpoint_unreachable, 2),
    ("role-not-yet-assumable", "CreateFunction", aws_error("InvalidParameterValueException", ROLE_NOT_READY), 4),
]


def retry_sleeps(sleeps, aws) -> list[float]:
    """The sleeps of retries: all the run's sleeps but the quota limiter's waits for a call's turn."""
    return list((Counter(sleeps) - Counter(aws.limiter.waits)).elements())


def raising(factory):
    def fail():
        raise factory()

    return fail


@pytest.mark.parametrize(("operation", "fault", "times"), [t[1:] for t in TRANSIENT], ids=[t[0] for t in TRANSIENT])
def test_a_transient_error_is_retried_and_the_run_succeeds(operation, fault, times, provision, config, aws_clients, inject, sleeps):
    fail = raising(fault) if fault is endpoint_unreachable else fault
    flaky = inject(operation, fail, times=times)

    first = provision(config, hooks=(flaky.event,))

    assert flaky.failed == times
    assert first.aws.stats.retries == times
    backoff = retry_sleeps(sleeps, first.aws)
    assert len(backoff) == times
    assert all(0 <= s <= first.aws.wait_max_s for s in backoff)
    assert_one_complete_stack(aws_clients, config)


def test_lambda_update_in_progress_is_retried_until_the_update_goes_through(provision, settings, make_config, aws_clients, inject, sleeps):
    provision(make_config(settings))
    sleeps.clear()   # the first run's
    settings["lambda"]["memory_mb"] = 256
    busy = inject("UpdateFunctionConfiguration", aws_error("ResourceConflictException", UPDATE_IN_PROGRESS, 409), times=3)

    second = provision(make_config(settings), hooks=(busy.event,))

    assert busy.failed == 3
    assert second.aws.stats.retries == 3 and len(retry_sleeps(sleeps, second.aws)) == 3
    assert second.calls("UpdateFunctionConfiguration") == 5 + 3
    for base in config_functions(settings):
        assert aws_clients.awslambda.get_function_configuration(FunctionName=f"demo-{base}")["MemorySize"] == 256


def test_lambda_update_in_progress_during_a_code_upload_is_retried(provision, config, code_dir, inject):
    provision(config)
    (code_dir / "delete_item.py").write_text((code_dir / "delete_item.py").read_text() + "\n# changed\n")
    busy = inject("UpdateFunctionCode", aws_error("ResourceConflictException", UPDATE_IN_PROGRESS, 409), times=2)

    second = provision(config, hooks=(busy.event,))

    assert second.calls("UpdateFunctionCode") == 1 + 2
    assert provision(config).mutating_calls == []


def config_functions(settings) -> list[str]:
    return list(settings["lambda"]["functions"])


# -- how long to wait, and for how long to keep trying -------------------------------------------------------


def throttled_with_retry_after(seconds: str):
    """API Gateway's 429 with an HTTP Retry-After header (botocore keeps the header, lower-cased, in ResponseMetadata)."""
    response = AWSResponse("https://injected.invalid/", 429, {"Retry-After": seconds}, None)
    parsed = {"Error": {"Code": "TooManyRequestsException", "Message": "Too Many Requests"},
              "ResponseMetadata": {"HTTPStatusCode": 429, "HTTPHeaders": {"retry-after": seconds}}}
    return lambda: (response, parsed)


def test_a_throttled_deployment_waits_as_long_as_retry_after_says(provision, config, aws_clients, inject):
    clock = SimClock()
    throttled = inject("CreateDeployment", throttled_with_retry_after("7"), times=1)

    provision(config, hooks=(throttled.event,), clock=clock)

    assert throttled.failed == 1
    assert 7 in clock.sleeps   # more than CreateDeployment's own quota (one every 5 s): AWS's word wins
    assert_one_complete_stack(aws_clients, config)


def test_a_throttled_delete_rest_api_waits_out_its_quota_of_one_call_every_30_seconds(provision, teardown, config, aws_clients, inject):
    provision(config)
    clock = SimClock()
    throttled = inject("DeleteRestApi", aws_error("TooManyRequestsException", "Too Many Requests", 429), times=1)

    teardown(config, options=Options(delete_data=True), hooks=(throttled.event,), clock=clock)

    assert throttled.failed == 1
    assert 30 in clock.sleeps
    assert rest_apis(aws_clients, config.api_name) == []


def test_a_role_lambda_cannot_assume_yet_is_retried_past_a_short_deadline_until_iam_has_propagated_it(
        provision, settings, make_config, aws_clients):
    settings["retry"]["deadline_s"] = 3
    config = make_config(settings)
    clock = SimClock()
    model = AccountModel(clock, Delays(role=60))

    provision(config, clock=clock, attach=model.attach)

    assert "CreateFunction:role" in model.refused
    assert clock.now >= 60
    assert_one_complete_stack(aws_clients, config)


def test_a_role_lambda_never_can_assume_is_given_up_after_iams_propagation_time_with_the_usual_message(
        provision, settings, make_config, inject):
    settings["retry"]["deadline_s"] = 3
    clock = SimClock()
    never = inject("CreateFunction", aws_error("InvalidParameterValueException", ROLE_NOT_READY), times=100_000)

    with pytest.raises(DeploymentError) as raised:
        provision(make_config(settings), hooks=(never.event,), clock=clock)

    assert raised.value.step == "Step 3 Lambda functions"
    assert f"CreateFunction failed: InvalidParameterValueException: {ROLE_NOT_READY}" in raised.value.cause
    # Each function's create retries on its own (they run at once): the message counts that call's attempts.
    attempts = re.search(r"\(the last of (\d+) attempts over ([\d.]+) s\)", raised.value.cause)
    assert attempts and 1 < int(attempts[1]) <= never.seen and 900 <= float(attempts[2]) < 910
    assert "run again" in raised.value.fix


# -- refusals are not retried -------------------------------------------------------------------------------


DENIED = [
    ("CreateTable", "AccessDeniedException", "Step 1 DynamoDB table", "table demo-ItemsTable"),
    ("CreateRole", "AccessDenied", "Step 2 IAM role", "role demo-LambdaDynamoDBRole"),
    ("CreateFunction", "AccessDeniedException", "Step 3 Lambda functions", "function demo-CreateItemFunction"),
    # Whichever function was made first gets its permission first: the first refused one is named.
    ("AddPermission", "AccessDeniedException", "Step 4 API Gateway REST API", "permission apigateway -> demo-*Function"),
    ("PutMetricAlarm", "AccessDenied", "Step 7 Monitoring: logs, alerts, alarms", "alarm demo-CreateItemFunction-Errors"),
]


@pytest.mark.parametrize(("operation", "code", "step", "resource"), DENIED, ids=[d[0] for d in DENIED])
def test_access_denied_is_tried_once_and_names_the_step_the_resource_and_a_fix(operation, code, step, resource, provision, config, inject, sleeps):
    denied = inject(operation, aws_error(code, f"User: arn:aws:iam::123456789012:user/dev is not authorized to perform: {operation}"),
                    times=100)
    runs = []

    with pytest.raises(DeploymentError) as raised:
        provision(config, hooks=(denied.event,), run_out=runs)

    # Each call of that kind is tried once: several may be in flight together (five functions at once).
    assert denied.seen >= 1
    assert runs[0].aws.stats.retries == 0 and retry_sleeps(sleeps, runs[0].aws) == []
    error = raised.value
    assert error.step == step
    assert fnmatch.fnmatchcase(error.resource, resource)
    assert error.code == code
    assert f"{operation} failed: {code}" in error.cause
    assert f", which {operation} needs" in error.fix   # the IAM action is named first
    assert "What to do:" in str(error)


def test_a_validation_error_is_not_retried(provision, config, inject, sleeps):
    invalid = inject("CreateTable", aws_error("ValidationException", "One or more parameter values were invalid"), times=100)

    with pytest.raises(DeploymentError) as raised:
        provision(config, hooks=(invalid.event,))

    assert invalid.seen == 1 and sleeps == []
    assert raised.value.code == "ValidationException"


def test_a_resource_conflict_that_is_not_an_update_in_progress_is_not_retried(provision, settings, make_config, inject, sleeps):
    provision(make_config(settings))
    sleeps.clear()   # the first run's
    settings["lambda"]["memory_mb"] = 256
    conflict = inject("UpdateFunctionConfiguration", aws_error("ResourceConflictException", "The function is locked by a code signing policy", 409),
                      times=100)

    runs = []
    with pytest.raises(DeploymentError):
        provision(make_config(settings), hooks=(conflict.event,), run_out=runs)

    # Each function's update is refused once (they run at once) and none is retried.
    assert conflict.seen == conflict.failed and runs[0].aws.stats.retries == 0 and retry_sleeps(sleeps, runs[0].aws) == []


def test_retries_go_on_until_the_deadline_and_then_say_to_run_again_later(provision, config, inject):
    clock = SimClock()
    throttled = inject("CreateTable", aws_error("ThrottlingException", "Rate exceeded"), times=10_000)

    with pytest.raises(DeploymentError) as raised:
        provision(config, hooks=(throttled.event,), clock=clock)

    assert throttled.seen > 12   # not the fixed 12 attempts (26 s of backoff) that used to end it
    assert clock.now == pytest.approx(config.retry.deadline_s)
    assert raised.value.code == "ThrottlingException"
    assert f"(the last of {throttled.seen} attempts over 180.0 s)" in raised.value.cause
    assert "run again" in raised.value.fix


def test_retry_max_attempts_when_set_caps_the_attempts_before_the_deadline(provision, settings, make_config, inject, sleeps):
    settings["retry"]["max_attempts"] = 4
    throttled = inject("CreateTable", aws_error("ThrottlingException", "Rate exceeded"), times=100)

    with pytest.raises(DeploymentError) as raised:
        provision(make_config(settings), hooks=(throttled.event,))

    assert throttled.seen == 4
    assert len(sleeps) == 3
    assert "(the last of 4 attempts over " in raised.value.cause


def test_an_endpoint_that_stays_unreachable_is_reported_as_such(provision, settings, make_config, inject):
    settings["retry"]["max_attempts"] = 3
    down = inject("CreateTable", raising(endpoint_unreachable), times=100)

    with pytest.raises(DeploymentError) as raised:
        provision(make_config(settings), hooks=(down.event,))

    assert down.seen == 3
    assert "could not be reached" in raised.value.fix


def test_provision_main_exits_1_with_the_fix_when_access_is_denied(settings, tmp_path, monkeypatch, inject, capsys):
    denied = inject("CreateRole", aws_error("AccessDenied", "not authorized"), times=100)
    real_connect = crudstack.cli.connect

    def connect_with_fault(config, target):
        aws, endpoint = real_connect(config, target)
        aws.register(*denied.event)
        return aws, endpoint

    monkeypatch.setattr(crudstack.cli, "connect", connect_with_fault)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")

    code = provision_main(["--config", str(path), "--target", "aws"])

    assert code == 1
    err = capsys.readouterr().err
    assert "Step 2 IAM role: role demo-LambdaDynamoDBRole: CreateRole failed: AccessDenied" in err
    assert "What to do:" in err
    assert "Traceback" not in err
    assert denied.seen == 1
