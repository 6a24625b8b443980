"""`provision.py --adopt` against console stacks that differ from the tutorial's the ways real accounts do: more
stages, more APIs, more policies, more table features, other function settings (crudstack/adopt.py)."""

from __future__ import annotations

import json

import pytest

from crudstack.cli import provision_main, teardown_main
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
