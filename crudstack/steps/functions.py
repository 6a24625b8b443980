"""Step 3. Lambda -> Create function, once per route, from the code in lambdas/."""

from __future__ import annotations

from crudstack.config import FunctionConfig
from crudstack.errors import DeploymentError
from crudstack.packaging import build_package
from crudstack.plan import Action, Change, Context
from crudstack.steps.base import ensure_ours, is_ours, not_ours

NOT_FOUND = ("ResourceNotFoundException",)


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
    console = "Lambda -> Functions -> Create function"

    def _find(self, ctx: Context, name: str) -> dict | None:
        lam = ctx.aws.client("lambda")
        return ctx.aws.find(lam.get_function, not_found=NOT_FOUND, FunctionName=name)

    def plan(self, ctx: Context) -> list[Change]:
        changes: list[Change] = []
        for base, fn in ctx.config.lambda_.functions.items():
            changes.extend(self._plan_one(ctx, base, fn))
        return changes + self._plan_removed(ctx)

    def _plan_removed(self, ctx: Context) -> list[Change]:
        """Our functions that config.yaml no longer lists (a route removed): delete them, or no
        later run, teardown included, would ever find them again."""
        lam = ctx.aws.client("lambda")
        wanted = {ctx.config.function_name(base) for base in ctx.config.lambda_.functions}
        changes = []
        for listed in ctx.aws.paginate(lam, "list_functions", "Functions"):
            name = listed["FunctionName"]
            if not name.startswith(f"{ctx.config.stack}-") or name in wanted:
                continue
            found = self._find(ctx, name)
            if found is not None and is_ours(found.get("Tags") or {}, ctx.config):  # "demo-two-..." is stack demo-two's
                changes.append(Change("function", name, Action.DELETE, note="no longer in config.yaml",
                                      apply=lambda name=name: ctx.aws.delete(lam.delete_function, not_found=NOT_FOUND, FunctionName=name)))
        return changes

    def _plan_one(self, ctx: Context, base: str, fn: FunctionConfig) -> list[Change]:
        name = ctx.config.function_name(base)
        package = build_package(ctx.config.code_dir, fn.module)
        found = self._find(ctx, name)
        ctx.function_arns[base] = ctx.arn("lambda", f"function:{name}")
        if found is None:
            return [Change("function", name, Action.CREATE, apply=lambda: self._create(ctx, base, fn, package))]
        configuration = found["Configuration"]
        ctx.function_arns[base] = configuration["FunctionArn"]
        ensure_ours(ctx, f"Step {self.number} {self.title}", "function", name, found.get("Tags") or {})
        diffs = {}
        current, wanted = current_settings(configuration), desired_settings(ctx, fn)
        for key in wanted:
            if current[key] != wanted[key]:
                diffs[key] = (current[key], wanted[key])
        code_changed = configuration.get("CodeSha256") != package.sha256
        unfinished = configuration.get("State") != "Active" or configuration.get("LastUpdateStatus") not in (None, "Successful")
        if not diffs and not code_changed and not unfinished:
            return [Change("function", name, Action.UNCHANGED)]
        if code_changed:
            diffs = {"code": (configuration.get("CodeSha256"), package.sha256), **diffs}
        if unfinished and not diffs:
            diffs = {"state": (f"{configuration.get('State')}/{configuration.get('LastUpdateStatus')}", "Active/Successful")}
        return [Change("function", name, Action.UPDATE, diffs,
                       apply=lambda: self._update(ctx, name, fn, package if code_changed else None, bool(set(diffs) - {"code", "state"})))]

    def _create(self, ctx: Context, base: str, fn: FunctionConfig, package) -> None:
        lam = ctx.aws.client("lambda")
        name = ctx.config.function_name(base)
        settings = desired_settings(ctx, fn)
        try:
            # The first create after a new role often fails with "cannot be assumed by Lambda"
            # while IAM propagates: aws.call retries exactly that.
            created = ctx.aws.call(
                lam.create_function,
                FunctionName=name,
                Code={"ZipFile": package.zip_bytes},
                Description=f"{fn.route} of the {ctx.config.stack} items API (managed by crudstack)",
                Tags=ctx.config.all_tags,
                Publish=False,
                **settings,
            )
            ctx.function_arns[base] = created["FunctionArn"]
        except Exception as exc:
            from crudstack.aws import error_code

            if error_code(exc) != "ResourceConflictException":  # our own earlier create, answer lost
                raise
        # A new function is Pending for a while: wait at the end of the step, all functions at once.
        ctx.settle.append(lambda: self._wait_ready(ctx, name))

    def _update(self, ctx: Context, name: str, fn: FunctionConfig, package, settings_changed: bool) -> None:
        lam = ctx.aws.client("lambda")
        if package is not None or settings_changed:
            # Lambda refuses an update while the last one still runs (ResourceConflictException).
            self._wait_ready(ctx, name)
        if package is not None:
            ctx.aws.call(lam.update_function_code, FunctionName=name, ZipFile=package.zip_bytes)
        if settings_changed:
            if package is not None:
                self._wait_ready(ctx, name)
            ctx.aws.call(lam.update_function_configuration, FunctionName=name, **desired_settings(ctx, fn))
        ctx.settle.append(lambda: self._wait_ready(ctx, name))

    def _wait_ready(self, ctx: Context, name: str) -> None:
        lam = ctx.aws.client("lambda")

        def ready():
            configuration = ctx.aws.call(lam.get_function_configuration, FunctionName=name)
            if configuration.get("State") == "Failed" or configuration.get("LastUpdateStatus") == "Failed":
                raise DeploymentError(
                    step=f"Step {self.number} {self.title}", resource=f"function {name}",
                    cause=f"Lambda reports the function failed: {configuration.get('StateReason') or configuration.get('LastUpdateStatusReason')}",
                    fix="check the runtime and handler in config.yaml, then run provision again",
                )
            return configuration.get("State") == "Active" and configuration.get("LastUpdateStatus") in (None, "Successful")

        ctx.aws.wait_until(ready, what=f"function {name} to be Active")

    # -- teardown ------------------------------------------------------------------------------
    def plan_teardown(self, ctx: Context) -> list[Change]:
        changes = []
        lam = ctx.aws.client("lambda")
        for base in ctx.config.lambda_.functions:
            name = ctx.config.function_name(base)
            found = self._find(ctx, name)
            if found is None:
                continue
            if not is_ours(found.get("Tags") or {}, ctx.config):
                changes.append(not_ours("function", name))
                continue
            # Its API Gateway permission goes with it.
            changes.append(Change("function", name, Action.DELETE,
                                  apply=lambda name=name: ctx.aws.delete(lam.delete_function, not_found=NOT_FOUND, FunctionName=name)))
        return changes + self._plan_removed(ctx)
