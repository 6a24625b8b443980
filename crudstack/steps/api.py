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
from crudstack.steps.base import is_ours, not_ours, tag_changes

NOT_FOUND = ("NotFoundException", "ResourceNotFoundException")
PREFLIGHT = "CORS preflight"
# What the console's "Enable CORS" allows by default, plus If-Match (our PUT and DELETE take one).
CORS_ALLOW_HEADERS = "Content-Type,If-Match,Authorization,X-Amz-Date,X-Api-Key,X-Amz-Security-Token"
MOCK_REQUEST_TEMPLATES = {"application/json": '{"statusCode": 200}'}


def integration_uri(ctx: Context, function_arn: str) -> str:
    return f"arn:{ctx.partition}:apigateway:{ctx.region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"


def source_arn(ctx: Context, api_id: str, method: str, path: str) -> str:
    """The execute-api ARN a permission is scoped to: this API, any stage, this method and path."""
    parts = ["*" if part.startswith("{") else part for part in path.strip("/").split("/")]
    return f"arn:{ctx.partition}:execute-api:{ctx.region}:{ctx.account_id}:{api_id}/*/{method}/{'/'.join(parts)}"


def permission_id(ctx: Context) -> str:
    return f"{ctx.config.stack}-apigateway-invoke"


def wanted_paths(ctx: Context) -> list[str]:
    paths = {"/"}
    for fn in ctx.config.lambda_.functions.values():
        parts = fn.path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            paths.add("/" + "/".join(parts[:i]))
    return sorted(paths, key=lambda p: (p.count("/"), p))


def preflight_headers(ctx: Context, methods: list[str]) -> dict[str, str]:
    """The headers the OPTIONS answer of a resource serving `methods` carries.

    A MOCK integration answers with static values, so it cannot echo one of several allowed
    origins per request: with one origin configured it names that origin; with several it
    allows "*", and the functions refuse (403) a request from an origin not listed.
    """
    cors = ctx.config.api.cors
    origins = cors.allowed_origins
    return {
        "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
        "Access-Control-Allow-Methods": ",".join(sorted(methods) + ["OPTIONS"]),
        "Access-Control-Allow-Origin": origins[0] if len(origins) == 1 else "*",
        "Access-Control-Max-Age": str(cors.max_age_s),
    }


def wanted_preflights(ctx: Context) -> dict[str, dict[str, str]]:
    """path -> preflight headers, for each resource that serves a route."""
    methods: dict[str, list[str]] = {}
    for fn in ctx.config.lambda_.functions.values():
        methods.setdefault(fn.path, []).append(fn.method)
    return {path: preflight_headers(ctx, found) for path, found in sorted(methods.items())}


def preflight_shape(method: dict | None) -> dict:
    """An OPTIONS method as get_resources(embed=["methods"]) shows it, reduced to what we set."""
    method = method or {}
    integration = method.get("methodIntegration") or {}
    method_response = (method.get("methodResponses") or {}).get("200") or {}
    integration_response = (integration.get("integrationResponses") or {}).get("200") or {}
    templates = integration_response.get("responseTemplates") or {}
    return {
        "authorization": method.get("authorizationType"),
        "integration": integration.get("type"),
        "request_templates": integration.get("requestTemplates") or {},
        "declared_headers": sorted(method_response.get("responseParameters") or {}),
        "headers": dict(sorted((integration_response.get("responseParameters") or {}).items())),
        # AWS keeps the empty body template as "", moto as None.
        "body": {mime: body or "" for mime, body in templates.items()},
    }


def wanted_preflight_shape(headers: dict[str, str]) -> dict:
    return {
        "authorization": "NONE",
        "integration": "MOCK",
        "request_templates": MOCK_REQUEST_TEMPLATES,
        "declared_headers": sorted(f"method.response.header.{name}" for name in headers),
        "headers": {f"method.response.header.{name}": f"'{value}'" for name, value in sorted(headers.items())},
        "body": {"application/json": ""},
    }


def apigateway_arn(ctx: Context, path: str) -> str:
    """An API Gateway resource's ARN, as TagResource takes it: no account, e.g. .../restapis/ID/stages/prod."""
    return ctx.arn("apigateway", path, account=False)


def set_tags(ctx: Context, path: str, tags: dict[str, str]) -> None:
    apigw = ctx.aws.client("apigateway")
    ctx.aws.call(apigw.tag_resource, resourceArn=apigateway_arn(ctx, path), tags=tags)


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
            # The root resource comes with the API, and GetRestApis names it (get_resources may lag behind).
            ctx.resource_ids["/"] = api["rootResourceId"]
            changes += tag_changes(ctx, "REST API", cfg.api_name, api.get("tags") or {},
                                   lambda missing: set_tags(ctx, f"/restapis/{ctx.api_id}", missing))
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
        preflights = wanted_preflights(ctx)
        for path, headers in preflights.items():
            changes.extend(self._plan_preflight(ctx, path, headers, existing.get(path, {}).get("resourceMethods", {}).get("OPTIONS")))
        # Methods on our paths that config no longer asks for (a route removed from config.yaml).
        for path, resource in sorted(existing.items()):
            for method in sorted(resource.get("resourceMethods") or {}):
                if (method, path) not in routes and not (method == "OPTIONS" and path in preflights):
                    changes.append(Change(PREFLIGHT if method == "OPTIONS" else "method", f"{method} {path}", Action.DELETE,
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
            return changes + [Change("REST API", f"{cfg.api_name} ({api['id']})", Action.UNCHANGED)]
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

    def _plan_preflight(self, ctx: Context, path: str, headers: dict[str, str], current: dict | None) -> list[Change]:
        label = f"OPTIONS {path}"
        if current is None:
            return [Change(PREFLIGHT, label, Action.CREATE, apply=lambda: self._put_preflight(ctx, path, headers))]
        got, wanted = preflight_shape(current), wanted_preflight_shape(headers)
        if got == wanted:
            return []
        diffs = {key: (got[key], wanted[key]) for key in wanted if got[key] != wanted[key]}
        if "headers" in diffs:  # name the headers that change rather than print two whole maps
            old, new = diffs.pop("headers")
            for key in sorted(set(old) | set(new)):
                if old.get(key) != new.get(key):
                    diffs[key.removeprefix("method.response.header.")] = (old.get(key), new.get(key))
        return [Change(PREFLIGHT, label, Action.UPDATE, diffs, apply=lambda: self._put_preflight(ctx, path, headers, replace=True))]

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
        # The root resource "/" comes with the API, and CreateRestApi (like GetRestApis) names it: get_resources
        # may not list a brand-new API's resources yet.
        ctx.resource_ids = {"/": api["rootResourceId"]}

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

    def _put_preflight(self, ctx: Context, path: str, headers: dict[str, str], replace: bool = False) -> None:
        """OPTIONS with a MOCK integration, as the console's "Enable CORS" makes it: the method, its
        integration (request template {"statusCode": 200}), a 200 method response declaring the
        headers, and the integration response giving them their static values."""
        from crudstack.aws import error_code

        apigw = ctx.aws.client("apigateway")
        where = {"restApiId": ctx.api_id, "resourceId": ctx.resource_ids[path], "httpMethod": "OPTIONS"}
        if replace:
            # Deleting the method takes its integration and both responses with it: what is put back
            # below is then exactly what we want, whatever was there (a half-made one, a console edit).
            ctx.aws.delete(apigw.delete_method, not_found=NOT_FOUND, **where)

        def put(operation, **kwargs):
            try:
                ctx.aws.call(operation, **where, **kwargs)
            except Exception as exc:
                if error_code(exc) != "ConflictException":  # already made by our own call whose answer was lost
                    raise

        put(apigw.put_method, authorizationType="NONE")
        ctx.aws.call(apigw.put_integration, **where, type="MOCK", requestTemplates=MOCK_REQUEST_TEMPLATES)
        put(apigw.put_method_response, statusCode="200", responseModels={"application/json": "Empty"},
            responseParameters={f"method.response.header.{name}": False for name in headers})
        put(apigw.put_integration_response, statusCode="200", responseTemplates={"application/json": ""},
            responseParameters={f"method.response.header.{name}": f"'{value}'" for name, value in headers.items()})

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
                # The service principal is apigateway.amazonaws.com in aws-cn and aws-us-gov too: only ARNs
                # and endpoints change with the partition (see TRUST_POLICY in crudstack/steps/role.py).
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
