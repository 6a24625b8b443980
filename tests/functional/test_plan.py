"""`provision.py --plan` and `teardown.py --plan` against moto: what they list, their exit
codes, and that a dry run sends no mutating call at all."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import yaml

import crudstack.cli
from crudstack.cli import provision_main, teardown_main
from tests.functional.conftest import assert_one_complete_stack

# Operation name prefixes of calls that only read; anything else sent during a plan is a failure.
# Written out here rather than taken from crudstack.aws, so the check does not trust the code it checks.
READ_ONLY = ("Get", "List", "Describe", "Scan")


@dataclass
class Ran:
    code: int
    out: str
    err: str
    operations: list[str]          # every operation the command sent, in order

    def lines(self, symbol: str) -> list[str]:
        """The change lines of one kind: '+', '~', '=', '-' or '!'."""
        return [line.strip() for line in self.out.splitlines() if line.startswith("        " + symbol + " ")]

    @property
    def change_lines(self) -> list[str]:
        return [line for symbol in "+~=-!" for line in self.lines(symbol)]

    @property
    def mutating(self) -> list[str]:
        return [op for op in self.operations if not op.startswith(READ_ONLY)]


@pytest.fixture
def cli(settings, tmp_path, monkeypatch, capsys):
    """cli(provision_main or teardown_main, *args, settings=...) -> Ran, with every AWS call it sent recorded."""
    real_connect = crudstack.cli.connect

    def run(main, *args: str, cfg: dict | None = None) -> Ran:
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(cfg or settings), encoding="utf-8")
        operations: list[str] = []

        def connect(config, target):
            aws, endpoint = real_connect(config, target)
            aws.register("before-call", lambda model, **_: operations.append(model.name))
            return aws, endpoint

        monkeypatch.setattr(crudstack.cli, "connect", connect)
        capsys.readouterr()
        code = main(["--config", str(path), "--target", "aws", "--outputs", str(tmp_path / "outputs"), *args]
                    if main is provision_main else ["--config", str(path), "--target", "aws", *args])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err, operations)

    return run


def made_by(doc: dict, action: str) -> set[str]:
    return {f"{c['kind']} {c['name']}" for s in doc["steps"] for c in s["changes"] if c["action"] == action}


# -- provision --plan ------------------------------------------------------------------------------


def test_plan_on_an_empty_account_lists_exactly_what_provision_then_creates(cli):
    plan = cli(provision_main, "--plan")
    applied = cli(provision_main, "--json")

    assert plan.code == 2
    assert plan.change_lines == plan.lines("+")
    created = made_by(json.loads(applied.out), "create")
    assert {line.removeprefix("+ ") for line in plan.lines("+")} == created
    assert f"Plan: {len(created)} to add, 0 to change, 0 to destroy, 0 unchanged." in plan.out


def test_plan_on_an_empty_account_lists_every_kind_of_resource_of_every_step(cli):
    plan = cli(provision_main, "--plan")

    kinds = {line.split(" ", 2)[1] for line in plan.lines("+")}
    assert kinds >= {"table", "role", "inline", "function", "REST", "resource", "method", "CORS", "permission", "deployment",
                     "stage", "log", "SNS", "alarm"}
    for step in ("Step 1", "Step 2", "Step 3", "Step 4", "Step 5", "Step 7"):
        assert f"{step}  " in plan.out


def test_plan_sends_only_read_calls_and_leaves_the_account_empty(cli, aws_clients):
    plan = cli(provision_main, "--plan")

    assert plan.operations, "a plan reads what exists"
    assert plan.mutating == []
    assert aws_clients.dynamodb.list_tables()["TableNames"] == []
    assert aws_clients.iam.list_roles()["Roles"] == []
    assert aws_clients.awslambda.list_functions()["Functions"] == []
    assert aws_clients.apigateway.get_rest_apis()["items"] == []


def test_plan_after_provision_lists_only_unchanged_resources_and_exits_0(cli):
    assert cli(provision_main).code == 0

    plan = cli(provision_main, "--plan")

    assert plan.code == 0
    assert plan.change_lines and plan.change_lines == plan.lines("=")
    assert "Plan: 0 to add, 0 to change, 0 to destroy," in plan.out
    assert plan.mutating == []


def test_plan_after_an_out_of_band_memory_change_lists_exactly_that_update_and_exits_2(cli, aws_clients):
    cli(provision_main)
    # Someone sets the memory in the console.
    aws_clients.awslambda.update_function_configuration(FunctionName="demo-GetItemsFunction", MemorySize=256)

    plan = cli(provision_main, "--plan")

    assert plan.code == 2
    assert plan.lines("~") == ["~ function demo-GetItemsFunction (MemorySize: 256 -> 128)"]
    assert plan.lines("+") == plan.lines("-") == []
    assert "Plan: 0 to add, 1 to change, 0 to destroy," in plan.out
    assert plan.mutating == []
    # ...and the plan left it as it found it.
    assert aws_clients.awslambda.get_function_configuration(FunctionName="demo-GetItemsFunction")["MemorySize"] == 256


def test_plan_of_a_new_route_lists_the_redeploy_that_provision_then_makes(cli, settings):
    cli(provision_main)
    settings["lambda"]["functions"]["PatchItemFunction"] = {"handler": "update_item.lambda_handler", "route": "PATCH /items/{id}"}

    plan = cli(provision_main, "--plan", cfg=settings)
    applied = cli(provision_main, "--json", cfg=settings)

    doc = json.loads(applied.out)
    made = {f"+ {c}" for c in made_by(doc, "create")} | {f"~ {c}" for c in made_by(doc, "update")}
    planned = {line.split(" (")[0] for line in plan.lines("+") + plan.lines("~")}
    assert planned == made
    # Step 4 only plans the new method, so step 5 can read no difference yet: it must still say it redeploys.
    assert "+ deployment demo-ItemsApi/prod" in planned
    assert "~ stage prod" in planned


def test_plan_json_prints_one_document_with_the_counts_and_no_writes(cli):
    plan = cli(provision_main, "--plan", "--json")

    doc = json.loads(plan.out)  # the whole of stdout is one document
    assert plan.code == 2
    assert doc["plan"]["add"] == len(made_by(doc, "create")) > 0
    assert doc["plan"]["change"] == doc["plan"]["destroy"] == 0
    assert doc["aws_calls"]["writes"] == 0
    assert "Plan:" in plan.err


def test_plan_writes_no_outputs(cli, tmp_path):
    cli(provision_main, "--plan")

    assert not (tmp_path / "outputs").exists()


def test_quiet_plan_prints_only_the_summary_line(cli):
    plan = cli(provision_main, "--plan", "--quiet")

    assert plan.out.strip().splitlines() == [plan.out.strip()]
    assert plan.out.startswith("Plan: ")
    assert plan.code == 2


# -- teardown --plan -------------------------------------------------------------------------------


def test_teardown_plan_lists_every_delete_without_asking_and_deletes_nothing(cli, config, aws_clients):
    cli(provision_main)

    plan = cli(teardown_main, "--plan")  # no --yes: a plan deletes nothing, so there is nothing to confirm

    assert plan.code == 2
    deletes = plan.lines("-")
    assert plan.change_lines == deletes
    for resource in ("table demo-ItemsTable", "role demo-LambdaDynamoDBRole", "function demo-GetItemsFunction",
                     "SNS topic demo-ItemsApiAlerts", "log group /aws/lambda/demo-GetItemsFunction"):
        assert f"- {resource}" in deletes
    assert any(line.startswith("- REST API demo-ItemsApi (") for line in deletes)
    assert f"Plan: 0 to add, 0 to change, {len(deletes)} to destroy, 0 unchanged." in plan.out
    assert plan.mutating == []
    assert_one_complete_stack(aws_clients, config)


def test_teardown_plan_lists_a_table_holding_items_as_kept(cli, aws_clients):
    cli(provision_main)
    aws_clients.dynamodb.put_item(TableName="demo-ItemsTable", Item={"id": {"S": "1"}})

    plan = cli(teardown_main, "--plan")

    assert [line for line in plan.lines("!") if "table demo-ItemsTable" in line]
    assert "- table demo-ItemsTable" not in plan.lines("-")
    assert ", 1 kept." in plan.out


def test_teardown_plan_of_an_empty_account_exits_0(cli):
    plan = cli(teardown_main, "--plan")

    assert plan.code == 0
    assert "Plan: 0 to add, 0 to change, 0 to destroy, 0 unchanged." in plan.out
    assert plan.mutating == []
