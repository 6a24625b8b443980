"""Runs the steps: plan each, apply its changes, report; AWS errors are translated here.

This is the edge where botocore's exceptions become a DeploymentError that names
the step, the resource, the cause and what to do next.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import botocore.exceptions

from crudstack.aws import Aws, error_code, error_message, is_transient
from crudstack.errors import CrudStackError, DeploymentError, InterruptedRun
from crudstack.permissions import denied_action, is_access_denied
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
    """What the runner tells as it goes; the CLI supplies a printing one."""

    def step_started(self, step: Step) -> None: ...
    def step_planned(self, step: Step, changes: list[Change]) -> None: ...   # after plan(), before any apply
    def change_started(self, step: Step, change: Change) -> None: ...
    def step_finished(self, result: StepResult) -> None: ...


def _fix_for(exc: BaseException, operation: str, service: str | None = None) -> str:
    code = error_code(exc) or ""
    if is_access_denied(exc):
        # Name the IAM action, which is what a policy lists, not botocore's operation name.
        return (f"your AWS identity may not call {denied_action(service, operation)}: use a profile or role allowed to "
                f"(python provision.py --deployer-policy prints the policy it needs; see README, 'Permissions')")
    if code in ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException", "InvalidSignatureException"):
        return "your AWS credentials are expired or wrong: refresh them (aws sso login / aws configure) and run again"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return "no AWS credentials were found: set AWS_PROFILE or run aws configure, or use --target local"
    if isinstance(exc, botocore.exceptions.ConnectionError):
        return "the endpoint could not be reached: check the network (for --target local, run provision again: it restarts the local AWS)"
    if is_transient(exc):
        return "AWS kept failing or throttling until the retry deadline: wait a minute and run again; it resumes where it stopped"
    if isinstance(exc, TimeoutError):
        return "AWS did not reach the expected state in time: run again; it resumes where it stopped"
    return "fix the cause above, then run again: the run resumes where it stopped"


def translate(exc: BaseException, step: Step, resource: str, aws: Aws | None = None) -> DeploymentError:
    last = aws.last_call[0] if aws is not None and aws.last_call else None   # botocore's own errors name no operation
    operation = getattr(exc, "operation_name", None) or last or "the AWS call"
    if aws is not None and resource == step.title:  # failed while reading what exists: name what it read
        resource = aws.last_target() or resource
    if isinstance(exc, botocore.exceptions.ClientError):
        cause = f"{operation} failed: {error_code(exc)}: {error_message(exc)}"
    elif isinstance(exc, botocore.exceptions.BotoCoreError) and last:
        cause = f"{last} failed: {type(exc).__name__}: {exc}"
    else:
        cause = f"{type(exc).__name__}: {exc}"
    attempts = getattr(exc, "crudstack_attempts", 1)
    if attempts > 1:  # set by Aws when it gave up retrying: the user sees the deadline was used
        cause += f" (the last of {attempts} attempts over {exc.crudstack_seconds:.1f} s)"
    service = aws.last_service if aws is not None else None
    return DeploymentError(step=f"Step {step.number} {step.title}", resource=resource, cause=cause,
                           fix=_fix_for(exc, operation, service), code=error_code(exc))


def run(ctx: Context, reporter: Reporter, *, teardown: bool = False, apply: bool = True,
        steps: Iterable[Step] = STEPS, on_step_done: Callable[[StepResult], None] | None = None) -> list[StepResult]:
    ordered = list(steps)[::-1] if teardown else list(steps)
    results = []
    for step in ordered:
        result = StepResult(step)
        started = time.monotonic()
        resource = step.title
        reporter.step_started(step)
        try:
            result.changes = step.plan_teardown(ctx) if teardown else step.plan(ctx)
            reporter.step_planned(step, result.changes)
            if not apply:
                ctx.pending.extend(c for c in result.changes if c.action.mutates)
            else:
                for change in result.changes:
                    resource = f"{change.kind} {change.name}"
                    if change.apply is not None and change.action.mutates:
                        reporter.change_started(step, change)
                        change.apply()
                        ctx.aws.checkpoint()   # a Ctrl-C during that change stops here, naming it
                # Waits the changes left for the end of the step, so that they overlap (e.g. five
                # functions turning Active together rather than one after another).
                while ctx.settle:
                    ctx.settle.pop(0)()
        except KeyboardInterrupt:
            raise InterruptedRun(
                f"Interrupted during step {step.number} ({step.title}), at {resource}.\n"
                f"  Nothing is lost: run the same command again and it resumes from there."
            ) from None
        except CrudStackError:
            raise
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, TimeoutError) as exc:
            raise translate(exc, step, resource, ctx.aws) from exc
        except Exception as exc:  # a bug: the CLI logs its traceback; say where it happened
            exc.add_note(f"during step {step.number} ({step.title}), at {resource}")
            raise
        finally:
            ctx.settle.clear()  # never carried into the next step or run
        result.seconds = time.monotonic() - started
        reporter.step_finished(result)
        if on_step_done:
            on_step_done(result)
        results.append(result)
    return results
