"""Crash safety: a run cut off anywhere, or a create whose answer is lost, never
leaves a second copy of anything; the next run finishes the stack and the one
after that has nothing left to do.

AWS does not de-duplicate REST APIs or API resources by name, so these are the
places a careless retry or re-run would make two."""

from __future__ import annotations

import botocore.exceptions
import pytest

from crudstack.errors import InterruptedRun
from crudstack.plan import Action
from tests.functional.conftest import assert_one_complete_stack, aws_error, permission_statements, rest_apis


class Crash(Exception):
    """The process dies between two steps (our stand-in for kill -9 or a lost laptop lid)."""


def crash_after_step(number: str):
    def on_step_done(result):
        if result.step.number == number:
            raise Crash(f"after step {number}")

    return on_step_done


def assert_converges(provision, config, aws_clients):
    """The next run finishes the stack; the one after it has nothing left to do."""
    second = provision(config)
    assert_one_complete_stack(aws_clients, config)
    third = provision(config)
    assert third.mutating_calls == []
    assert set(third.outcomes.values()) == {"unchanged"}
    return second


# -- a run cut off between two steps ---------------------------------------------------------------------


@pytest.mark.parametrize("step", ["1", "2", "3", "4", "5"])
def test_a_run_cut_off_after_a_step_is_finished_by_the_next_run_without_duplicates(step, provision, config, aws_clients):
    with pytest.raises(Crash):
        provision(config, on_step_done=crash_after_step(step))

    second = assert_converges(provision, config, aws_clients)

    # Every step up to the cut is done; a later one may be too, as independent work runs at once
    # (step 7 alongside steps 4 and 5).
    done = [r.step.number for r in second.results if r.outcome == "unchanged"]
    assert {n for n in ("1", "2", "3", "4", "5") if n <= step} <= set(done)


# -- a run cut off in the middle of a step (Ctrl-C between two AWS calls) ---------------------------------------


INTERRUPTIONS = [
    # (operation, which call of it, after the call went through?)
    ("CreateTable", 1, True),
    ("CreateRole", 1, True),
    ("CreateFunction", 2, True),
    ("CreateRestApi", 1, True),       # the API exists, nothing in it yet
    ("CreateResource", 1, True),      # /items made, /items/{id} not
    ("CreateResource", 2, False),
    ("PutMethod", 1, True),           # a method with no integration yet
    ("PutIntegration", 3, True),
    ("AddPermission", 1, True),
    ("PutMethodResponse", 1, True),   # a CORS preflight with its method response but no integration response
    ("PutIntegrationResponse", 2, False),
    ("CreateDeployment", 1, True),    # deployed, but the stage does not exist yet
    ("CreateStage", 1, False),
    ("CreateLogGroup", 2, True),      # a log group without its retention yet
    ("PutMetricAlarm", 5, True),
]


@pytest.mark.parametrize(("operation", "nth", "after"), INTERRUPTIONS,
                         ids=[f"{op}-{n}-{'after' if a else 'before'}" for op, n, a in INTERRUPTIONS])
def test_a_run_interrupted_between_two_aws_calls_resumes_without_duplicates(
        operation, nth, after, provision, config, aws_clients, inject):
    interrupt = inject(operation, KeyboardInterrupt(), skip=nth - 1, after=after)

    with pytest.raises(InterruptedRun) as raised:
        provision(config, hooks=(interrupt.event,))

    assert interrupt.failed == 1
    assert "run the same command again" in str(raised.value)
    assert_converges(provision, config, aws_clients)


def test_an_interrupted_run_names_the_step_and_resource_it_stopped_at(provision, config, inject):
    interrupt = inject("CreateResource", KeyboardInterrupt(), after=True)

    with pytest.raises(InterruptedRun) as raised:
        provision(config, hooks=(interrupt.event,))

    assert "step 4 (API Gateway REST API)" in str(raised.value)
    assert "resource /items" in str(raised.value)


def test_a_run_interrupted_right_after_create_rest_api_finds_that_api_next_time(provision, config, aws_clients, inject):
    interrupt = inject("CreateRestApi", KeyboardInterrupt(), after=True)
    with pytest.raises(InterruptedRun):
        provision(config, hooks=(interrupt.event,))
    [orphan] = rest_apis(aws_clients, "demo-ItemsApi")

    second = provision(config)

    assert second.calls("CreateRestApi") == 0
    assert second.ctx.api_id == orphan["id"]
    assert [a["id"] for a in rest_apis(aws_clients, "demo-ItemsApi")] == [orphan["id"]]


def test_runs_interrupted_again_and_again_still_converge(provision, config, aws_clients, inject):
    # Each run gets further than the last before it is cut off. Independent work goes on at once (the
    # monitoring step alongside the API), so a later run may find an operation's work already done and
    # finish uncut (here the first two runs are cut, and the API and monitoring are done alongside them);
    # whatever each left, the next one resumes.
    cut = 0
    for operation in ("CreateRole", "CreateFunction", "CreateRestApi", "CreateResource", "PutIntegration",
                      "AddPermission", "CreateDeployment", "CreateTopic"):
        interrupt = inject(operation, KeyboardInterrupt(), after=True)
        try:
            provision(config, hooks=(interrupt.event,))
        except InterruptedRun:
            cut += 1
    assert cut >= 2

    assert_converges(provision, config, aws_clients)


# -- a create whose answer is lost is retried without making a second one -----------------------------------------


def connection_closed():
    return botocore.exceptions.ConnectionClosedError(endpoint_url="https://apigateway.us-east-1.amazonaws.com/restapis")


def test_a_create_rest_api_whose_answer_is_lost_is_retried_without_creating_a_second_api(provision, config, aws_clients, inject):
    lost = inject("CreateRestApi", connection_closed(), after=True)

    first = provision(config, hooks=(lost.event,))

    assert lost.failed == 1
    assert first.calls("CreateRestApi") == 1
    assert first.aws.stats.retries >= 1
    [api] = rest_apis(aws_clients, "demo-ItemsApi")
    assert first.ctx.api_id == api["id"]
    assert_one_complete_stack(aws_clients, config)
    assert provision(config).mutating_calls == []


def test_a_create_rest_api_that_times_out_reading_its_answer_is_retried_without_a_second_api(provision, config, aws_clients, inject):
    timeout = botocore.exceptions.ReadTimeoutError(endpoint_url="https://apigateway.us-east-1.amazonaws.com/restapis")
    lost = inject("CreateRestApi", timeout, times=2, after=True)

    first = provision(config, hooks=(lost.event,))

    assert first.calls("CreateRestApi") == 1
    assert len(rest_apis(aws_clients, "demo-ItemsApi")) == 1


LOST_ANSWERS = ["CreateTable", "CreateRole", "CreateFunction", "CreateResource", "PutIntegration", "CreateDeployment",
                "CreateStage", "CreateLogGroup", "CreateTopic"]


@pytest.mark.parametrize("operation", LOST_ANSWERS)
def test_a_create_whose_answer_is_lost_is_retried_and_the_run_succeeds_with_one_of_everything(
        operation, provision, config, aws_clients, inject):
    lost = inject(operation, connection_closed(), after=True)

    first = provision(config, hooks=(lost.event,))

    assert lost.failed == 1
    assert first.aws.stats.retries >= 1
    assert_one_complete_stack(aws_clients, config)
    assert provision(config).mutating_calls == []


def test_a_lost_create_deployment_answer_leaves_one_deployment(provision, config, aws_clients, inject):
    lost = inject("CreateDeployment", connection_closed(), after=True)

    first = provision(config, hooks=(lost.event,))

    assert first.calls("CreateDeployment") == 1
    deployments = aws_clients.apigateway.get_deployments(restApiId=first.ctx.api_id)["items"]
    assert [d["id"] for d in deployments] == [first.ctx.deployment_id]


# -- copies left by older runs or other tools are cleaned up -------------------------------------------------------


def test_a_second_tagged_copy_of_the_api_is_deleted_by_the_next_provision(provision, config, aws_clients):
    provision(config)
    aws_clients.apigateway.create_rest_api(name="demo-ItemsApi", tags=config.all_tags)
    assert len(rest_apis(aws_clients, "demo-ItemsApi")) == 2

    second = provision(config)

    assert len(second.changes("REST API", Action.DELETE)) == 1
    assert_one_complete_stack(aws_clients, config)
    assert provision(config).mutating_calls == []


# -- an interrupted teardown, then provision -----------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["7", "4", "2"])
def test_a_teardown_cut_off_after_a_step_is_finished_by_the_next_teardown(step, provision, teardown, config, aws_clients):
    provision(config)
    with pytest.raises(Crash):
        teardown(config, on_step_done=crash_after_step(step))

    teardown(config)

    assert teardown(config).mutating_calls == []
    assert aws_clients.dynamodb.list_tables()["TableNames"] == []
    assert rest_apis(aws_clients, "demo-ItemsApi") == []
    assert aws_clients.awslambda.list_functions()["Functions"] == []


def test_provision_after_a_teardown_cut_off_scopes_every_permission_to_the_new_api(provision, teardown, config, aws_clients):
    old_api = provision(config).ctx.api_id
    with pytest.raises(Crash):
        teardown(config, on_step_done=crash_after_step("4"))  # the API is gone, the functions and their permissions remain

    second = provision(config)

    new_api = second.ctx.api_id
    assert new_api != old_api
    for base in config.lambda_.functions:
        [statement] = permission_statements(aws_clients, config, base)
        assert statement["Condition"]["ArnLike"]["AWS:SourceArn"].startswith(f"arn:aws:execute-api:us-east-1:123456789012:{new_api}/")
    assert_converges(provision, config, aws_clients)


# -- a lost answer whose retry AWS refuses as a duplicate (moto accepts the duplicate, so AWS's answer is emulated) ----


@pytest.mark.parametrize(("operation", "code", "message"), [
    ("PutMethod", "ConflictException", "Method already exists for this resource"),
    ("CreateStage", "ConflictException", "Stage already exists"),
    ("PutMethodResponse", "ConflictException", "Response already exists for this resource"),
], ids=["PutMethod", "CreateStage", "PutMethodResponse"])
def test_a_lost_answer_whose_retry_aws_refuses_as_already_done_does_not_fail_the_run(
        operation, code, message, provision, config, aws_clients, inject):
    lost = inject(operation, connection_closed(), after=True)
    refused = inject(operation, aws_error(code, message, 409), skip=1)  # what AWS answers the retry

    provision(config, hooks=(lost.event, refused.event))

    assert lost.failed == 1 and refused.failed == 1
    assert_one_complete_stack(aws_clients, config)
    assert provision(config).mutating_calls == []


def test_a_lost_add_permission_answer_is_found_by_the_retry_which_adds_no_second_statement(provision, config, aws_clients, inject):
    # moto keeps a second statement with the same id (AWS would refuse it): the retry must look first.
    lost = inject("AddPermission", connection_closed(), after=True)

    first = provision(config, hooks=(lost.event,))

    assert lost.failed == 1
    assert first.calls("AddPermission") == len(config.lambda_.functions)
    assert_one_complete_stack(aws_clients, config)
    assert provision(config).mutating_calls == []


def test_an_add_permission_refused_as_already_there_after_a_lost_answer_counts_as_done(provision, config, aws_clients, inject):
    # The retry's look (get_policy) does not show the statement yet, and AWS refuses the second add.
    lost = inject("AddPermission", connection_closed(), after=True)
    # The plan reads each function's policy once; the next GetPolicy is the retry's look, made stale.
    stale = inject("GetPolicy", aws_error("ResourceNotFoundException", "The resource you requested does not exist.", 404),
                   skip=len(config.lambda_.functions))
    refused = inject("AddPermission", aws_error(
        "ResourceConflictException", "The statement id (demo-apigateway-invoke) provided already exists. Please provide a new "
        "statement id, or remove the existing statement.", 409), skip=1)

    provision(config, hooks=(lost.event, stale.event, refused.event))

    assert lost.failed == 1 and stale.failed == 1 and refused.failed == 1
    assert refused.seen == len(config.lambda_.functions) + 1  # one retried add, refused
    assert_one_complete_stack(aws_clients, config)


@pytest.mark.parametrize("operation", ["DeleteRestApi", "DeleteFunction", "DeleteTable", "DeleteRole", "DeleteLogGroup", "DeleteTopic"])
def test_a_delete_whose_answer_is_lost_is_retried_and_the_teardown_finishes(operation, provision, teardown, config, aws_clients, inject):
    # moto answers a second delete_rest_api with an internal error (AWS: NotFoundException): the retry must look first.
    provision(config)
    lost = inject(operation, connection_closed(), after=True)

    down = teardown(config, hooks=(lost.event,))

    assert lost.failed == 1 and down.aws.stats.retries >= 1
    assert rest_apis(aws_clients, "demo-ItemsApi") == []
    assert aws_clients.awslambda.list_functions()["Functions"] == []
    assert aws_clients.dynamodb.list_tables()["TableNames"] == []
    assert teardown(config).mutating_calls == []
