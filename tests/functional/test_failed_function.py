"""A function in Lambda's `Failed` state, met by each place that must tell it apart: the settled check before and
after an update, the plan (delete, wait for the deletion, create again), and teardown. ("When function creation
fails, Lambda sets the function state to failed, and you must delete and recreate the function", Lambda Developer
Guide, "Lambda function states".)"""

from __future__ import annotations

import pytest

from crudstack.calls import Poll
from crudstack.errors import DeploymentError
from crudstack.plan import Action, Context
from crudstack.realistic import AccountModel, Delays
from crudstack.runner import Reporter, run
from crudstack.steps.functions import FunctionsStep
from tests.functional.conftest import seeded


@pytest.fixture(autouse=True)
def seeded_jitter():
    with seeded(17):
        yield


def settled(configuration: dict, *, before_update: bool) -> bool:
    return FunctionsStep()._ready("demo-GetItemFunction", before_update=before_update).until(configuration)


CREATE_FAILED = {"State": "Failed", "StateReason": "The function could not be created."}
UPDATE_FAILED = {"State": "Active", "LastUpdateStatus": "Failed", "LastUpdateStatusReason": "The update failed."}


@pytest.mark.parametrize("before_update", [True, False], ids=["before an update", "after our own create or update"])
def test_a_function_whose_creation_failed_is_never_settled(before_update):
    with pytest.raises(DeploymentError, match="could not be created"):
        settled(CREATE_FAILED, before_update=before_update)


def test_a_failed_update_is_over_so_the_next_update_may_go_ahead():
    assert settled(UPDATE_FAILED, before_update=True) is True


def test_our_own_update_that_failed_is_a_failure_not_settled():
    with pytest.raises(DeploymentError, match="The update failed"):
        settled(UPDATE_FAILED, before_update=False)


@pytest.mark.parametrize("configuration", [{"State": "Pending"}, {"State": "Active", "LastUpdateStatus": "InProgress"}],
                         ids=["Pending", "InProgress"])
@pytest.mark.parametrize("before_update", [True, False])
def test_a_function_still_being_made_or_updated_is_not_settled(configuration, before_update):
    assert settled(configuration, before_update=before_update) is False


def failed_once(provision, config, clock) -> AccountModel:
    """A provision whose GetItemFunction ends Failed (the run stops there)."""
    model = AccountModel(clock=clock, delays=Delays(function=5))
    model.fail_creates.add(config.function_name("GetItemFunction"))
    with pytest.raises(DeploymentError, match="failed"):
        provision(config, clock=clock, attach=model.attach)
    return model


def test_the_plan_deletes_a_failed_function_waits_for_it_to_go_then_creates_it(provision, config, new_aws, clock):
    model = failed_once(provision, config, clock)
    aws = new_aws(config, clock=clock)
    model.attach(aws)

    planned = run(Context(config=config, aws=aws, target="aws"), Reporter(), apply=False)

    name = config.function_name("GetItemFunction")
    [change] = [c for r in planned for c in r.changes if c.kind == "function" and c.name == name]
    assert change.action is Action.UPDATE and change.diffs == {"state": ("Failed", "deleted and created again")}
    records = [(type(r).__name__, (r.call if isinstance(r, Poll) else r).operation) for r in change.calls]
    assert records == [("Call", "delete_function"), ("Poll", "get_function_configuration"),
                       ("Call", "create_function"), ("Poll", "get_function_configuration")]
    assert change.calls[2].ok == ()   # a conflict here is the old function's name, never our own create
    assert aws.stats.writes == 0


def test_teardown_deletes_a_failed_function_with_the_rest_of_the_stack(provision, teardown, config, clock, aws_clients):
    model = failed_once(provision, config, clock)
    name = config.function_name("GetItemFunction")
    model.hidden.clear()

    gone = teardown(config, clock=clock, attach=model.attach)

    assert "GetFunction:Failed" in model.hidden   # teardown's plan met it Failed
    assert name in {c.name for c in gone.changes("function", Action.DELETE)}
    assert aws_clients.awslambda.list_functions()["Functions"] == []
    assert [r for r in aws_clients.iam.list_roles()["Roles"] if r["RoleName"] == config.role_name] == []
    assert config.table_name not in aws_clients.dynamodb.list_tables()["TableNames"]


def test_a_rerun_after_a_failed_functions_deletion_outlived_the_deadline_waits_for_it_and_creates_the_function(
        provision, config, clock, aws_clients):
    # A Failed function's deletion that takes longer than retry.deadline_s stops the run ("run again"); the re-run
    # finds the function Deleting (State Deleting, Lambda API Reference, FunctionConfiguration): it waits for the
    # deletion to finish and creates the function, rather than waiting for a Deleting function to become Active.
    from crudstack.realistic import AccountModel, Delays, Lags

    model = AccountModel(clock=clock, delays=Delays(function=5), lags=Lags(function_delete=config.retry.deadline_s + 60))
    name = config.function_name("GetItemFunction")
    model.fail_creates.add(name)
    with pytest.raises(Exception, match="failed"):
        provision(config, clock=clock, attach=model.attach)
    with pytest.raises(Exception, match="to be deleted"):
        provision(config, clock=clock, attach=model.attach)

    again = provision(config, clock=clock, attach=model.attach)

    assert "GetFunction:Deleting" in model.hidden           # the re-run's plan met the deletion still going on
    assert again.calls("CreateFunction") == 1 and "CreateFunction:deleting" not in model.refused
    assert aws_clients.awslambda.get_function(FunctionName=name)["Configuration"]["State"] == "Active"


class Always(set):
    """fail_creates that never forgets a name: every create of it ends Failed."""

    def discard(self, name) -> None:
        pass


def test_a_function_that_fails_every_create_stops_each_run_naming_it_and_never_waits_out_the_deadline(provision, config, clock):
    from crudstack.realistic import AccountModel, Delays, Lags

    model = AccountModel(clock=clock, delays=Delays(function=5), lags=Lags(function_delete=8))
    name = config.function_name("GetItemFunction")
    model.fail_creates = Always({name})
    with pytest.raises(DeploymentError, match="failed"):
        provision(config, clock=clock, attach=model.attach)
    started = clock.now

    with pytest.raises(DeploymentError) as again:
        provision(config, clock=clock, attach=model.attach)

    assert name in str(again.value) and "Lambda reports the function failed" in str(again.value)
    assert "check the runtime and handler" in str(again.value)
    assert clock.now - started < config.retry.deadline_s   # stopped once Lambda said Failed, not at the deadline
