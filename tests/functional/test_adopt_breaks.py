"""`provision.py --adopt` against console stacks that differ from the tutorial's the ways real accounts do: more
stages, more APIs, more policies, more table features, other function settings (crudstack/adopt.py)."""

from __future__ import annotations

import json

import pytest

from crudstack.cli import provision_main
from tests.functional.test_adopt import OURS, _client, _nothing_tagged, managed_policies  # noqa: F401 (an autouse fixture)
from tests.support import console_stack


@pytest.fixture
def made(settings, aws_clients):
    """The console's stack, with items written under the tutorial's own kind of ids."""
    made = console_stack.build(_client(aws_clients))
    for i in range(5):
        aws_clients.dynamodb.put_item(TableName="ItemsTable", Item={"id": {"S": str(i)}, "name": {"S": f"n{i}"}})
    settings.update(console_stack.tutorial_settings(settings))
    return made


def _api_with_the_tutorials_routes(apigw, name: str) -> str:
    api = apigw.create_rest_api(name=name)["id"]
    root = apigw.get_resources(restApiId=api)["items"][0]["id"]
    items = apigw.create_resource(restApiId=api, parentId=root, pathPart="items")["id"]
    apigw.create_resource(restApiId=api, parentId=items, pathPart="{id}")
    return api


def test_an_empty_api_of_ours_beside_the_consoles_untagged_api_stops_the_adoption_naming_both(cli, made, aws_clients, capsys):
    # A REST API named api.name and tagged ours (a stray from an earlier run) that serves none of the routes, and the
    # console's untagged one that serves them (its invoke URL is the one users have): adopting ours alone would leave
    # the console's API out of the plan without a word.
    apigw = aws_clients.apigateway
    stray = apigw.create_rest_api(name="ItemsApi", tags={**OURS, "project": "serverless-crud-tutorial"})["id"]

    code, _, err = cli(provision_main, "--plan", "--adopt", capsys=capsys)

    assert code == 1, err
    assert f"REST API {stray} ('ItemsApi') is already crudstack's" in err and made["api_id"] in err and "'ItemsCrudApi'" in err
    assert _nothing_tagged(aws_clients, made)


def test_the_consoles_api_already_adopted_is_not_confused_with_another_untagged_one_serving_the_routes(cli, made, aws_clients,
                                                                                                     capsys):
    code, _, err = cli(provision_main, "--adopt", capsys=capsys)
    assert code == 0, err
    other = _api_with_the_tutorials_routes(aws_clients.apigateway, "MyOtherCrudApi")

    code, doc, err = cli(provision_main, "--adopt", "--json", capsys=capsys)

    assert code == 0 and doc["aws_calls"]["writes"] == 0, err
    assert f"REST API MyOtherCrudApi ({other})" in err and "left alone" in err


def test_a_function_whose_code_is_a_container_image_is_named_as_such(cli, made, aws_clients, capsys):
    lam = aws_clients.awslambda
    lam.delete_function(FunctionName="GetItemsFunction")
    lam.create_function(FunctionName="GetItemsFunction", PackageType="Image",
                        Role=aws_clients.iam.get_role(RoleName="LambdaDynamoDBRole")["Role"]["Arn"],
                        Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/items:latest"})

    code, _, err = cli(provision_main, "--plan", "--adopt", capsys=capsys)

    assert code == 1 and "function GetItemsFunction runs a container image (PackageType Image)" in err, err
    assert _nothing_tagged(aws_clients, made)


def test_the_plan_names_every_policy_and_stage_it_leaves_alone_and_that_teardown_deletes_them_with_their_resource(
        cli, made, aws_clients, capsys):
    iam = aws_clients.iam
    iam.put_role_policy(RoleName="LambdaDynamoDBRole", PolicyName="MyS3Access", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    iam.attach_role_policy(RoleName="LambdaDynamoDBRole", PolicyArn="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
    aws_clients.apigateway.create_deployment(restApiId=made["api_id"], stageName="dev")

    code, _, err = cli(provision_main, "--adopt", "--json", capsys=capsys)

    assert code == 0, err
    assert "inline policy MyS3Access [left in place: not crudstack's; teardown.py deletes it with the role]" in err
    assert "managed policy AmazonS3ReadOnlyAccess [left attached: not one the tutorial attaches; teardown.py detaches it" in err
    assert "stage dev [left alone: only the stage in api.stage is ours; teardown.py deletes it with the REST API]" in err
    # Left alone indeed, until teardown.
    assert "MyS3Access" in iam.list_role_policies(RoleName="LambdaDynamoDBRole")["PolicyNames"]
    assert {s["stageName"] for s in aws_clients.apigateway.get_stages(restApiId=made["api_id"])["item"]} == {"dev", "prod"}


def test_a_console_stage_under_another_name_is_left_alone_with_a_hint_to_take_it_over(cli, settings, aws_clients, capsys,
                                                                                     monkeypatch):
    monkeypatch.setattr(console_stack, "STAGE", "dev")
    made = console_stack.build(_client(aws_clients))
    settings.update(console_stack.tutorial_settings(settings))

    code, _, err = cli(provision_main, "--plan", "--adopt", "--json", capsys=capsys)

    assert code == 2, err
    assert "stage dev [left alone: only the stage in api.stage is ours; set api.stage: dev in config.yaml to take it over" in err
    assert aws_clients.apigateway.get_stage(restApiId=made["api_id"], stageName="dev").get("tags") in (None, {})
