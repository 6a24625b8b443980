"""Runs on a model of a real AWS account (crudstack/realistic.py, over moto, in simulated time): each test
shows one way a real account differs from moto and that provision and teardown cope with it."""

from __future__ import annotations


import botocore.exceptions
import pytest

from crudstack.errors import DeploymentError, InterruptedRun, OwnershipError
from crudstack.packaging import build_package
from crudstack.plan import Action, Options
from crudstack.realistic import AccountModel, Delays, SimClock
from tests.functional.conftest import seeded, ACCOUNT, REGION, assert_one_complete_stack, rest_apis


@pytest.fixture(autouse=True)
def seeded_jitter():
    with seeded(11):
        yield


def account(clock: SimClock, **delays) -> AccountModel:
    return AccountModel(clock=clock, delays=Delays(**delays))


def edit_handler(code_dir, module: str = "get_item") -> None:
    path = code_dir / f"{module}.py"
    path.write_text(path.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")


# -- Lambda ---------------------------------------------------------------------------------------


def test_an_inactive_function_is_settled_so_a_rerun_changes_nothing_and_does_not_wait(provision, config, clock):
    model = account(clock, inactive_after=3600)
    provision(config, clock=clock, attach=model.attach)
    clock.now += 7200   # two idle hours: every function is Inactive

    started = clock.now
    again = provision(config, clock=clock, attach=model.attach)

    assert "GetFunction:Inactive" in model.hidden
    assert again.mutating_calls == []
    # no wait for an Active that never comes (that would be the deadline); reading the 20 alarms' tags at
    # CloudWatch's documented 10 ListTagsForResource a second takes about one
    assert clock.now - started < 5


def test_an_inactive_function_takes_a_code_change(provision, config, clock, code_dir, aws_clients):
    model = account(clock, inactive_after=3600, function=5)
    provision(config, clock=clock, attach=model.attach)
    clock.now += 7200
    edit_handler(code_dir)

    run = provision(config, clock=clock, attach=model.attach)

    assert run.calls("UpdateFunctionCode") == 1
    sha = aws_clients.awslambda.get_function(FunctionName=config.function_name("GetItemFunction"))["Configuration"]["CodeSha256"]
    assert sha == build_package(config.code_dir, "get_item").sha256


def test_a_failed_update_is_applied_again_by_the_next_run(provision, config, clock, code_dir, aws_clients):
    model = account(clock, function=5)
    provision(config, clock=clock, attach=model.attach)
    name = config.function_name("GetItemFunction")
    model.fail_updates.add(name)
    edit_handler(code_dir)

    with pytest.raises(DeploymentError, match="failed"):
        provision(config, clock=clock, attach=model.attach)
    again = provision(config, clock=clock, attach=model.attach)

    assert again.calls("UpdateFunctionCode") == 1 and again.calls("UpdateFunctionConfiguration") == 1
    configuration = aws_clients.awslambda.get_function(FunctionName=name)["Configuration"]
    assert configuration["CodeSha256"] == build_package(config.code_dir, "get_item").sha256
    clock.now += 10
    assert provision(config, clock=clock, attach=model.attach).mutating_calls == []


def test_a_function_whose_creation_failed_is_deleted_and_created_again_by_the_next_run(provision, config, clock, aws_clients):
    model = account(clock, function=5)
    name = config.function_name("GetItemFunction")
    model.fail_creates.add(name)
    with pytest.raises(DeploymentError, match="failed"):
        provision(config, clock=clock, attach=model.attach)

    again = provision(config, clock=clock, attach=model.attach)

    assert again.calls("DeleteFunction") == 1 and again.calls("CreateFunction") == 1
    assert aws_clients.awslambda.get_function(FunctionName=name)["Configuration"]["State"] == "Active"
    assert_one_complete_stack(aws_clients, config)


def test_lambda_refuses_a_reserved_environment_name_in_the_model_as_on_aws(new_aws, config, clock, aws_clients):
    aws = new_aws(config, clock=clock)
    model = account(clock).attach(aws)
    lam = aws.client("lambda")

    with pytest.raises(botocore.exceptions.ClientError) as refused:
        lam.create_function(FunctionName="x", Runtime="python3.12", Role="arn:aws:iam::123456789012:role/r", Handler="a.b",
                            Code={"ZipFile": b"PK"}, Environment={"Variables": {"AWS_REGION": "eu-west-1"}})

    assert refused.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "AWS_REGION" in refused.value.response["Error"]["Message"] and model.refused == ["CreateFunction:reserved"]


def test_without_lambda_list_tags_provision_stops_and_names_the_permission(provision, config, clock):
    model = account(clock)
    provision(config, clock=clock, attach=model.attach)
    model.deny_list_tags = True

    with pytest.raises(DeploymentError) as failed:
        provision(config, clock=clock, attach=model.attach)

    assert not isinstance(failed.value, OwnershipError)   # never "not ours"
    assert "lambda:ListTags" in str(failed.value)
    assert "GetFunction:TagsError" in model.hidden


def test_without_lambda_list_tags_teardown_keeps_the_functions_and_their_role(provision, teardown, config, clock, aws_clients):
    model = account(clock)
    provision(config, clock=clock, attach=model.attach)
    model.deny_list_tags = True

    with pytest.raises(DeploymentError, match="lambda:ListTags"):
        teardown(config, clock=clock, attach=model.attach)

    functions = [f["FunctionName"] for f in aws_clients.awslambda.list_functions()["Functions"]]
    assert sorted(functions) == sorted(config.function_name(b) for b in config.lambda_.functions)
    assert aws_clients.iam.get_role(RoleName=config.role_name)["Role"]["RoleName"] == config.role_name


def test_a_function_whose_get_function_answer_leaves_tags_out_is_read_with_list_tags(provision, config, clock):
    model = account(clock)
    provision(config, clock=clock, attach=model.attach)

    def without_tags(model, parsed, **_):
        if model.name == "GetFunction":
            parsed.pop("Tags", None)

    again = provision(config, clock=clock, attach=model.attach, hooks=(("after-call", without_tags),))

    assert again.calls("ListTags") == len(config.lambda_.functions)
    assert again.mutating_calls == []


def test_teardown_keeps_the_role_while_a_function_that_is_not_ours_runs_as_it(provision, teardown, config, clock, aws_clients):
    model = account(clock)
    first = provision(config, clock=clock, attach=model.attach)
    package = build_package(config.code_dir, "get_item")
    aws_clients.awslambda.create_function(FunctionName="someone-elses", Runtime="python3.12", Role=first.ctx.role_arn,
                                          Handler="get_item.lambda_handler", Code={"ZipFile": package.zip_bytes})

    run = teardown(config, clock=clock, attach=model.attach)

    kept = run.changes("role", Action.KEEP)
    assert kept and "someone-elses" in kept[0].note
    assert aws_clients.iam.get_role(RoleName=config.role_name)
    assert aws_clients.awslambda.get_function(FunctionName="someone-elses")


# -- DynamoDB -------------------------------------------------------------------------------------


def test_provision_right_after_teardown_waits_out_the_deleting_table(provision, teardown, config, clock, aws_clients):
    model = account(clock, table=4, table_delete=20)
    provision(config, clock=clock, attach=model.attach)
    teardown(config, clock=clock, attach=model.attach)
    deleted_at = clock.now

    provision(config, clock=clock, attach=model.attach)

    assert "DescribeTable:DELETING" in model.hidden
    assert clock.now - deleted_at >= 20
    assert aws_clients.dynamodb.describe_table(TableName=config.table_name)["Table"]["TableStatus"] == "ACTIVE"
    assert_one_complete_stack(aws_clients, config)


def test_a_table_whose_tags_do_not_show_yet_is_not_called_someone_elses(provision, config, clock, inject, aws_clients):
    model = account(clock, table=6, tags=10)
    cut = inject("CreateTable", KeyboardInterrupt, after=True)   # the run dies right after the table is made
    with pytest.raises(InterruptedRun):
        provision(config, clock=clock, attach=model.attach, hooks=(cut.event,))

    run = provision(config, clock=clock, attach=model.attach)   # at once: the tags are not listed yet

    assert "ListTagsOfResource:stale" in model.hidden
    assert run.calls("CreateTable") == 0
    assert_one_complete_stack(aws_clients, config)


def test_a_backup_whose_answer_is_lost_is_made_once(provision, teardown, config, clock, inject, aws_clients):
    model = account(clock)
    provision(config, clock=clock, attach=model.attach)
    aws_clients.dynamodb.put_item(TableName=config.table_name, Item={"id": {"S": "a"}, "name": {"S": "kept"}})
    lost = inject("CreateBackup", botocore.exceptions.ReadTimeoutError(endpoint_url="https://dynamodb"), after=True)

    run = teardown(config, clock=clock, attach=model.attach, hooks=(lost.event,), options=Options(backup=True))

    assert lost.failed == 1
    backups = aws_clients.dynamodb.list_backups(TableName=config.table_name)["BackupSummaries"]
    assert len(backups) == 1
    assert run.ctx.backup_location == backups[0]["BackupArn"]


# -- API Gateway ----------------------------------------------------------------------------------


def test_the_root_resource_comes_from_create_rest_api_while_get_resources_lags(provision, config, clock, aws_clients):
    model = account(clock, resource=6)

    provision(config, clock=clock, attach=model.attach)

    assert "GetResources:unlisted" in model.hidden
    assert_one_complete_stack(aws_clients, config)


# -- tags -----------------------------------------------------------------------------------------


def test_changed_tags_reach_every_existing_resource_and_a_removed_one_is_named(provision, config, settings, make_config, clock, aws_clients):
    model = account(clock, tags=3)
    provision(config, clock=clock, attach=model.attach)
    clock.now += 10
    settings["tags"] = {"project": "renamed", "owner": "team-a"}
    changed = make_config(settings)

    run = provision(changed, clock=clock, attach=model.attach)

    wanted = {"project": "renamed", "owner": "team-a"}
    c = aws_clients
    table_arn = c.dynamodb.describe_table(TableName=changed.table_name)["Table"]["TableArn"]
    api = rest_apis(c, changed.api_name)[0]
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:{changed.topic_name}"
    found = {
        "table": {t["Key"]: t["Value"] for t in c.dynamodb.list_tags_of_resource(ResourceArn=table_arn)["Tags"]},
        "role": {t["Key"]: t["Value"] for t in c.iam.get_role(RoleName=changed.role_name)["Role"]["Tags"]},
        "REST API": api["tags"],
        "stage": c.apigateway.get_stage(restApiId=api["id"], stageName=changed.api.stage)["tags"],
        "topic": {t["Key"]: t["Value"] for t in c.sns.list_tags_for_resource(ResourceArn=topic)["Tags"]},
    }
    for base in changed.lambda_.functions:
        found[base] = c.awslambda.get_function(FunctionName=changed.function_name(base))["Tags"]
        group = f"/aws/lambda/{changed.function_name(base)}"
        found[group] = c.logs.list_tags_log_group(logGroupName=group)["tags"]
    for alarm in c.cloudwatch.describe_alarms(AlarmNamePrefix=f"{changed.stack}-")["MetricAlarms"]:
        found[alarm["AlarmName"]] = {t["Key"]: t["Value"] for t in c.cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]}
    assert {what: {k: tags.get(k) for k in wanted} for what, tags in found.items()} == {what: wanted for what in found}
    assert run.changes("role tags", Action.UPDATE) and run.changes("REST API tags", Action.UPDATE)

    clock.now += 10
    settings["tags"] = {"owner": "team-a"}   # "project" removed: left in place, and the plan says so
    removed = provision(make_config(settings), clock=clock, attach=model.attach)
    assert removed.mutating_calls == []
    assert any("project not in config.yaml: left in place" in c.note for c in removed.changes("table tags"))


# -- quotas, propagation, e-mail ------------------------------------------------------------------


def test_teardown_of_two_rest_api_copies_waits_out_delete_rest_apis_30_second_quota(provision, teardown, config, clock, aws_clients):
    model = account(clock)
    provision(config, clock=clock, attach=model.attach)
    aws_clients.apigateway.create_rest_api(name=config.api_name, tags=config.all_tags)   # a copy left by a lost answer
    clock.now += 60

    started = clock.now
    teardown(config, clock=clock, attach=model.attach)

    # the limiter waits for the second DeleteRestApi's turn, so AWS never has to refuse it
    assert [r for r in model.refused if r.endswith(":quota")] == []
    assert rest_apis(aws_clients, config.api_name) == []
    assert clock.now - started >= 30


def test_an_unconfirmed_e_mail_subscription_is_left_pending_and_a_rerun_changes_nothing(provision, config, settings, make_config, clock, aws_clients):
    settings["monitoring"]["alert_email"] = "ops@example.com"
    config = make_config(settings)
    model = account(clock)
    provision(config, clock=clock, attach=model.attach)
    clock.now += 60

    again = provision(config, clock=clock, attach=model.attach)

    assert "ListSubscriptionsByTopic:pending" in model.hidden
    assert again.mutating_calls == []


def test_a_whole_cycle_on_a_real_account_converges_without_duplicates_or_orphans(provision, teardown, config, settings, make_config, clock, aws_clients):
    settings["monitoring"]["alert_email"] = "ops@example.com"
    config = make_config(settings)
    delays = Delays.typical()
    model = AccountModel(clock=clock, delays=delays)

    provision(config, clock=clock, attach=model.attach)
    assert_one_complete_stack(aws_clients, config)
    clock.now += delays.longest + 1
    assert provision(config, clock=clock, attach=model.attach).mutating_calls == []
    teardown(config, clock=clock, attach=model.attach)
    assert [f for f in aws_clients.awslambda.list_functions()["Functions"]] == []
    assert rest_apis(aws_clients, config.api_name) == []
    assert aws_clients.iam.list_roles()["Roles"] == []
    provision(config, clock=clock, attach=model.attach)   # at once: the table is still DELETING

    assert_one_complete_stack(aws_clients, config)
    clock.now += delays.longest + 1
    assert provision(config, clock=clock, attach=model.attach).mutating_calls == []
    # every behaviour of the model stood in the way at least once
    met = set(model.refused + model.hidden)
    assert {"DescribeTable:CREATING", "DescribeTable:DELETING", "CreateFunction:role", "GetFunctionConfiguration:created",
            "GetResources:unlisted", "ListSubscriptionsByTopic:pending"} <= met, met
