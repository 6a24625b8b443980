"""Step 4. API Gateway -> Create API (REST) -> resources, methods, Lambda proxy integrations.

AWS does not de-duplicate REST APIs (or, in moto, resources) by name, so every
create here runs inside a find-or-create unit: a retry looks again before it
creates, and a crash right after create_rest_api is found by name and tag next run.
"""

from __future__ import annotations

import json


from crudstack.aws import ALREADY_EXISTS, NOT_FOUND
from crudstack.calls import Call, FindOrCreate, Once, Poll, Ref, resolve
from crudstack.errors import OwnershipError
from crudstack.plan import Action, Change, Context
from crudstack.steps.authorization import authorization_patch, method_authorization, warn_if_open
from crudstack.steps.base import is_ours, not_ours, tag_calls, tag_changes, wanted_paths
from crudstack.steps.cors import (GATEWAY_RESPONSE, MOCK_REQUEST_TEMPLATES, PREFLIGHT, current_gateway_responses,
                                  gateway_response_headers, plan_gateway_responses, preflight_shape, wanted_preflight_shape,
                                  wanted_preflights)

def integration_uri(ctx: Context, function_arn: str) -> str:
    return f"arn:{ctx.partition}:apigateway:{ctx.region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"


def source_arn(ctx: Context, api_id: str, method: str, path: str) -> str:
    """The execute-api ARN a permission is scoped to: this API, any stage, this method and path."""
    parts = ["*" if part.startswith("{") else part for part in path.strip("/").split("/")]
    return f"arn:{ctx.partition}:execute-api:{ctx.region}:{ctx.account_id}:{api_id}/*/{method}/{'/'.join(parts)}"


def permission_id(ctx: Context) -> str:
    return f"{ctx.config.stack}-apigateway-invoke"


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


def delete_once(operation: str, get: str, **ids) -> Once:
    """Delete; gone already counts as done, and a retry after a lost answer looks before deleting again
    (moto answers a second delete_rest_api of the same id with 500)."""

    def gone(run) -> bool:
        return run.aws.look("apigateway", get, **resolve(ids, run.variables)) is None

    return Once(Call("apigateway", operation, dict(ids), ok=NOT_FOUND["apigateway"]), done=gone, checks=f"apigateway.{get}(...) answers NotFound")


def delete_api(api_id: str) -> Once:
    """Deleting the API deletes its resources, methods, deployments and stages with it."""
    return delete_once("delete_rest_api", "get_rest_api", restApiId=api_id)


def listed(run, path: str) -> dict | None:
    apigw = run.aws.client("apigateway")
    return next((r for r in apigw.get_resources(restApiId=run.variables["api_id"], limit=500)["items"] if r["path"] == path), None)


def resource_id(path: str) -> Ref:
    return Ref(f"resource:{path}")


class ApiStep:
    number = "4"
    title = "API Gateway REST API"

    def plan(self, ctx: Context) -> list[Change]:
        step = f"Step {self.number} {self.title}"
        cfg = ctx.config
        warn_if_open(cfg)
        apigw = ctx.aws.client("apigateway")
        routes = {(fn.method, fn.path): base for base, fn in cfg.lambda_.functions.items()}
        # Reads at once where none needs another's answer: the API and the functions' policies (which do not
        # depend on it), then the API's resources and gateway responses.
        (api, extras), statements = ctx.fan(lambda read: read(), [
            lambda: find_our_api(ctx, step), lambda: self._all_statements(ctx, routes)])
        resources, responses = ctx.fan(lambda read: read(), [
            lambda: ctx.aws.paginate(apigw, "get_resources", "items", restApiId=api["id"], embed=["methods"]),
            lambda: current_gateway_responses(ctx, api["id"])]) if api is not None else ([], {})
        changes: list[Change] = []
        existing: dict[str, dict] = {}
        if api is None:
            ctx.api_id = None
            changes.append(self._route_change("REST API", cfg.api_name, Action.CREATE, [self._create_api(ctx)], provides=("api",)))
        else:
            ctx.api_id = ctx.variables["api_id"] = api["id"]
            # The root resource comes with the API, and GetRestApis names it (get_resources may lag behind).
            ctx.resource_ids["/"] = ctx.variables["resource:/"] = api["rootResourceId"]
            changes += tag_changes(ctx, "REST API", cfg.api_name, api.get("tags") or {},
                                   lambda missing: tag_calls(ctx, "/restapis/{}", missing))
            for extra in extras:  # a copy left by a create whose answer was lost: ours, so remove it
                changes.append(Change("REST API", f"{cfg.api_name} ({extra['id']})", Action.DELETE, note="duplicate copy",
                                      calls=[delete_api(extra["id"])]))
            for resource in resources:
                if resource["path"] in existing:  # duplicate resource (moto accepts them): drop the newer one
                    changes.append(self._route_change("resource", resource["path"], Action.DELETE, [
                        delete_once("delete_resource", "get_resource", restApiId=api["id"], resourceId=resource["id"])], note="duplicate"))
                    continue
                existing[resource["path"]] = resource
                ctx.resource_ids[resource["path"]] = ctx.variables[f"resource:{resource['path']}"] = resource["id"]

        for path in wanted_paths(ctx):
            if path != "/" and path not in existing:
                parent = path.rpartition("/")[0] or "/"
                changes.append(self._route_change("resource", path, Action.CREATE, [self._create_resource(path)],
                                                  after=(f"resource:{parent}",), provides=(f"resource:{path}",)))

        for (method, path), base in sorted(routes.items(), key=lambda r: (r[0][1], r[0][0])):
            changes.extend(self._plan_method(ctx, method, path, base, existing.get(path, {}).get("resourceMethods", {}).get(method)))
        preflights = wanted_preflights(ctx)
        for path, headers in preflights.items():
            changes.extend(self._plan_preflight(ctx, path, headers, existing.get(path, {}).get("resourceMethods", {}).get("OPTIONS")))
        changes.extend(self._plan_gateway_responses(ctx, responses))
        # Methods on our paths that config no longer asks for (a route removed from config.yaml).
        for path, resource in sorted(existing.items()):
            for method in sorted(resource.get("resourceMethods") or {}):
                if (method, path) not in routes and not (method == "OPTIONS" and path in preflights):
                    changes.append(self._route_change(PREFLIGHT if method == "OPTIONS" else "method", f"{method} {path}", Action.DELETE, [
                        Call("apigateway", "delete_method", {"restApiId": ctx.api_id, "resourceId": resource["id"], "httpMethod": method},
                             ok=NOT_FOUND["apigateway"])]))
        changes.extend(self._plan_permissions(ctx, routes, statements))
        if api is not None and not any(c.action.mutates for c in changes):
            return changes + [Change("REST API", f"{cfg.api_name} ({api['id']})", Action.UNCHANGED)]
        return changes

    def _route_change(self, kind: str, name: str, action: Action, calls: list, *, diffs: dict | None = None, note: str = "",
                      after: tuple[str, ...] = (), provides: tuple[str, ...] = ()) -> Change:
        """A change to what the API serves: step 5 deploys once all of them are done."""
        return Change(kind, name, action, diffs or {}, calls=calls, note=note, after=("api", *after), provides=("routes", *provides))

    def _plan_method(self, ctx: Context, method: str, path: str, base: str, current: dict | None) -> list[Change]:
        uri = integration_uri(ctx, ctx.function_arns[base])
        label = f"{method} {path}"
        where = {"restApiId": Ref("api_id"), "resourceId": resource_id(path), "httpMethod": method}
        integration = Call("apigateway", "put_integration", {**where, "type": "AWS_PROXY", "integrationHttpMethod": "POST", "uri": uri})
        if current is None:
            # "Method already exists": made by our own call whose answer was lost.
            return [self._route_change("method", label, Action.CREATE, [
                Call("apigateway", "put_method", {**where, **method_authorization(ctx.config)}, ok=ALREADY_EXISTS["apigateway"]), integration],
                after=(f"resource:{path}",))]
        wanted = {"type": "AWS_PROXY", "httpMethod": "POST", "uri": uri}
        got = {k: (current.get("methodIntegration") or {}).get(k) for k in wanted}
        # Who may call it (api.auth): changed in place, the integration left as it is.
        diffs, patch = authorization_patch(current, ctx.config)
        calls = [Call("apigateway", "update_method", {**where, "patchOperations": patch})] if patch else []
        if got != wanted:
            # Lambda proxy integrations are always called with POST, whatever the client's method.
            diffs.update({k: (got.get(k), wanted[k]) for k in wanted if got.get(k) != wanted[k]})
            calls.append(integration)
        if calls:
            return [self._route_change("method", label, Action.UPDATE, calls, diffs=diffs)]
        return []

    def _plan_gateway_responses(self, ctx: Context, current: dict[str, dict]) -> list[Change]:
        """API Gateway's own 4xx and 5xx answers (a missing key, a throttle, a failed function) with the CORS
        headers of the preflight, so a browser page can read them; part of the deployed snapshot (step 5).
        `current`: the API's customised responses (current_gateway_responses), none for a new API."""
        return [self._route_change(GATEWAY_RESPONSE, kind, action, [put], diffs=diffs)
                for kind, action, diffs, put in plan_gateway_responses(ctx, gateway_response_headers(ctx), current)]

    def _plan_preflight(self, ctx: Context, path: str, headers: dict[str, str], current: dict | None) -> list[Change]:
        label = f"OPTIONS {path}"
        if current is None:
            return [self._route_change(PREFLIGHT, label, Action.CREATE, self._preflight_calls(path, headers), after=(f"resource:{path}",))]
        got, wanted = preflight_shape(current), wanted_preflight_shape(headers)
        if got == wanted:
            return []
        diffs = {key: (got[key], wanted[key]) for key in wanted if got[key] != wanted[key]}
        if "headers" in diffs:  # name the headers that change rather than print two whole maps
            old, new = diffs.pop("headers")
            for key in sorted(set(old) | set(new)):
                if old.get(key) != new.get(key):
                    diffs[key.removeprefix("method.response.header.")] = (old.get(key), new.get(key))
        return [self._route_change(PREFLIGHT, label, Action.UPDATE, self._preflight_calls(path, headers, replace=True), diffs=diffs)]

    def _preflight_calls(self, path: str, headers: dict[str, str], replace: bool = False) -> list:
        """OPTIONS with a MOCK integration, as the console's "Enable CORS" makes it: the method, its
        integration (request template {"statusCode": 200}), a 200 method response declaring the
        headers, and the integration response giving them their static values."""
        where = {"restApiId": Ref("api_id"), "resourceId": resource_id(path), "httpMethod": "OPTIONS"}
        conflict = ALREADY_EXISTS["apigateway"]   # already made by our own call whose answer was lost
        calls = []
        if replace:
            # Deleting the method takes its integration and both responses with it: what is put back
            # below is then exactly what we want, whatever was there (a half-made one, a console edit).
            calls.append(Call("apigateway", "delete_method", dict(where), ok=NOT_FOUND["apigateway"]))
        return calls + [
            Call("apigateway", "put_method", {**where, "authorizationType": "NONE"}, ok=conflict),
            Call("apigateway", "put_integration", {**where, "type": "MOCK", "requestTemplates": MOCK_REQUEST_TEMPLATES}),
            Call("apigateway", "put_method_response", {**where, "statusCode": "200", "responseModels": {"application/json": "Empty"},
                                                       "responseParameters": {f"method.response.header.{name}": False for name in headers}},
                 ok=conflict),
            Call("apigateway", "put_integration_response", {
                **where, "statusCode": "200", "responseTemplates": {"application/json": ""},
                "responseParameters": {f"method.response.header.{name}": f"'{value}'" for name, value in headers.items()}}, ok=conflict),
        ]

    def _all_statements(self, ctx: Context, routes: dict) -> list[list[dict]]:
        """Each route's function's statements of ours, in sorted(routes.items())'s order. The statements already
        there: a function kept from an earlier API (a teardown cut off after step 4) still holds our statement
        id, scoped to that API, and must lose it first."""
        return ctx.fan(lambda item: self._statements(ctx, ctx.config.function_name(item[1])), sorted(routes.items()))

    def _plan_permissions(self, ctx: Context, routes: dict, mine: list[list[dict]]) -> list[Change]:
        items = sorted(routes.items())
        changes = []
        for ((method, path), base), statements in zip(items, mine):
            name = ctx.config.function_name(base)
            current = statements[0].get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn") if statements else None
            if ctx.api_id is not None and current == source_arn(ctx, ctx.api_id, method, path) and len(statements) == 1:
                continue
            wanted = Ref("api_id", source_arn(ctx, "{}", method, path))
            action = Action.CREATE if not statements else Action.UPDATE
            changes.append(Change("permission", f"apigateway -> {name}", action,
                                  {"source_arn": (current, source_arn(ctx, ctx.api_id or "<new API>", method, path))} if statements else {},
                                  calls=self._permission_calls(ctx, name, wanted, replace=bool(statements)),
                                  after=("api", f"function:{name}")))
        return changes

    def _permission_calls(self, ctx: Context, name: str, wanted: Ref, replace: bool) -> list:
        # A function's resource policy is eventually consistent, and AWS applies overlapping writes to it badly:
        # terraform-provider-aws waits after RemovePermission until GetPolicy no longer shows the statement,
        # retries AddPermission's ResourceConflictException, and serializes permission writes per function
        # (internal/service/lambda/permission.go). Ours are one change per function, its records in order.
        calls = []
        if replace:
            calls.append(Call("lambda", "remove_permission", {"FunctionName": name, "StatementId": permission_id(ctx)},
                              ok=NOT_FOUND["lambda"]))
            calls.append(Poll(Call("lambda", "get_policy", {"FunctionName": name}),
                              lambda answer: answer is None or not self._ours(ctx, answer),
                              f"the old permission of {name} to be gone", missing_ok=True))

        def added(run) -> bool:
            arn = resolve(wanted, run.variables)
            return [s.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn") for s in self._statements(ctx, name)] == [arn]

        # AWS refuses a second add_permission with the same statement id, and moto keeps both: a retry after a
        # lost answer looks first. A ResourceConflictException ("provided already exists") is retried too
        # (crudstack.aws.EVENTUAL_CONSISTENCY), and so counts only once get_policy shows the wanted SourceArn:
        # our own lost call, or the old statement not yet gone everywhere.
        calls.append(Once(Call("lambda", "add_permission", {
            "FunctionName": name, "StatementId": permission_id(ctx), "Action": "lambda:InvokeFunction",
            "Principal": "apigateway.amazonaws.com", "SourceArn": wanted}),
            done=added, checks=f"lambda.get_policy(FunctionName={name!r}) holds that statement"))
        return calls

    def _ours(self, ctx: Context, answer: dict) -> list[dict]:
        """This stack's statements in a GetPolicy answer."""
        return [s for s in json.loads(answer["Policy"])["Statement"] if s.get("Sid") == permission_id(ctx)]

    def _statements(self, ctx: Context, name: str) -> list[dict]:
        """This stack's statements in the function's resource policy (normally none or one)."""
        found = ctx.aws.find_function_policy(name)
        return self._ours(ctx, found) if found else []

    # -- records -------------------------------------------------------------------------------
    def _create_api(self, ctx: Context) -> FindOrCreate:
        cfg = ctx.config
        step = f"Step {self.number} {self.title}"

        def find(run) -> dict | None:
            return find_our_api(ctx, step)[0]

        # Tags only stick when given at creation in moto (and they are how we find it again). The root
        # resource "/" comes with the API, and CreateRestApi names it: get_resources may not list it yet.
        return FindOrCreate(find, Call("apigateway", "create_rest_api", {
            "name": cfg.api_name, "description": f"Items CRUD API of stack {cfg.stack} (managed by crudstack)",
            "endpointConfiguration": {"types": ["REGIONAL"]}, "tags": cfg.all_tags}),
            finds=f"apigateway.get_rest_apis()  name {cfg.api_name!r}, tagged as ours",
            save={"api_id": lambda api: api["id"], "resource:/": lambda api: api["rootResourceId"]})

    def _create_resource(self, path: str) -> FindOrCreate:
        parent, _, part = path.rpartition("/")

        def conflict(run) -> dict:
            # AWS refuses a second resource with this path: ours, made by a run cut off or a lost answer,
            # that get_resources does not list yet. Take it once it shows.
            return run.aws.wait_until(lambda: run.aws.call(listed, run=run, path=path),
                                      what=f"resource {path} to be listed by API Gateway")

        return FindOrCreate(lambda run: listed(run, path), Call("apigateway", "create_resource", {
            "restApiId": Ref("api_id"), "parentId": resource_id(parent or "/"), "pathPart": part}),
            finds=f"apigateway.get_resources(restApiId=<api_id>)  path {path!r}",
            save={f"resource:{path}": lambda resource: resource["id"]}, conflict=conflict)

    # -- teardown ------------------------------------------------------------------------------
    def plan_teardown(self, ctx: Context) -> list[Change]:
        changes = []
        for api in find_apis(ctx):
            if not is_ours(api.get("tags") or {}, ctx.config):
                changes.append(not_ours("REST API", f"{api['name']} ({api['id']})"))
                continue
            # A usage plan on its stage lets go of it first (step 5's teardown, crudstack/steps/usage_plan.py). Once it
            # is gone nothing writes to the table through it: step 1's teardown waits for that.
            changes.append(Change("REST API", f"{api['name']} ({api['id']})", Action.DELETE, calls=[delete_api(api["id"])],
                                  after=("usage plan gone",), provides=("REST API gone",)))
        return changes
