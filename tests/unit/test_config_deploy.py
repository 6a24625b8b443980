"""What config.yaml may not ask of a provision although it parses: a Lambda runtime blocked by Lambda's own
dates (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html), a deprecated one (a warning), and a
partition key the handlers do not read. Each is refused (exit 2) before any AWS call."""

from __future__ import annotations

from datetime import date

import pytest

import crudstack.config
from crudstack.cli import provision_main
from crudstack.config import check_target, deploy_problems, parse_config, runtime_warnings
from tests.unit.test_config import no_aws, settings, write   # noqa: F401  (no_aws: the guard against AWS calls)


def config_with(**lambda_settings):
    data = settings()
    data["lambda"].update(lambda_settings)
    return parse_config(data)


# The rows of Lambda's runtime table (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html, repeated in
# https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html) as read on the page: deprecation, block create,
# block update. python3.9's row could not be read there (crudstack/config.py says so) and is not pinned here.
LAMBDA_PAGE_ROWS = {
    "python3.14": ("2029-06-30", "2029-07-31", "2029-08-31"),
    "python3.13": ("2029-06-30", "2029-07-31", "2029-08-31"),
    "python3.12": ("2028-10-31", "2028-11-30", "2029-01-10"),
    "python3.11": ("2027-06-30", "2027-07-31", "2027-08-31"),
    "python3.10": ("2026-10-31", "2026-11-30", "2027-01-15"),
}


@pytest.mark.parametrize("runtime", sorted(LAMBDA_PAGE_ROWS))
def test_runtime_dates_are_the_rows_of_lambdas_runtime_table(runtime):
    dates = crudstack.config.PYTHON_RUNTIMES[runtime]

    assert (str(dates.deprecated), str(dates.block_create), str(dates.block_update)) == LAMBDA_PAGE_ROWS[runtime]


def test_the_newest_runtime_named_is_python3_14_though_python3_13_has_the_same_dates(monkeypatch):
    monkeypatch.setattr(crudstack.config, "PYTHON_RUNTIMES", dict(reversed(crudstack.config.PYTHON_RUNTIMES.items())))

    problems = deploy_problems(config_with(runtime="python3.8"), on=date(2026, 12, 6))

    assert "set lambda.runtime to python3.14" in problems[0]


def test_python3_11_is_still_accepted_in_december_2026_as_lambda_still_creates_it():
    assert deploy_problems(config_with(runtime="python3.11"), on=date(2026, 12, 6)) == []


def test_python3_14_is_accepted_and_needs_no_warning():
    config = config_with(runtime="python3.14")

    assert deploy_problems(config, on=date(2026, 12, 6)) == []
    assert runtime_warnings(config, on=date(2026, 12, 6)) == []


@pytest.mark.parametrize(("on", "blocked", "warned"), [
    (date(2026, 12, 6), False, False),   # supported
    (date(2027, 7, 1), False, True),     # deprecated 2027-06-30: a warning, the run goes on
    (date(2027, 8, 1), True, False),     # function create blocked from 2027-07-31: refused
])
def test_python3_11_is_supported_then_deprecated_then_blocked_on_lambdas_dates(on, blocked, warned):
    config = config_with(runtime="python3.11")

    problems, warnings = deploy_problems(config, on=on), runtime_warnings(config, on=on)

    assert bool(problems) is blocked
    assert bool(warnings) is warned
    if blocked:
        assert "lambda.runtime: found 'python3.11', which Lambda has blocked" in problems[0]
        assert "set lambda.runtime to python3.14" in problems[0]
    if warned:
        assert "python3.11 is deprecated since 2027-06-30" in warnings[0]


def test_provision_exits_2_on_a_blocked_runtime_before_any_aws_call(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(crudstack.config, "today", lambda: date(2026, 12, 6))
    data = settings()
    data["lambda"]["runtime"] = "python3.10"

    assert provision_main(["--config", str(write(tmp_path, data)), "--target", "aws"]) == 2
    err = capsys.readouterr().err
    assert "lambda.runtime: found 'python3.10', which Lambda has blocked: it creates no function with it since 2026-11-30" in err


def test_a_deprecated_runtime_is_a_warning_on_stderr(capsys):
    original = crudstack.config.today
    crudstack.config.today = lambda: date(2026, 11, 1)
    try:
        check_target(config_with(runtime="python3.10"), "aws")
    finally:
        crudstack.config.today = original

    assert "warning: lambda.runtime: python3.10 is deprecated since 2026-10-31" in capsys.readouterr().err


def test_a_partition_key_the_handlers_do_not_read_is_refused_before_any_aws_call(tmp_path, capsys):
    data = settings()
    data["table"]["partition_key"] = "sku"

    assert provision_main(["--config", str(write(tmp_path, data)), "--target", "aws"]) == 2
    err = capsys.readouterr().err
    assert "table.partition_key: found 'sku', expected 'id': the handlers in lambdas/ read and write each item by its 'id'" in err


def test_the_default_partition_key_is_the_one_the_handlers_read():
    assert deploy_problems(parse_config(settings()), on=date(2026, 12, 6)) == []
