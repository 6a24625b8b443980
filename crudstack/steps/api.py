"""Step 4. API Gateway -> Create API (REST) -> resources, methods, Lambda proxy integrations.

AWS does not de-duplicate REST APIs (or, in moto, resources) by name, so every
create here runs inside a find-or-create unit: a retry looks again before it
creates, and a crash right after create_rest_api is found by name and tag next run.
"""

from __future__ import annotations

import json

import botocore.exceptions

from crudstack.aws import error_code, is_transient
from crudstack.errors import OwnershipError
from crudstack.plan import Action, Change, Context
from crudstack.steps.base import is_ours, not_ours

NOT_FOUND = ("NotFoundException", "ResourceNotFoundException")


def integration_uri(ctx: Context, function_arn: str) -> str:
    return f"arn:aws:apigateway:{ctx.region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"


def source_arn(ctx: Context, api_id: str, method: str, path: str) -> str:
    """The execute-api ARN a permission is scoped to: this API, any stage, this method and path."""
    parts = ["*" if part.startswith("{") else part for part in path.strip("/").split("/")]
    return f"arn:aws:execute-api:{ctx.region}:{ctx.account_id}:{api_id}/*/{method}/{'/'.join(parts)}"


def permission_id(ctx: Context) -> str:
    return f"{ctx.config.stack}-apigateway-invoke"


def wanted_paths(ctx: Context) -> list[str]:
    paths = {"/"}
    for fn in ctx.config.lambda_.functions.values():
        parts = fn.path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            paths.add("/" + "/".join(parts[:i]))
    return sorted(paths, key=lambda p: (p.count("/"), p))


def find_apis(ctx: Context) -> list[dict]:
    """Every REST API with our name, oldest first."""
    apigw = ctx.aws.client("apigateway")
    apis = [a for a in ctx.aws.paginate(apigw, "get_rest_apis", "items") if a["name"] == ctx.config.api_name]
    return sorted(apis, key=lambda a: (a.get("createdDate") or 0, a["id"]))


def find_our_api(ctx: Context, step: str) -> tuple[dict | None, list[dict]]:
    """Our API (oldest with our tags) and any extra copies of it; raise if only foreign ones exist."""
    apis = find_apis(ctx)
    ours = [a for a in apis if is_ours(a.get("tags") or {}, ctx.config)]
    if apis and not ours:
        raise OwnershipError(
            step=step, resource=f"REST API {ctx.config.api_name}",
            cause="a REST API with this name exists but is not tagged as ours, so it is not ours to change",
            fix="pick another stack name (stack:) or api.name in config.yaml",
        )
    return (ours[0] if ours else None), ours[1:]


def delete_once(ctx: Context, delete, get, **ids) -> None:
    """Delete; gone already counts as done, and a retry after a lost answer looks before deleting again."""

    def gone() -> bool:
        try:
            get(**ids)
            return False
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in NOT_FOUND:
                return True
            raise

    def act() -> None:
        try:
            delete(**ids)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in NOT_FOUND:
                raise

    ctx.aws.once(act, done=gone)


def delete_api(ctx: Context, api_id: str) -> None:
    """Deleting the API deletes its resources, methods, deployments and stages with it."""
    apigw = ctx.aws.client("apigateway")
    delete_once(ctx, apigw.delete_rest_api, apigw.get_rest_api, restApiId=api_id)


class ApiStep:
    number = "4"
    title = "API Gateway REST API"
    console = "API Gateway -> Create API -> REST API -> Build"

    def plan(self, ctx: Context) -> list[Change]:
        step = f"Step {self.number} {self.title}"
        cfg = ctx.config
        apigw = ctx.aws.client("apigateway")
        api, extras = find_our_api(ctx, step)
        changes: list[Change] = []
        existing: dict[str, dict] = {}
        if api is None:
            ctx.api_id = None
            changes.append(Change("REST API", cfg.api_name, Action.CREATE, apply=lambda: self._create_api(ctx)))
        else:
            ctx.api_id = api["id"]
            for extra in extras:  # a copy left by a create whose answer was lost: ours, so remove it
                changes.append(Change("REST API", f"{cfg.api_name} ({extra['id']})", Action.DELETE, note="duplicate copy",
                                      apply=lambda i=extra["id"]: delete_api(ctx, i)))
            for resource in ctx.aws.paginate(apigw, "get_resources", "items", restApiId=api["id"], embed=["methods"]):
                if resource["path"] in existing:  # duplicate resource (moto accepts them): drop the newer one
                    changes.append(Change("resource", resource["path"], Action.DELETE, note="duplicate",
                                          apply=lambda r=resource["id"]: delete_once(ctx, apigw.delete_resource, apigw.get_resource,
                                                                                     restApiId=ctx.api_id, resourceId=r)))
                    continue
                existing[resource["path"]] = resource
                ctx.resource_ids[resource["path"]] = resource["id"]

        for path in wanted_paths(ctx):
            if path != "/" and path not in existing:
                changes.append(Change("resource", path, Action.CREATE, apply=lambda p=path: self._create_resource(ctx, p)))

        routes = {(fn.method, fn.path): base for base, fn in cfg.lambda_.functions.items()}
        for (method, path), base in sorted(routes.items(), key=lambda r: (r[0][1], r[0][0])):
            changes.extend(self._plan_method(ctx, method, path, base, existing.get(path, {}).get("resourceMethods", {}).get(method)))
        # Methods on our paths that config no longer asks for (a route removed from config.yaml).
        for path, resource in sorted(existing.items()):
            for method in sorted(resource.get("resourceMethods") or {}):
                if (method, path) not in routes and method != "OPTIONS":
                    changes.append(Change("method", f"{method} {path}", Action.DELETE,
                                          apply=lambda m=method, p=path: ctx.aws.delete(apigw.delete_method, not_found=NOT_FOUND,
                                                                                        restApiId=ctx.api_id, resourceId=ctx.resource_ids[p], httpMethod=m)))
        if api is not None:
            changes.extend(self._plan_permissions(ctx, routes))
        else:
            # replace=None: look first, as a function kept from an earlier API may still hold our statement.
            for (method, path), base in sorted(routes.items()):
                changes.append(Change("permission", f"apigateway -> {cfg.function_name(base)}", Action.CREATE,
                                      apply=lambda m=method, p=path, b=base: self._set_permission(ctx, b, m, p, replace=None)))
        if api is not None and not any(c.action.mutates for c in changes):
            return [Change("REST API", f"{cfg.api_name} ({api['id']})", Action.UNCHANGED)]
        return changes

    def _plan_method(self, ctx: Context, method: str, path: str, base: str, current: dict | None) -> list[Change]:
        uri = integration_uri(ctx, ctx.function_arns[base])
        label = f"{method} {path}"
        if current is None:
            return [Change("method", label, Action.CREATE, apply=lambda: self._put_method(ctx, method, path, uri))]
        integration = current.get("methodIntegration") or {}
        wanted = {"type": "AWS_PROXY", "httpMethod": "POST", "uri": uri}
        got = {k: integration.get(k) for k in wanted}
        if current.get("authorizationType") != "NONE":
            got["authorization"], wanted["authorization"] = current.get("authorizationType"), "NONE"
        if got != wanted:
            diffs = {k: (got.get(k), wanted[k]) for k in wanted if got.get(k) != wanted[k]}
            return [Change("method", label, Action.UPDATE, diffs, apply=lambda: self._put_method(ctx, method, path, uri, replace=True))]
        return []

    def _plan_permissions(self, ctx: Context, routes: dict) -> list[Change]:
        changes = []
        for (method, path), base in sorted(routes.items()):
            name = ctx.config.function_name(base)
            wanted = source_arn(ctx, ctx.api_id, method, path)
            mine = self._statements(ctx, name)
            current = mine[0].get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn") if mine else None
            if current == wanted and len(mine) == 1:
                continue
            action = Action.CREATE if not mine else Action.UPDATE
            changes.append(Change("permission", f"apigateway -> {name}", action,
                                  {"source_arn": (current, wanted)} if mine else {},
                                  apply=lambda m=method, p=path, b=base, r=bool(mine): self._set_permission(ctx, b, m, p, replace=r)))
        return changes

    # -- apply -------------------------------------------------------------------------------
    def _create_api(self, ctx: Context) -> None:
        apigw = ctx.aws.client("apigateway")
        cfg = ctx.config

        def find_or_create():
            api, _ = find_our_api(ctx, f"Step {self.number} {self.title}")
            if api is None:
                # Tags only stick when given at creation (and they are how we find it again).
                api = apigw.create_rest_api(
                    name=cfg.api_name,
                    description=f"Items CRUD API of stack {cfg.stack} (managed by crudstack)",
                    endpointConfiguration={"types": ["REGIONAL"]},
                    tags=cfg.all_tags,
                )
            return api

        api = ctx.aws.retry_unit(find_or_create)
        ctx.api_id = api["id"]
        ctx.resource_ids = {r["path"]: r["id"] for r in ctx.aws.paginate(apigw, "get_resources", "items", restApiId=api["id"])}

    def _create_resource(self, ctx: Context, path: str) -> None:
        apigw = ctx.aws.client("apigateway")
        parent, _, part = path.rpartition("/")

        def find_or_create():
            found = self._listed(ctx, path)
            if found is not None:
                return found
            try:
                return apigw.create_resource(restApiId=ctx.api_id, parentId=ctx.resource_ids[parent or "/"], pathPart=part)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "ConflictException" or is_transient(exc):
                    raise
                # AWS refuses a second resource with this path: ours, made by a run cut off or a lost
                # answer, that get_resources does not list yet. Take it once it shows.
                return self._wait_listed(ctx, path)

        created = ctx.aws.retry_unit(find_or_create)
        ctx.resource_ids[path] = created["id"]
        # get_resources may not list a new resource for a while; step 5 fingerprints what it
        # lists, so the step ends only once every new resource shows.
        ctx.settle.append(lambda: self._wait_listed(ctx, path))

    def _listed(self, ctx: Context, path: str) -> dict | None:
        apigw = ctx.aws.client("apigateway")
        return next((r for r in apigw.get_resources(restApiId=ctx.api_id, limit=500)["items"] if r["path"] == path), None)

    def _wait_listed(self, ctx: Context, path: str) -> dict:
        return ctx.aws.wait_until(lambda: ctx.aws.call(self._listed, ctx=ctx, path=path),
                                  what=f"resource {path} to be listed by API Gateway")

    def _put_method(self, ctx: Context, method: str, path: str, uri: str, replace: bool = False) -> None:
        apigw = ctx.aws.client("apigateway")
        resource_id = ctx.resource_ids[path]
        existing = ctx.aws.find(apigw.get_method, not_found=NOT_FOUND, restApiId=ctx.api_id, resourceId=resource_id, httpMethod=method)
        if existing is None:
            try:
                ctx.aws.call(apigw.put_method, restApiId=ctx.api_id, resourceId=resource_id, httpMethod=method, authorizationType="NONE")
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "ConflictException" or is_transient(exc):  # "Method already exists": made by our own call whose answer was lost
                    raise
        elif existing.get("authorizationType") != "NONE":
            ctx.aws.call(apigw.update_method, restApiId=ctx.api_id, resourceId=resource_id, httpMethod=method,
                         patchOperations=[{"op": "replace", "path": "/authorizationType", "value": "NONE"}])
        # Lambda proxy integrations are always called with POST, whatever the client's method.
        ctx.aws.call(apigw.put_integration, restApiId=ctx.api_id, resourceId=resource_id, httpMethod=method,
                     type="AWS_PROXY", integrationHttpMethod="POST", uri=uri)

    def _set_permission(self, ctx: Context, base: str, method: str, path: str, replace: bool | None) -> None:
        lam = ctx.aws.client("lambda")
        name = ctx.config.function_name(base)
        wanted = source_arn(ctx, ctx.api_id, method, path)
        if replace is None:
            # A function kept from an earlier API (e.g. a teardown cut off after step 4) still holds our
            # statement id, scoped to that API: add_permission alone would fail on it (AWS; the error is
            # taken for our own lost call) or add a second statement (moto), and the new API could not invoke.
            replace = bool(self._statements(ctx, name))
        if replace:
            ctx.aws.delete(lam.remove_permission, not_found=("ResourceNotFoundException",), FunctionName=name, StatementId=permission_id(ctx))

        def add():
            try:
                lam.add_permission(FunctionName=name, StatementId=permission_id(ctx), Action="lambda:InvokeFunction",
                                   Principal="apigateway.amazonaws.com", SourceArn=wanted)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "ResourceConflictException" or is_transient(exc):  # same statement id: made by our lost call
                    raise

        def added() -> bool:
            return [s.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn") for s in self._statements(ctx, name)] == [wanted]

        ctx.aws.once(add, done=added)

    def _statements(self, ctx: Context, name: str) -> list[dict]:
        """This stack's statements in the function's resource policy (normally none or one)."""
        lam = ctx.aws.client("lambda")
        found = ctx.aws.find(lam.get_policy, not_found=("ResourceNotFoundException",), FunctionName=name)
        statements = json.loads(found["Policy"])["Statement"] if found else []
        return [s for s in statements if s.get("Sid") == permission_id(ctx)]

    # -- teardown ------------------------------------------------------------------------------
    def plan_teardown(self, ctx: Context) -> list[Change]:
        changes = []
        for api in find_apis(ctx):
            if not is_ours(api.get("tags") or {}, ctx.config):
                changes.append(not_ours("REST API", f"{api['name']} ({api['id']})"))
                continue
            changes.append(Change("REST API", f"{api['name']} ({api['id']})", Action.DELETE, apply=lambda i=api["id"]: delete_api(ctx, i)))
        return changes
