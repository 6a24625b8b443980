"""What a run shows: plain lines off a terminal, the wait and retry messages, the plan's summary
line and the summary table."""

import io

import botocore.exceptions

from crudstack.plan import Action, Change
from crudstack.runner import StepResult
from crudstack.steps.role import RoleStep
from crudstack.steps.table import TableStep
from crudstack.ui import (RunReporter, Screen, grouped_lines, plan_counts, plan_line, plural, run_line, wait_message,
                          wants_live)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def client_error(code: str, message: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": message}}, "CreateFunction")


def test_live_output_only_on_a_terminal_without_no_color_nor_a_dumb_term():
    assert wants_live(Terminal(), {"TERM": "xterm-256color"})
    assert not wants_live(io.StringIO(), {"TERM": "xterm-256color"})
    assert not wants_live(Terminal(), {"TERM": "xterm-256color", "NO_COLOR": "1"})
    assert not wants_live(Terminal(), {"TERM": "dumb"})


def test_plain_output_has_no_escape_codes():
    stream = io.StringIO()
    reporter = RunReporter(Screen(stream, live=False))
    change = Change("table", "demo-ItemsTable", Action.CREATE)

    reporter.step_started(TableStep())
    reporter.step_planned(TableStep(), [change])
    reporter.change_started(TableStep(), change)
    reporter.step_finished(StepResult(TableStep(), [change], 1.5))
    reporter.close()

    assert "\x1b" not in stream.getvalue()
    assert stream.getvalue().splitlines() == [
        "Step 1  DynamoDB table ....................... created          1.50 s",
        "        + table demo-ItemsTable",
    ]


def test_a_wait_reports_what_it_waits_for_and_the_attempt_about_to_be_made():
    assert wait_message("waiting for function demo-X to be Active", TimeoutError("x"), 2) == \
        "waiting for function demo-X to be Active (attempt 3)"


def test_a_role_not_yet_usable_by_lambda_reads_as_iam_propagation():
    exc = client_error("InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda.")

    assert wait_message("create_function", exc, 1) == "waiting for IAM role to propagate (attempt 2)"


def test_other_retries_name_the_call_and_the_error():
    assert wait_message("put_item", client_error("ThrottlingException", "slow down"), 4) == \
        "retrying put_item after ThrottlingException (attempt 5)"


def test_off_a_terminal_each_wait_is_a_plain_line_and_quiet_hides_it():
    loud, quiet = io.StringIO(), io.StringIO()
    for stream, is_quiet in ((loud, False), (quiet, True)):
        reporter = RunReporter(Screen(stream, live=False), quiet=is_quiet)
        reporter.step_started(RoleStep())
        reporter.on_retry("waiting for table demo-ItemsTable to be ACTIVE", TimeoutError("x"), 1)

    assert loud.getvalue() == "Step 2  IAM role: waiting for table demo-ItemsTable to be ACTIVE (attempt 2)\n"
    assert quiet.getvalue() == ""


def test_on_a_terminal_the_live_line_shows_the_step_and_what_it_does():
    stream = Terminal()
    reporter = RunReporter(Screen(stream, live=True))
    change = Change("role", "demo-LambdaDynamoDBRole", Action.CREATE)

    reporter.step_started(RoleStep())
    reporter.step_planned(RoleStep(), [change])
    reporter.change_started(RoleStep(), change)
    reporter.on_retry("create_function", client_error("InvalidParameterValueException", "cannot be assumed by Lambda"), 1)
    reporter.step_finished(StepResult(RoleStep(), [change], 0.2))

    shown = stream.getvalue()
    assert "Step 2  IAM role: creating role demo-LambdaDynamoDBRole" in shown
    assert "Step 2  IAM role: waiting for IAM role to propagate (attempt 2)" in shown
    assert "Step 2  IAM role ...." in shown  # the outcome, once the live line is gone


def test_plan_line_reads_like_terraforms_and_adds_kept_and_skipped_only_when_there_are_some():
    results = [StepResult(TableStep(), [Change("table", "t", Action.CREATE), Change("table", "u", Action.UNCHANGED)]),
               StepResult(RoleStep(), [Change("role", "r", Action.UPDATE), Change("role", "s", Action.DELETE)])]

    assert plan_line(plan_counts(results)) == "Plan: 1 to add, 1 to change, 1 to destroy, 1 unchanged."
    results.append(StepResult(TableStep(), [Change("table", "v", Action.KEEP)]))
    assert plan_line(plan_counts(results)) == "Plan: 1 to add, 1 to change, 1 to destroy, 1 unchanged, 1 kept."


def test_summary_table_lists_only_what_changed_with_the_time_its_change_took():
    stream = io.StringIO()
    screen = Screen(stream, live=False)
    reporter = RunReporter(screen)
    made, kept = Change("table", "demo-ItemsTable", Action.CREATE), Change("role", "demo-LambdaDynamoDBRole", Action.UNCHANGED)
    reporter.step_started(TableStep())
    reporter.change_started(TableStep(), made)
    reporter.change_finished(TableStep(), made, 0.4)
    reporter.step_finished(StepResult(TableStep(), [made], 0.4))
    reporter.step_started(RoleStep())
    reporter.step_finished(StepResult(RoleStep(), [kept], 0.1))

    screen.show(reporter.summary_table())

    rows = [line for line in stream.getvalue().splitlines() if "demo-" in line and line.startswith("|")]
    assert [[cell.strip() for cell in row.strip("|").split("|")] for row in rows] == [
        ["1", "table demo-ItemsTable", "created", "0.40 s"]]


def test_summary_of_a_run_that_changed_nothing_is_one_line_and_no_empty_frame():
    stream = io.StringIO()
    screen = Screen(stream, live=False)
    reporter = RunReporter(screen)
    reporter.step_started(TableStep())
    reporter.step_finished(StepResult(TableStep(), [Change("table", "demo-ItemsTable", Action.UNCHANGED)], 0.1))

    screen.show(reporter.summary_table())

    summary = stream.getvalue().splitlines()[-1]
    assert summary == "Nothing to change: every resource is as config.yaml asks."
    assert "+--" not in stream.getvalue() and "|" not in summary


def test_a_run_names_each_resource_once_putting_those_of_one_kind_on_one_wrapped_line():
    functions = [Change("function", f"demo-{name}Function", Action.CREATE) for name in ("CreateItem", "GetItems", "GetItem")]
    policy = Change("inline policy", "demo-items-access", Action.CREATE)
    updated = Change("function", "demo-DeleteItemFunction", Action.UPDATE, diffs={"memory": (128, 256)})

    lines = grouped_lines([*functions, policy, updated], width=70)

    assert lines == [
        "+ 3 functions: demo-CreateItemFunction, demo-GetItemsFunction,",
        "               demo-GetItemFunction",
        "+ inline policy demo-items-access",
        "~ function demo-DeleteItemFunction (memory: 128 -> 256)",
    ]


def test_plurals_of_the_kinds_a_step_makes():
    assert [plural(k) for k in ("alarm", "inline policy", "gateway response", "REST API", "log group")] == \
        ["alarms", "inline policies", "gateway responses", "REST APIs", "log groups"]


def test_the_run_line_counts_added_changed_unchanged_and_deleted():
    results = [StepResult(TableStep(), [Change("table", "t", Action.CREATE), Change("table", "u", Action.UNCHANGED)]),
               StepResult(RoleStep(), [Change("role", "r", Action.UPDATE), Change("role", "s", Action.DELETE)])]

    assert run_line(results, 2.04, 30, 7) == "Done in 2.0 s: 1 added, 1 changed, 1 unchanged, 1 deleted (30 reads, 7 writes)."
    assert run_line(results[:1][:0], 0.5, 9, 0) == "Nothing to change: every step is unchanged in 0.5 s (9 reads, 0 writes)."


def test_the_summary_table_is_wanted_only_with_verbose_or_when_a_run_did_more_than_add():
    def reporter(*actions: Action, verbose: bool = False) -> RunReporter:
        made = RunReporter(Screen(io.StringIO(), live=False), verbose=verbose)
        made.results.append(StepResult(TableStep(), [Change("table", f"t{i}", a) for i, a in enumerate(actions)]))
        return made

    assert not reporter(Action.CREATE, Action.CREATE).wants_summary_table()
    assert reporter(Action.CREATE, verbose=True).wants_summary_table()
    assert reporter(Action.CREATE, Action.UPDATE).wants_summary_table()
    assert reporter(Action.DELETE).wants_summary_table()
    assert not reporter(Action.UNCHANGED, verbose=True).wants_summary_table()
