"""Provisioning, whole runs against moto: what a fresh run makes, that a second run
changes nothing, that one changed setting changes just that, and that a resource
with our name but not our tag stops the run."""

from __future__ import annotations

import json
import re

import boto3
import pytest

from crudstack.cli import provision_main
from crudstack.config import Config
from crudstack.errors import DeploymentError, OwnershipError
from crudstack.packaging import build_package
from crudstack.steps.role import TRUST_POLICY
from tests.functional.conftest import ACCOUNT, REGION, assert_one_complete_stack, permission_statements, rest_apis

OURS = {"managed-by": "crudstack", "crudstack-stack": "shop"}


@pytest.fixture
def shop(settings, make_config) -> Config:
    """A stack whose every setting differs from the defaults, so each check proves the setting was applied."""
    settings["stack"] = "shop"
    settings["tags"] = {"project": "tutorial", "team": "payments"}
    settings["table"] = {"name": "Orders", "partition_key": "sku", "billing_mode": "PAY_PER_REQUEST"}
    settings["role"] = {"name": "OrdersRole", "tutorial_managed_policies": False}
    settings["lambda"].update(runtime="python3.11", memory_mb=256, timeout_s=20)
    settings["lambda"]["functions"]["GetItemsFunction"].update(memory_mb=512, timeout_s=30, environment={"PAGE_SIZE": "50"})
    settings["api"] = {"name": "OrdersApi", "stage": "prod",
                       "cors": {"allowed_origins": ["https://shop.example.com", "http://localhost:3000"], "max_age_s": 60}}
    settings["monitoring"] = {
        "log_retention_days": 30, "alerts_topic": "OrdersAlerts", "alert_email": "ops@example.com",
        "alarms": {"period_s": 300, "evaluation_periods": 2, "function_errors": 2, "function_throttles": 3,
                   "function_duration_p99_ms": 5000, "api_5xx_errors": 4, "api_latency_p99_ms": 2500},
    }
    return make_config(settings)


def tags_of(pairs) -> dict:
    return {t["Key"]: t["Value"] for t in pairs} if isinstance(pairs, list) else dict(pairs)


def the_api(aws_clients, cfg: Config) -> dict:
    apis = rest_apis(aws_clients, cfg.api_name)
    assert len(apis) == 1
    return apis[0]


# -- a fresh provision -----------------------------------------------------------------------------


def test_a_fresh_provision_reports_every_step_created(provision, shop):
    first = provision(shop)

    assert first.outcomes == {
        "DynamoDB table": "created", "IAM role": "created", "Lambda functions": "created",
        "API Gateway REST API": "created", "Deploy to stage": "created", "Monitoring: logs, alerts, alarms": "created",
    }


def test_the_table_has_the_configured_partition_key_and_on_demand_billing(provision, shop, aws_clients):
    provision(shop)

    table = aws_clients.dynamodb.describe_table(TableName="shop-Orders")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "sku", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "sku", "AttributeType": "S"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TableStatus"] == "ACTIVE"


def test_the_role_trusts_lambda_and_its_policy_reaches_only_the_table_and_the_functions_log_groups(provision, shop, aws_clients):
    provision(shop)

    iam = aws_clients.iam
    role = iam.get_role(RoleName="shop-OrdersRole")["Role"]
    assert role["AssumeRolePolicyDocument"] == TRUST_POLICY
    assert iam.list_attached_role_policies(RoleName="shop-OrdersRole")["AttachedPolicies"] == []
    assert iam.list_role_policies(RoleName="shop-OrdersRole")["PolicyNames"] == ["shop-items-access"]
    document = iam.get_role_policy(RoleName="shop-OrdersRole", PolicyName="shop-items-access")["PolicyDocument"]
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert set(by_sid) == {"ItemsTable", "OwnLogGroups"}
    assert by_sid["ItemsTable"]["Resource"] == f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/shop-Orders"
    assert all(action.startswith("dynamodb:") and "*" not in action for action in by_sid["ItemsTable"]["Action"])
    assert sorted(by_sid["OwnLogGroups"]["Resource"]) == sorted(
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/shop-{base}:*" for base in shop.lambda_.functions)
    assert sorted(by_sid["OwnLogGroups"]["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert all(s["Effect"] == "Allow" for s in document["Statement"])


def test_each_function_has_the_configured_runtime_memory_timeout_environment_handler_role_and_code(provision, shop, aws_clients):
    provision(shop)

    role_arn = f"arn:aws:iam::{ACCOUNT}:role/shop-OrdersRole"
    for base, fn in shop.lambda_.functions.items():
        got = aws_clients.awslambda.get_function(FunctionName=f"shop-{base}")["Configuration"]
        override = base == "GetItemsFunction"
        assert got["Runtime"] == "python3.11"
        assert got["Handler"] == fn.handler
        assert got["MemorySize"] == (512 if override else 256)
        assert got["Timeout"] == (30 if override else 20)
        assert got["Role"] == role_arn
        expected_env = {"TABLE_NAME": "shop-Orders", "ALLOWED_ORIGINS": "https://shop.example.com,http://localhost:3000",
                        **({"PAGE_SIZE": "50"} if override else {})}
        assert got["Environment"]["Variables"] == expected_env
        assert got["CodeSha256"] == build_package(shop.code_dir, fn.module).sha256


def test_the_api_has_items_and_item_id_with_each_route_proxied_to_its_own_function(provision, shop, aws_clients):
    provision(shop)

    api = the_api(aws_clients, shop)
    resources = {r["path"]: r for r in aws_clients.apigateway.get_resources(restApiId=api["id"], embed=["methods"])["items"]}
    assert sorted(resources) == ["/", "/items", "/items/{id}"]
    assert sorted(resources["/items"]["resourceMethods"]) == ["GET", "OPTIONS", "POST"]  # OPTIONS: CORS preflight
    assert sorted(resources["/items/{id}"]["resourceMethods"]) == ["DELETE", "GET", "OPTIONS", "PUT"]
    assert not resources["/"].get("resourceMethods")
    expected = {("POST", "/items"): "CreateItemFunction", ("GET", "/items"): "GetItemsFunction",
                ("GET", "/items/{id}"): "GetItemFunction", ("PUT", "/items/{id}"): "UpdateItemFunction",
                ("DELETE", "/items/{id}"): "DeleteItemFunction"}
    for (method, path), base in expected.items():
        rid = resources[path]["id"]
        assert aws_clients.apigateway.get_method(restApiId=api["id"], resourceId=rid, httpMethod=method)["authorizationType"] == "NONE"
        integration = aws_clients.apigateway.get_integration(restApiId=api["id"], resourceId=rid, httpMethod=method)
        assert integration["type"] == "AWS_PROXY"
        assert integration["httpMethod"] == "POST"
        function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:shop-{base}"
        assert integration["uri"] == f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations"


def test_each_function_may_be_invoked_only_by_this_api_on_its_own_route(provision, shop, aws_clients):
    provision(shop)

    api_id = the_api(aws_clients, shop)["id"]
    routes = {"CreateItemFunction": "POST/items", "GetItemsFunction": "GET/items", "GetItemFunction": "GET/items/*",
              "UpdateItemFunction": "PUT/items/*", "DeleteItemFunction": "DELETE/items/*"}
    for base, route in routes.items():
        policy = json.loads(aws_clients.awslambda.get_policy(FunctionName=f"shop-{base}")["Policy"])
        assert len(policy["Statement"]) == 1
        [statement] = permission_statements(aws_clients, shop, base)
        assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
        assert statement["Action"] == "lambda:InvokeFunction"
        assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/*/{route}"


def test_stage_prod_points_at_a_deployment_of_the_api(provision, shop, aws_clients):
    first = provision(shop)

    api_id = the_api(aws_clients, shop)["id"]
    stage = aws_clients.apigateway.get_stage(restApiId=api_id, stageName="prod")
    deployments = aws_clients.apigateway.get_deployments(restApiId=api_id)["items"]
    assert [d["id"] for d in deployments] == [stage["deploymentId"]]
    assert first.ctx.deployment_id == stage["deploymentId"]
    assert [s["stageName"] for s in aws_clients.apigateway.get_stages(restApiId=api_id)["item"]] == ["prod"]


def test_each_functions_log_group_keeps_logs_for_the_configured_days(provision, shop, aws_clients):
    provision(shop)

    groups = aws_clients.logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/shop-")["logGroups"]
    assert {g["logGroupName"]: g.get("retentionInDays") for g in groups} == {
        f"/aws/lambda/shop-{base}": 30 for base in shop.lambda_.functions}


def test_the_alerts_topic_exists_and_mails_the_configured_address(provision, shop, aws_clients):
    provision(shop)

    arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:shop-OrdersAlerts"
    assert arn in [t["TopicArn"] for t in aws_clients.sns.list_topics()["Topics"]]
    subscriptions = aws_clients.sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", "ops@example.com")]


def test_seventeen_alarms_watch_the_right_metrics_with_the_configured_thresholds_and_notify_the_topic(provision, shop, aws_clients):
    provision(shop)

    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:shop-OrdersAlerts"
    alarms = {a["AlarmName"]: a for a in aws_clients.cloudwatch.describe_alarms(AlarmNamePrefix="shop-")["MetricAlarms"]}
    assert len(alarms) == 17

    def check(name, namespace, metric, dimensions, threshold, *, p99=False):
        alarm = alarms.pop(name)
        assert (alarm["Namespace"], alarm["MetricName"]) == (namespace, metric)
        assert sorted(alarm["Dimensions"], key=lambda d: d["Name"]) == dimensions
        if p99:
            assert alarm["ExtendedStatistic"] == "p99" and "Statistic" not in alarm
            assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        else:
            assert alarm["Statistic"] == "Sum" and "ExtendedStatistic" not in alarm
            assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["Threshold"] == threshold
        assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (300, 2, 2)
        assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic]
        assert alarm["TreatMissingData"] == "notBreaching"

    for base in shop.lambda_.functions:
        dims = [{"Name": "FunctionName", "Value": f"shop-{base}"}]
        check(f"shop-{base}-Errors", "AWS/Lambda", "Errors", dims, 2.0)
        check(f"shop-{base}-Throttles", "AWS/Lambda", "Throttles", dims, 3.0)
        check(f"shop-{base}-DurationP99", "AWS/Lambda", "Duration", dims, 5000.0, p99=True)
    api_dims = [{"Name": "ApiName", "Value": "shop-OrdersApi"}, {"Name": "Stage", "Value": "prod"}]
    check("shop-OrdersApi-5XXError", "AWS/ApiGateway", "5XXError", api_dims, 4.0)
    check("shop-OrdersApi-LatencyP99", "AWS/ApiGateway", "Latency", api_dims, 2500.0, p99=True)
    assert alarms == {}


def test_every_resource_is_tagged_as_ours_with_the_stack_name_and_the_users_tags(provision, shop, aws_clients):
    provision(shop)
    c = aws_clients
    wanted = {**OURS, "project": "tutorial", "team": "payments"}

    table_arn = c.dynamodb.describe_table(TableName="shop-Orders")["Table"]["TableArn"]
    assert tags_of(c.dynamodb.list_tags_of_resource(ResourceArn=table_arn)["Tags"]) == wanted
    assert tags_of(c.iam.list_role_tags(RoleName="shop-OrdersRole")["Tags"]) == wanted
    for base in shop.lambda_.functions:
        arn = c.awslambda.get_function(FunctionName=f"shop-{base}")["Configuration"]["FunctionArn"]
        assert c.awslambda.list_tags(Resource=arn)["Tags"] == wanted
    api = the_api(c, shop)
    assert api["tags"] == wanted
    assert c.apigateway.get_stage(restApiId=api["id"], stageName="prod")["tags"] == wanted
    for base in shop.lambda_.functions:
        assert c.logs.list_tags_log_group(logGroupName=f"/aws/lambda/shop-{base}")["tags"] == wanted
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:shop-OrdersAlerts"
    assert tags_of(c.sns.list_tags_for_resource(ResourceArn=topic)["Tags"]) == wanted
    alarms = c.cloudwatch.describe_alarms(AlarmNamePrefix="shop-")["MetricAlarms"]
    for alarm in alarms:
        assert tags_of(c.cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]) == wanted, alarm["AlarmName"]


def test_the_stack_name_keeps_two_stacks_apart_in_one_account(provision, config, shop, aws_clients):
    provision(config)
    provision(shop)

    assert_one_complete_stack(aws_clients, config)
    assert_one_complete_stack(aws_clients, shop)


# -- a second provision ------------------------------------------------------------------------------


def test_a_second_provision_makes_no_mutating_call_and_reports_every_step_unchanged(provision, config):
    first = provision(config)
    second = provision(config)

    assert first.aws.stats.writes > 0
    assert second.mutating_calls == []
    assert second.aws.stats.writes == 0
    assert set(second.outcomes.values()) == {"unchanged"}
    assert len(second.outcomes) == 6
    assert second.ctx.api_id == first.ctx.api_id
    assert second.ctx.deployment_id == first.ctx.deployment_id


def test_a_second_provision_with_every_setting_changed_from_the_defaults_makes_no_mutating_call(provision, shop):
    provision(shop)
    second = provision(shop)

    assert second.mutating_calls == []
    assert set(second.outcomes.values()) == {"unchanged"}


# -- one changed setting changes just that ------------------------------------------------------------


def test_changing_the_default_memory_updates_the_five_functions_and_nothing_else(provision, settings, make_config, recorder, aws_clients):
    provision(make_config(settings))
    settings["lambda"]["memory_mb"] = 512
    bigger = make_config(settings)

    second = provision(bigger, hooks=(recorder.event,))

    assert second.mutating_calls == ["lambda.UpdateFunctionConfiguration"] * 5
    assert sorted(p["FunctionName"] for p in recorder.params("UpdateFunctionConfiguration")) == sorted(
        bigger.function_name(b) for b in bigger.lambda_.functions)
    assert {c.name: set(c.diffs) for c in second.changes("function")} == {bigger.function_name(b): {"MemorySize"} for b in bigger.lambda_.functions}
    assert second.outcomes["Lambda functions"] == "updated"
    assert {t: o for t, o in second.outcomes.items() if t != "Lambda functions"} == dict.fromkeys(
        ["DynamoDB table", "IAM role", "API Gateway REST API", "Deploy to stage", "Monitoring: logs, alerts, alarms"], "unchanged")
    for base in bigger.lambda_.functions:
        assert aws_clients.awslambda.get_function_configuration(FunctionName=bigger.function_name(base))["MemorySize"] == 512
    assert provision(bigger).mutating_calls == []


def test_changing_one_functions_memory_updates_only_that_function(provision, settings, make_config, recorder):
    provision(make_config(settings))
    settings["lambda"]["functions"]["DeleteItemFunction"]["memory_mb"] = 1024

    second = provision(make_config(settings), hooks=(recorder.event,))

    assert second.mutating_calls == ["lambda.UpdateFunctionConfiguration"]
    assert [p["FunctionName"] for p in recorder.params("UpdateFunctionConfiguration")] == ["demo-DeleteItemFunction"]
    assert recorder.params("UpdateFunctionConfiguration")[0]["MemorySize"] == 1024


def test_changing_one_handlers_code_uploads_only_that_function_and_does_not_redeploy_the_api(
        provision, config, code_dir, recorder, aws_clients):
    first = provision(config)
    handler = code_dir / "get_item.py"
    handler.write_text(handler.read_text(encoding="utf-8") + "\n# a comment is a code change too\n", encoding="utf-8")

    second = provision(config, hooks=(recorder.event,))

    assert second.mutating_calls == ["lambda.UpdateFunctionCode"]
    assert [p["FunctionName"] for p in recorder.params("UpdateFunctionCode")] == ["demo-GetItemFunction"]
    assert second.calls("CreateDeployment") == 0
    assert second.ctx.deployment_id == first.ctx.deployment_id
    assert [c.name for c in second.changes() if c.action.mutates] == ["demo-GetItemFunction"]
    new_sha = build_package(code_dir, "get_item").sha256
    assert aws_clients.awslambda.get_function_configuration(FunctionName="demo-GetItemFunction")["CodeSha256"] == new_sha
    assert provision(config).mutating_calls == []


def test_changing_the_shared_common_package_uploads_every_functions_code(provision, config, code_dir):
    provision(config)
    shared = code_dir / "common" / "__init__.py"
    shared.write_text(shared.read_text(encoding="utf-8") + "\n# shared change\n", encoding="utf-8")

    second = provision(config)

    assert second.mutating_calls == ["lambda.UpdateFunctionCode"] * 5


def test_changing_log_retention_only_sets_the_retention_of_the_five_log_groups(provision, settings, make_config, aws_clients):
    provision(make_config(settings))
    settings["monitoring"]["log_retention_days"] = 90

    second = provision(make_config(settings))

    assert second.mutating_calls == ["logs.PutRetentionPolicy"] * 5
    groups = aws_clients.logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/demo-")["logGroups"]
    assert [g["retentionInDays"] for g in groups] == [90] * 5


def test_changing_the_function_errors_threshold_puts_only_the_five_errors_alarms(provision, settings, make_config, recorder, aws_clients):
    provision(make_config(settings))
    settings["monitoring"]["alarms"]["function_errors"] = 5

    second = provision(make_config(settings), hooks=(recorder.event,))

    assert second.mutating_calls == ["cloudwatch.PutMetricAlarm"] * 5
    names = sorted(p["AlarmName"] for p in recorder.params("PutMetricAlarm"))
    assert names == sorted(f"demo-{b}-Errors" for b in ("CreateItemFunction", "GetItemsFunction", "GetItemFunction",
                                                       "UpdateItemFunction", "DeleteItemFunction"))
    alarms = aws_clients.cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
    assert [a["Threshold"] for a in alarms] == [5.0] * 5


def test_changing_the_api_latency_threshold_puts_only_the_api_latency_alarm(provision, settings, make_config, recorder, aws_clients):
    provision(make_config(settings))
    settings["monitoring"]["alarms"]["api_latency_p99_ms"] = 1500

    second = provision(make_config(settings), hooks=(recorder.event,))

    assert second.mutating_calls == ["cloudwatch.PutMetricAlarm"]
    assert [p["AlarmName"] for p in recorder.params("PutMetricAlarm")] == ["demo-ItemsApi-LatencyP99"]
    [alarm] = aws_clients.cloudwatch.describe_alarms(AlarmNames=["demo-ItemsApi-LatencyP99"])["MetricAlarms"]
    assert alarm["Threshold"] == 1500.0


def test_changing_the_alert_email_subscribes_the_new_address_and_unsubscribes_the_old(provision, settings, make_config, aws_clients):
    settings["monitoring"]["alert_email"] = "old@example.com"
    provision(make_config(settings))
    settings["monitoring"]["alert_email"] = "new@example.com"

    second = provision(make_config(settings))

    assert second.mutating_calls == ["sns.Subscribe", "sns.Unsubscribe"]
    arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:demo-ItemsApiAlerts"
    subscriptions = aws_clients.sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert [s["Endpoint"] for s in subscriptions] == ["new@example.com"]


# -- a look-alike that is not ours ------------------------------------------------------------------


def test_a_look_alike_table_stops_provision_with_an_ownership_error_naming_it(provision, config, aws_clients):
    aws_clients.dynamodb.create_table(TableName="demo-ItemsTable", BillingMode="PAY_PER_REQUEST",
                                      AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                                      KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    runs = []

    with pytest.raises(OwnershipError) as raised:
        provision(config, run_out=runs)

    assert raised.value.resource == "table demo-ItemsTable"
    assert "Step 1" in raised.value.step
    assert runs[0].mutating_calls == []
    table_arn = aws_clients.dynamodb.describe_table(TableName="demo-ItemsTable")["Table"]["TableArn"]
    assert aws_clients.dynamodb.list_tags_of_resource(ResourceArn=table_arn)["Tags"] == []


def test_provision_main_exits_1_and_names_a_look_alike_table(settings, tmp_path, aws_clients, capsys):
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    aws_clients.dynamodb.create_table(TableName="demo-ItemsTable", BillingMode="PAY_PER_REQUEST",
                                      AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                                      KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])

    code = provision_main(["--config", str(path), "--target", "aws"])

    assert code == 1
    err = capsys.readouterr().err
    assert "table demo-ItemsTable" in err
    assert "not tagged" in err
    assert aws_clients.iam.list_roles()["Roles"] == []  # it stopped at step 1


def test_a_look_alike_function_stops_provision_at_step_3_and_is_not_changed(provision, config, aws_clients, code_dir):
    role = aws_clients.iam.create_role(RoleName="someone-elses-role", AssumeRolePolicyDocument=json.dumps(TRUST_POLICY))["Role"]
    aws_clients.awslambda.create_function(FunctionName="demo-GetItemFunction", Runtime="python3.9", Role=role["Arn"],
                                          Handler="app.handler", Code={"ZipFile": b"not ours"}, MemorySize=256)

    with pytest.raises(OwnershipError) as raised:
        provision(config)

    assert raised.value.resource == "function demo-GetItemFunction"
    assert "Step 3" in raised.value.step
    got = aws_clients.awslambda.get_function_configuration(FunctionName="demo-GetItemFunction")
    assert (got["Runtime"], got["Handler"], got["MemorySize"], got["Role"]) == ("python3.9", "app.handler", 256, role["Arn"])


def test_a_look_alike_role_stops_provision_at_step_2(provision, config, aws_clients):
    aws_clients.iam.create_role(RoleName="demo-LambdaDynamoDBRole", AssumeRolePolicyDocument=json.dumps(TRUST_POLICY))

    with pytest.raises(OwnershipError) as raised:
        provision(config)

    assert raised.value.resource == "role demo-LambdaDynamoDBRole"
    assert aws_clients.iam.list_role_policies(RoleName="demo-LambdaDynamoDBRole")["PolicyNames"] == []


def test_a_look_alike_rest_api_stops_provision_with_an_ownership_error(provision, config, aws_clients):
    foreign = aws_clients.apigateway.create_rest_api(name="demo-ItemsApi")

    with pytest.raises(OwnershipError) as raised:
        provision(config)

    assert raised.value.resource == "REST API demo-ItemsApi"
    assert "Step 4" in raised.value.step
    assert [a["id"] for a in rest_apis(aws_clients, "demo-ItemsApi")] == [foreign["id"]]
    assert [r["path"] for r in aws_clients.apigateway.get_resources(restApiId=foreign["id"])["items"]] == ["/"]


def test_a_look_alike_topic_stops_provision_at_step_7_and_gets_no_alarms(provision, config, aws_clients):
    aws_clients.sns.create_topic(Name="demo-ItemsApiAlerts")

    with pytest.raises(OwnershipError) as raised:
        provision(config)

    assert raised.value.resource == "SNS topic demo-ItemsApiAlerts"
    assert aws_clients.cloudwatch.describe_alarms(AlarmNamePrefix="demo-")["MetricAlarms"] == []


# -- drift: what someone changed by hand is put back, and only that -------------------------------------------


def test_a_function_setting_changed_by_hand_is_put_back(provision, config, aws_clients, recorder):
    provision(config)
    aws_clients.awslambda.update_function_configuration(FunctionName="demo-GetItemsFunction", MemorySize=2048, Timeout=60)

    second = provision(config, hooks=(recorder.event,))

    assert second.mutating_calls == ["lambda.UpdateFunctionConfiguration"]
    assert [p["FunctionName"] for p in recorder.params("UpdateFunctionConfiguration")] == ["demo-GetItemsFunction"]
    got = aws_clients.awslambda.get_function_configuration(FunctionName="demo-GetItemsFunction")
    assert (got["MemorySize"], got["Timeout"]) == (128, 10)


def test_an_inline_policy_widened_by_hand_is_narrowed_again(provision, config, aws_clients):
    provision(config)
    wide = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]}
    aws_clients.iam.put_role_policy(RoleName="demo-LambdaDynamoDBRole", PolicyName="demo-items-access", PolicyDocument=json.dumps(wide))

    second = provision(config)

    assert second.mutating_calls == ["iam.PutRolePolicy"]
    document = aws_clients.iam.get_role_policy(RoleName="demo-LambdaDynamoDBRole", PolicyName="demo-items-access")["PolicyDocument"]
    assert "*" not in [s["Resource"] for s in document["Statement"]]


def test_a_method_deleted_by_hand_is_put_back_without_a_redeploy_as_the_live_deployment_still_has_it(provision, config, aws_clients):
    first = provision(config)
    api_id = first.ctx.api_id
    aws_clients.apigateway.delete_method(restApiId=api_id, resourceId=first.ctx.resource_ids["/items/{id}"], httpMethod="PUT")

    second = provision(config)

    assert sorted(second.mutating_calls) == ["apigateway.PutIntegration", "apigateway.PutMethod"]
    assert aws_clients.apigateway.get_stage(restApiId=api_id, stageName="prod")["deploymentId"] == first.ctx.deployment_id
    assert_one_complete_stack(aws_clients, config)


def test_an_integration_redeployed_elsewhere_by_hand_is_put_back_and_the_stage_returns_to_our_deployment(provision, config, aws_clients):
    first = provision(config)
    api_id = first.ctx.api_id
    elsewhere = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/arn:aws:lambda:{REGION}:{ACCOUNT}:function:demo-GetItemsFunction/invocations"
    aws_clients.apigateway.put_integration(restApiId=api_id, resourceId=first.ctx.resource_ids["/items"], httpMethod="POST",
                                           type="AWS_PROXY", integrationHttpMethod="POST", uri=elsewhere)
    aws_clients.apigateway.update_stage(restApiId=api_id, stageName="prod", patchOperations=[
        {"op": "replace", "path": "/deploymentId", "value": aws_clients.apigateway.create_deployment(restApiId=api_id)["id"]}])

    second = provision(config)

    # Our earlier deployment has exactly the shape config asks for, so it is reused, not made again.
    assert sorted(second.mutating_calls) == ["apigateway.PutIntegration", "apigateway.UpdateStage"]
    stage = aws_clients.apigateway.get_stage(restApiId=api_id, stageName="prod")
    assert stage["deploymentId"] == second.ctx.deployment_id == first.ctx.deployment_id
    integration = aws_clients.apigateway.get_integration(restApiId=api_id, resourceId=first.ctx.resource_ids["/items"], httpMethod="POST")
    assert integration["uri"].endswith("function:demo-CreateItemFunction/invocations")
    assert provision(config).mutating_calls == []


def test_an_alarm_deleted_by_hand_is_the_only_one_put_back(provision, config, aws_clients, recorder):
    provision(config)
    aws_clients.cloudwatch.delete_alarms(AlarmNames=["demo-ItemsApi-5XXError"])

    second = provision(config, hooks=(recorder.event,))

    assert second.mutating_calls == ["cloudwatch.PutMetricAlarm"]
    assert [p["AlarmName"] for p in recorder.params("PutMetricAlarm")] == ["demo-ItemsApi-5XXError"]


def test_a_changed_partition_key_stops_the_run_because_dynamodb_cannot_change_a_key(provision, settings, make_config):
    provision(make_config(settings))
    settings["table"]["partition_key"] = "sku"
    runs = []

    with pytest.raises(DeploymentError) as raised:
        provision(make_config(settings), run_out=runs)

    assert raised.value.resource == "table demo-ItemsTable"
    assert "cannot change a key" in raised.value.cause
    assert runs[0].mutating_calls == []


# -- routes added and removed ------------------------------------------------------------------------------------


def test_adding_a_route_creates_its_function_method_permission_alarms_and_a_new_deployment(provision, settings, make_config, aws_clients):
    first = provision(make_config(settings))
    settings["lambda"]["functions"]["PatchItemFunction"] = {"handler": "update_item.lambda_handler", "route": "PATCH /items/{id}"}
    bigger = make_config(settings)

    second = provision(bigger)

    assert second.mutating_calls.count("lambda.CreateFunction") == 1
    assert second.mutating_calls.count("cloudwatch.PutMetricAlarm") == 3
    assert "apigateway.CreateDeployment" in second.mutating_calls
    assert second.ctx.deployment_id != first.ctx.deployment_id
    assert_one_complete_stack(aws_clients, bigger)
    assert provision(bigger).mutating_calls == []


def test_removing_a_route_removes_its_method_alarms_and_function_and_redeploys(provision, teardown, settings, make_config, aws_clients):
    provision(make_config(settings))
    del settings["lambda"]["functions"]["DeleteItemFunction"]
    smaller = make_config(settings)

    second = provision(smaller)

    assert "apigateway.DeleteMethod" in second.mutating_calls
    assert second.mutating_calls.count("cloudwatch.DeleteAlarms") == 3
    assert "apigateway.CreateDeployment" in second.mutating_calls
    functions = [f["FunctionName"] for f in aws_clients.awslambda.list_functions()["Functions"]]
    assert "demo-DeleteItemFunction" not in functions
    assert_one_complete_stack(aws_clients, smaller)
    assert provision(smaller).mutating_calls == []
    teardown(smaller)
    assert aws_clients.awslambda.list_functions()["Functions"] == []


# -- partitions: aws-cn and aws-us-gov ---------------------------------------------------------------

ARN_PARTITION = re.compile(r"\barn:([a-z-]*):")


def arn_partitions(value) -> set[str]:
    """The partition of every ARN in a call's parameters, JSON policy documents included."""
    if isinstance(value, dict):
        return set().union(*(arn_partitions(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(arn_partitions(v) for v in value)) if value else set()
    return set(ARN_PARTITION.findall(value)) if isinstance(value, str) else set()


def iam_region_in_host(request, **_):
    """moto reads a request's region from its host, and botocore sends IAM calls for us-gov-west-1 to
    the partition-wide iam.us-gov.amazonaws.com, which moto takes for region "us-gov" of partition aws:
    it would answer arn:aws: role ARNs and know only arn:aws: managed policies. AWS answers
    arn:aws-us-gov:, so for moto the host is made to name the region."""
    request.url = request.url.replace("://iam.us-gov.amazonaws.com", "://iam.us-gov-west-1.amazonaws.com")


@pytest.mark.parametrize(("region", "partition", "suffix"), [
    ("cn-north-1", "aws-cn", "amazonaws.com.cn"),
    ("us-gov-west-1", "aws-us-gov", "amazonaws.com"),
])
def test_provision_in_a_china_or_govcloud_region_names_that_partition_in_every_arn_and_the_invoke_url(
        region, partition, suffix, settings, cli, capsys, recorder, tmp_path, monkeypatch):
    from moto import settings as moto_settings

    # moto leaves AWS managed policies out unless asked; the tutorial's two are attached here so that their
    # ARNs are checked too. moto's sts:GetCallerIdentity already answers arn:aws-cn: / arn:aws-us-gov:
    # in these regions, as AWS does, so the partition under test really comes from STS.
    monkeypatch.setitem(moto_settings.default_user_config, "iam", {"load_aws_managed_policies": True})
    settings["region"] = region
    settings["role"]["tutorial_managed_policies"] = True
    cli.hooks += [recorder.event, ("before-send.iam", iam_region_in_host)]

    code, doc, err = cli(provision_main, "--json", "--outputs", str(tmp_path / "out"), capsys=capsys)

    assert code == 0, err
    # Every ARN the run sent: resources, policy documents, integration URIs, SourceArns, managed policies.
    assert {p for _, params in recorder for p in arn_partitions(params)} == {partition}
    uris = [p["uri"] for p in recorder.params("PutIntegration") if p["type"] == "AWS_PROXY"]
    assert uris and all(u.startswith(f"arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/arn:{partition}:lambda:")
                        for u in uris)
    sources = [p["SourceArn"] for p in recorder.params("AddPermission")]
    assert sources and all(s.startswith(f"arn:{partition}:execute-api:{region}:{ACCOUNT}:{doc['resources']['rest_api']['id']}/")
                           for s in sources)
    assert sorted(p["PolicyArn"] for p in recorder.params("AttachRolePolicy")) == [
        f"arn:{partition}:iam::aws:policy/AmazonDynamoDBFullAccess", f"arn:{partition}:iam::aws:policy/CloudWatchFullAccess"]
    # What was made, as AWS (moto) reports it, and what the run printed.
    session = boto3.session.Session(region_name=region)
    lam, apigw = session.client("lambda"), session.client("apigateway")
    for base in settings["lambda"]["functions"]:
        function = lam.get_function_configuration(FunctionName=f"demo-{base}")
        assert function["FunctionArn"].startswith(f"arn:{partition}:lambda:{region}:")
        assert function["Role"].startswith(f"arn:{partition}:iam::{ACCOUNT}:role/")
        statement, = json.loads(lam.get_policy(FunctionName=f"demo-{base}")["Policy"])["Statement"]
        assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}  # the same in every partition
        assert statement["Condition"]["ArnLike"]["AWS:SourceArn"].startswith(f"arn:{partition}:execute-api:{region}:")
    api_id = doc["resources"]["rest_api"]["id"]
    for resource in apigw.get_resources(restApiId=api_id, embed=["methods"])["items"]:
        for method in resource.get("resourceMethods") or {}:
            if method != "OPTIONS":
                uri = apigw.get_integration(restApiId=api_id, resourceId=resource["id"], httpMethod=method)["uri"]
                assert uri.startswith(f"arn:{partition}:apigateway:{region}:lambda:path/")
    assert doc["invoke_url"] == f"https://{api_id}.execute-api.{region}.{suffix}/prod"
    assert all(route["url"].startswith(f"https://{api_id}.execute-api.{region}.{suffix}/prod/") for route in doc["routes"])
    arns = [doc["resources"]["table"]["arn"], doc["resources"]["role"]["arn"], doc["resources"]["topic"]["arn"],
            *(f["arn"] for f in doc["resources"]["functions"].values())]
    assert {ARN_PARTITION.match(arn).group(1) for arn in arns} == {partition}


# -- Lambda's environment rules, checked before any AWS call ----------------------------------------


def test_a_reserved_lambda_variable_makes_provision_exit_2_naming_its_key_path_before_any_aws_call(
        settings, cli, capsys, recorder, monkeypatch, aws_clients):
    import botocore.client

    sent = []
    real_call = botocore.client.BaseClient._make_api_call
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call",
                        lambda client, operation, params: sent.append(operation) or real_call(client, operation, params))
    settings["lambda"]["functions"]["GetItemFunction"]["environment"] = {"AWS_REGION": "eu-west-1", "PAGE_SIZE": "50"}
    cli.hooks.append(recorder.event)

    code, _, err = cli(provision_main, capsys=capsys)

    assert code == 2
    assert "lambda.functions.GetItemFunction.environment.AWS_REGION: found 'AWS_REGION', a key Lambda reserves" in err
    assert "PAGE_SIZE" not in err
    assert sent == [] and list(recorder) == []
    assert aws_clients.dynamodb.list_tables()["TableNames"] == []


# -- the region: config.yaml's, whatever the environment and the profile say -----------------------------


def test_regions_set_outside_config_yaml_are_named_in_one_warning_and_config_yamls_is_used(
        settings, cli, capsys, tmp_path, monkeypatch):
    profile = tmp_path / "aws-config"
    profile.write_text("[default]\nregion = us-west-2\n", encoding="utf-8")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(profile))
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    settings["region"] = "eu-west-1"

    code, doc, err = cli(provision_main, "--json", "--outputs", str(tmp_path / "out"), capsys=capsys)

    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: region:")]
    assert warnings == ["warning: region: using eu-west-1 from config.yaml and ignoring AWS_REGION=ap-south-1, "
                        "AWS_DEFAULT_REGION=us-east-1 and region us-west-2 of AWS profile 'default'; "
                        "to work in another region, change region: in config.yaml"]
    assert doc["region"] == "eu-west-1"
    assert doc["resources"]["table"]["arn"].startswith("arn:aws:dynamodb:eu-west-1:")
    assert boto3.client("dynamodb", region_name="eu-west-1").list_tables()["TableNames"] == ["demo-ItemsTable"]


def test_the_region_warning_names_only_the_sources_that_differ_from_config_yaml(settings, cli, capsys, tmp_path, monkeypatch):
    profile = tmp_path / "aws-config"
    profile.write_text("[profile ops]\nregion = eu-west-1\n", encoding="utf-8")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(profile))
    monkeypatch.setenv("AWS_PROFILE", "ops")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    settings["region"] = "eu-west-1"

    code, _, err = cli(provision_main, "--plan", capsys=capsys)

    assert code == 2  # a plan of an empty account: everything would be created
    assert ("warning: region: using eu-west-1 from config.yaml and ignoring AWS_DEFAULT_REGION=us-east-1; "
            "to work in another region, change region: in config.yaml") in err
    assert err.count("warning: region") == 1


def test_a_profiles_own_region_is_named_with_the_profile(settings, cli, capsys, tmp_path, monkeypatch):
    profile = tmp_path / "aws-config"
    profile.write_text("[profile ops]\nregion = ca-central-1\n", encoding="utf-8")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(profile))
    monkeypatch.setenv("AWS_PROFILE", "ops")
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    code, _, err = cli(provision_main, "--plan", capsys=capsys)

    assert code == 2
    assert ("warning: region: using us-east-1 from config.yaml and ignoring region ca-central-1 of AWS profile 'ops'; "
            "to work in another region, change region: in config.yaml") in err


def test_only_the_aws_target_warns_of_a_region_set_elsewhere(settings, make_config, monkeypatch, capsys):
    import crudstack.local.daemon
    from crudstack.cli import connect

    monkeypatch.setattr(crudstack.local.daemon, "ensure_running", lambda *args, **kwargs: "http://127.0.0.1:4566")
    monkeypatch.setattr(crudstack.local.daemon, "unreported_recovery_problems", lambda state_dir: [])
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    settings["region"] = "eu-west-1"
    config = make_config(settings)

    local, _ = connect(config, "local")  # the embedded local AWS: the environment's region means nothing to it
    assert local.region == "eu-west-1"
    assert "warning" not in capsys.readouterr().err

    aws, _ = connect(config, "aws")
    assert aws.region == "eu-west-1"
    assert "ignoring AWS_REGION=ap-south-1 and AWS_DEFAULT_REGION=us-east-1" in capsys.readouterr().err
