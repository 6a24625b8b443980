"""What a planned change will call, as data: the records `--plan`, `--walkthrough` and the run all read.

A step's plan makes read calls only and returns Changes; each Change holds the records below, which the
executor (crudstack/executor.py) runs in order and the walkthrough prints as boto3 code. There is no
other copy of the calls: what is printed is what runs.

    Call          one API call; `ok` error codes mean "already so" (a create whose resource exists, a delete
                  whose resource is gone), unless the error is a transient one that outlasted the retries
                  (`already_done`, the one rule for Call and Once); `fallback` runs instead when one of its
                  codes answers; `save` keeps values of the answer for later records (`Ref`)
    Poll          one read call, repeated until `until` holds (a table ACTIVE, a function settled)
    FindOrCreate  a create AWS does not de-duplicate by name (REST APIs, resources, deployments): look
                  first, create only if nothing matches; a retry after a lost answer looks again
    Once          a call that must not be repeated blindly (add_permission, create_backup, a delete that
                  moto answers 500 the second time): a retry first asks `done` whether it already worked
                  (a Poll or Once is skipped when its call's `unless` holds)
    Local         work that is not an AWS call (writing the items of a table to a backup file)

Values known only once an earlier call has answered (a new REST API's id) are `Ref("api_id")` in the
parameters, resolved from the run's variables when the record runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

import botocore.exceptions

from crudstack.aws import error_code, is_transient


def already_done(exc: BaseException, ok: tuple[str, ...]) -> bool:
    """Whether an error answer means "already so": its code is one the record accepts, and it is not a
    transient error that ran out of retries. API Gateway answers ConflictException both for "this
    method exists" (done) and for "another change to this REST API is under way, try again later"
    (not done); the second, still there at the deadline, is a failure, never a success."""
    return error_code(exc) in ok and not is_transient(exc)


@dataclass(frozen=True)
class Ref:
    """A value an earlier record saved (e.g. "api_id", "resource:/items"), or a text made with it."""

    name: str
    fmt: str = "{}"

    def __repr__(self) -> str:
        return repr(self.fmt.format(f"<{self.name}>")) if self.fmt != "{}" else f"<{self.name}>"


def resolve(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, Ref):
        if value.name not in variables:
            raise KeyError(f"no value for {value.name} yet: a record ran before the one that saves it")
        return value.fmt.format(variables[value.name]) if value.fmt != "{}" else variables[value.name]
    if isinstance(value, dict):
        return {k: resolve(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, variables) for v in value]
    return value


def _shown(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes of zip>"
    if isinstance(value, str) and value.startswith("{") and len(value) > 80:
        try:
            json.loads(value)
            return "<JSON document>"
        except ValueError:
            pass
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_shown(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return repr(value)


@dataclass
class Call:
    service: str
    operation: str                               # boto3's method name, e.g. "create_table"
    params: dict[str, Any] = field(default_factory=dict)
    ok: tuple[str, ...] = ()                     # error codes that mean the work is already done
    fallback: "Call | None" = None               # runs when the call answers one of fallback_on
    fallback_on: tuple[str, ...] = ()
    save: dict[str, Callable[[dict], Any]] = field(default_factory=dict)   # variable -> value from the answer
    unless: tuple[str, Callable[[Any], bool]] | None = None   # (why, test): skipped when test(run) holds

    def code(self) -> str:
        args = ", ".join(f"{k}={_shown(v)}" for k, v in self.params.items())
        text = f"{self.service}.{self.operation}({args})"
        if self.unless is not None:
            text += f"  unless {self.unless[0]}"
        if self.fallback is not None:
            text += f"\n    if {'/'.join(self.fallback_on)}: {self.fallback.code()}"
        return text

    def requests(self) -> list[tuple[str, str]]:
        return [(self.service, self.operation)]

    def run(self, run) -> Any:
        run.check()   # after a Ctrl-C, no new call
        if skipped(self, run):
            return None
        client = run.aws.client(self.service)
        params = resolve(self.params, run.variables)
        run.log(self.service, self.operation, params)
        try:
            answer = run.aws.call(getattr(client, self.operation), **params)
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if self.fallback is not None and code in self.fallback_on:
                return self.fallback.run(run)
            if already_done(exc, self.ok):
                return None
            raise
        return keep(run, self.save, answer)


def skipped(call: Call, run) -> bool:
    """A call's `unless` holds (a Poll or Once wrapping it is skipped with it)."""
    return call.unless is not None and call.unless[1](run)


def keep(run, save: dict[str, Callable[[dict], Any]], answer: Any) -> Any:
    """Save what later records need from an answer (crudstack.calls.Ref); the answer itself goes on."""
    for name, pick in save.items():
        run.variables[name] = pick(answer) if answer is not None else None
    return answer


@dataclass
class Poll:
    call: Call
    until: Callable[[dict | None], bool]
    what: str                                    # e.g. "table demo-ItemsTable to be ACTIVE"
    missing_ok: bool = False                     # a not-found answer counts as None (e.g. waiting for a table to go)

    def code(self) -> str:
        return f"{self.call.code()}  until {self.what}"

    def requests(self) -> list[tuple[str, str]]:
        return self.call.requests()

    def run(self, run) -> Any:
        if skipped(self.call, run):
            return None

        def check():
            run.check()
            try:
                answer = self.call.run(run)
            except botocore.exceptions.ClientError as exc:
                if not (self.missing_ok and (error_code(exc) or "").endswith(("NotFoundException", "NotFound"))):
                    raise
                answer = None
            return (answer or True) if self.until(answer) else None

        return run.aws.wait_until(check, what=self.what)


@dataclass
class FindOrCreate:
    find: Callable[[Any], dict | None]           # (run) -> what matches, or None; raw client calls
    create: Call
    finds: str                                   # how the look is shown, e.g. "apigateway.get_rest_apis()"
    save: dict[str, Callable[[dict], Any]] = field(default_factory=dict)
    conflict: Callable[[Any], dict] | None = None  # when create answers ConflictException: wait for the copy to show

    def code(self) -> str:
        return f"{self.finds}  -> if none matches: {self.create.code()}"

    def requests(self) -> list[tuple[str, str]]:
        return [(self.create.service, self.create.operation)]

    def run(self, run) -> Any:
        client = run.aws.client(self.create.service)

        def unit():
            found = self.find(run)
            if found is not None:
                return found
            params = resolve(self.create.params, run.variables)
            run.log(self.create.service, self.create.operation, params)
            try:
                return getattr(client, self.create.operation)(**params)
            except botocore.exceptions.ClientError as exc:
                if self.conflict is None or error_code(exc) != "ConflictException" or is_transient(exc):
                    raise
                return self.conflict(run)

        return keep(run, self.save, run.aws.retry_unit(unit))


@dataclass
class Once:
    call: Call
    done: Callable[[Any], bool]                  # (run) -> True if the first attempt, its answer lost, did it
    checks: str                                  # how done is shown, e.g. "lambda.get_policy(...)"

    def code(self) -> str:
        return f"{self.call.code()}  (a retry first checks {self.checks})"

    def requests(self) -> list[tuple[str, str]]:
        return self.call.requests()

    def run(self, run) -> Any:
        if skipped(self.call, run):
            return None
        client = run.aws.client(self.call.service)
        tried = False

        def unit():
            nonlocal tried
            if tried and self.done(run):
                return None
            tried = True
            params = resolve(self.call.params, run.variables)
            run.log(self.call.service, self.call.operation, params)
            try:
                return getattr(client, self.call.operation)(**params)
            except botocore.exceptions.ClientError as exc:
                if already_done(exc, self.call.ok):
                    return None
                raise

        return keep(run, self.call.save, run.aws.retry_unit(unit))


@dataclass
class Local:
    """Work on this machine, not an AWS call."""

    text: str
    act: Callable[[Any], Any]

    def code(self) -> str:
        return f"# {self.text}"

    def requests(self) -> list[tuple[str, str]]:
        return []

    def run(self, run) -> Any:
        return self.act(run)


Record = Call | Poll | FindOrCreate | Once | Local
