"""What a run shows a person: live progress on a terminal, plain lines anywhere else.

    Screen           one output stream: rich (colour, a live line) on a terminal; plain, uncoloured
                     lines when it is not a terminal, NO_COLOR is set or TERM is dumb (CI logs)
    RunReporter      the runner's Reporter: per step a live line with spinner and elapsed time (the
                     change being made, or what it waits for), then the step's outcome and changes
                     (those of one kind on one line); times each change for the summary table, shown
                     with --verbose or when a run did more than add; --quiet and --verbose live here
    Guide            the workshop mode (--walkthrough): before each step, the console instructions
                     and the boto3 calls it will make, then Enter to go on (at once without a terminal)

The words of the walkthrough are in walkthrough.yaml (crudstack/walkthrough.py fills them in).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Callable, TextIO

import botocore

from crudstack.aws import Aws, error_code, error_message
from crudstack.plan import Action, Change, Context
from crudstack.runner import Reporter, StepResult
from crudstack.steps.base import Step

# rich (about 100 ms to import) only when something is drawn with it: a terminal's colours and live line, a
# table, the walkthrough's panels; plain lines (CI logs, pipes) never import it. The walkthrough's script too.
if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

    from crudstack.walkthrough import Script

SYMBOL_STYLE = {"+": "green", "~": "yellow", "-": "red", "=": "dim", "!": "magenta"}
OUTCOME_STYLE = {"created": "green", "updated": "yellow", "deleted": "red", "unchanged": "dim", "nothing to do": "dim",
                 "kept": "magenta", "skipped": "magenta"}
# How a plan tells a step's outcome: nothing has happened yet.
PLAN_OUTCOME = {"created": "to create", "updated": "to update", "deleted": "to delete", "kept": "to keep"}
DOING = {Action.CREATE: "creating", Action.UPDATE: "updating", Action.DELETE: "deleting"}
PLAIN_WIDTH = 120  # tables in CI logs: wide enough for alarm names, never wrapped by a guessed width
GROUP_WIDTH = 110  # a step's line of same-kind resources wraps here, under a terminal's usual 120 columns


def wants_live(stream: TextIO, environ=os.environ) -> bool:
    """Colour and a live line only for a person at a terminal (https://no-color.org)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not environ.get("NO_COLOR") and environ.get("TERM") != "dumb"


class Screen:
    """One output stream, rich on a terminal and plain elsewhere."""

    def __init__(self, stream: TextIO, *, live: bool | None = None):
        self.stream = stream
        self.live = wants_live(stream) if live is None else live
        self._console = None

    @property
    def console(self):
        """rich's Console on this stream, made (and rich imported) the first time something needs it."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, force_terminal=self.live, no_color=not self.live, highlight=False,
                                    markup=False, emoji=False, width=None if self.live else PLAIN_WIDTH)
        return self._console

    def print(self, text: str = "", style: str | None = None) -> None:
        if self.live:
            from rich.text import Text

            # soft_wrap: long lines (curl commands, URLs) are left whole for the terminal to wrap.
            self.console.print(Text(text, style=style or ""), soft_wrap=True)
        else:
            print(text, file=self.stream, flush=True)

    def show(self, renderable) -> None:
        """A rich renderable; or plain text already drawn (a table in ASCII), printed as it is when not live."""
        if isinstance(renderable, str) and not self.live:
            print(renderable, file=self.stream, flush=True)
            return
        self.console.print(renderable)
        self.stream.flush()


def ascii_table(head: list[str], rows: list[list[str]], *, right: tuple[int, ...] = ()) -> str:
    """A table as rich draws it with box.ASCII and show_edge (a frame, a rule under the head), columns as wide as
    their widest cell; the columns numbered in `right` are aligned right."""
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "|" + "|".join(f" {c.rjust(w) if i in right else c.ljust(w)} " for i, (c, w) in enumerate(zip(cells, widths))) + "|"

    frame = "+" + "-" * (sum(widths) + 3 * len(widths) - 1) + "+"
    rule = "|" + "+".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([frame, line(head), rule, *map(line, rows), frame])


class _Spinner:
    """The live line of one step: spinner, what it does now, seconds since the step began."""

    def __init__(self, screen: Screen, description: str):
        from rich.progress import Progress, ProgressColumn, SpinnerColumn, TextColumn
        from rich.text import Text

        class Seconds(ProgressColumn):
            def render(self, task) -> Text:
                return Text(f"{task.elapsed or 0:5.1f} s", style="cyan")

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), Seconds(), console=screen.console,
                                 transient=True, redirect_stdout=False, redirect_stderr=False)
        self.task = self.progress.add_task(description, total=None)
        self.progress.start()

    def update(self, description: str) -> None:
        # Refresh now, not at the next tick: a call that takes 50 ms is still shown.
        self.progress.update(self.task, description=description, refresh=True)

    def stop(self) -> None:
        self.progress.stop()


def step_label(step: Step) -> str:
    return f"Step {step.number}  {step.title}"


def wait_message(what: str, exc: BaseException, attempt: int) -> str:
    """An on_retry report as a person reads it; `attempt` is the try that just failed."""
    if what.startswith("waiting for"):
        return f"{what} (attempt {attempt + 1})"
    if "cannot be assumed" in error_message(exc):
        return f"waiting for IAM role to propagate (attempt {attempt + 1})"
    return f"retrying {what} after {error_code(exc) or type(exc).__name__} (attempt {attempt + 1})"


def plan_counts(results: list[StepResult]) -> dict[str, int]:
    counts = {"add": 0, "change": 0, "destroy": 0, "unchanged": 0, "kept": 0, "skipped": 0}
    key = {Action.CREATE: "add", Action.UPDATE: "change", Action.DELETE: "destroy", Action.UNCHANGED: "unchanged",
           Action.KEEP: "kept", Action.SKIP: "skipped"}
    for change in (c for r in results for c in r.changes):
        counts[key[change.action]] += 1
    return counts


def plan_line(counts: dict[str, int]) -> str:
    """Terraform's summary: 'Plan: 3 to add, 1 to change, 0 to destroy, 20 unchanged.'"""
    text = f"Plan: {counts['add']} to add, {counts['change']} to change, {counts['destroy']} to destroy, {counts['unchanged']} unchanged"
    for extra in ("kept", "skipped"):
        if counts[extra]:
            text += f", {counts[extra]} {extra}"
    return text + "."


def plural(kind: str) -> str:
    """'function' -> 'functions', 'inline policy' -> 'inline policies', 'gateway response' -> 'gateway responses'."""
    if kind.endswith("y") and kind[-2:-1] not in "aeiou":
        return kind[:-1] + "ies"
    return kind + ("es" if kind.endswith("s") else "s")


def grouped_lines(changes: list[Change], width: int = GROUP_WIDTH) -> list[str]:
    """The changes of a step as a run shows them: those of one kind and action that carry no diff and no
    note on one line ('+ 5 functions: a, b, ...', wrapped under its first name), any other one a line."""
    groups: dict[tuple[Action, str], list[Change]] = {}
    for change in changes:
        key = (change.action, change.kind) if not change.diffs and not change.note else (change.action, id(change))
        groups.setdefault(key, []).append(change)
    lines: list[str] = []
    for group in groups.values():
        if len(group) == 1:
            lines.append(group[0].describe())
            continue
        head = f"{group[0].describe()[0]} {len(group)} {plural(group[0].kind)}: "
        line, names_on_line = head, 0
        for i, change in enumerate(group):
            name = change.name + ("," if i < len(group) - 1 else "")
            if names_on_line and len(line) + len(name) > width:
                lines.append(line.rstrip())
                line, names_on_line = " " * len(head), 0
            line += name + " "
            names_on_line += 1
        lines.append(line.rstrip())
    return lines


def run_counts(results: list[StepResult]) -> dict[str, int]:
    """What a run did, as its one summary line counts it."""
    counts = {"added": 0, "changed": 0, "unchanged": 0, "deleted": 0}
    key = {Action.CREATE: "added", Action.UPDATE: "changed", Action.UNCHANGED: "unchanged", Action.DELETE: "deleted"}
    for change in (c for r in results for c in r.changes):
        if change.action in key:
            counts[key[change.action]] += 1
    return counts


def run_line(results: list[StepResult], seconds: float, reads: int, writes: int) -> str:
    """'Done in 1.9 s: 51 added, 0 changed, 0 unchanged, 0 deleted (32 reads, 67 writes).'"""
    counts = run_counts(results)
    if not counts["added"] and not counts["changed"] and not counts["deleted"]:
        head = f"Nothing to change: every step is unchanged in {seconds:.1f} s"
    else:
        head = f"Done in {seconds:.1f} s: " + ", ".join(f"{n} {what}" for what, n in counts.items())
    return f"{head} ({reads} reads, {writes} writes)."


class RunReporter(Reporter):
    """Tells a run as it goes; keeps each step's result and each change's time for the summary."""

    def __init__(self, screen: Screen, *, plan: bool = False, quiet: bool = False, verbose: bool = False,
                 guide: "Guide | None" = None):
        self.screen = screen
        self.plan = plan
        self.quiet = quiet
        self.verbose = verbose
        self.guide = guide
        self.results: list[StepResult] = []
        self.timings: dict[int, float] = {}   # id(change) -> seconds its apply took
        self._spinner: _Spinner | None = None
        self._step: Step | None = None

    # -- wiring ------------------------------------------------------------------------------------
    def attach(self, aws: Aws) -> None:
        """Hear retries and waits; with --verbose, every AWS call and its duration too."""
        aws.on_retry = self.on_retry
        if self.verbose:
            aws.register("before-call", self._call_started)
            aws.register("after-call", self._call_finished)
            aws.register("after-call-error", self._call_failed)

    def close(self) -> None:
        self._stop_spinner()

    # -- the runner's hooks --------------------------------------------------------------------------
    def step_started(self, step: Step) -> None:
        self._step = step
        if self.guide:
            self.guide.before_step(step)
        else:
            self._start_spinner(f"{step_label(step)}: reading what exists")

    def step_planned(self, step: Step, changes: list[Change]) -> None:
        if self.guide:
            self.guide.show_calls(step, changes)
            self.guide.wait(step)
            self._start_spinner(step_label(step))
        elif self._spinner:
            self._spinner.update(step_label(step))

    @property
    def stepwise(self) -> bool:
        return self.guide is not None

    def change_started(self, step: Step, change: Change) -> None:
        self._step = step
        self._say(f"{DOING[change.action]} {change.kind} {change.name}", plain=False)

    def change_finished(self, step: Step, change: Change, seconds: float) -> None:
        self.timings[id(change)] = seconds

    def on_retry(self, what: str, exc: BaseException, attempt: int) -> None:
        self._say(wait_message(what, exc, attempt), plain=True)

    def step_finished(self, result: StepResult) -> None:
        self._stop_spinner()
        self.results.append(result)
        if not self.quiet:
            self._print_result(result)
        if self.guide:
            self.guide.after_step(result)
        elif not self.plan:
            self._start_spinner("working")   # later steps' changes may still run; close() ends it

    # -- output ------------------------------------------------------------------------------------
    def _say(self, doing: str, *, plain: bool) -> None:
        """What the step does now: on the live line, or (waits and retries only) a plain line."""
        text = f"{step_label(self._step)}: {doing}" if self._step else doing
        if self._spinner:
            self._spinner.update(text)
        elif plain and not self.quiet and not self.screen.live:
            self.screen.print(text)  # the same words as the live line, one line per wait

    def _print_result(self, result: StepResult) -> None:
        outcome = PLAN_OUTCOME.get(result.outcome, result.outcome) if self.plan else result.outcome
        head = f"{step_label(result.step) + ' ':.<46} {outcome:<14}"
        if not self.plan:
            head += f" {result.seconds:6.2f} s"
        self.screen.print(head.rstrip(), style=f"bold {OUTCOME_STYLE.get(result.outcome, '')}")
        # A plan lists every resource, one a line; a run lists what it changed (or its one resource),
        # the changes of one kind that have nothing more to say on one line, so each resource is named once.
        shown = [change for change in result.changes
                 if self.plan or change.action is not Action.UNCHANGED or len(result.changes) == 1]
        lines = [change.describe() for change in shown] if self.plan else grouped_lines(shown)
        for line in lines:
            self.screen.print(f"        {line}", style=SYMBOL_STYLE.get(line.lstrip()[0]))

    def _start_spinner(self, description: str) -> None:
        self._stop_spinner()
        if self.screen.live and not self.quiet:
            self._spinner = _Spinner(self.screen, description)

    def _stop_spinner(self) -> None:
        if self._spinner:
            self._spinner.stop()
            self._spinner = None

    # -- --verbose: every AWS call -------------------------------------------------------------------
    def _call_started(self, model, context, **_) -> None:
        context["crudstack_call"] = (model.service_model.service_name, botocore.xform_name(model.name), time.perf_counter())

    def _call_finished(self, context, http_response=None, **_) -> None:
        status = getattr(http_response, "status_code", "?")
        self._print_call(context, str(status))

    def _call_failed(self, context, exception=None, **_) -> None:
        self._print_call(context, f"failed: {type(exception).__name__}")

    def _print_call(self, context, status: str) -> None:
        started = context.pop("crudstack_call", None)
        if started is None:
            return
        service, operation, t0 = started
        self.screen.print(f"          aws {service}.{operation} -> {status} in {(time.perf_counter() - t0) * 1000:.0f} ms", style="dim")

    # -- the end -----------------------------------------------------------------------------------
    def wants_summary_table(self) -> bool:
        """The table repeats the steps' lines: worth it with --verbose, or when a run did more than add."""
        changed = [c for r in self.results for c in r.changes if c.action is not Action.UNCHANGED]
        return bool(changed) and (self.verbose or any(c.action is not Action.CREATE for c in changed))

    def summary_table(self) -> Table | Text | str:
        """What the run changed, each with the time its change took; one line when it changed nothing.
        Not live (CI logs, pipes): plain text, drawn as rich draws box.ASCII, without importing rich."""
        changed = [(result.step, change) for result in self.results for change in result.changes
                   if change.action is not Action.UNCHANGED]
        nothing = "Nothing to change: every resource is as config.yaml asks."
        if not self.screen.live:
            if not changed:
                return nothing
            cells = []
            for step, change in changed:
                seconds = self.timings.get(id(change))
                cells.append([step.number, f"{change.kind} {change.name}", change.action.past,
                              f"{seconds:.2f} s" if seconds is not None else ""])
            return ascii_table(["Step", "Resource", "Outcome", "Time"], cells, right=(0, 3))
        from rich import box
        from rich.table import Table
        from rich.text import Text

        if not changed:
            return Text(nothing, style="dim")
        table = Table(box=box.SIMPLE_HEAD if self.screen.live else box.ASCII, show_edge=not self.screen.live,
                      title=None, header_style="bold")
        table.add_column("Step", justify="right")
        table.add_column("Resource")
        table.add_column("Outcome")
        table.add_column("Time", justify="right")
        for step, change in changed:
            seconds = self.timings.get(id(change))
            table.add_row(step.number, f"{change.kind} {change.name}",
                          Text(change.action.past, style=OUTCOME_STYLE.get(change.action.past, "")),
                          f"{seconds:.2f} s" if seconds is not None else "")
        return table


class Guide:
    """--walkthrough: each step as the console tutorial tells it, then the calls that replace the clicks."""

    def __init__(self, screen: Screen, ctx: Context, *, stdin: TextIO, step_numbers: list[str],
                 invoke_url: Callable[[], str | None], script: Script | None = None):
        from crudstack.walkthrough import load_script

        self.screen = screen
        self.ctx = ctx
        self.stdin = stdin
        self.step_numbers = step_numbers        # the runner's steps, in order (the tutorial has more)
        self.invoke_url = invoke_url
        self.script = script or load_script()
        self.interactive = bool(getattr(stdin, "isatty", None) and stdin.isatty())

    def _header(self, number: str) -> None:
        title = f"Step {number} of {self.script.last_number}: {self.script.step(number).title}"
        if self.screen.live:
            from rich.rule import Rule
            from rich.text import Text

            self.screen.show(Rule(Text(title, style="bold"), style="cyan"))
        else:
            self.screen.print(f"\n=== {title} ===")

    def _block(self, heading: str, lines: list[tuple[int, str]], style: str) -> None:
        """A titled block of (indent level, text) lines; a wrapped line keeps its indent."""
        if self.screen.live:
            from rich.console import Group
            from rich.padding import Padding
            from rich.panel import Panel
            from rich.text import Text

            body = Group(*[Padding(Text(text), (0, 0, 0, 4 * level)) for level, text in lines])
            self.screen.show(Panel(body, title=heading, title_align="left", border_style=style))
        else:
            self.screen.print(f"{heading}:")
            for level, text in lines:
                self.screen.print("  " + "    " * level + text)

    def show_console(self, number: str) -> None:
        from crudstack.walkthrough import console_lines

        self._header(number)
        url = self.invoke_url() if self.ctx.api_id else None
        self._block("In the console", [(0, line) for line in console_lines(self.script, number, self.ctx, url)], "cyan")

    def before_step(self, step: Step) -> None:
        self.show_console(step.number)

    def show_calls(self, step: Step, changes: list[Change]) -> None:
        """The very records the run executes next (crudstack/calls.py), as boto3 code."""
        lines: list[tuple[int, str]] = []
        for change in changes:
            if change.action.mutates and change.calls:
                lines.append((0, change.describe()))
                for record in change.calls:
                    first, *rest = record.code().split("\n")
                    lines += [(1, first)] + [(2, more.strip()) for more in rest]
        if not lines:
            lines = [(0, "nothing to call: already as config.yaml asks")] + [(1, c.describe()) for c in changes]
        self._block("crudstack calls instead (boto3)", lines, "green")

    def wait(self, step: Step) -> None:
        if not self.interactive:
            return  # not a terminal (CI, a pipe): go on at once
        from rich.text import Text

        self.screen.console.print(Text(f"Press Enter to run step {step.number} (Ctrl-C stops; running again resumes) ",
                                       style="bold"), end="")
        self.screen.stream.flush()
        try:
            answer = self.stdin.readline()
        except KeyboardInterrupt:
            self.screen.print()  # the runner's message about resuming starts on a line of its own
            raise
        if answer == "":  # end of input (Ctrl-D): no one left to ask
            self.interactive = False

    def after_step(self, result: StepResult) -> None:
        """The tutorial steps with nothing to make (step 6, test the API) come after the step before them."""
        position = self.step_numbers.index(result.step.number)
        following = self.step_numbers[position + 1] if position + 1 < len(self.step_numbers) else None
        for number in sorted(self.script.steps, key=int):
            if int(result.step.number) < int(number) and (following is None or int(number) < int(following)) \
                    and number not in self.step_numbers:
                self.show_console(number)
