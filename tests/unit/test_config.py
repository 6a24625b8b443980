"""config.yaml validation: every malformed file is rejected before any AWS call,
with each problem named by its key path, and the commands exit 2."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import botocore.client
import pydantic
import pytest
import yaml

import crudstack.cli
from crudstack.cli import provision_main, teardown_main
from crudstack.config import ROOT, load_config, parse_config
from crudstack.errors import ConfigError

VALID = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))


class AwsWasCalled(BaseException):
    """Not an Exception, so the CLI's error handling cannot swallow it: the test fails."""


@pytest.fixture(autouse=True)
def no_aws(monkeypatch):
    """Any attempt to reach AWS, by the CLI's door or by botocore itself, fails the test."""

    def refuse(*args, **kwargs):
        raise AwsWasCalled(f"an AWS call was attempted: {args[:2]!r}")

    monkeypatch.setattr(crudstack.cli, "connect", refuse)
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)


def settings() -> dict:
    return copy.deepcopy(VALID)


def fn(data: dict, name: str = "GetItemFunction") -> dict:
    return data["lambda"]["functions"][name]


def rename(mapping: dict, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


# (id, change to a valid config, fragments the message must contain)
MALFORMED = [
    ("missing-stack", lambda d: d.pop("stack"), ["stack: missing; this key is required"]),
    ("missing-functions", lambda d: d["lambda"].pop("functions"), ["lambda.functions: missing"]),
    ("missing-handler", lambda d: fn(d).pop("handler"), ["lambda.functions.GetItemFunction.handler: missing"]),
    ("misspelt-top-level-key", lambda d: rename(d, "region", "regoin"), ["regoin: unknown key; did you mean 'region'?"]),
    ("misspelt-block", lambda d: rename(d, "lambda", "lamda"), ["lamda: unknown key; did you mean 'lambda'?", "lambda: missing"]),
    ("misspelt-nested-key", lambda d: rename(d["lambda"], "memory_mb", "memroy_mb"),
     ["lambda.memroy_mb: unknown key; did you mean 'memory_mb'?"]),
    ("misspelt-function-key", lambda d: rename(fn(d), "handler", "handlr"),
     ["lambda.functions.GetItemFunction.handlr: unknown key; did you mean 'handler'?"]),
    ("unknown-key", lambda d: d["monitoring"].update(colour="blue"),
     ["monitoring.colour: unknown key; allowed keys here: log_retention_days, alerts_topic, alert_email, alarms"]),
    ("memory-as-string", lambda d: d["lambda"].update(memory_mb="256"), ["lambda.memory_mb: found '256' (str), expected a valid integer"]),
    ("timeout-as-bool", lambda d: d["lambda"].update(timeout_s=True), ["lambda.timeout_s: found True (bool)"]),
    ("tags-as-list", lambda d: d.update(tags=["project"]), ["tags: found a list"]),
    ("negative-memory", lambda d: d["lambda"].update(memory_mb=-128), ["lambda.memory_mb: found -128 (int), expected greater than or equal to 128"]),
    ("memory-100", lambda d: d["lambda"].update(memory_mb=100), ["lambda.memory_mb: found 100 (int)", "128"]),
    ("function-memory-too-big", lambda d: fn(d).update(memory_mb=20000), ["lambda.functions.GetItemFunction.memory_mb: found 20000 (int)"]),
    ("timeout-over-15-minutes", lambda d: d["lambda"].update(timeout_s=901), ["lambda.timeout_s: found 901 (int)", "900"]),
    ("unknown-runtime", lambda d: d["lambda"].update(runtime="python3.99"),
     ["lambda.runtime: found 'python3.99' (str), expected one of Lambda's Python runtimes", "python3.14", "python3.12"]),
    ("node-runtime", lambda d: d["lambda"].update(runtime="nodejs20.x"), ["lambda.runtime: found 'nodejs20.x'"]),
    ("retention-15", lambda d: d["monitoring"].update(log_retention_days=15),
     ["monitoring.log_retention_days: found 15 (int), expected one of CloudWatch Logs' retention values", "14, 30"]),
    ("bad-email", lambda d: d["monitoring"].update(alert_email="not-an-email"),
     ["monitoring.alert_email: found 'not-an-email' (str), expected an e-mail address"]),
    ("stack-with-capitals", lambda d: d.update(stack="Demo_Stack"), ["stack: found 'Demo_Stack' (str), expected lower-case letters"]),
    ("stack-too-long", lambda d: d.update(stack="a" * 21), ["stack: found 'aaaaaaaaaaaaaaaaaaaaa' (str)", "at most 20 characters"]),
    ("duplicate-route", lambda d: fn(d).update(route="GET /items"),
     ["lambda.functions:", "GetItemsFunction and GetItemFunction both serve GET /items"]),
    ("unknown-http-method", lambda d: fn(d).update(route="FETCH /items/{id}"),
     ["lambda.functions.GetItemFunction.route: found 'FETCH /items/{id}' (str), expected a route like 'GET /items/{id}'"]),
    ("route-without-slash", lambda d: fn(d).update(route="GET items"), ["lambda.functions.GetItemFunction.route: found 'GET items'", "a path like /items"]),
    ("route-with-bad-parameter", lambda d: fn(d).update(route="GET /items/{id"), ["lambda.functions.GetItemFunction.route"]),
    ("handler-module-missing", lambda d: fn(d).update(handler="nothere.lambda_handler"),
     ["lambda.functions.GetItemFunction.handler: found 'nothere.lambda_handler'", "nothere.py does not exist"]),
    ("handler-without-function", lambda d: fn(d).update(handler="get_item"),
     ["lambda.functions.GetItemFunction.handler: found 'get_item' (str), expected 'module.function'"]),
    ("bad-function-name", lambda d: rename(d["lambda"]["functions"], "GetItemFunction", "1stFunction"),
     ["lambda.functions.1stFunction", "starting with a letter"]),
    ("environment-value-not-a-string", lambda d: fn(d).update(environment={"PAGE_SIZE": 50}),
     ["lambda.functions.GetItemFunction.environment.PAGE_SIZE: found 50 (int), expected a valid string"]),
    ("environment-reserved-by-lambda", lambda d: fn(d).update(environment={"AWS_REGION": "eu-west-1"}),
     ["lambda.functions.GetItemFunction.environment.AWS_REGION: found 'AWS_REGION', a key Lambda reserves", "remove it"]),
    ("environment-reserved-underscore-key", lambda d: fn(d).update(environment={"_HANDLER": "x.y"}),
     ["lambda.functions.GetItemFunction.environment._HANDLER: found '_HANDLER', a key Lambda reserves"]),
    ("environment-reserved-in-another-function", lambda d: fn(d, "DeleteItemFunction").update(environment={"AWS_LAMBDA_FUNCTION_NAME": "x"}),
     ["lambda.functions.DeleteItemFunction.environment.AWS_LAMBDA_FUNCTION_NAME: found 'AWS_LAMBDA_FUNCTION_NAME', a key Lambda reserves"]),
    ("environment-replaces-table-name", lambda d: fn(d).update(environment={"TABLE_NAME": "other-table"}),
     ["lambda.functions.GetItemFunction.environment.TABLE_NAME: found 'TABLE_NAME', a key crudstack sets itself", "table.name"]),
    ("environment-replaces-allowed-origins", lambda d: fn(d).update(environment={"ALLOWED_ORIGINS": "*"}),
     ["lambda.functions.GetItemFunction.environment.ALLOWED_ORIGINS: found 'ALLOWED_ORIGINS', a key crudstack sets itself",
      "api.cors.allowed_origins"]),
    ("environment-key-with-a-dash", lambda d: fn(d).update(environment={"PAGE-SIZE": "50"}),
     ["lambda.functions.GetItemFunction.environment.PAGE-SIZE: found 'PAGE-SIZE', expected a key of letters, digits and '_'"]),
    ("environment-key-starting-with-a-digit", lambda d: fn(d).update(environment={"1ST_PAGE": "1"}),
     ["lambda.functions.GetItemFunction.environment.1ST_PAGE: found '1ST_PAGE'", "starts with a letter"]),
    ("environment-key-of-one-letter", lambda d: fn(d).update(environment={"N": "1"}),
     ["lambda.functions.GetItemFunction.environment.N: found 'N'", "at least 2 characters long"]),
    ("environment-over-4-kb", lambda d: fn(d).update(environment={"BANNER": "x" * 4096}),
     ["lambda.functions.GetItemFunction.environment: found 4", "bytes of environment variables", "expected at most 4096"]),
    ("no-functions", lambda d: d["lambda"].update(functions={}), ["lambda.functions:", "at least one function"]),
    ("period-45", lambda d: d["monitoring"]["alarms"].update(period_s=45),
     ["monitoring.alarms.period_s: found 45 (int), expected 10, 30 or a multiple of 60 seconds"]),
    ("bad-region", lambda d: d.update(region="mars-north"), ["region: found 'mars-north' (str), expected an AWS region code like us-east-1"]),
    ("bad-target", lambda d: d.update(target="gcp"), ["target: found 'gcp' (str)", "'local' or 'aws'"]),
    ("bad-stage", lambda d: d["api"].update(stage="pr od"), ["api.stage: found 'pr od' (str)"]),
    ("reserved-tag-managed-by", lambda d: d["tags"].update({"managed-by": "me"}), ["tags:", "'managed-by' is reserved"]),
    ("reserved-tag-aws-prefix", lambda d: d["tags"].update({"aws:cloudformation:stack-name": "x"}), ["tags:", "'aws:cloudformation:stack-name' is reserved"]),
    ("zero-retry-deadline", lambda d: d["retry"].update(deadline_s=0), ["retry.deadline_s: found 0 (int), expected greater than 0"]),
    ("port-below-1024", lambda d: d["local"].update(port=80), ["local.port: found 80 (int)"]),
    ("cors-origins-empty", lambda d: d["api"]["cors"].update(allowed_origins=[]),
     ["api.cors.allowed_origins: found a list, expected at least one origin, or ['*'] to allow any page"]),
    ("cors-origin-with-path", lambda d: d["api"]["cors"].update(allowed_origins=["https://app.example.com/"]),
     ["api.cors.allowed_origins:", "no path or trailing slash); 'https://app.example.com/' is not one"]),
    ("cors-star-with-others", lambda d: d["api"]["cors"].update(allowed_origins=["*", "https://app.example.com"]),
     ["api.cors.allowed_origins:", "'*' alone"]),
    ("cors-origins-as-string", lambda d: d["api"]["cors"].update(allowed_origins="https://app.example.com"),
     ["api.cors.allowed_origins: found 'https://app.example.com' (str), expected a valid list"]),
    ("cors-max-age-negative", lambda d: d["api"]["cors"].update(max_age_s=-1), ["api.cors.max_age_s: found -1 (int)"]),
    ("cors-misspelt-key", lambda d: rename(d["api"]["cors"], "allowed_origins", "allowed_origin"),
     ["api.cors.allowed_origin: unknown key; did you mean 'allowed_origins'?"]),
    ("reserved-concurrency-negative", lambda d: fn(d).update(reserved_concurrency=-1),
     ["lambda.functions.GetItemFunction.reserved_concurrency: found -1 (int), expected a number of concurrent "
      "executions, 0 or more (0 throttles every request"]),
    ("reserved-concurrency-default-negative", lambda d: d["lambda"].update(reserved_concurrency=-5),
     ["lambda.reserved_concurrency: found -5 (int), expected a number of concurrent executions, 0 or more"]),
    ("reserved-concurrency-as-string", lambda d: fn(d).update(reserved_concurrency="10"),
     ["lambda.functions.GetItemFunction.reserved_concurrency: found '10' (str), expected a valid integer"]),
    ("reserved-concurrency-as-bool", lambda d: d["lambda"].update(reserved_concurrency=True),
     ["lambda.reserved_concurrency: found True (bool), expected a valid integer"]),
    ("reserved-concurrency-misspelt", lambda d: fn(d).update(reserved_concurency=2),
     ["lambda.functions.GetItemFunction.reserved_concurency: unknown key; did you mean 'reserved_concurrency'?"]),
]


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(("change", "fragments"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_config_is_rejected_with_every_problem_named_by_its_key_path(change, fragments, tmp_path):
    data = settings()
    change(data)
    path = write(tmp_path, data)

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message
    assert str(path) in message


@pytest.mark.parametrize(("change", "fragments"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_provision_exits_2_on_a_malformed_config_without_calling_aws(change, fragments, tmp_path, capsys):
    data = settings()
    change(data)

    code = provision_main(["--config", str(write(tmp_path, data)), "--target", "aws"])

    assert code == 2
    err = capsys.readouterr().err
    assert fragments[0] in err
    assert "Traceback" not in err


UNREADABLE = [
    ("yaml-syntax-error", "stack: demo\nlambda: [unclosed\n", ["YAML syntax error at line 3"]),
    ("yaml-bad-indentation", "stack: demo\n  region: us-east-1\n", ["YAML syntax error at line 2"]),
    ("top-level-list", "- stack: demo\n", ["(top level): found a list, expected a mapping of settings"]),
    ("top-level-string", "just some text\n", ["(top level): found 'just some text' (str), expected a mapping"]),
    ("empty-file", "", ["(top level): found None (NoneType), expected a mapping"]),
]


@pytest.mark.parametrize(("text", "fragments"), [u[1:] for u in UNREADABLE], ids=[u[0] for u in UNREADABLE])
def test_a_file_that_is_not_a_yaml_mapping_is_rejected_and_provision_exits_2(text, fragments, tmp_path, capsys):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    for fragment in fragments:
        assert fragment in str(raised.value)

    assert provision_main(["--config", str(path)]) == 2
    assert fragments[0] in capsys.readouterr().err


def test_a_missing_config_file_is_rejected_and_provision_exits_2(tmp_path, capsys):
    path = tmp_path / "nowhere.yaml"

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    assert raised.value.problems == [f"{path}: file not found; pass --config FILE or copy config.yaml from the repository"]
    assert provision_main(["--config", str(path)]) == 2
    assert "file not found" in capsys.readouterr().err


def test_a_valid_config_does_reach_the_aws_door_so_the_guard_above_would_catch_a_call(tmp_path):
    with pytest.raises(AwsWasCalled):
        provision_main(["--config", str(write(tmp_path, settings())), "--target", "aws"])


def test_teardown_exits_2_on_a_malformed_config_without_calling_aws(tmp_path, capsys):
    data = settings()
    data["monitoring"]["log_retention_days"] = 15

    code = teardown_main(["--config", str(write(tmp_path, data)), "--target", "aws", "--yes"])

    assert code == 2
    assert "monitoring.log_retention_days" in capsys.readouterr().err


def test_every_problem_is_reported_at_once(tmp_path):
    data = settings()
    data["stack"] = "Bad Stack"
    data["lambda"]["memory_mb"] = 100
    data["monitoring"]["log_retention_days"] = 15
    data["regoin"] = data.pop("region")

    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, data))

    problems = raised.value.problems
    assert sorted(p.split(":")[0] for p in problems) == ["lambda.memory_mb", "monitoring.log_retention_days", "regoin", "stack"]
    assert "(4 problems)" in str(raised.value)


def test_the_repositorys_config_yaml_is_valid():
    config = load_config(ROOT / "config.yaml")

    assert config.stack == "demo"
    assert len(config.lambda_.functions) == 5
    assert config.table_name == "demo-ItemsTable"


def test_defaults_fill_in_what_a_minimal_config_leaves_out():
    config = parse_config({"stack": "mini", "lambda": {"functions": {"Get": {"handler": "get_item.lambda_handler", "route": "GET /items"}}}})

    assert (config.region, config.target, config.lambda_.runtime, config.lambda_.memory_mb) == ("us-east-1", "local", "python3.12", 128)
    assert config.monitoring.log_retention_days == 14
    assert config.api.stage == "prod"
    assert (config.api.cors.allowed_origins, config.api.cors.max_age_s) == (["*"], 600)
    assert config.all_tags == {"managed-by": "crudstack", "crudstack-stack": "mini"}
    assert (config.retry.deadline_s, config.retry.max_attempts) == (180, None)   # no cap: the deadline decides


def test_every_aws_name_is_prefixed_by_the_stack_name():
    config = parse_config({**settings(), "stack": "acme"})

    assert (config.table_name, config.role_name, config.api_name, config.topic_name) == (
        "acme-ItemsTable", "acme-LambdaDynamoDBRole", "acme-ItemsApi", "acme-ItemsApiAlerts")
    assert config.function_name("GetItemFunction") == "acme-GetItemFunction"


def test_names_tutorial_gives_the_console_tutorials_own_names_with_no_prefix_and_keeps_the_stack_in_the_tags():
    config = parse_config({**settings(), "stack": "tutorial", "names": "tutorial"})

    assert (config.table_name, config.role_name, config.api_name, config.topic_name) == (
        "ItemsTable", "LambdaDynamoDBRole", "ItemsApi", "ItemsApiAlerts")
    assert config.function_name("CreateItemFunction") == "CreateItemFunction"
    assert config.ownership_tags == {"managed-by": "crudstack", "crudstack-stack": "tutorial"}
    assert parse_config(settings()).names == "prefixed"


def test_an_unknown_names_setting_is_rejected_naming_the_two_values(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**settings(), "names": "console"}), encoding="utf-8")

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    assert "names" in str(raised.value) and "'prefixed'" in str(raised.value) and "'tutorial'" in str(raised.value)


def test_a_valid_alert_email_and_period_are_accepted():
    data = settings()
    data["monitoring"]["alert_email"] = "ops@example.com"
    data["monitoring"]["alarms"]["period_s"] = 300

    config = parse_config(data)

    assert config.monitoring.alert_email == "ops@example.com"
    assert config.monitoring.alarms.period_s == 300


def test_the_config_is_immutable():
    config = parse_config(settings())

    with pytest.raises(pydantic.ValidationError, match="frozen"):
        config.stack = "other"  # type: ignore[misc]


def test_exact_cors_origins_with_ports_and_ipv6_are_accepted():
    data = settings()
    data["api"]["cors"] = {"allowed_origins": ["https://app.example.com", "http://localhost:3000", "http://[::1]:8080"], "max_age_s": 0}

    config = parse_config(data)

    assert config.api.cors.allowed_origins == ["https://app.example.com", "http://localhost:3000", "http://[::1]:8080"]


@pytest.mark.parametrize("period", [10, 30])
def test_a_short_alarm_period_is_rejected_for_aws_before_any_aws_call(period, tmp_path, capsys):
    data = settings()
    data["target"] = "aws"
    data["monitoring"]["alarms"]["period_s"] = period

    code = provision_main(["--config", str(write(tmp_path, data))])

    assert code == 2
    err = capsys.readouterr().err
    assert f"monitoring.alarms.period_s: found {period} (int), expected a multiple of 60 seconds with target aws" in err
    assert "for demos with target: local" in err


def test_a_short_alarm_period_in_a_local_config_is_rejected_when_aws_is_chosen_on_the_command_line(tmp_path, capsys):
    data = settings()
    data["monitoring"]["alarms"]["period_s"] = 10  # target: local in the file

    assert provision_main(["--config", str(write(tmp_path, data)), "--target", "aws", "--plan"]) == 2
    assert "monitoring.alarms.period_s: found 10 (int)" in capsys.readouterr().err


def test_a_short_alarm_period_is_accepted_for_the_local_aws(tmp_path):
    data = settings()
    data["monitoring"]["alarms"]["period_s"] = 10

    with pytest.raises(AwsWasCalled):  # past validation, at the door of the local AWS
        provision_main(["--config", str(write(tmp_path, data)), "--target", "local"])


def environment_of_size(data: dict, size: int, filler: str = "x") -> dict:
    """GetItemFunction's environment padded so that Lambda measures `size` bytes (ours included)."""
    config = parse_config(data)
    fn(data)["environment"] = {"BANNER": ""}
    empty = len(json.dumps(config.own_variables() | {"BANNER": ""}, separators=(",", ":")).encode())
    fn(data)["environment"]["BANNER"] = filler * ((size - empty) // len(filler.encode()))
    return data


def test_environment_variables_of_exactly_4_kb_are_accepted_and_one_byte_more_is_not(tmp_path):
    accepted = parse_config(environment_of_size(settings(), 4096))
    assert len(accepted.lambda_.functions["GetItemFunction"].environment["BANNER"]) > 3900

    with pytest.raises(ConfigError) as raised:
        parse_config(environment_of_size(settings(), 4097))
    assert raised.value.problems == [
        "lambda.functions.GetItemFunction.environment: found 4097 bytes of environment variables (measured as Lambda does, "
        "as JSON, with our TABLE_NAME and ALLOWED_ORIGINS), expected at most 4096 (Lambda's 4 KB limit); shorten or remove "
        "values, or keep large settings elsewhere (e.g. SSM Parameter Store)"]


def test_the_4_kb_limit_counts_bytes_not_characters():
    with pytest.raises(ConfigError) as raised:
        parse_config(environment_of_size(settings(), 4200, filler="é"))  # about 2,050 characters, 4,200 bytes

    assert "found 4200 bytes" in raised.value.problems[0]


def test_every_environment_problem_of_every_function_is_reported_at_once():
    data = settings()
    fn(data)["environment"] = {"AWS_REGION": "eu-west-1", "TABLE_NAME": "t", "bad-key": "1", "PAGE_SIZE": "50"}
    fn(data, "DeleteItemFunction")["environment"] = {"TZ": "Europe/Paris"}

    with pytest.raises(ConfigError) as raised:
        parse_config(data)

    assert [p.split(":")[0] for p in raised.value.problems] == [
        "lambda.functions.GetItemFunction.environment.AWS_REGION", "lambda.functions.GetItemFunction.environment.TABLE_NAME",
        "lambda.functions.GetItemFunction.environment.bad-key", "lambda.functions.DeleteItemFunction.environment.TZ"]


def test_variables_of_your_own_are_sent_after_the_tools_own():
    data = settings()
    fn(data)["environment"] = {"PAGE_SIZE": "50", "Log_Level_2": "debug"}

    config = parse_config(data)

    assert config.function_environment(config.lambda_.functions["GetItemFunction"]) == {
        "TABLE_NAME": "demo-ItemsTable", "ALLOWED_ORIGINS": "*", "PAGE_SIZE": "50", "Log_Level_2": "debug"}


# -- who may call the API (api.auth, api.throttle, api.usage_plan) --------------------------------------------


def test_an_api_section_without_auth_settings_is_the_open_api_throttled_at_100_per_second_burst_200():
    data = settings()
    data["api"] = {"name": "ItemsApi"}

    api = parse_config(data).api

    assert api.auth == "none"
    assert (api.throttle.rate_per_s, api.throttle.burst) == (100, 200)
    assert (api.usage_plan.rate_per_s, api.usage_plan.burst, api.usage_plan.quota, api.usage_plan.quota_period) == (10, 20, 10000, "DAY")


def test_a_fractional_rate_and_no_quota_are_accepted():
    data = settings()
    data["api"]["throttle"] = {"rate_per_s": 0.5, "burst": 1}
    data["api"]["usage_plan"] = {"quota": None}

    api = parse_config(data).api

    assert api.throttle.rate_per_s == 0.5 and api.usage_plan.quota is None


def test_a_rate_over_the_accounts_quota_and_an_unknown_key_are_both_named():
    data = settings()
    data["api"]["throttle"] = {"rate_per_s": 20000, "burst": 10}
    data["api"]["usage_plan"] = {"quota_perod": "DAY"}

    with pytest.raises(ConfigError) as raised:
        parse_config(data)

    text = str(raised.value)
    assert "api.throttle.rate_per_s: found 20000 (int), expected less than or equal to 10000" in text
    assert "api.usage_plan.quota_perod: unknown key; did you mean 'quota_period'?" in text


# -- issue 21: links out of code_dir, duplicate keys, size, dot segments ------------------------------------------


def test_a_link_out_of_code_dir_makes_provision_exit_2_before_any_aws_call_naming_the_file(tmp_path, capsys):
    import shutil

    code = tmp_path / "lambdas"
    shutil.copytree(ROOT / "lambdas", code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0\n")
    (code / "common" / "leak.txt").symlink_to(secret)
    (code / "get_item.py").unlink()
    (code / "get_item.py").symlink_to(secret)
    data = settings()
    data["lambda"]["code_dir"] = str(code)

    code_ = provision_main(["--config", str(write(tmp_path, data)), "--target", "aws", "--plan"])

    assert code_ == 2
    err = capsys.readouterr().err
    assert f"lambda.code_dir: common/leak.txt is a link to the file {secret}" in err
    assert f"lambda.functions.GetItemFunction: get_item.py is a link to the file {secret}" in err
    assert err.count("common/leak.txt") == 1   # the shared package is in every function: named once


@pytest.mark.parametrize(("text", "fragment"), [
    ("stack: demo\nregion: us-east-1\nstack: other\n", "line 3: key 'stack' appears twice in the same mapping (first at line 1)"),
    ("stack: demo\nlambda: {code_dir: lambdas, code_dir: elsewhere}\n", "line 2: key 'code_dir' appears twice"),
])
def test_a_key_given_twice_is_refused_naming_the_key_and_its_line(text, fragment, tmp_path, capsys):
    path = write(tmp_path, text)

    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config(path)
    assert provision_main(["--config", str(path), "--target", "aws"]) == 2
    assert fragment in capsys.readouterr().err


def test_a_yaml_merge_key_may_still_be_overridden(tmp_path):
    text = yaml.safe_dump(settings(), sort_keys=False).replace("stack: ", "base: &base {region: us-east-1}\nstack: ", 1)
    data = yaml.load(text, Loader=crudstack.config._UniqueKeyLoader)
    assert data["base"] == {"region": "us-east-1"}
    merged = "defaults: &d {a: 1, b: 2}\nthing:\n  <<: *d\n  a: 3\n"
    assert yaml.load(merged, Loader=crudstack.config._UniqueKeyLoader)["thing"] == {"a": 3, "b": 2}


def test_a_config_over_1_mib_is_refused_before_it_is_parsed(tmp_path, capsys, monkeypatch):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(settings()) + "# padding\n" * (1024 * 1024 // 10 + 1))
    parsed = []
    monkeypatch.setattr(crudstack.config.yaml, "load", lambda *a, **k: parsed.append(a) or {})

    assert provision_main(["--config", str(path), "--target", "aws"]) == 2
    assert f"{path}: larger than 1 MiB ({path.stat().st_size} bytes)" in capsys.readouterr().err
    assert parsed == []


@pytest.mark.parametrize("route", ["POST /items/../admin", "GET /items/./{id}", "GET /../items"])
def test_a_route_with_a_dot_segment_is_refused(route, tmp_path):
    data = settings()
    fn(data)["route"] = route

    with pytest.raises(ConfigError, match=r"lambda.functions.GetItemFunction.route: found .*, expected a path without "
                                          r"'.' or '..' segments"):
        load_config(write(tmp_path, data))


def test_dots_inside_a_path_part_are_still_accepted(tmp_path):
    data = settings()
    fn(data)["route"] = "GET /items.v2/{id}"

    assert load_config(write(tmp_path, data)).lambda_.functions["GetItemFunction"].path == "/items.v2/{id}"


def test_a_config_nested_thousands_deep_is_refused_with_exit_2_not_a_crash(tmp_path, capsys):
    # 20 KB of '[' is far under the 1 MiB cap, but PyYAML's composer recurses once per level: RecursionError.
    path = write(tmp_path, "stack: " + "[" * 10_000 + "]" * 10_000 + "\n")

    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)
    assert provision_main(["--config", str(path), "--target", "aws", "--plan"]) == 2
    assert "nested too deeply" in capsys.readouterr().err


def test_a_merge_source_that_overrides_its_own_merge_is_not_taken_for_a_key_given_twice():
    # s is merged inline into the top level before it is read again through *s: by then PyYAML has flattened it
    # in place (k from its own merge, then its own k), which is not a key written twice.
    text = "<<: &s {<<: {k: 1}, k: 2}\nother: *s\n"
    assert yaml.load(text, Loader=crudstack.config._UniqueKeyLoader) == {"k": 2, "other": {"k": 2}}
    with pytest.raises(crudstack.config.DuplicateKey, match="key 'k' appears twice"):
        yaml.load("<<: &s {<<: {k: 1}, k: 2, k: 3}\nother: *s\n", Loader=crudstack.config._UniqueKeyLoader)


def test_a_key_given_twice_inside_a_merge_source_written_in_place_is_refused():
    # an in-place merge source is never built as a mapping of its own, only flattened into the one it is merged in
    with pytest.raises(crudstack.config.DuplicateKey, match="key 'memory_mb' appears twice"):
        yaml.load("lambda:\n  <<: {memory_mb: 128, memory_mb: 512}\n", Loader=crudstack.config._UniqueKeyLoader)


def test_an_endless_device_given_as_the_config_is_refused_without_a_wrong_size(capsys):
    # /dev/zero (or a pipe) has no size: st_size is 0, and '(0 bytes)' beside 'larger than 1 MiB' was false.
    assert provision_main(["--config", "/dev/zero", "--target", "aws", "--plan"]) == 2
    err = capsys.readouterr().err
    assert "/dev/zero: larger than 1 MiB (more than 1048576 bytes read from it)" in err
    assert "(0 bytes)" not in err


def test_a_config_saved_in_latin_1_is_refused_naming_the_line_and_what_to_do(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"stack: demo\nregion: us-east-1\ntags: {owner: Ren\xe9}\n")   # an editor's Latin-1 'e acute'

    with pytest.raises(ConfigError) as raised:
        load_config(path)

    assert raised.value.problems == [f"{path}: line 3 is not UTF-8 (byte 0xe9): save the file as UTF-8"]


@pytest.mark.parametrize(("value", "fragment"), [
    ("2026-13-01", "line 1: 2026-13-01 looks like a date but is not one (month must be in 1..12)"),
    ("9" * 5000, "line 1: " + "9" * 20 + "... is a number too long to read"),
    # in binary PyYAML builds it (int(s, 2) has no limit), and the message about it could not show it
    ("0b" + "1" * 20000, "stack: found a number of 20000 bits (int), expected"),
])
def test_a_value_yaml_cannot_build_is_refused_with_exit_2_not_a_crash(value, fragment, tmp_path, capsys):
    # PyYAML builds a date or an int from what matches their pattern; datetime and int then raise ValueError,
    # which is not a YAMLError (a month 13, or more than Python's 4300 digits for int(str)).
    path = write(tmp_path, f"stack: {value}\n")

    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config(path)
    assert provision_main(["--config", str(path), "--target", "aws", "--plan"]) == 2
    assert "unexpected" not in capsys.readouterr().err
