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


def test_an_adoption_cut_off_after_the_table_while_its_items_change_is_finished_keeping_the_items_as_the_user_left_them(
        cli, made, aws_clients, inject, capsys, monkeypatch):
    monkeypatch.setattr("crudstack.steps.table.TAGS_SETTLE_S", 0.5)   # moto lists tags at once
    cut = inject("TagResource", KeyboardInterrupt(), after=True)       # the table is ours, nothing else is
    cli.hooks.append(cut.event)
    code, _, err = cli(provision_main, "--adopt", capsys=capsys)
    assert code == 130 and cut.failed == 1, err
    cli.hooks.clear()
    ddb = aws_clients.dynamodb
    ddb.delete_item(TableName="ItemsTable", Key={"id": {"S": "0"}})                    # the user goes on using it
    ddb.put_item(TableName="ItemsTable", Item={"id": {"S": "abcdef234"}, "name": {"S": "meanwhile"}})
    ddb.put_item(TableName="ItemsTable", Item={"id": {"S": "1"}, "name": {"S": "renamed meanwhile"}})

    code, _, err = cli(provision_main, capsys=capsys)                  # half-adopted: a plain run still says --adopt
    assert code == 1 and "--adopt" in err, err
    code, _, err = cli(provision_main, "--adopt", capsys=capsys)
    assert code == 0, err

    items = {i["id"]["S"]: i["name"]["S"] for i in ddb.scan(TableName="ItemsTable")["Items"]}
    assert items == {"1": "renamed meanwhile", "2": "n2", "3": "n3", "4": "n4", "abcdef234": "meanwhile"}


def test_table_features_the_console_added_stay_stream_pitr_ttl_and_an_index(cli, made, aws_clients, capsys):
    ddb = aws_clients.dynamodb
    ddb.update_table(TableName="ItemsTable", StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}, {"AttributeName": "name", "AttributeType": "S"}],
                     GlobalSecondaryIndexUpdates=[{"Create": {
                         "IndexName": "byName", "KeySchema": [{"AttributeName": "name", "KeyType": "HASH"}],
                         "Projection": {"ProjectionType": "ALL"},
                         "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}}])
    ddb.update_continuous_backups(TableName="ItemsTable", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    ddb.update_time_to_live(TableName="ItemsTable", TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})

    code, _, err = cli(provision_main, "--adopt", capsys=capsys)

    assert code == 0, err
    table = ddb.describe_table(TableName="ItemsTable")["Table"]
    assert table["StreamSpecification"]["StreamEnabled"] and [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["byName"]
    backups = ddb.describe_continuous_backups(TableName="ItemsTable")["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    assert ddb.describe_time_to_live(TableName="ItemsTable")["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"


def test_a_function_with_layers_a_vpc_and_arm64_keeps_them_and_its_changed_settings_are_in_the_plan(cli, made, aws_clients,
                                                                                                     capsys):
    lam = aws_clients.awslambda
    ec2 = aws_clients.ec2
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="fn", Description="fn", VpcId=vpc)["GroupId"]
    layer = lam.publish_layer_version(LayerName="deps", Content={"ZipFile": b"PK\x05\x06" + b"\x00" * 18})["LayerVersionArn"]
    lam.update_function_configuration(FunctionName="CreateItemFunction", Handler="app.handler", Layers=[layer],
                                      Environment={"Variables": {"MY_SETTING": "1"}},
                                      VpcConfig={"SubnetIds": [subnet], "SecurityGroupIds": [group]})

    code, _, err = cli(provision_main, "--adopt", "--json", capsys=capsys)

    assert code == 0, err
    assert "Handler: app.handler -> create_item.lambda_handler" in err and "'MY_SETTING': '1'" in err   # shown, then replaced
    config = lam.get_function_configuration(FunctionName="CreateItemFunction")
    assert [x["Arn"] for x in config["Layers"]] == [layer] and config["VpcConfig"]["SubnetIds"] == [subnet]
    assert config["Handler"] == "create_item.lambda_handler" and "MY_SETTING" not in config["Environment"]["Variables"]


def test_adopt_on_a_stack_crudstack_made_itself_writes_nothing(cli, settings, aws_clients, capsys):
    settings.update(console_stack.tutorial_settings(settings))
    assert cli(provision_main, capsys=capsys)[0] == 0

    code, doc, err = cli(provision_main, "--adopt", "--json", capsys=capsys)

    assert code == 0 and doc["aws_calls"]["writes"] == 0, err


def test_teardown_right_after_plan_adopt_touches_nothing_of_the_console_stack(cli, made, aws_clients, capsys, monkeypatch):
    monkeypatch.setattr("crudstack.steps.table.TAGS_SETTLE_S", 0.5)
    assert cli(provision_main, "--plan", "--adopt", capsys=capsys)[0] == 2

    code, doc, err = cli(teardown_main, "--yes", "--json", capsys=capsys)

    assert code == 0 and doc["aws_calls"]["writes"] == 0, err
    assert _nothing_tagged(aws_clients, made)
    assert len(aws_clients.awslambda.list_functions()["Functions"]) == 4
    assert aws_clients.apigateway.get_rest_api(restApiId=made["api_id"])["name"] == "ItemsCrudApi"
    assert aws_clients.dynamodb.scan(TableName="ItemsTable", Select="COUNT")["Count"] == 5


def test_an_empty_untagged_api_named_api_name_beside_the_consoles_api_stops_the_adoption_naming_both(cli, made, aws_clients,
                                                                                                   capsys):
    empty = aws_clients.apigateway.create_rest_api(name="ItemsApi")["id"]

    code, _, err = cli(provision_main, "--plan", "--adopt", capsys=capsys)

    assert code == 1, err
    assert f"REST API {empty} ('ItemsApi') is named api.name but serves none of the tutorial's routes" in err
    assert made["api_id"] in err and "'ItemsCrudApi'" in err
