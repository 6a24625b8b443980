"""Runs the steps: plan them all (read calls, many at once), run their changes as one dependency graph
(crudstack/executor.py), and report each step, in the tutorial's order, once it is complete.

This is the edge where botocore's exceptions become a DeploymentError that names
the step, the resource, the cause and what to do next.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import botocore.exceptions

from crudstack.aws import error_code, error_message, is_transient
from crudstack.errors import AwsCallFailed, CrudStackError, DeploymentError, InterruptedRun, NoCredentials
from crudstack.calls import Poll
from crudstack.clock import run_at
from crudstack.executor import ChangeFailed, execute
from crudstack.plan import Action, Change, Context
from crudstack.steps import STEPS
from crudstack.steps.base import Step


@dataclass
class StepResult:
    step: Step
    changes: list[Change] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def outcome(self) -> str:
        actions = {c.action for c in self.changes}
        if not self.changes:
            return "nothing to do"
        if Action.KEEP in actions:
            return "kept"
        mutating = actions & {Action.CREATE, Action.UPDATE, Action.DELETE}
        if not mutating:
            return "unchanged"
        if mutating == {Action.CREATE}:
            return "created"
        if mutating == {Action.DELETE}:
            return "deleted"
        return "updated"


class Reporter:
    """What the runner tells as it goes, always from the thread that called run(); the CLI supplies a
    printing one. `stepwise`: run one step at a time, after step_planned returns (the walkthrough)."""

    stepwise = False

    def step_started(self, step: Step) -> None: ...
    def step_planned(self, step: Step, changes: list[Change]) -> None: ...   # after plan(), before any apply
    def change_started(self, step: Step, change: Change) -> None: ...
    def change_finished(self, step: Step, change: Change, seconds: float) -> None: ...
    def step_finished(self, result: StepResult) -> None: ...


def _fix_for(exc: BaseException, operation: str, service: str | None = None) -> str:
    from crudstack.permissions import denied_action, is_access_denied   # the error path only

    code = error_code(exc) or ""
    if is_access_denied(exc):
        # Name the IAM action, which is what a policy lists, not botocore's operation name.
        return (f"your AWS identity may not call {denied_action(service, operation)}: use a profile or role allowed to "
                f"(python provision.py --deployer-policy prints the policy it needs; see docs/real-account.md)")
    if code in ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException", "InvalidSignatureException"):
        return "your AWS credentials are expired or wrong: refresh them (aws sso login / aws configure) and run again"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return f"no AWS credentials were found: {NoCredentials.FIX}"
    if isinstance(exc, botocore.exceptions.ConnectionError):
        return "the endpoint could not be reached: check the network (for --target local, run provision again: it restarts the local AWS)"
    if is_transient(exc):
        return "AWS kept failing or throttling until the retry deadline: wait a minute and run again; it resumes where it stopped"
    if isinstance(exc, TimeoutError):
        return "AWS did not reach the expected state in time: run again; it resumes where it stopped"
    return "fix the cause above, then run again: the run resumes where it stopped"


def translate(failed: AwsCallFailed, step: Step, resource: str) -> DeploymentError:
    exc, operation = failed.error, failed.operation
    named = getattr(exc, "operation_name", None) or operation or "the AWS call"
    if resource == step.title:  # failed while reading what exists: name what it read
        resource = failed.target or resource
    if isinstance(exc, botocore.exceptions.ClientError):
        cause = f"{named} failed: {error_code(exc)}: {error_message(exc)}"
    elif isinstance(exc, botocore.exceptions.BotoCoreError) and operation:   # botocore's own errors name no operation
        cause = f"{operation} failed: {type(exc).__name__}: {exc}"
    else:
        cause = f"{type(exc).__name__}: {exc}"
    if failed.attempts > 1:  # the AWS door gave up retrying: the user sees the deadline was used
        cause += f" (the last of {failed.attempts} attempts over {failed.seconds:.1f} s)"
    return DeploymentError(step=f"Step {step.number} {step.title}", resource=resource, cause=cause,
                           fix=_fix_for(exc, named, failed.service), code=error_code(exc))


# Plans that read what an earlier step's plan decided (ctx.pending): step 5 deploys only if step 4 changes
# routes; a teardown's step 2 keeps the role while a function step 3 does not delete still runs as it.
PLAN_AFTER = {"5": ("4",)}
TEARDOWN_PLAN_AFTER = {"2": ("3",)}


def prime(ctx: Context) -> None:
    """What every plan may need before any has read anything: the ARNs AWS derives from our names."""
    cfg = ctx.config
    ctx.table_arn = ctx.arn("dynamodb", f"table/{cfg.table_name}")
    ctx.role_arn = ctx.arn("iam", f"role/{cfg.role_name}", region=False)
    ctx.topic_arn = ctx.arn("sns", cfg.topic_name)
    for base in cfg.lambda_.functions:
        ctx.function_arns[base] = ctx.arn("lambda", f"function:{cfg.function_name(base)}")


def _stop(exc: BaseException, step: Step, resource: str) -> BaseException:
    """What the user is told about an exception from a step at a resource."""
    if isinstance(exc, KeyboardInterrupt):
        return InterruptedRun(f"Interrupted during step {step.number} ({step.title}), at {resource}.\n"
                              f"  Nothing is lost: run the same command again and it resumes from there.")
    if isinstance(exc, AwsCallFailed):
        return translate(exc, step, resource)
    if isinstance(exc, CrudStackError):
        return exc
    exc.add_note(f"during step {step.number} ({step.title}), at {resource}")   # a bug: the CLI logs its traceback
    return exc


def plan_all(ctx: Context, ordered: list[Step], *, teardown: bool) -> dict[Step, list[Change]]:
    """Every step's plan, at once where no plan reads another's; ctx.pending holds what they planned."""
    after = TEARDOWN_PLAN_AFTER if teardown else PLAN_AFTER
    numbers = {step.number for step in ordered}
    planned: dict[Step, list[Change]] = {}
    errors: list[tuple[Step, BaseException]] = []
    lock = threading.Lock()
    events = {step.number: threading.Event() for step in ordered}

    def plan(step: Step) -> None:
        try:
            with ctx.aws.foreign_errors():
                changes = step.plan_teardown(ctx) if teardown else step.plan(ctx)
            with lock:
                planned[step] = changes
                ctx.pending.extend(c for c in changes if c.action.mutates)
        except BaseException as exc:  # noqa: BLE001 - raised below, for the first step in order
            with lock:
                errors.append((step, exc))

    clock = ctx.aws.clock
    start, ends = clock(), {}

    def timed(step: Step) -> None:
        try:
            waits = [number for number in after.get(step.number, ()) if number in numbers]
            for number in waits:
                events[number].wait()
            # On a simulated clock, a plan that waited for another starts when that one ended, as on the wall clock.
            at = max([start] + [ends.get(number, start) for number in waits])
            with ctx.aws.working():
                ends[step.number] = run_at(clock, at, lambda: plan(step))[1]   # plan() keeps its own errors
        finally:
            events[step.number].set()

    threads = [threading.Thread(target=timed, args=(step,), name=f"crudstack-plan-{step.number}", daemon=True) for step in ordered]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.1)
    except KeyboardInterrupt:
        for thread in threads:   # the reads in flight answer; then nothing more is done
            thread.join()
        raise _stop(KeyboardInterrupt(), ordered[0], "reading what exists") from None
    clock.advance_to(max(ends.values(), default=start))
    if errors:
        step, exc = min(errors, key=lambda e: ordered.index(e[0]))
        raise _stop(exc, step, step.title) from exc
    return planned


def run(ctx: Context, reporter: Reporter, *, teardown: bool = False, apply: bool = True,
        steps: Iterable[Step] = STEPS, on_step_done: Callable[[StepResult], None] | None = None) -> list[StepResult]:
    ordered = list(steps)[::-1] if teardown else list(steps)
    prime(ctx)
    started = time.monotonic()
    if not reporter.stepwise:
        for step in ordered:
            reporter.step_started(step)
    planned = plan_all(ctx, ordered, teardown=teardown)
    results = [StepResult(step, planned[step]) for step in ordered]
    if not apply:
        for result in results:
            if reporter.stepwise:
                reporter.step_started(result.step)
            reporter.step_planned(result.step, result.changes)
            result.seconds = time.monotonic() - started
            reporter.step_finished(result)
        return results
    if reporter.stepwise:   # one step at a time, each after its console text and calls were shown
        for result in results:
            reporter.step_started(result.step)
            reporter.step_planned(result.step, result.changes)
            _execute(ctx, reporter, [result], on_step_done)
        return results
    for result in results:
        reporter.step_planned(result.step, result.changes)
    _execute(ctx, reporter, results, on_step_done)
    return results


def _execute(ctx: Context, reporter: Reporter, results: list[StepResult], on_step_done) -> None:
    """Run the results' changes as one graph; finish each step, in order, once its changes are done."""
    items = [(r.step, c) for r in results for c in r.changes if c.action.mutates and c.calls]
    left = {id(r.step): sum(1 for step, _ in items if step is r.step) for r in results}
    spans: dict[int, list[float]] = {}
    reported = 0

    def finish_ready() -> None:
        nonlocal reported
        while reported < len(results) and left[id(results[reported].step)] == 0:
            result = results[reported]
            span = spans.get(id(result.step))
            result.seconds = (span[1] - span[0]) if span else 0.0
            reported += 1
            reporter.step_finished(result)
            if on_step_done:
                on_step_done(result)

    def on_start(node) -> None:
        spans.setdefault(id(node.owner), [node.started, node.started])
        reporter.change_started(node.owner, node.change)

    def on_done(node) -> None:
        change = node.change
        if change.action.mutates and not node.mutated and any(not isinstance(record, Poll) for record in change.calls):
            # Everything it would make was there when it ran (a deployment of the very routes live already,
            # put back by step 4): say so rather than "created". (A change its own records turned to KEEP, a
            # table that gained items, stays kept.)
            change.action, change.note = Action.UNCHANGED, change.note or "found as config.yaml asks when it ran"
        spans[id(node.owner)][1] = node.started + node.seconds
        left[id(node.owner)] -= 1
        reporter.change_finished(node.owner, node.change, node.seconds)
        finish_ready()

    finish_ready()   # steps with nothing to do before the first change
    try:
        execute(ctx, items, on_start=on_start, on_done=on_done)
    except ChangeFailed as failed:
        node = failed.node
        raise _stop(failed.error, node.owner, f"{node.change.kind} {node.change.name}") from failed.error
    finally:
        ctx.api_id = ctx.variables.get("api_id", ctx.api_id)
        ctx.deployment_id = ctx.variables.get("deployment_id", ctx.deployment_id)
        ctx.resource_ids.update({k.removeprefix("resource:"): v for k, v in ctx.variables.items() if k.startswith("resource:")})
    finish_ready()
