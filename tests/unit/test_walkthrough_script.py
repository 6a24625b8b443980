"""walkthrough.yaml and its filling-in: every step has its console text, and every placeholder is one
the code fills. (The boto3 calls the walkthrough prints are the planned changes' own records:
tests/unit/test_calls.py, tests/functional/test_walkthrough.py.)"""

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from crudstack.config import ROOT, parse_config
from crudstack.plan import Context
from crudstack.steps import STEPS
from crudstack.walkthrough import DATA, WalkthroughDataError, console_lines, load_script, parse_script

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


def test_an_unknown_placeholder_is_reported_with_where_it_is():
    script = parse_script({"steps": {"1": {"title": "t", "console": ["Table: $tabel_name"]}}})

    with pytest.raises(WalkthroughDataError, match=r"steps\.1\.console\[0\]: unknown placeholder \$tabel_name"):
        console_lines(script, "1", DEFAULT)


@pytest.mark.parametrize("data, message", [
    ({"stepz": {}}, "expected a mapping with 'steps'"),
    ({"steps": {"1": {"title": "t", "console": [{"txt": "x"}]}}}, r"steps\.1\.console\[0\]"),
    ({"steps": {"1": {"title": "t", "console": [{"text": "x", "each": "table"}]}}}, "each: 'table'"),
    ({"steps": {}, "calls": {"table": {"create": []}}}, "'calls' is no longer read"),
])
def test_a_malformed_data_file_is_refused_with_where_and_what(data, message):
    with pytest.raises(WalkthroughDataError, match=message):
        parse_script(data)


def test_an_unknown_yes_no_setting_is_refused():
    script = parse_script({"steps": {"1": {"title": "t", "console": [{"text": "x", "when": "not alert_mail"}]}}})

    with pytest.raises(WalkthroughDataError, match="alert_mail"):
        console_lines(script, "1", DEFAULT)


def test_the_data_file_is_the_one_next_to_the_module():
    assert DATA == Path(ROOT / "crudstack" / "walkthrough.yaml")
    assert DATA.is_file()
