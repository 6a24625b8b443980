"""What AWS shows a moment after a write, on the model of a real account (crudstack/realistic.py: LagModel,
IdentityPolicy, LiveClient, over moto, in simulated time): a table written to during a teardown, a function
outside the stack that runs as our role, DeleteRole right after its policies went, a permission replaced while
Lambda still shows the old one, and a Failed function made again while its deletion is still going on."""

from __future__ import annotations

import json

import botocore.exceptions
import pytest

from crudstack.cli import teardown_main
from crudstack.config import ROOT
from crudstack.errors import DeploymentError
from crudstack.packaging import build_package
from crudstack.plan import Action, Context, Options
from crudstack.realistic import AccountModel, Delays, IdentityPolicy, Lags, LiveClient, SimClock
from crudstack.runner import Reporter, run
from crudstack.steps.table import holds_items
from tests.functional.conftest import aws_error, assert_one_complete_stack, permission_statements, rest_apis, seeded


@pytest.fixture(autouse=True)
def seeded_jitter():
    with seeded(13):
        yield


def account(clock: SimClock, delays: Delays | None = None, **lags) -> AccountModel:
    return AccountModel(clock=clock, delays=delays or Delays(), lags=Lags(**lags))


def live_client(config, c, model: AccountModel | None = None, **kwargs) -> LiveClient:
    """A client writing through the stack's API: while its REST API and every function are there."""

    def serving() -> bool:
        names = {f["FunctionName"] for f in c.awslambda.list_functions()["Functions"]}
        return bool(rest_apis(c, config.api_name)) and all(config.function_name(b) in names for b in config.lambda_.functions)

    def put(key: dict) -> None:
        c.dynamodb.put_item(TableName=config.table_name, Item={**key, "name": {"S": "written during the teardown"}})

    return LiveClient(model.lagging if model else None, config.table_name, put=put, serving=serving, **kwargs)


def both(*attachable):
    return lambda aws: [a.attach(aws) for a in attachable]


def items_left(c, config) -> set[str]:
    return {i["id"]["S"] for i in c.dynamodb.scan(TableName=config.table_name, ConsistentRead=True)["Items"]}


# -- finding 1: the table is deleted last, and only if it is still empty -----------------------------------


def test_teardown_keeps_a_table_written_to_through_the_live_api_after_the_plan(provision, teardown, config, clock, aws_clients):
    model = account(clock, scan=1)
    provision(config, clock=clock, attach=model.attach)
    client = live_client(config, aws_clients, model)

    gone = teardown(config, clock=clock, attach=both(model, client))

    assert client.acknowledged                                     # it wrote while the API served
    assert gone.calls("DeleteTable") == 0
    kept = gone.changes("table", Action.KEEP)
    assert kept and "--backup" in kept[0].note and "--delete-data" in kept[0].note
    assert gone.outcomes["DynamoDB table"] == "kept"
    assert items_left(aws_clients, config) == set(client.acknowledged)   # every acknowledged item is there
    assert rest_apis(aws_clients, config.api_name) == [] and aws_clients.awslambda.list_functions()["Functions"] == []


def test_the_teardown_plan_reads_the_table_consistently_so_a_fresh_item_keeps_it(provision, config, new_aws, clock, aws_clients):
    model = account(clock, scan=1)
    provision(config, clock=clock, attach=model.attach)
    clock.now += 60
    key = {"id": {"S": "just-written"}}
    aws_clients.dynamodb.put_item(TableName=config.table_name, Item=key)
    model.lagging.wrote(config.table_name, key)   # an eventually consistent Scan does not see it yet
    aws = new_aws(config, clock=clock)
    model.attach(aws)

    planned = run(Context(config=config, aws=aws, target="aws"), Reporter(), teardown=True, apply=False)

    table = [c for r in planned for c in r.changes if c.kind == "table"]
    assert [c.action for c in table] == [Action.KEEP]
    assert aws.stats.writes == 0


def test_teardown_main_exits_4_naming_a_table_that_gained_items_during_the_run(provision, config, aws_clients, cli, capsys):
    provision(config)
    client = live_client(config, aws_clients)
    cli.hooks.append(("before-call", client.hook))

    code, out, _ = cli(teardown_main, "--yes", capsys=capsys)

    assert code == 4
    assert f"Kept table {config.table_name}: it still holds items" in out
    assert client.acknowledged and items_left(aws_clients, config) == set(client.acknowledged)


def test_teardown_with_backup_on_the_local_target_saves_what_was_written_during_it_then_deletes_the_table(
        provision, teardown, config, clock, aws_clients, tmp_path):
    model = account(clock, scan=1)
    provision(config, clock=clock, attach=model.attach)
    client = live_client(config, aws_clients, model)

    gone = teardown(config, clock=clock, attach=both(model, client), target="local",
                    options=Options(backup=True, backup_dir=tmp_path / "backups"))

    assert client.acknowledged
    saved = json.loads(open(gone.ctx.backup_location, encoding="utf-8").read())
    assert {item["id"]["S"] for item in saved["items"]} == set(client.acknowledged)
    assert config.table_name not in aws_clients.dynamodb.list_tables()["TableNames"]


def test_teardown_with_backup_on_aws_backs_the_table_up_once_nothing_can_write_to_it(
        provision, teardown, config, clock, aws_clients, recorder):
    model = account(clock, scan=1)
    provision(config, clock=clock, attach=model.attach)
    client = live_client(config, aws_clients, model)

    gone = teardown(config, clock=clock, attach=both(model, client), hooks=(recorder.event,), options=Options(backup=True))

    operations = [op for op, _ in recorder]
    writers_gone = max(i for i, op in enumerate(operations) if op in ("DeleteRestApi", "DeleteFunction"))
    assert writers_gone < operations.index("CreateBackup") < operations.index("DeleteTable")
    assert client.acknowledged and gone.ctx.backup_location
    assert len(aws_clients.dynamodb.list_backups(TableName=config.table_name)["BackupSummaries"]) == 1


# -- finding 2: the role's teardown reads only our functions ---------------------------------------------


def deployer_policy() -> IdentityPolicy:
    return IdentityPolicy(json.loads((ROOT / "deployer-policy.json").read_text(encoding="utf-8")))


def test_the_identity_policy_model_denies_a_lambda_call_on_a_function_outside_the_stack(new_aws, config, clock):
    aws = new_aws(config, clock=clock)
    policy = deployer_policy().attach(aws)

    with pytest.raises(botocore.exceptions.ClientError) as denied:
        aws.client("lambda").get_function_configuration(FunctionName="someone-elses")

    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert policy.refused == ["GetFunctionConfiguration:someone-elses"]
    assert policy.allows("lambda:GetFunctionConfiguration", "arn:aws:lambda:us-east-1:123456789012:function:demo-GetItemFunction")


def teardown_beside(function: str, policy: IdentityPolicy, provision, teardown, config, clock, aws_clients):
    """Provision, make `function` (outside the stack) run as our role, tear down under `policy`: the role is kept
    for it, and no call was outside the policy."""
    model = account(clock)
    first = provision(config, clock=clock, attach=both(model, policy))
    package = build_package(config.code_dir, "get_item")
    aws_clients.awslambda.create_function(FunctionName=function, Runtime="python3.12", Role=first.ctx.role_arn,
                                          Handler="get_item.lambda_handler", Code={"ZipFile": package.zip_bytes})

    gone = teardown(config, clock=clock, attach=both(model, policy))

    assert policy.refused == []
    kept = gone.changes("role", Action.KEEP)
    assert kept and function in kept[0].note
    return gone


def test_teardown_keeps_the_role_of_a_function_outside_the_stack_without_reading_that_function(
        provision, teardown, config, clock, aws_clients):
    teardown_beside("someone-elses", deployer_policy(), provision, teardown, config, clock, aws_clients)
    assert aws_clients.awslambda.get_function(FunctionName="someone-elses")


# -- finding 3: DeleteRole right after its policies went ----------------------------------------------------


def test_teardown_retries_delete_role_while_iam_still_counts_the_policies_just_removed(provision, teardown, config, clock, aws_clients):
    model = account(clock, role_policies=5)
    provision(config, clock=clock, attach=model.attach)

    teardown(config, clock=clock, attach=model.attach)

    assert "DeleteRole:conflict" in model.refused
    assert [r for r in aws_clients.iam.list_roles()["Roles"] if r["RoleName"] == config.role_name] == []


# -- finding 4: a permission replaced while Lambda still shows the old one -----------------------------------


def test_a_permission_of_a_deleted_api_is_replaced_once_lambda_no_longer_shows_it(provision, config, clock, aws_clients):
    model = account(clock, resource_policy=3)
    provision(config, clock=clock, attach=model.attach)
    old = rest_apis(aws_clients, config.api_name)[0]["id"]
    aws_clients.apigateway.delete_rest_api(restApiId=old)   # deleted by hand: the permissions name a gone API
    clock.now += 60

    again = provision(config, clock=clock, attach=model.attach)

    assert again.changes("permission", Action.UPDATE)
    assert "GetPolicy:stale" in model.hidden                    # the removal was not visible at once
    assert_one_complete_stack(aws_clients, config)              # one statement per function, scoped to the new API


def test_a_conflicting_add_permission_is_confirmed_with_get_policy_before_it_counts(provision, config, clock, inject, aws_clients):
    refused = inject("AddPermission", aws_error(
        "ResourceConflictException", "The statement id (demo-apigateway-invoke) provided already exists. Please provide a "
        "new statement id, or remove the existing statement.", 409), times=1)

    provision(config, clock=clock, attach=account(clock).attach, hooks=(refused.event,))

    assert refused.failed == 1
    for base in config.lambda_.functions:
        assert len(permission_statements(aws_clients, config, base)) == 1


# -- finding 7: a Failed function is created again once its deletion is over --------------------------------


def test_a_failed_function_is_created_again_only_once_lambda_has_finished_deleting_it(provision, config, clock, aws_clients):
    model = account(clock, Delays(function=5), function_delete=8)
    name = config.function_name("GetItemFunction")
    model.fail_creates.add(name)
    with pytest.raises(Exception, match="failed"):
        provision(config, clock=clock, attach=model.attach)

    again = provision(config, clock=clock, attach=model.attach)

    assert "GetFunctionConfiguration:Deleting" in model.hidden   # the deletion was still going on
    assert "CreateFunction:deleting" not in model.refused        # and the create waited for it
    assert again.calls("DeleteFunction") == 1 and again.calls("CreateFunction") == 1
    assert aws_clients.awslambda.get_function(FunctionName=name)["Configuration"]["State"] == "Active"
    assert_one_complete_stack(aws_clients, config)


def test_a_page_with_no_item_but_a_last_evaluated_key_means_the_table_holds_items():
    assert holds_items({"Items": [], "Count": 0, "LastEvaluatedKey": {"id": {"S": "x"}}})
    assert holds_items({"Items": [{"id": {"S": "x"}}]})
    assert not holds_items({"Items": [], "Count": 0})


# -- all of it at once ------------------------------------------------------------------------------------


def test_a_whole_cycle_with_every_lag_and_a_client_writing_throughout_keeps_every_acknowledged_item(
        provision, teardown, config, clock, aws_clients):
    delays = Delays.typical()
    model = AccountModel(clock=clock, delays=delays, lags=Lags.typical())
    client = live_client(config, aws_clients, model, from_start=True)

    provision(config, clock=clock, attach=both(model, client))
    assert_one_complete_stack(aws_clients, config)
    clock.now += delays.longest + 1
    assert provision(config, clock=clock, attach=both(model, client)).mutating_calls == []
    gone = teardown(config, clock=clock, attach=both(model, client))

    assert gone.changes("table", Action.KEEP) and gone.calls("DeleteTable") == 0
    assert client.acknowledged and items_left(aws_clients, config) == set(client.acknowledged)
    assert rest_apis(aws_clients, config.api_name) == [] and aws_clients.awslambda.list_functions()["Functions"] == []
    assert [r for r in aws_clients.iam.list_roles()["Roles"] if r["RoleName"] == config.role_name] == []
    assert not [r for r in model.refused if r.endswith(":quota")]   # the calls kept under AWS's rates
    met = set(model.refused + model.hidden)
    assert {"DeleteRole:conflict", "GetFunctionConfiguration:Deleting"} <= met, met


# -- break-20a: what the first fixes missed ----------------------------------------------------------------


def test_with_the_tutorials_names_the_roles_teardown_reads_no_function_the_deployer_policy_does_not_name(
        provision, teardown, settings, make_config, clock, aws_clients):
    # names: tutorial: the deployer policy names exactly this stack's functions (crudstack/permissions.py, _names),
    # not "<stack>-*"; a function called "tutorial-reports" that runs as our role is someone else's, and reading it
    # is denied on AWS as much as any other.
    from crudstack.permissions import deployer_policy as policy_for
    from tests.support import console_stack

    config = make_config(console_stack.tutorial_settings(settings))
    teardown_beside("tutorial-reports", IdentityPolicy(policy_for(config)), provision, teardown, config, clock, aws_clients)


def test_a_delete_conflict_that_never_clears_fails_at_once_naming_the_role_and_what_holds_it(
        provision, teardown, config, clock, aws_clients):
    model = account(clock, role_policies=5)
    provision(config, clock=clock, attach=model.attach)
    aws_clients.iam.create_instance_profile(InstanceProfileName="someone-elses-profile")
    aws_clients.iam.add_role_to_instance_profile(InstanceProfileName="someone-elses-profile", RoleName=config.role_name)

    # IAM's DeleteConflict for a role in an instance profile never clears by waiting: no retry until the deadline,
    # and no "wait a minute and run again", which would fail the same way for ever.
    with pytest.raises(DeploymentError) as stopped:
        teardown(config, clock=clock, attach=model.attach)

    message = str(stopped.value)
    assert config.role_name in message and "instance profile" in message
    assert "attempts" not in message and "wait a minute" not in message
    assert "DeleteRole:conflict" in model.refused   # the conflict that does clear was still retried


def test_an_item_written_by_another_path_after_the_writers_went_keeps_the_table_and_the_delete_follows_the_look(
        provision, teardown, config, clock, aws_clients):
    # Another stack's function or the DynamoDB console write to the table without our API: the re-check right
    # before DeleteTable is what catches them, and nothing of the table's but that one look comes between.
    provision(config, clock=clock, attach=account(clock).attach)
    table_calls: list[str] = []

    def other_writer(model, params, **_):
        table_calls.append(model.name)
        if model.name == "Scan" and table_calls.count("Scan") == 2:   # the re-check, after the plan's look
            aws_clients.dynamodb.put_item(TableName=config.table_name, Item={"id": {"S": "from-the-console"}})

    kept = teardown(config, clock=clock, hooks=(("before-call.dynamodb", other_writer),))

    assert kept.changes("table", Action.KEEP) and kept.calls("DeleteTable") == 0
    assert items_left(aws_clients, config) == {"from-the-console"}
    aws_clients.dynamodb.delete_item(TableName=config.table_name, Key={"id": {"S": "from-the-console"}})
    table_calls.clear()
    gone = teardown(config, clock=clock, hooks=(("before-call.dynamodb", lambda model, **_: table_calls.append(model.name)),))
    assert gone.calls("DeleteTable") == 1 and table_calls[-2:] == ["Scan", "DeleteTable"]


def test_a_rest_api_that_cannot_be_deleted_stops_the_teardown_clearly_and_the_table_is_not_touched(
        provision, teardown, config, clock, inject, aws_clients, recorder):
    provision(config, clock=clock, attach=account(clock).attach)
    throttled = inject("DeleteRestApi", aws_error("TooManyRequestsException", "Too Many Requests", 429), times=10**6)

    with pytest.raises(DeploymentError) as stopped:
        teardown(config, clock=clock, attach=account(clock).attach, hooks=(throttled.event, recorder.event))

    assert "REST API" in str(stopped.value) and "TooManyRequests" in str(stopped.value)
    assert "DeleteTable" not in [op for op, _ in recorder]
    assert config.table_name in aws_clients.dynamodb.list_tables()["TableNames"]


TEARDOWN_CUTS = [("DeleteRestApi", True), ("DeleteFunction", True), ("Scan", False), ("Scan", True), ("DeleteTable", False)]


@pytest.mark.parametrize(("operation", "after"), TEARDOWN_CUTS, ids=[f"{op}-{'after' if a else 'before'}" for op, a in TEARDOWN_CUTS])
def test_a_teardown_cut_off_anywhere_on_the_tables_path_never_deletes_an_item_written_meanwhile_and_a_rerun_finishes(
        operation, after, provision, teardown, config, clock, inject, aws_clients):
    from crudstack.errors import InterruptedRun

    provision(config, clock=clock, attach=account(clock).attach)
    # The last Scan of the teardown is the re-check (the plan's is the first); a cut before DeleteTable.
    cut = inject(operation, KeyboardInterrupt(), skip=1 if operation == "Scan" else 0, after=after)
    with pytest.raises(InterruptedRun):
        teardown(config, clock=clock, attach=account(clock).attach, hooks=(cut.event,))
    assert cut.failed == 1
    aws_clients.dynamodb.put_item(TableName=config.table_name, Item={"id": {"S": "written-while-it-was-stopped"}})

    kept = teardown(config, clock=clock, attach=account(clock).attach)

    assert kept.calls("DeleteTable") == 0 and items_left(aws_clients, config) == {"written-while-it-was-stopped"}
    aws_clients.dynamodb.delete_item(TableName=config.table_name, Key={"id": {"S": "written-while-it-was-stopped"}})
    assert teardown(config, clock=clock, attach=account(clock).attach).calls("DeleteTable") == 1
    assert config.table_name not in aws_clients.dynamodb.list_tables()["TableNames"]


def test_a_function_outside_the_stack_on_a_later_listfunctions_page_still_keeps_the_role(
        provision, teardown, config, clock, aws_clients):
    # ListFunctions answers at most 50 functions a page, with NextMarker for the rest (Lambda API Reference,
    # ListFunctions, MaxItems); moto answers all at once, so this hook pages its answer as Lambda does.
    markers: list[str] = []

    def remember(params, context, **_):
        markers.append(params.get("Marker"))
        context["page_from"] = int(params.get("Marker") or 0)

    def paged(model, parsed, context, **_):
        if model.name == "ListFunctions" and "Functions" in parsed:
            start = context.get("page_from", 0)
            rest = parsed["Functions"][start:]
            parsed["Functions"] = rest[:50]
            if len(rest) > 50:
                parsed["NextMarker"] = str(start + 50)

    model, policy = account(clock), deployer_policy()
    first = provision(config, clock=clock, attach=both(model, policy))
    package = build_package(config.code_dir, "get_item")
    trust = first.ctx.aws.client("iam").get_role(RoleName=config.role_name)["Role"]["AssumeRolePolicyDocument"]
    other = aws_clients.iam.create_role(RoleName="other", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    for number in range(60):
        aws_clients.awslambda.create_function(FunctionName=f"unrelated-{number:02}", Runtime="python3.12", Role=other,
                                              Handler="get_item.lambda_handler", Code={"ZipFile": package.zip_bytes})
    aws_clients.awslambda.create_function(FunctionName="zz-someone-elses", Runtime="python3.12", Role=first.ctx.role_arn,
                                          Handler="get_item.lambda_handler", Code={"ZipFile": package.zip_bytes})
    hooks = (("before-parameter-build.lambda.ListFunctions", remember), ("after-call.lambda.ListFunctions", paged))

    gone = teardown(config, clock=clock, attach=both(model, policy), hooks=hooks)

    assert policy.refused == [] and "50" in markers   # it read past the first page
    kept = gone.changes("role", Action.KEEP)
    assert kept and "zz-someone-elses" in kept[0].note


def test_a_permission_removed_by_someone_else_between_the_plan_and_its_replacement_is_added_once(
        provision, config, clock, aws_clients):
    model = account(clock, resource_policy=3)
    provision(config, clock=clock, attach=model.attach)
    aws_clients.apigateway.delete_rest_api(restApiId=rest_apis(aws_clients, config.api_name)[0]["id"])
    clock.now += 60
    sid = f"{config.stack}-apigateway-invoke"

    def someone_else_removes_it(params, **_):
        aws_clients.awslambda.remove_permission(FunctionName=params["FunctionName"], StatementId=sid)

    again = provision(config, clock=clock, attach=model.attach,
                      hooks=(("before-parameter-build.lambda.RemovePermission", someone_else_removes_it),))

    assert again.changes("permission", Action.UPDATE)
    assert_one_complete_stack(aws_clients, config)   # one statement per function, scoped to the new API


def test_a_delete_conflict_that_outlasts_the_deadline_says_run_again_and_the_rerun_deletes_the_role(
        provision, teardown, config, clock, aws_clients):
    model = account(clock, role_policies=config.retry.deadline_s + 60)
    provision(config, clock=clock, attach=model.attach)

    with pytest.raises(DeploymentError) as stopped:
        teardown(config, clock=clock, attach=model.attach)
    assert "DeleteRole" in str(stopped.value) and "run again" in str(stopped.value)

    teardown(config, clock=clock, attach=model.attach)
    assert [r for r in aws_clients.iam.list_roles()["Roles"] if r["RoleName"] == config.role_name] == []


def test_with_the_tutorials_names_monitoring_reads_the_tags_of_no_alarm_or_log_group_the_policy_does_not_name(
        provision, teardown, settings, make_config, clock, aws_clients, recorder):
    # Without a prefix every alarm and every /aws/lambda/ log group of the account is listed; reading the tags of
    # one the deployer policy does not name (ListTagsForResource, ListTagsLogGroup are scoped to this stack's
    # alarms and log groups, crudstack/permissions.py) is denied on AWS. The model's IdentityPolicy checks Lambda
    # calls only, so each tag read is checked against the policy here.
    from crudstack.permissions import deployer_policy as policy_for
    from tests.support import console_stack

    config = make_config(console_stack.tutorial_settings(settings))
    policy = IdentityPolicy(policy_for(config))
    provision(config, clock=clock, attach=account(clock).attach)
    aws_clients.cloudwatch.put_metric_alarm(AlarmName="billing-high", MetricName="EstimatedCharges", Namespace="AWS/Billing",
                                            Statistic="Maximum", Period=21600, EvaluationPeriods=1, Threshold=10,
                                            ComparisonOperator="GreaterThanThreshold")
    aws_clients.logs.create_log_group(logGroupName="/aws/lambda/someone-elses")

    provision(config, clock=clock, attach=account(clock).attach, hooks=(recorder.event,))
    teardown(config, clock=clock, attach=account(clock).attach, hooks=(recorder.event,))

    arns = [("cloudwatch:ListTagsForResource", p["ResourceARN"]) for p in recorder.params("ListTagsForResource") if "ResourceARN" in p]
    arns += [("logs:ListTagsLogGroup", f"arn:aws:logs:us-east-1:123456789012:log-group:{p['logGroupName']}")
             for p in recorder.params("ListTagsLogGroup")]
    assert arns and [(action, arn) for action, arn in arns if not policy.allows(action, arn)] == []
    assert aws_clients.cloudwatch.describe_alarms(AlarmNames=["billing-high"])["MetricAlarms"]
