"""Step 3. Lambda -> Create function, once per route, from the code in lambdas/."""

from __future__ import annotations

import botocore.exceptions

from crudstack.aws import error_code
from crudstack.calls import Call, Poll
from crudstack.config import FunctionConfig
from crudstack.aws import ALREADY_EXISTS, NOT_FOUND
from crudstack.errors import DeploymentError
from crudstack.packaging import build_package
from crudstack.plan import Action, Change, Context
from crudstack.steps.base import ensure_ours, is_ours, not_ours, tag_changes
from crudstack.scope import policy_names

STEP = "Step 3 Lambda functions"
# States in which Lambda takes a new update. Inactive is idle, not broken: "A function becomes inactive when it
# has been idle long enough for Lambda to reclaim the external resources" (Lambda Developer Guide, "Lambda
# function states"); it is updated and invoked as it is, and no wait ever turns it Active again.
SETTLED_STATES = ("Active", "Inactive")


def _denied(exc: BaseException) -> bool:
    return (error_code(exc) or "").startswith("AccessDenied")


def list_tags_denied(name: str, detail: str) -> DeploymentError:
    return DeploymentError(
        step=STEP, resource=f"function {name}",
        cause=f"its tags cannot be read, so it cannot be told ours or someone else's: {detail}",
        fix="allow lambda:ListTags to your AWS identity (GetFunction needs it to show a function's tags; "
            "see docs/real-account.md and deployer-policy.json), then run again",
        code="AccessDeniedException")


def function_tags(ctx: Context, found: dict) -> dict[str, str]:
    """A function's tags, from GetFunction or else ListTags.

    GetFunction answers TagsError in place of Tags when the caller may not lambda:ListTags ("For tagged
    functions, this permission is also necessary for GetFunction", Lambda Developer Guide, "Using tags on
    Lambda functions"). Taking that for "no tags" would call our own functions foreign: teardown would
    skip them and then delete their role. So a refusal stops the run, naming the permission."""
    if "Tags" in found:
        return found["Tags"] or {}
    name = found["Configuration"]["FunctionName"]
    error = found.get("TagsError") or {}
    if error.get("ErrorCode", "").startswith("AccessDenied"):
        raise list_tags_denied(name, f"GetFunction answered {error['ErrorCode']}: {error.get('Message', '')}")
    lam = ctx.aws.client("lambda")
    try:
        return ctx.aws.call(lam.list_tags, Resource=found["Configuration"]["FunctionArn"]).get("Tags") or {}
    except botocore.exceptions.ClientError as exc:
        if _denied(exc):
            raise list_tags_denied(name, f"ListTags answered {error_code(exc)}") from exc
        raise


def desired_settings(ctx: Context, fn: FunctionConfig) -> dict:
    cfg = ctx.config
    return {
        "Runtime": cfg.lambda_.runtime,
        "Handler": fn.handler,
        "MemorySize": fn.memory_mb or cfg.lambda_.memory_mb,
        "Timeout": fn.timeout_s or cfg.lambda_.timeout_s,
        "Role": ctx.role_arn,
        # What config.py checked against Lambda's rules and size limit, sent as checked.
        "Environment": {"Variables": cfg.function_environment(fn)},
    }


def current_settings(configuration: dict) -> dict:
    return {
        "Runtime": configuration.get("Runtime"),
        "Handler": configuration.get("Handler"),
        "MemorySize": configuration.get("MemorySize"),
        "Timeout": configuration.get("Timeout"),
        "Role": configuration.get("Role"),
        "Environment": {"Variables": (configuration.get("Environment") or {}).get("Variables", {})},
    }


class FunctionsStep:
    number = "3"
    title = "Lambda functions"

    def plan(self, ctx: Context) -> list[Change]:
        # ctx.function_arns holds every ARN before any plan reads (runner.prime): step 4 builds its URIs from them.
        # The functions config.yaml lists and the listing of those it no longer lists: read at once.
        planned, removed = ctx.fan(lambda read: read(), [
            lambda: ctx.fan(lambda item: self._plan_one(ctx, *item), list(ctx.config.lambda_.functions.items())),
            lambda: self._plan_removed(ctx)])
        return [change for changes in planned for change in changes] + removed

    def _plan_removed(self, ctx: Context) -> list[Change]:
        """Our functions that config.yaml no longer lists (a route removed): delete them, or no
        later run, teardown included, would ever find them again."""
        lam = ctx.aws.client("lambda")
        wanted = {ctx.config.function_name(base) for base in ctx.config.lambda_.functions}

        # Only names the deployer policy lets us read: with names: tutorial (no prefix) that is this stack's exact
        # names, so no other function can be told ours, and reading one would be denied on AWS.
        names = [f["FunctionName"] for f in ctx.aws.paginate(lam, "list_functions", "Functions")
                 if policy_names(ctx.config, "function", f["FunctionName"]) and f["FunctionName"] not in wanted]
        changes = []
        for name, found in zip(names, ctx.fan(ctx.aws.find_function, names)):
            if found is not None and is_ours(function_tags(ctx, found), ctx.config):  # "demo-two-..." is stack demo-two's
                changes.append(self._delete(name, note="no longer in config.yaml"))
        return changes

    def _delete(self, name: str, note: str = "") -> Change:
        # Its API Gateway permission goes with it. Done once it is gone: step 1's teardown waits for that.
        return Change("function", name, Action.DELETE, note=note, provides=("functions", f"function:{name}"),
                      calls=self._delete_calls(name))

    @staticmethod
    def _delete_calls(name: str) -> list:
        # DeleteFunction answers before the function is gone: it is Deleting for a while, its name still taken.
        # terraform-provider-aws waits for it to be not found (internal/service/lambda/function.go,
        # resourceFunctionDelete and waitFunctionDeleted, whose pending states include Deleting).
        return [Call("lambda", "delete_function", {"FunctionName": name}, ok=NOT_FOUND["lambda"]), FunctionsStep._gone(name)]

    @staticmethod
    def _gone(name: str) -> Poll:
        return Poll(Call("lambda", "get_function_configuration", {"FunctionName": name}), lambda answer: answer is None,
                    f"function {name} to be deleted", missing_ok=True)

    def _change(self, name: str, action: Action, diffs: dict, calls: list, note: str = "") -> Change:
        return Change("function", name, action, diffs, calls=calls, note=note, after=("role",),
                      provides=("functions", f"function:{name}"))

    def _plan_one(self, ctx: Context, base: str, fn: FunctionConfig) -> list[Change]:
        name = ctx.config.function_name(base)
        package = build_package(ctx.config.code_dir, fn.module)
        found = ctx.aws.find_function(name)
        if found is None:
            return [self._change(name, Action.CREATE, {}, self._create_calls(ctx, name, fn, package)
                                 + self._concurrency_calls(ctx, name, fn, None))]
        configuration = found["Configuration"]
        ctx.function_arns[base] = configuration["FunctionArn"]
        tags = function_tags(ctx, found)
        ensure_ours(ctx, f"Step {self.number} {self.title}", "function", name, tags)
        state, last_update = configuration.get("State"), configuration.get("LastUpdateStatus")
        if state == "Failed":
            # "When function creation fails, Lambda sets the function state to failed, and you must delete and
            # recreate the function" (Lambda Developer Guide, "Lambda function states").
            # The create waits for the deletion to finish, and a ResourceConflictException from it is not our own
            # earlier create here: the name is still the Failed function's.
            return [self._change(name, Action.UPDATE, {"state": ("Failed", "deleted and created again")},
                                 [*self._delete_calls(name),
                                  *self._create_calls(ctx, name, fn, package, conflict_ok=False),
                                  *self._concurrency_calls(ctx, name, fn, None)], note=configuration.get("StateReason") or "")]
        if state == "Deleting":
            # An earlier run's deletion (a Failed function's, or a teardown's) outlived its deadline: the name is
            # taken until Lambda finishes, and nothing else about the function is worth reading. Wait, then create.
            return [self._change(name, Action.CREATE, {}, [self._gone(name),
                                                           *self._create_calls(ctx, name, fn, package, conflict_ok=False),
                                                           *self._concurrency_calls(ctx, name, fn, None)],
                                 note="an earlier deletion of it is still going on: waits for it to finish first")]
        diffs = {}
        current, wanted = current_settings(configuration), desired_settings(ctx, fn)
        for key in wanted:
            if current[key] != wanted[key]:
                diffs[key] = (current[key], wanted[key])
        code_changed = configuration.get("CodeSha256") != package.sha256
        settings_changed = bool(diffs)
        if last_update == "Failed":
            # "Lambda aborts the update and the function's previous code and configuration remain" (same page):
            # what config.yaml asks for is not there, so both are applied again, whatever the sha says.
            code_changed = settings_changed = True
            diffs = {"last update": ("Failed", "applied again"), **diffs}
        changes = tag_changes(ctx, "function", name, tags,
                              lambda missing: [Call("lambda", "tag_resource", {"Resource": ctx.function_arns[base], "Tags": missing})])
        changes += self._plan_concurrency(ctx, name, fn)
        unfinished = state not in SETTLED_STATES or last_update not in (None, "Successful", "Failed")
        if not diffs and not code_changed and not unfinished:
            return changes or [Change("function", name, Action.UNCHANGED)]
        if code_changed and last_update != "Failed":
            diffs = {"code": (configuration.get("CodeSha256"), package.sha256), **diffs}
        if unfinished and not diffs:
            diffs = {"state": (f"{state}/{last_update}", "Active/Successful")}
        calls = []
        if unfinished and (code_changed or settings_changed):
            calls.append(self._ready(name, before_update=True))   # Lambda refuses an update while the last one runs
        if code_changed:
            calls.append(Call("lambda", "update_function_code", {"FunctionName": name, "ZipFile": package.zip_bytes}))
        if settings_changed:
            if code_changed:
                calls.append(self._ready(name))
            calls.append(Call("lambda", "update_function_configuration", {"FunctionName": name, **desired_settings(ctx, fn)}))
        calls.append(self._ready(name))
        return [self._change(name, Action.UPDATE, diffs, calls)] + changes

    def _create_calls(self, ctx: Context, name: str, fn: FunctionConfig, package, *, conflict_ok: bool = True) -> list:
        # The first create after a new role often fails with "cannot be assumed by Lambda" while IAM
        # propagates: the AWS door retries exactly that. A new function is Pending for a while.
        create = Call("lambda", "create_function", {
            "FunctionName": name, "Code": {"ZipFile": package.zip_bytes},
            "Description": f"{fn.route} of the {ctx.config.stack} items API (managed by crudstack)",
            "Tags": ctx.config.all_tags, "Publish": False, **desired_settings(ctx, fn)},
            ok=ALREADY_EXISTS["lambda"] if conflict_ok else ())   # our own earlier create, its answer lost
        return [create, self._ready(name)]

    # -- reserved concurrency ----------------------------------------------------------------------
    # Not part of the function's configuration: its own API (Put/Get/DeleteFunctionConcurrency), and
    # deleted with the function. "Use GetFunction to see the current setting" (PutFunctionConcurrency,
    # Lambda API Reference), but moto's GetFunction leaves out a reservation of 0, so it is read on its own.

    def _plan_concurrency(self, ctx: Context, name: str, fn: FunctionConfig) -> list[Change]:
        lam = ctx.aws.client("lambda")
        current = ctx.aws.call(lam.get_function_concurrency, FunctionName=name).get("ReservedConcurrentExecutions")
        wanted = ctx.config.reserved_concurrency(fn)
        if current == wanted:
            return []
        shown = {None: "unreserved"}
        return [Change("function concurrency", name, Action.UPDATE,
                       {"ReservedConcurrentExecutions": (shown.get(current, current), shown.get(wanted, wanted))},
                       calls=self._concurrency_calls(ctx, name, fn, current), after=(f"function:{name}",))]

    @staticmethod
    def _concurrency_calls(ctx: Context, name: str, fn: FunctionConfig, current: int | None) -> list[Call]:
        wanted = ctx.config.reserved_concurrency(fn)
        if wanted is not None:
            return [Call("lambda", "put_function_concurrency", {"FunctionName": name, "ReservedConcurrentExecutions": wanted})]
        if current is not None:
            return [Call("lambda", "delete_function_concurrency", {"FunctionName": name})]
        return []

    def _ready(self, name: str, *, before_update: bool = False) -> Poll:
        """Until Lambda takes the next update (before_update) or our own create or update has landed.
        A Failed last update is over, so the next update may go ahead; after our own it is our failure."""

        def settled(configuration: dict) -> bool:
            last_update = configuration.get("LastUpdateStatus")
            if before_update and last_update == "Failed" and configuration.get("State") in SETTLED_STATES:
                return True
            if configuration.get("State") == "Failed" or last_update == "Failed":
                raise DeploymentError(
                    step=f"Step {self.number} {self.title}", resource=f"function {name}",
                    cause=f"Lambda reports the function failed: {configuration.get('StateReason') or configuration.get('LastUpdateStatusReason')}",
                    fix="check the runtime and handler in config.yaml, then run provision again",
                )
            return configuration.get("State") in SETTLED_STATES and last_update in (None, "Successful")

        return Poll(Call("lambda", "get_function_configuration", {"FunctionName": name}), settled,
                    f"function {name} to be {'ready for an update' if before_update else 'Active'}")

    # -- teardown ------------------------------------------------------------------------------
    def plan_teardown(self, ctx: Context) -> list[Change]:
        names = [ctx.config.function_name(base) for base in ctx.config.lambda_.functions]
        changes = []
        for name, found in zip(names, ctx.fan(ctx.aws.find_function, names)):
            if found is None:
                continue
            if not is_ours(function_tags(ctx, found), ctx.config):
                changes.append(not_ours("function", name))
                continue
            changes.append(self._delete(name))
        return changes + self._plan_removed(ctx)
