"""`provision.py --adopt` on moto: the console tutorial's hand-made stack taken over in place (crudstack/adopt.py)."""

from __future__ import annotations

import json

import pytest

from crudstack.cli import provision_main, teardown_main
from tests.support import console_stack

OURS = {"managed-by": "crudstack", "crudstack-stack": "tutorial"}
FIVE = ("CreateItemFunction", "GetItemsFunction", "GetItemFunction", "UpdateItemFunction", "DeleteItemFunction")


@pytest.fixture(autouse=True)
def managed_policies(monkeypatch):
    """moto leaves AWS managed policies out unless asked; the console tutorial attaches two of them."""
    from moto import settings as moto_settings

    monkeypatch.setitem(moto_settings.default_user_config, "iam", {"load_aws_managed_policies": True})


def _client(aws_clients):
    return lambda service: getattr(aws_clients, "awslambda" if service == "lambda" else service)


@pytest.fixture
def tutorial(settings, aws_clients):
    """The console's stack, 100 items in its table written as its own functions write them; settings for adopting it."""
    made = console_stack.build(_client(aws_clients))
    for i in range(100):
        aws_clients.dynamodb.put_item(TableName="ItemsTable", Item={
            "id": {"S": f"item-{i:03}"}, "name": {"S": f"name {i}"}, "description": {"S": "made in the console"}})
    settings.update(console_stack.tutorial_settings(settings))
    return made


def _tags(aws_clients, made) -> dict[str, dict]:
    c = aws_clients
    table_arn = c.dynamodb.describe_table(TableName="ItemsTable")["Table"]["TableArn"]
    return {
        "table": {t["Key"]: t["Value"] for t in c.dynamodb.list_tags_of_resource(ResourceArn=table_arn)["Tags"]},
        "role": {t["Key"]: t["Value"] for t in c.iam.list_role_tags(RoleName="LambdaDynamoDBRole")["Tags"]},
        **{name: c.awslambda.list_tags(Resource=arn)["Tags"] for name, arn in made["functions"].items()},
        "api": c.apigateway.get_rest_api(restApiId=made["api_id"]).get("tags") or {},
        "stage": c.apigateway.get_stage(restApiId=made["api_id"], stageName="prod").get("tags") or {},
    }


def test_plan_adopt_shows_take_over_changes_and_left_alone_and_writes_nothing(cli, tutorial, aws_clients, capsys):
    code, doc, err = cli(provision_main, "--plan", "--adopt", "--json", capsys=capsys)
    assert code == 2, err
    assert doc["aws_calls"]["writes"] == 0
    assert all(not {k: v for k, v in tags.items() if k in OURS} for tags in _tags(aws_clients, tutorial).values())
    steps = {s["number"]: s for s in doc["steps"]}
    taken = {(c["kind"], c["name"]) for c in steps["0"]["changes"] if c["action"] == "update"}
    assert ("take over table", "ItemsTable") in taken and ("take over role", "LambdaDynamoDBRole") in taken
    assert {("take over function", n) for n in FIVE if n != "GetItemFunction"} <= taken
    assert ("take over REST API", f"ItemsApi ({tutorial['api_id']})") in taken
    assert ("take over stage", "prod") in taken
    # What steps 1-7 then change, planned as if the tags were on: no "not ours" stop, and the console's
    # functions are updated, not created again; the fifth function is created.
    functions = {c["name"]: c["action"] for c in steps["3"]["changes"] if c["kind"] == "function"}
    assert functions == {"CreateItemFunction": "update", "GetItemsFunction": "update", "GetItemFunction": "create",
                         "UpdateItemFunction": "update", "DeleteItemFunction": "update"}
    role = {(c["kind"], c["name"], c["action"]) for c in steps["2"]["changes"]}
    assert ("managed policy", "AmazonDynamoDBFullAccess", "delete") in role and ("inline policy", "tutorial-items-access", "create") in role
    assert not any(c["kind"] == "REST API" and c["action"] == "create" for c in steps["4"]["changes"])
    assert any(c["kind"] == "alarm" and c["action"] == "create" for c in steps["7"]["changes"])
    assert "Take over the console's stack" in err or "take over" in json.dumps(doc)


def test_adopt_takes_the_stack_over_in_place_then_reruns_make_no_writes_and_teardown_keeps_the_table(cli, tutorial, aws_clients,
                                                                                                       capsys):
    c = aws_clients
    code, doc, err = cli(provision_main, "--adopt", "--json", capsys=capsys)
    assert code == 0, err
    assert "Plan:" in err and "take over table ItemsTable" in err          # the plan was shown before the writes
    tags = _tags(c, tutorial)
    assert all({k: v for k, v in t.items() if k in OURS} == OURS for t in tags.values()), tags
    assert doc["resources"]["rest_api"]["id"] == tutorial["api_id"]        # same API: the invoke URL stays
    assert c.apigateway.get_rest_api(restApiId=tutorial["api_id"])["name"] == "ItemsApi"
    assert len(c.apigateway.get_rest_apis()["items"]) == 1
    assert c.dynamodb.describe_table(TableName="ItemsTable")["Table"]["ItemCount"] == 100 or \
        c.dynamodb.scan(TableName="ItemsTable", Select="COUNT")["Count"] == 100
    assert sorted(f["FunctionName"] for f in c.awslambda.list_functions()["Functions"]) == sorted(FIVE)
    config = c.awslambda.get_function_configuration(FunctionName="CreateItemFunction")
    assert config["Handler"] == "create_item.lambda_handler" and config["Environment"]["Variables"]["TABLE_NAME"] == "ItemsTable"
    attached = c.iam.list_attached_role_policies(RoleName="LambdaDynamoDBRole")["AttachedPolicies"]
    assert attached == [] and c.iam.list_role_policies(RoleName="LambdaDynamoDBRole")["PolicyNames"] == ["tutorial-items-access"]
    paths = {r["path"]: set(r.get("resourceMethods") or {}) for r in c.apigateway.get_resources(restApiId=tutorial["api_id"])["items"]}
    assert paths["/items/{id}"] == {"GET", "PUT", "DELETE", "OPTIONS"} and paths["/items"] == {"GET", "POST", "OPTIONS"}
    stage = c.apigateway.get_stage(restApiId=tutorial["api_id"], stageName="prod")
    assert stage["methodSettings"]["*/*"]["throttlingRateLimit"] == 100.0
    assert len(c.cloudwatch.describe_alarms()["MetricAlarms"]) == 17

    for again in (("--json",), ("--adopt", "--json")):
        code, doc, err = cli(provision_main, *again, capsys=capsys)
        assert code == 0, err
        assert doc["aws_calls"]["writes"] == 0, (again, [s for s in doc["steps"] if s["outcome"] != "unchanged"])

    code, doc, err = cli(teardown_main, "--yes", "--json", capsys=capsys)
    assert code == 4, err                                                   # the table holds items: kept
    assert c.dynamodb.scan(TableName="ItemsTable", Select="COUNT")["Count"] == 100
    assert c.awslambda.list_functions()["Functions"] == [] and c.apigateway.get_rest_apis()["items"] == []
    assert "LambdaDynamoDBRole" not in [r["RoleName"] for r in c.iam.list_roles()["Roles"]]
    assert c.cloudwatch.describe_alarms()["MetricAlarms"] == []


def _nothing_tagged(aws_clients, made) -> bool:
    return all(not any(k in OURS for k in tags) for tags in _tags(aws_clients, made).values())


def test_a_table_keyed_by_a_number_stops_the_adoption_before_any_write(cli, settings, aws_clients, capsys):
    made = console_stack.build(_client(aws_clients), key_type="N")
    settings.update(console_stack.tutorial_settings(settings))
    code, _, err = cli(provision_main, "--adopt", capsys=capsys)
    assert code == 1
    assert "--adopt stopped before changing anything" in err and "partition key id of type String" in err
    assert "hash key id (N)" in err
    assert _nothing_tagged(aws_clients, made)


def test_a_function_in_another_runtime_family_stops_the_adoption_naming_it(cli, settings, aws_clients, capsys):
    made = console_stack.build(_client(aws_clients))
    aws_clients.awslambda.update_function_configuration(FunctionName="GetItemsFunction", Runtime="nodejs20.x")
    settings.update(console_stack.tutorial_settings(settings))
    code, _, err = cli(provision_main, "--adopt", capsys=capsys)
    assert code == 1 and "function GetItemsFunction runs runtime nodejs20.x" in err and "lambda.functions.GetItemsFunction" in err
    assert _nothing_tagged(aws_clients, made)


def test_two_rest_apis_with_the_tutorials_routes_are_listed_and_nothing_is_written(cli, settings, aws_clients, capsys):
    made = console_stack.build(_client(aws_clients))
    apigw = aws_clients.apigateway
    other = apigw.create_rest_api(name="MyOtherCrudApi")["id"]
    root = apigw.get_resources(restApiId=other)["items"][0]["id"]
    items = apigw.create_resource(restApiId=other, parentId=root, pathPart="items")["id"]
    apigw.create_resource(restApiId=other, parentId=items, pathPart="{id}")
    settings.update(console_stack.tutorial_settings(settings))
    code, _, err = cli(provision_main, "--plan", "--adopt", capsys=capsys)
    assert code == 1 and "2 REST APIs serving /items and /items/{id}" in err
    assert made["api_id"] in err and other in err and "'ItemsCrudApi'" in err and "'MyOtherCrudApi'" in err
    assert _nothing_tagged(aws_clients, made)


def test_without_adopt_the_console_stack_is_not_ours_and_the_error_says_how_to_adopt_it(cli, tutorial, aws_clients, capsys,
                                                                                         monkeypatch):
    monkeypatch.setattr("crudstack.steps.table.TAGS_SETTLE_S", 0.5)   # moto lists tags at once: no need to wait for late ones
    code, _, err = cli(provision_main, capsys=capsys)
    assert code == 1 and "--adopt" in err
    assert _nothing_tagged(aws_clients, tutorial)


# -- an adoption cut off between two AWS calls (Ctrl-C, a crash) is finished by running it again ---------------

CUTS = [
    # (operation, which call of it, after the call went through?)
    ("TagResource", 1, True),          # the table is ours, nothing else yet
    ("TagRole", 1, False),
    ("UpdateRestApi", 1, True),        # the API renamed, not yet tagged
    ("TagResource", 6, True),          # the API tagged, its stage not
    ("DetachRolePolicy", 1, True),     # taken over; step 2 half done
    ("UpdateFunctionCode", 2, True),   # a function with our code and the tutorial's handler setting
    ("CreateFunction", 1, True),       # the fifth function made, its answer lost
]


SAMPLED_CUTS = (("UpdateRestApi", 1, True), ("UpdateFunctionCode", 2, True))   # the rest: -m slow


@pytest.mark.parametrize(("operation", "nth", "after"),
                         [cut if cut in SAMPLED_CUTS else pytest.param(*cut, marks=pytest.mark.slow) for cut in CUTS],
                         ids=[f"{op}-{n}-{'after' if a else 'before'}" for op, n, a in CUTS])
def test_an_adoption_cut_off_anywhere_is_finished_by_the_next_run_without_duplicates(operation, nth, after, cli, tutorial,
                                                                                     aws_clients, inject, capsys):
    cut = inject(operation, KeyboardInterrupt(), skip=nth - 1, after=after)
    cli.hooks.append(cut.event)
    code, _, err = cli(provision_main, "--adopt", capsys=capsys)
    assert code == 130 and cut.failed == 1, err
    cli.hooks.clear()

    code, _, err = cli(provision_main, "--adopt", capsys=capsys)
    assert code == 0, err
    code, doc, err = cli(provision_main, "--json", capsys=capsys)
    assert code == 0 and doc["aws_calls"]["writes"] == 0, err
    c = aws_clients
    assert [a["id"] for a in c.apigateway.get_rest_apis()["items"]] == [tutorial["api_id"]]
    assert sorted(f["FunctionName"] for f in c.awslambda.list_functions()["Functions"]) == sorted(FIVE)
    assert all({k: v for k, v in t.items() if k in OURS} == OURS for t in _tags(c, tutorial).values())
    assert c.dynamodb.scan(TableName="ItemsTable", Select="COUNT")["Count"] == 100


def test_the_adopt_walkthrough_shows_the_console_made_stack_being_taken_over_with_the_calls_it_makes(
        cli, tutorial, aws_clients, monkeypatch, capsys):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))   # not a terminal: goes on without waiting
    code, out, err = cli(provision_main, "--adopt", "--walkthrough", capsys=capsys)
    assert code == 0, err
    start = out.index("=== Step 0 of 8: Take over the stack you built by hand in the console ===")
    step0 = out[start:out.index("=== Step 1 of 8:", start)]
    assert "DynamoDB -> Tables -> ItemsTable, partition key id (String): its items stay" in step0
    assert "Lambda -> Functions -> GetItemsFunction (GET /items)" in step0
    assert "remove AmazonDynamoDBFullAccess and CloudWatchFullAccess" in step0
    # The very calls the take-over makes, as boto3 code, before they run.
    assert "iam.tag_role(RoleName='LambdaDynamoDBRole', Tags=[" in step0
    assert f"apigateway.update_rest_api(restApiId='{tutorial['api_id']}', patchOperations=[{{'op': 'replace', 'path': '/name', " \
           "'value': 'ItemsApi'}])" in step0
    assert "lambda.tag_resource(Resource='arn:aws:lambda:us-east-1:123456789012:function:CreateItemFunction'" in step0
    assert out.index("Plan:") < start                                       # the whole plan came first
    assert all({k: v for k, v in t.items() if k in OURS} == OURS for t in _tags(aws_clients, tutorial).values())


def test_adopt_with_prefixed_names_finds_nothing_to_take_over_and_says_to_set_names_tutorial(cli, settings, aws_clients, capsys):
    made = console_stack.build(_client(aws_clients))          # prefixed names (demo-ItemsTable, ...) match none of it
    code, _, err = cli(provision_main, "--plan", "--adopt", capsys=capsys)
    assert code == 1 and "nothing to take over" in err and "set names: tutorial" in err
    assert _nothing_tagged(aws_clients, made)
    assert aws_clients.apigateway.get_rest_api(restApiId=made["api_id"])["name"] == "ItemsCrudApi"
