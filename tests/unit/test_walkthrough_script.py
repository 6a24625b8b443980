"""walkthrough.yaml and its filling-in: every step has its console text, every change a step can
plan has its boto3 calls, and every placeholder is one the code fills."""

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from crudstack.config import ROOT, parse_config
from crudstack.plan import Action, Change, Context
from crudstack.steps import STEPS
from crudstack.walkthrough import (DATA, WalkthroughDataError, call_lines, console_lines, load_script, parse_script)

STEPS_DIR = ROOT / "crudstack" / "steps"


def context(**overrides) -> Context:
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    for path, value in overrides.items():
        *parents, key = path.split(".")
        node = data
        for parent in parents:
            node = node[parent]
        node[key] = value
    aws = SimpleNamespace(region="us-east-1", account_id="123456789012", partition="aws")  # all the text needs of AWS
    return Context(config=parse_config(data), aws=aws, target="aws")


DEFAULT = context()
EVERY_FLAG_FLIPPED = context(**{"role.tutorial_managed_policies": True, "monitoring.alert_email": "ops@example.com"})


def test_every_step_of_the_runner_and_the_tutorials_steps_6_and_8_have_console_text():
    script = load_script()

    assert sorted(script.steps, key=int) == [str(n) for n in range(1, 9)]
    assert {s.number for s in STEPS} | {"6", "8"} == set(script.steps)


@pytest.mark.parametrize("ctx", [DEFAULT, EVERY_FLAG_FLIPPED], ids=["default", "every-flag-flipped"])
def test_every_console_line_fills_every_placeholder(ctx):
    script = load_script()

    for number in script.steps:
        for line in console_lines(script, number, ctx, "https://example.invalid/prod"):
            assert "$" not in line, f"step {number}: {line}"


def test_console_lines_follow_the_settings():
    default = "\n".join(console_lines(load_script(), "2", DEFAULT) + console_lines(load_script(), "7", DEFAULT))
    flipped = "\n".join(console_lines(load_script(), "2", EVERY_FLAG_FLIPPED) + console_lines(load_script(), "7", EVERY_FLAG_FLIPPED))

    assert "Create subscription" not in default
    assert "endpoint ops@example.com" in flipped
    assert "Create inline policy demo-items-access" in default and "AmazonDynamoDBFullAccess" not in default
    assert "AmazonDynamoDBFullAccess and CloudWatchFullAccess" in flipped and "inline policy" not in flipped


def test_each_function_line_is_repeated_once_per_configured_function():
    lines = console_lines(load_script(), "3", DEFAULT)

    named = [line for line in lines if line.startswith("Function name: ")]
    assert [line.split()[2] for line in named] == [DEFAULT.config.function_name(b) for b in DEFAULT.config.lambda_.functions]
    assert "Function name: demo-GetItemFunction (for GET /items/{id}), handler get_item.lambda_handler" in "\n".join(named)


def _kinds_and_actions_the_steps_can_plan() -> set[tuple[str, str]]:
    """(kind, action) of every Change(...) written in crudstack/steps/ (an `action` variable: create or update)."""
    found = set()
    for path in STEPS_DIR.glob("*.py"):
        for kind, action in re.findall(r'Change\(\s*"([^"]+)",[^\n]*?,\s*(Action\.\w+|action)\b', path.read_text(encoding="utf-8")):
            if action.startswith("Action."):
                found.add((kind, action.removeprefix("Action.")))
            else:
                found |= {(kind, "CREATE"), (kind, "UPDATE")}
    return found


def test_every_change_a_step_can_plan_that_makes_calls_has_them_in_the_data_file():
    script = load_script()
    planned = {(k, a) for k, a in _kinds_and_actions_the_steps_can_plan() if Action[a].mutates}

    assert len(planned) > 20  # the scan really read the steps
    missing = [f"calls.{kind}.{action.lower()}" for kind, action in sorted(planned)
               if action.lower() not in script.calls.get(kind, {})]
    assert missing == []


@pytest.mark.parametrize("ctx", [DEFAULT, EVERY_FLAG_FLIPPED], ids=["default", "every-flag-flipped"])
def test_every_call_line_fills_every_placeholder(ctx):
    script = load_script()
    names = {"function": "demo-GetItemFunction", "method": "GET /items/{id}", "permission": "apigateway -> demo-GetItemFunction",
             "resource": "/items/{id}", "managed policy": "AmazonDynamoDBFullAccess"}
    for kind, by_action in script.calls.items():
        for action in by_action:
            every_field = {field: ("old", "new") for line in by_action[action] for field in line.when_diff}
            change = Change(kind, names.get(kind, "some-name"), Action(action), diffs=every_field)
            for line in call_lines(script, change, ctx):
                assert "$" not in line, f"calls.{kind}.{action}: {line}"


def test_a_function_update_shows_only_the_calls_its_diffs_need():
    script = load_script()
    memory = Change("function", "demo-GetItemsFunction", Action.UPDATE, {"MemorySize": (256, 128)})
    code = Change("function", "demo-GetItemsFunction", Action.UPDATE, {"code": ("abc=", "def=")})

    memory_calls = call_lines(script, memory, DEFAULT)
    code_calls = call_lines(script, code, DEFAULT)

    assert "lambda.update_function_configuration(FunctionName='demo-GetItemsFunction', MemorySize=128)" in memory_calls
    assert not any("update_function_code" in c for c in memory_calls)
    assert any(c.startswith("lambda.update_function_code(FunctionName='demo-GetItemsFunction'") for c in code_calls)
    assert not any("update_function_configuration" in c for c in code_calls)


def test_unchanged_kept_and_skipped_resources_make_no_call():
    script = load_script()

    for action in (Action.UNCHANGED, Action.KEEP, Action.SKIP):
        assert call_lines(script, Change("table", "demo-ItemsTable", action), DEFAULT) == []


def test_a_change_with_no_calls_in_the_data_file_is_named_in_the_error():
    with pytest.raises(WalkthroughDataError, match=r"calls\.gizmo\.create"):
        call_lines(load_script(), Change("gizmo", "g", Action.CREATE), DEFAULT)


def test_an_unknown_placeholder_is_reported_with_where_it_is():
    script = parse_script({"steps": {"1": {"title": "t", "console": ["Table: $tabel_name"]}}, "calls": {}})

    with pytest.raises(WalkthroughDataError, match=r"steps\.1\.console\[0\]: unknown placeholder \$tabel_name"):
        console_lines(script, "1", DEFAULT)


@pytest.mark.parametrize("data, message", [
    ({"steps": {}}, "'steps' and 'calls'"),
    ({"steps": {"1": {"title": "t", "console": [{"txt": "x"}]}}, "calls": {}}, r"steps\.1\.console\[0\]"),
    ({"steps": {"1": {"title": "t", "console": [{"text": "x", "each": "table"}]}}, "calls": {}}, "each: 'table'"),
    ({"steps": {}, "calls": {"table": {"replace": []}}}, r"calls\.table: expected create/update/delete"),
])
def test_a_malformed_data_file_is_refused_with_where_and_what(data, message):
    with pytest.raises(WalkthroughDataError, match=message):
        parse_script(data)


def test_an_unknown_yes_no_setting_is_refused():
    script = parse_script({"steps": {"1": {"title": "t", "console": [{"text": "x", "when": "not alert_mail"}]}}, "calls": {}})

    with pytest.raises(WalkthroughDataError, match="alert_mail"):
        console_lines(script, "1", DEFAULT)


def test_the_data_file_is_the_one_next_to_the_module():
    assert DATA == Path(ROOT / "crudstack" / "walkthrough.yaml")
    assert DATA.is_file()
