"""Teardown, whole runs against moto: it removes exactly our stack, is a no-op the
second time, never touches a look-alike without our tag, and keeps a table that
still holds items unless told otherwise."""

from __future__ import annotations

import json

import pytest
import yaml

from crudstack.cli import teardown_main
from crudstack.errors import OwnershipError
from crudstack.plan import Action, Options
from crudstack.steps.role import TRUST_POLICY
from tests.functional.conftest import ACCOUNT, REGION, assert_one_complete_stack, rest_apis

TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:demo-ItemsApiAlerts"


def what_is_left(c, stack: str = "demo") -> dict[str, list]:
    """Every resource of the stack's kinds still in the account, by kind."""
    prefix = f"{stack}-"
    return {
        "tables": [t for t in c.dynamodb.list_tables()["TableNames"] if t.startswith(prefix)],
        "roles": [r["RoleName"] for r in c.iam.list_roles()["Roles"] if r["RoleName"].startswith(prefix)],
        "functions": [f["FunctionName"] for f in c.awslambda.list_functions()["Functions"] if f["FunctionName"].startswith(prefix)],
        "rest_apis": [a["name"] for a in c.apigateway.get_rest_apis()["items"] if a["name"].startswith(prefix)],
        "log_groups": [g["logGroupName"] for g in c.logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{prefix}")["logGroups"]],
        "topics": [t["TopicArn"] for t in c.sns.list_topics()["Topics"] if t["TopicArn"].split(":")[-1].startswith(prefix)],
        "alarms": [a["AlarmName"] for a in c.cloudwatch.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]],
    }


NOTHING = {"tables": [], "roles": [], "functions": [], "rest_apis": [], "log_groups": [], "topics": [], "alarms": []}


def put_items(c, *items: dict) -> None:
    for item in items:
        c.dynamodb.put_item(TableName="demo-ItemsTable", Item=item)


def write_settings(tmp_path, settings) -> str:
    path = tmp_path / "teardown-config.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return str(path)


# -- the whole stack goes ----------------------------------------------------------------------------


def test_teardown_removes_every_resource_of_the_stack(provision, teardown, config, aws_clients):
    provision(config)
    assert what_is_left(aws_clients) != NOTHING

    gone = teardown(config)

    assert what_is_left(aws_clients) == NOTHING
    assert aws_clients.sns.list_subscriptions()["Subscriptions"] == []
    assert gone.outcomes == {
        "Monitoring: logs, alerts, alarms": "deleted", "Deploy to stage": "nothing to do", "API Gateway REST API": "deleted",
        "Lambda functions": "deleted", "IAM role": "deleted", "DynamoDB table": "deleted",
    }
    assert [r.step.number for r in gone.results] == ["7", "5", "4", "3", "2", "1"]


def test_teardown_removes_the_roles_inline_policy_before_the_role(provision, teardown, config, recorder):
    provision(config)

    gone = teardown(config, hooks=(recorder.event,))

    operations = [op for op, _ in recorder]
    assert operations.index("DeleteRolePolicy") < operations.index("DeleteRole")
    assert gone.calls("DeleteRole") == 1


def test_a_second_teardown_makes_no_mutating_call(provision, teardown, config):
    provision(config)
    teardown(config)

    again = teardown(config)

    assert again.mutating_calls == []
    assert set(again.outcomes.values()) == {"nothing to do"}


def test_teardown_of_a_stack_never_provisioned_makes_no_mutating_call(teardown, config):
    gone = teardown(config)

    assert gone.mutating_calls == []
    assert gone.changes() == []


def test_teardown_leaves_another_stack_in_the_same_account_complete(provision, teardown, config, settings, make_config, aws_clients):
    settings["stack"] = "demo-two"  # shares the "demo-" prefix of every name
    other = make_config(settings)
    provision(config)
    provision(other)

    teardown(config)

    left = what_is_left(aws_clients, "demo")
    assert all("demo-two-" in name for names in left.values() for name in names), left
    assert left["tables"] == ["demo-two-ItemsTable"]
    assert_one_complete_stack(aws_clients, other)
    assert provision(other).mutating_calls == []


def test_provision_after_teardown_builds_the_stack_again(provision, teardown, config, aws_clients):
    provision(config)
    teardown(config)

    again = provision(config)

    assert set(again.outcomes.values()) == {"created"}
    assert_one_complete_stack(aws_clients, config)


def test_teardown_also_removes_a_function_whose_route_was_since_removed_from_the_config(
        provision, teardown, config, settings, make_config, aws_clients):
    provision(config)
    del settings["lambda"]["functions"]["DeleteItemFunction"]

    teardown(make_config(settings))

    assert what_is_left(aws_clients) == NOTHING


# -- look-alikes without our tag survive provision and teardown ---------------------------------------------


def test_a_look_alike_table_survives_provision_and_teardown(provision, teardown, config, aws_clients):
    aws_clients.dynamodb.create_table(TableName="demo-ItemsTable", BillingMode="PAY_PER_REQUEST",
                                      AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                                      KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    put_items(aws_clients, {"id": {"S": "theirs"}})
    with pytest.raises(OwnershipError):
        provision(config)

    gone = teardown(config, options=Options(delete_data=True))

    assert [(c.kind, c.name, c.action) for c in gone.changes()] == [("table", "demo-ItemsTable", Action.SKIP)]
    assert gone.mutating_calls == []
    assert aws_clients.dynamodb.get_item(TableName="demo-ItemsTable", Key={"id": {"S": "theirs"}})["Item"]


def test_a_look_alike_function_survives_provision_and_teardown_while_the_rest_is_removed(provision, teardown, config, aws_clients):
    role = aws_clients.iam.create_role(RoleName="someone-elses-role", AssumeRolePolicyDocument=json.dumps(TRUST_POLICY))["Role"]
    aws_clients.awslambda.create_function(FunctionName="demo-GetItemFunction", Runtime="python3.12", Role=role["Arn"],
                                          Handler="app.handler", Code={"ZipFile": b"not ours"})
    with pytest.raises(OwnershipError):
        provision(config)  # steps 1 and 2 ran first: the table and the role are ours

    gone = teardown(config)

    assert ("function", "demo-GetItemFunction", Action.SKIP) in [(c.kind, c.name, c.action) for c in gone.changes()]
    assert gone.calls("DeleteFunction") == 0
    assert what_is_left(aws_clients) == {**NOTHING, "functions": ["demo-GetItemFunction"]}
    assert aws_clients.awslambda.get_function_configuration(FunctionName="demo-GetItemFunction")["Handler"] == "app.handler"


def test_a_look_alike_topic_survives_provision_and_teardown_while_the_rest_is_removed(provision, teardown, config, aws_clients):
    aws_clients.sns.create_topic(Name="demo-ItemsApiAlerts")
    with pytest.raises(OwnershipError):
        provision(config)  # steps 1-5 ran first

    gone = teardown(config)

    assert ("SNS topic", "demo-ItemsApiAlerts", Action.SKIP) in [(c.kind, c.name, c.action) for c in gone.changes()]
    assert gone.calls("DeleteTopic") == 0
    assert what_is_left(aws_clients) == {**NOTHING, "topics": [TOPIC_ARN]}


def test_a_look_alike_rest_api_survives_teardown_while_ours_is_deleted(provision, teardown, config, aws_clients):
    ours = provision(config).ctx.api_id
    foreign = aws_clients.apigateway.create_rest_api(name="demo-ItemsApi")["id"]

    gone = teardown(config)

    assert [a["id"] for a in rest_apis(aws_clients, "demo-ItemsApi")] == [foreign]
    assert ("REST API", f"demo-ItemsApi ({foreign})", Action.SKIP) in [(c.kind, c.name, c.action) for c in gone.changes()]
    assert ("REST API", f"demo-ItemsApi ({ours})", Action.DELETE) in [(c.kind, c.name, c.action) for c in gone.changes()]


def test_a_look_alike_role_survives_teardown(provision, teardown, config, aws_clients):
    aws_clients.iam.create_role(RoleName="demo-LambdaDynamoDBRole", AssumeRolePolicyDocument=json.dumps(TRUST_POLICY))
    with pytest.raises(OwnershipError):
        provision(config)

    gone = teardown(config)

    assert ("role", "demo-LambdaDynamoDBRole", Action.SKIP) in [(c.kind, c.name, c.action) for c in gone.changes()]
    assert gone.calls("DeleteRole") == 0
    assert aws_clients.iam.get_role(RoleName="demo-LambdaDynamoDBRole")["Role"]


def test_untagged_alarms_and_log_groups_with_the_stack_prefix_survive_teardown(provision, teardown, config, aws_clients):
    provision(config)
    aws_clients.cloudwatch.put_metric_alarm(AlarmName="demo-SomeoneElsesAlarm", Namespace="Custom", MetricName="M", Statistic="Sum",
                                            Period=60, EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold")
    aws_clients.logs.create_log_group(logGroupName="/aws/lambda/demo-SomeoneElsesFunction")

    teardown(config)

    assert what_is_left(aws_clients) == {**NOTHING, "alarms": ["demo-SomeoneElsesAlarm"],
                                         "log_groups": ["/aws/lambda/demo-SomeoneElsesFunction"]}


# -- a table holding items -----------------------------------------------------------------------------


def test_teardown_keeps_a_table_holding_items_and_removes_everything_else(provision, teardown, config, aws_clients):
    provision(config)
    put_items(aws_clients, {"id": {"S": "1"}, "name": {"S": "Widget"}})

    gone = teardown(config)

    [kept] = gone.changes("table")
    assert kept.action is Action.KEEP
    assert "--backup" in kept.note and "--delete-data" in kept.note
    assert gone.outcomes["DynamoDB table"] == "kept"
    assert gone.calls("DeleteTable") == 0
    assert what_is_left(aws_clients) == {**NOTHING, "tables": ["demo-ItemsTable"]}
    assert aws_clients.dynamodb.get_item(TableName="demo-ItemsTable", Key={"id": {"S": "1"}})["Item"]["name"] == {"S": "Widget"}


def test_teardown_main_exits_4_when_it_keeps_a_table_holding_items(provision, config, settings, tmp_path, aws_clients, capsys):
    provision(config)
    put_items(aws_clients, {"id": {"S": "1"}})

    code = teardown_main(["--config", write_settings(tmp_path, settings), "--target", "aws", "--yes"])

    assert code == 4
    assert "Kept table demo-ItemsTable" in capsys.readouterr().out
    assert what_is_left(aws_clients)["tables"] == ["demo-ItemsTable"]


def test_teardown_deletes_an_empty_table_without_being_told_to(provision, teardown, config, aws_clients):
    provision(config)

    gone = teardown(config)

    assert gone.changes("table")[0].action is Action.DELETE
    assert what_is_left(aws_clients)["tables"] == []


def test_teardown_with_delete_data_deletes_a_table_holding_items(provision, teardown, config, aws_clients):
    provision(config)
    put_items(aws_clients, {"id": {"S": "1"}})

    gone = teardown(config, options=Options(delete_data=True))

    assert gone.changes("table")[0].action is Action.DELETE
    assert what_is_left(aws_clients) == NOTHING
    assert gone.ctx.backup_location is None


def test_teardown_main_with_delete_data_exits_0_and_leaves_nothing(provision, config, settings, tmp_path, aws_clients):
    provision(config)
    put_items(aws_clients, {"id": {"S": "1"}})

    code = teardown_main(["--config", write_settings(tmp_path, settings), "--target", "aws", "--yes", "--delete-data"])

    assert code == 0
    assert what_is_left(aws_clients) == NOTHING


def test_teardown_with_backup_saves_the_items_to_a_json_file_before_deleting_the_table(
        provision, teardown, config, tmp_path, aws_clients, recorder):
    provision(config)
    items = [{"id": {"S": "1"}, "name": {"S": "Widget"}, "price": {"N": "9.5"}},
             {"id": {"S": "2"}, "name": {"S": "Gadget"}, "tags": {"SS": ["a", "b"]}}]
    put_items(aws_clients, *items)
    folder = tmp_path / "backups"

    gone = teardown(config, target="local", options=Options(backup=True, backup_dir=folder), hooks=(recorder.event,))

    [path] = folder.glob("demo-ItemsTable-*.json")
    assert gone.ctx.backup_location == str(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["table"] == "demo-ItemsTable"
    assert saved["count"] == 2
    assert sorted(saved["items"], key=lambda i: i["id"]["S"]) == items
    operations = [op for op, _ in recorder]
    assert max(i for i, op in enumerate(operations) if op == "Scan") < operations.index("DeleteTable")
    assert what_is_left(aws_clients) == NOTHING


def test_teardown_with_backup_on_aws_makes_an_on_demand_backup_before_deleting_the_table(provision, teardown, config, aws_clients):
    provision(config)
    put_items(aws_clients, {"id": {"S": "1"}})

    gone = teardown(config, target="aws", options=Options(backup=True))

    [backup] = aws_clients.dynamodb.list_backups()["BackupSummaries"]
    assert backup["TableName"] == "demo-ItemsTable"
    assert gone.ctx.backup_location == backup["BackupArn"]
    assert what_is_left(aws_clients) == NOTHING


def test_teardown_with_backup_of_an_empty_table_writes_no_file(provision, teardown, config, tmp_path, aws_clients):
    provision(config)
    folder = tmp_path / "backups"

    gone = teardown(config, target="local", options=Options(backup=True, backup_dir=folder))

    assert not folder.exists() or list(folder.iterdir()) == []
    assert gone.ctx.backup_location is None
    assert what_is_left(aws_clients) == NOTHING
