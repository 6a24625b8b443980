"""`provision.py --walkthrough` against moto, with stdin not a terminal (CI, a pipe): every
step's console text in the tutorial's order, the boto3 calls of the changes the plan really
has, and a run that completes without waiting for anyone. (tests/e2e/test_walkthrough_pty.py
drives it in a terminal, where it waits for Enter.)"""

from __future__ import annotations

import io
import json
import sys

import pytest
import yaml

from crudstack.aws import Aws
from crudstack.cli import provision_main
from crudstack.config import load_config
from crudstack.plan import Context
from crudstack.walkthrough import console_lines, load_script
from tests.functional.conftest import REGION, assert_one_complete_stack


@pytest.fixture
def config_path(settings, tmp_path) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return str(path)


@pytest.fixture
def walkthrough(config_path, tmp_path, monkeypatch, capsys):
    """walkthrough(*extra args) -> (exit code, stdout, stderr), with stdin a pipe holding no input."""

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        capsys.readouterr()
        code = provision_main(["--walkthrough", "--config", config_path, "--target", "aws",
                               "--outputs", str(tmp_path / "outputs"), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def expected_console_text(config_path: str, number: str, invoke_url: str | None = None) -> list[str]:
    ctx = Context(config=load_config(config_path), aws=Aws(region=REGION), target="aws")
    return console_lines(load_script(), number, ctx, invoke_url)


def block(out: str, number: str) -> str:
    """The walkthrough text of one step, from its header to the next step's."""
    start = out.index(f"=== Step {number} of 8:")
    following = out.find("=== Step ", start + 1)
    return out[start:following if following != -1 else len(out)]


def test_walkthrough_without_a_terminal_shows_every_steps_console_text_in_order_and_completes(
        walkthrough, config_path, config, aws_clients, tmp_path):
    code, out, _ = walkthrough()

    assert code == 0
    headers = [line for line in out.splitlines() if line.startswith("=== Step ")]
    assert [h.split(":")[0] for h in headers] == [f"=== Step {n} of 8" for n in "12345678"]
    position = 0
    invoke_url = json.loads((tmp_path / "outputs" / "stack.json").read_text())["invoke_url"]
    for number in "12345678":
        for line in expected_console_text(config_path, number, invoke_url):
            found = out.find(f"  {line}\n", position)
            assert found != -1, f"step {number}: console line missing or out of order: {line!r}"
            position = found
    assert "Press Enter" not in out  # nobody to wait for
    assert_one_complete_stack(aws_clients, config)


def test_each_step_shows_its_console_text_before_it_runs_and_its_result_after(walkthrough):
    _, out, _ = walkthrough()

    one = block(out, "1")
    assert one.index("In the console:") < one.index("crudstack calls instead (boto3):") \
        < one.index("Step 1  DynamoDB table ....")
    assert "Table name: demo-ItemsTable" in one
    assert "Partition key: id (String)" in one


def test_walkthrough_shows_the_boto3_calls_of_each_planned_create_with_their_key_arguments(walkthrough):
    _, out, _ = walkthrough()

    assert ("dynamodb.create_table(TableName='demo-ItemsTable', AttributeDefinitions=[{'AttributeName': 'id', "
            "'AttributeType': 'S'}], KeySchema=[{'AttributeName': 'id', 'KeyType': 'HASH'}], BillingMode='PAY_PER_REQUEST'") in block(out, "1")
    assert "dynamodb.describe_table(TableName='demo-ItemsTable')  until table demo-ItemsTable to be ACTIVE" in block(out, "1")
    assert "iam.create_role(RoleName='demo-LambdaDynamoDBRole'" in block(out, "2")
    three = block(out, "3")
    for name in ("CreateItemFunction", "GetItemsFunction", "GetItemFunction", "UpdateItemFunction", "DeleteItemFunction"):
        assert f"lambda.create_function(FunctionName='demo-{name}', Code={{'ZipFile': <" in three
    assert "Handler='get_item.lambda_handler'" in three and "MemorySize=128" in three
    assert "apigateway.put_integration(restApiId=<api_id>, resourceId=<resource:/items>, httpMethod='GET', type='AWS_PROXY'" in block(out, "4")
    assert "apigateway.create_stage(restApiId=<api_id>, stageName='prod', deploymentId=<deployment_id>" in block(out, "5")
    assert "cloudwatch.put_metric_alarm(AlarmName='demo-ItemsApi-5XXError'" in block(out, "7")


def test_step_6_has_nothing_to_run_and_shows_the_invoke_url_after_step_5(walkthrough, tmp_path):
    _, out, _ = walkthrough()

    six = block(out, "6")
    url = json.loads((tmp_path / "outputs" / "stack.json").read_text())["invoke_url"]
    assert f"Invoke URL: {url}" in six
    assert "crudstack calls instead" not in six
    assert out.index("Step 5  Deploy to stage ....") < out.index("=== Step 6 of 8")


def test_a_second_walkthrough_shows_no_call_for_resources_already_as_configured(walkthrough):
    walkthrough()

    code, out, _ = walkthrough()

    assert code == 0
    for number in "123457":
        assert "nothing to call: already as config.yaml asks" in block(out, number)
    assert "create_table(" not in out and "create_function(" not in out


def test_walkthrough_shows_only_the_calls_a_drifted_setting_needs(walkthrough, aws_clients):
    walkthrough()
    aws_clients.awslambda.update_function_configuration(FunctionName="demo-GetItemsFunction", MemorySize=256)

    _, out, _ = walkthrough()

    three = block(out, "3")
    assert "~ function demo-GetItemsFunction (MemorySize: 256 -> 128)" in three
    assert "lambda.update_function_configuration(FunctionName='demo-GetItemsFunction', Runtime='python3.12'" in three
    assert "MemorySize=128" in three.split("update_function_configuration")[1]
    assert "update_function_code" not in three
    assert aws_clients.awslambda.get_function_configuration(FunctionName="demo-GetItemsFunction")["MemorySize"] == 128


def test_walkthrough_with_json_keeps_stdout_to_one_document(walkthrough):
    code, out, err = walkthrough("--json")

    assert code == 0
    assert json.loads(out)["invoke_url"]
    assert "=== Step 1 of 8" in err and "In the console:" in err


def test_walkthrough_cannot_be_combined_with_plan_or_quiet(walkthrough):
    for other in ("--plan", "--quiet"):
        with pytest.raises(SystemExit) as exited:
            walkthrough(other)
        assert exited.value.code == 2


# -- the rest of what a run shows ---------------------------------------------------------------------


def test_provision_writes_the_outputs_and_stack_json_is_the_json_document(config_path, tmp_path, capsys):
    code = provision_main(["--config", config_path, "--target", "aws", "--json", "--outputs", str(tmp_path / "out")])

    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert json.loads((tmp_path / "out" / "stack.json").read_text()) == doc
    collection = json.loads((tmp_path / "out" / "postman_collection.json").read_text())
    assert {"key": "baseUrl", "value": doc["invoke_url"], "type": "string"} in collection["variable"]
    assert f"@baseUrl = {doc['invoke_url']}\n" in (tmp_path / "out" / "endpoints.http").read_text()


def test_verbose_provision_ends_with_a_summary_table_of_each_resource_then_the_invoke_url(config_path, tmp_path, capsys):
    provision_main(["--config", config_path, "--target", "aws", "--verbose", "--outputs", str(tmp_path / "out")])

    out = capsys.readouterr().out
    table = out[out.index("| Step | Resource"):out.index("Done in")]
    assert "| table demo-ItemsTable " in table and "| created |" in table
    assert "| alarm demo-ItemsApi-LatencyP99 " in table
    assert out.index("Done in") < out.index("Invoke URL:") < out.index("curl -X POST")
    assert str(tmp_path / "out" / "postman_collection.json") in out


def test_a_fresh_provision_says_each_thing_once_in_at_most_50_lines(config_path, tmp_path, capsys, caplog):
    """The default config.yaml: each resource in its step's block, one line of counts, no table repeating them."""
    code = provision_main(["--config", config_path, "--target", "aws", "--outputs", str(tmp_path / "out")])

    out, err = capsys.readouterr()
    lines = (err + out).splitlines()
    made = [c for step in json.loads((tmp_path / "out" / "stack.json").read_text())["steps"] for c in step["changes"]]
    done = [line for line in lines if line.startswith("Done in ")]
    assert code == 0 and len(lines) <= 50
    assert "| Step | Resource" not in out and "Resource" not in out
    assert len(done) == 1 and f": {len(made)} added, 0 changed, 0 unchanged, 0 deleted (" in done[0]
    assert out.index("Done in") < out.index("Invoke URL:") < out.index("curl -X POST")
    assert "api.auth is none" in err + caplog.text   # the warnings and next steps stay
    assert "For Postman, REST clients and scripts:" in out


def test_a_provision_that_changes_more_than_adds_shows_the_table_of_what_it_changed(settings, config_path, tmp_path,
                                                                                   capsys):
    provision_main(["--config", config_path, "--target", "aws", "--outputs", str(tmp_path / "out")])
    settings["lambda"]["memory_mb"] = 256
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    capsys.readouterr()

    provision_main(["--config", config_path, "--target", "aws", "--outputs", str(tmp_path / "out")])

    out = capsys.readouterr().out
    assert "| function demo-GetItemFunction " in out and "| updated |" in out
    assert "Done in " in out and ": 0 added, 5 changed, " in out


def test_verbose_shows_each_aws_call_with_its_status_and_duration(config_path, tmp_path, capsys):
    provision_main(["--config", config_path, "--target", "aws", "--verbose", "--plan"])

    calls = [line.strip() for line in capsys.readouterr().out.splitlines() if line.strip().startswith("aws ")]
    assert "aws dynamodb.describe_table -> 400" in " ".join(calls)  # not found yet: a 400 answer
    assert any(line.startswith("aws iam.get_role -> ") and line.endswith(" ms") for line in calls)


def test_quiet_provision_prints_only_the_result_and_the_invoke_url(config_path, tmp_path, capsys):
    code = provision_main(["--config", config_path, "--target", "aws", "--quiet", "--outputs", str(tmp_path / "out")])

    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert len(lines) == 2
    assert lines[0].startswith("Done in ") and lines[1].startswith("Invoke URL: https://")


def test_the_calls_the_walkthrough_prints_are_the_calls_the_run_makes(walkthrough, monkeypatch, recorder):
    """The records a change holds are printed, then run: what botocore sent is exactly what they say."""
    import crudstack.cli
    import botocore

    from crudstack.aws import is_mutating

    runs, real_connect, real_run = [], crudstack.cli.connect, crudstack.cli._run

    def connect(config, target):
        aws, endpoint = real_connect(config, target)
        aws.register(*recorder.event)
        return aws, endpoint

    def run(ctx, reporter, **kwargs):
        runs.append(ctx)
        return real_run(ctx, reporter, **kwargs)

    monkeypatch.setattr(crudstack.cli, "connect", connect)
    monkeypatch.setattr(crudstack.cli, "_run", run)

    code, out, _ = walkthrough()

    assert code == 0
    sent = sorted((botocore.xform_name(op), json.dumps(params, sort_keys=True, default=repr)) for op, params in recorder if is_mutating(op))
    made = sorted((op, json.dumps(params, sort_keys=True, default=repr)) for _, op, params in runs[0].sent if is_mutating(op))
    assert len(sent) > 60 and sent == made
    for service, op, _ in runs[0].sent:   # and each was printed, as boto3 code, before its step ran
        assert f"{service}.{op}(" in out


def test_step_8_shows_how_to_export_and_deploy_the_stack_after_the_last_step_without_running_it(walkthrough, tmp_path):
    _, out, _ = walkthrough()

    eight = block(out, "8")
    assert out.index("Step 7  Monitoring") < out.index("=== Step 8 of 8")
    assert "python provision.py --export sam export-sam" in eight and "sam deploy --guided" in eight
    assert "python provision.py --export terraform export-tf" in eight and "terraform init && terraform validate && terraform apply" in eight
    assert "crudstack calls instead" not in eight
    assert not (tmp_path / "export-sam").exists() and not (tmp_path / "export-tf").exists()


def test_with_reserved_concurrency_step_3_shows_the_console_choice_and_the_put_call_per_function(
        settings, tmp_path, monkeypatch, capsys):
    settings["lambda"]["functions"]["GetItemsFunction"]["reserved_concurrency"] = 2
    path = tmp_path / "reserved.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    code = provision_main(["--walkthrough", "--config", str(path), "--target", "aws", "--outputs", str(tmp_path / "out")])
    three = block(capsys.readouterr().out, "3")

    assert code == 0
    assert "Configuration -> Concurrency -> Edit (demo-GetItemsFunction): Reserve concurrency: 2" in three
    assert "Configuration -> Concurrency -> Edit (demo-GetItemFunction): Use unreserved account concurrency" in three
    assert "lambda.put_function_concurrency(FunctionName='demo-GetItemsFunction', ReservedConcurrentExecutions=2)" in three
    assert three.count("put_function_concurrency") == 1


def test_without_reserved_concurrency_step_3_says_nothing_of_it(walkthrough):
    _, out, _ = walkthrough()

    assert "Concurrency" not in block(out, "3")


def test_with_api_key_auth_steps_4_to_6_show_the_key_requirement_usage_plan_key_and_throttle_then_make_them(
        walkthrough, config_path, settings):
    settings["api"] = {**settings["api"], "auth": "api_key"}
    with open(config_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(settings, f)

    code, out, _ = walkthrough()

    assert code == 0
    four, five, six = block(out, "4"), block(out, "5"), block(out, "6")
    assert "API key required: true" in four and "Gateway Responses -> Default 4XX" in four
    assert "apigateway.put_gateway_response(" in four and "apiKeyRequired=True" in four
    assert "Usage Plans -> Create: name demo-ItemsApi-plan" in five and "API Keys -> Create API key: name demo-ItemsApi-key" in five
    assert "Default Method Throttling: rate 100 requests per second, burst 200" in five
    for call in ("apigateway.create_usage_plan(", "apigateway.create_api_key(", "apigateway.create_usage_plan_key(",
                 "apigateway.update_stage("):
        assert call in five
    assert "x-api-key" in six
    for number in ("4", "5"):
        for line in expected_console_text(config_path, number):
            assert line in out
