"""AWS's eventual consistency: a role Lambda cannot assume yet, a table CREATING, a function Pending
or InProgress, a resource get_resources does not list yet. Under the model in consistency.py (over
moto, in simulated time) provisioning converges, resumes, and its waits overlap: a run takes about
the model's critical path, not the sum of every resource's delay."""

from __future__ import annotations


import pytest

from crudstack.errors import InterruptedRun
from crudstack.plan import Action
from tests.functional.conftest import assert_one_complete_stack, seeded
from crudstack.realistic import AccountModel, Delays, SimClock


@pytest.fixture(autouse=True)
def seeded_jitter():
    with seeded(5):
        yield


def modelled(clock: SimClock, delays: Delays) -> AccountModel:
    return AccountModel(clock, delays)


def settle(clock: SimClock, model: AccountModel) -> None:
    """Let every window of the model pass."""
    d = model.delays
    clock.now += max(d.role, d.table, d.function, d.resource) + 1


EACH = [
    ("role", Delays(role=6), "CreateFunction:role"),
    ("table", Delays(table=6), "DescribeTable:CREATING"),
    ("function", Delays(function=6), "GetFunctionConfiguration:created"),
    ("resource", Delays(resource=6), "GetResources:unlisted"),
]


@pytest.mark.parametrize(("delays", "effect"), [e[1:] for e in EACH], ids=[e[0] for e in EACH])
def test_provision_converges_while_aws_is_eventually_consistent(delays, effect, provision, config, aws_clients, clock):
    model = modelled(clock, delays)

    provision(config, clock=clock, attach=model.attach)

    assert effect in model.refused + model.hidden  # the model really stood in the way
    assert_one_complete_stack(aws_clients, config)
    settle(clock, model)
    again = provision(config, clock=clock, attach=model.attach)
    assert again.mutating_calls == []


def test_with_every_delay_at_once_provision_converges_and_a_rerun_changes_nothing(provision, config, aws_clients, clock):
    model = modelled(clock, Delays(role=8, table=6, function=5, resource=4))

    provision(config, clock=clock, attach=model.attach)

    assert_one_complete_stack(aws_clients, config)
    settle(clock, model)
    assert provision(config, clock=clock, attach=model.attach).mutating_calls == []


def test_the_functions_pending_windows_overlap_rather_than_add_up(provision, config, clock):
    model = modelled(clock, Delays(function=10))

    run = provision(config, clock=clock, attach=model.attach)

    functions = len(config.lambda_.functions)
    assert run.calls("CreateFunction") == functions
    # One after another, the five functions would wait 50 s; together the step takes one window.
    assert 10 <= clock.now < 10 * 1.5


def test_the_deployment_is_made_once_every_new_resource_is_listed(provision, config, aws_clients, clock):
    model = modelled(clock, Delays(resource=5))

    run = provision(config, clock=clock, attach=model.attach)

    # Fingerprinted from a partial listing, the deployment would be made again by the next run.
    deployments = aws_clients.apigateway.get_deployments(restApiId=run.ctx.api_id)["items"]
    assert [d["id"] for d in deployments] == [run.ctx.deployment_id]
    settle(clock, model)
    assert provision(config, clock=clock, attach=model.attach).calls("CreateDeployment") == 0


def test_a_resource_made_by_a_run_cut_off_and_not_yet_listed_is_taken_not_made_again(provision, config, aws_clients, clock, inject):
    model = modelled(clock, Delays(resource=30))
    interrupt = inject("CreateResource", KeyboardInterrupt(), after=True)   # /items made, the run cut off
    with pytest.raises(InterruptedRun):
        provision(config, clock=clock, attach=model.attach, hooks=(interrupt.event,))

    provision(config, clock=clock, attach=model.attach)  # at once: get_resources does not list /items yet

    assert "CreateResource:duplicate" in model.refused  # AWS's answer to a second /items
    assert_one_complete_stack(aws_clients, config)
    settle(clock, model)
    assert provision(config, clock=clock, attach=model.attach).mutating_calls == []


def test_a_run_cut_off_while_the_table_is_creating_waits_for_it_next_time(provision, config, aws_clients, clock, inject):
    model = modelled(clock, Delays(table=20))
    interrupt = inject("CreateTable", KeyboardInterrupt(), after=True)
    with pytest.raises(InterruptedRun):
        provision(config, clock=clock, attach=model.attach, hooks=(interrupt.event,))

    second = provision(config, clock=clock, attach=model.attach)

    assert second.calls("CreateTable") == 0
    assert clock.now >= 20
    assert aws_clients.dynamodb.describe_table(TableName=config.table_name)["Table"]["TableStatus"] == "ACTIVE"
    assert_one_complete_stack(aws_clients, config)


def test_a_run_cut_off_while_functions_are_pending_waits_for_them_next_time(provision, config, aws_clients, clock, inject):
    model = modelled(clock, Delays(function=20))
    # Cut off at the first look at a new function's state: all five are made, none is Active yet.
    # (The five are made at once: a Ctrl-C stops those not made yet, and the next run makes them.)
    interrupt = inject("GetFunctionConfiguration", KeyboardInterrupt())
    runs = []
    with pytest.raises(InterruptedRun):
        provision(config, clock=clock, attach=model.attach, hooks=(interrupt.event,), run_out=runs)
    made = runs[0].calls("CreateFunction")

    second = provision(config, clock=clock, attach=model.attach)

    assert made >= 1 and second.calls("CreateFunction") == len(config.lambda_.functions) - made
    waited = [c for c in second.changes("function") if c.action is Action.UPDATE]
    assert len(waited) == made and {c.diffs["state"][0] for c in waited} == {"Pending/None"}
    assert_one_complete_stack(aws_clients, config)


def test_an_update_waits_for_the_last_one_instead_of_running_into_update_in_progress(
        provision, settings, make_config, code_dir, clock):
    provision(make_config(settings))
    (code_dir / "get_item.py").write_text((code_dir / "get_item.py").read_text() + "\n# changed\n", encoding="utf-8")
    settings["lambda"]["functions"]["GetItemFunction"]["memory_mb"] = 256   # code and settings: two updates
    model = modelled(clock, Delays(function=8))

    run = provision(make_config(settings), clock=clock, attach=model.attach)

    assert run.calls("UpdateFunctionCode") == 1 and run.calls("UpdateFunctionConfiguration") == 1
    assert [r for r in model.refused if r.endswith(":function")] == []   # it waited; AWS never had to refuse
    assert clock.now >= 16   # two updates, one after the other


def test_waits_add_little_over_the_models_critical_path(provision, config, clock):
    model = modelled(clock, Delays(role=8, table=6, function=5, resource=4))

    provision(config, clock=clock, attach=model.attach)

    ideal = model.critical_path()
    assert ideal <= clock.now <= ideal * 1.6, f"{clock.now:.1f} s simulated against a critical path of {ideal:.1f} s"
