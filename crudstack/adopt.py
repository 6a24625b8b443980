"""`provision.py --adopt`: take over the stack the console tutorial made by hand.

The console tutorial leaves an untagged stack in the account: table ItemsTable (key id), role
LambdaDynamoDBRole with two managed policies, four Python functions, a REST API with /items and
/items/{id} and Lambda proxy integrations, a prod stage. With `names: tutorial` in config.yaml our
names are those very names, but the steps only ever change what carries our ownership tags.

Adopting is one read pass and one write: find each console-made resource by its name and shape (the
REST API by its routes when its name is not config.yaml's), stop before any write if one does not fit
or several could be the API, and otherwise put our ownership tags on each of them (the same tags a
create gives: `Config.all_tags`). From then on the next plain run, `--plan` and teardown see them as
ours. Nothing is deleted and made again: the items, the REST API's id (and its invoke URL) and the
function names stay.

The plan is shown first, whole: the take-over (step 0) and, planned on a view of the account as it
reads once the tags are on (`AsAdopted`), what steps 1-7 then change (our handlers' code, the fifth
function, CORS, throttling, alarms, the inline policy in place of the managed ones unless
role.tutorial_managed_policies keeps them). `--plan --adopt` stops there. Each tag call is idempotent,
so a run cut off anywhere is finished by running it again; no step ever creates what adoption finds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crudstack.calls import Call
from crudstack.config import MANAGED_BY
from crudstack.errors import AdoptionError
from crudstack.plan import Action, Change, Context
from crudstack.steps.base import apigateway_arn, is_ours, tag_dict, tag_list
from crudstack.steps.functions import function_tags
from crudstack.steps.role import TUTORIAL_MANAGED_POLICY_NAMES, inline_policy_name, managed_policy_arn

KIND = "take over"


@dataclass
class Found:
    """What the console made, as read (each None when absent) and what does not fit."""

    table: dict | None = None
    table_tags: dict[str, str] = field(default_factory=dict)
    role: dict | None = None
    role_tags: dict[str, str] = field(default_factory=dict)
    role_policies: list[str] = field(default_factory=list)        # attached managed policies' ARNs
    role_inline: list[str] = field(default_factory=list)          # inline policies' names
    functions: dict[str, dict | None] = field(default_factory=dict)   # config base name -> GetFunction's answer
    api: dict | None = None
    api_found_by: str = ""                                          # "name" or "routes"
    stage: dict | None = None
    other_stages: list[str] = field(default_factory=list)
    unrelated_apis: list[dict] = field(default_factory=list)       # untagged, serving the routes, beside ours
    problems: list[str] = field(default_factory=list)


def _foreign_stack(tags: dict[str, str], ctx: Context) -> str | None:
    """The crudstack stack a resource belongs to when it is not this one."""
    if tags.get("managed-by") == MANAGED_BY and tags.get("crudstack-stack") != ctx.config.stack:
        return tags.get("crudstack-stack") or "?"
    return None


def _owned_tags(ctx: Context, found: Found, kind: str, name: str, tags) -> dict[str, str]:
    """A resource's tags as read (list or map), as a map; one of another crudstack stack's is a problem."""
    tags = tag_dict(tags)
    other = _foreign_stack(tags, ctx)
    if other:
        found.problems.append(f"{kind} {name} belongs to crudstack stack '{other}', not '{ctx.config.stack}': set stack: {other} "
                              f"in config.yaml to manage it, or tear that stack down first")
    return tags


# -- reading what the console made ---------------------------------------------------------------------

def _read_table(ctx: Context, found: Found) -> None:
    cfg = ctx.config
    table = found.table = ctx.aws.find_table(cfg.table_name)
    if table is None:
        return
    found.table_tags = _owned_tags(ctx, found, "table", cfg.table_name, ctx.aws.find_table_tags(table["TableArn"]))
    key = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    wanted = cfg.table.partition_key
    # UpdateTable takes no KeySchema (DynamoDB API Reference, UpdateTable): a table's key is fixed once it is made.
    if key.get("HASH") != wanted or types.get(wanted) != "S" or "RANGE" in key:
        shown = ", ".join(f"{kind.lower()} key {name} ({types.get(name, '?')})" for kind, name in sorted(key.items()))
        found.problems.append(
            f"table {cfg.table_name} has {shown}; our handlers need a partition key {wanted} of type String (S) and no sort "
            f"key, and DynamoDB cannot change a table's key: copy the items into a table keyed that way and name it in "
            f"table.name, or set table.name to another table")


def _read_role(ctx: Context, found: Found) -> None:
    iam, name = ctx.aws.client("iam"), ctx.config.role_name
    found.role = ctx.aws.find_role(name)
    if found.role is None:
        return
    tags = found.role.get("Tags")
    found.role_tags = _owned_tags(ctx, found, "role", name,
                                  tags if tags is not None else ctx.aws.call(iam.list_role_tags, RoleName=name)["Tags"])
    found.role_policies = [p["PolicyArn"] for p in ctx.aws.paginate(iam, "list_attached_role_policies", "AttachedPolicies",
                                                                     RoleName=name)]
    found.role_inline = ctx.aws.paginate(iam, "list_role_policies", "PolicyNames", RoleName=name)


def _read_function(ctx: Context, found: Found, base: str) -> None:
    cfg = ctx.config
    name = cfg.function_name(base)
    answer = ctx.aws.find_function(name)
    found.functions[base] = answer
    if answer is None:
        return
    _owned_tags(ctx, found, "function", name, function_tags(ctx, answer))
    runtime = answer["Configuration"].get("Runtime") or ""
    if not runtime.startswith("python"):
        # A function deployed as a container image has PackageType Image and no Runtime (Lambda API Reference,
        # GetFunctionConfiguration: "Runtime ... required if the deployment package is a .zip file archive").
        package = answer["Configuration"].get("PackageType", "Image")
        what = f"runtime {runtime}" if runtime else f"a container image (PackageType {package})"
        found.problems.append(
            f"function {name} runs {what}; our handlers are Python ({cfg.lambda_.runtime}), and --adopt does not swap a "
            f"function's language under its name: rename or delete it in the Lambda console (step 3 then makes ours), or give "
            f"lambda.functions.{base} another name in config.yaml")


def _api_paths(ctx: Context, api_id: str) -> set[str]:
    apigw = ctx.aws.client("apigateway")
    return {r["path"] for r in ctx.aws.paginate(apigw, "get_resources", "items", restApiId=api_id)}


def _listed(apis: list[dict]) -> str:
    return "; ".join(f"{a['id']} ({a['name']!r}, created {a.get('createdDate', '?')})" for a in apis)


def _read_api(ctx: Context, found: Found) -> None:
    """The REST API by config.yaml's name, else by its routes (every path config.yaml's functions serve)."""
    cfg = ctx.config
    apigw = ctx.aws.client("apigateway")
    apis = ctx.aws.paginate(apigw, "get_rest_apis", "items")
    # Another crudstack stack's API is never a candidate; ours (a run cut off after tagging) always is.
    usable = [a for a in apis if not _foreign_stack(a.get("tags") or {}, ctx)]
    by_name = [a for a in usable if a["name"] == cfg.api_name]
    ours = [a for a in by_name if is_ours(a.get("tags") or {}, cfg)]
    routes = {fn.path for fn in cfg.lambda_.functions.values()}
    if ours or len(by_name) == 1:
        candidates, found.api_found_by = ours[:1] or by_name, "name"   # extra copies of ours are step 4's to remove
        # The name is not the whole story: an untagged API serving the routes beside it is most likely the
        # console's, whose invoke URL users have. Unless the one named api.name serves them itself (the take-over
        # is done, or the console's API has that name), which of them to keep is the user's call.
        chosen = candidates[0]
        others = [a for a in usable if a is not chosen and not is_ours(a.get("tags") or {}, cfg)]
        paths = ctx.fan(lambda api: _api_paths(ctx, api["id"]), [chosen, *others])
        serving = [api for api, have in zip(others, paths[1:]) if routes <= have]
        if serving and not routes <= paths[0]:
            what = "already crudstack's" if ours else "named api.name"
            found.problems.append(
                f"REST API {chosen['id']} ({chosen['name']!r}) is {what} but serves none of the tutorial's routes, "
                f"and {_listed(serving)} serve{'s' if len(serving) == 1 else ''} them untagged: the console's API, whose invoke "
                f"URL you may have shared, is probably among those. Delete the one you do not use in the API Gateway console "
                f"and run --adopt again")
            return
        found.unrelated_apis = serving
    elif by_name:
        candidates, found.api_found_by = by_name, "name"
    else:
        paths = ctx.fan(lambda api: _api_paths(ctx, api["id"]), usable)
        candidates = [api for api, have in zip(usable, paths) if routes <= have]
        found.api_found_by = "routes"
    if len(candidates) > 1:
        listed = _listed(candidates)
        how = f"named {cfg.api_name!r}" if found.api_found_by == "name" else "serving " + " and ".join(
            sorted({fn.path for fn in cfg.lambda_.functions.values()}))
        found.problems.append(
            f"{len(candidates)} REST APIs {how} could be the tutorial's: {listed}. Give the one to adopt a name of its own "
            f"in the API Gateway console (Settings -> Name) and set api.name to it, or delete the ones you do not use")
        return
    if not candidates:
        return
    found.api = candidates[0]
    stages = ctx.aws.call(apigw.get_stages, restApiId=found.api["id"]).get("item", [])
    found.stage = next((s for s in stages if s["stageName"] == cfg.api.stage), None)
    found.other_stages = sorted(s["stageName"] for s in stages if s["stageName"] != cfg.api.stage)


def discover(ctx: Context) -> Found:
    """Read calls only. Raises AdoptionError, naming every misfit or ambiguity at once, before any write."""
    found = Found()
    bases = list(ctx.config.lambda_.functions)
    ctx.fan(lambda read: read(), [lambda: _read_table(ctx, found), lambda: _read_role(ctx, found), lambda: _read_api(ctx, found)]
            + [lambda base=base: _read_function(ctx, found, base) for base in bases])
    found.functions = {base: found.functions.get(base) for base in bases}   # config.yaml's order
    if found.table is None and found.role is None and not any(found.functions.values()):
        cfg = ctx.config
        hint = ("the console's names have no prefix: set names: tutorial in config.yaml" if cfg.names != "tutorial" else
                "set table.name, role.name and the lambda.functions names to the ones you gave in the console")
        found.problems.append(f"none of table {cfg.table_name}, role {cfg.role_name} or functions "
                              f"{', '.join(cfg.function_name(b) for b in bases)} exists in {ctx.region}: nothing to take over; {hint}")
    if found.problems:
        raise AdoptionError(found.problems)
    return found


# -- the take-over, as changes -------------------------------------------------------------------------

def _tag_diffs(ctx: Context, have: dict[str, str]) -> dict[str, tuple]:
    return {f"tag {k}": (have.get(k), v) for k, v in sorted(ctx.config.all_tags.items()) if have.get(k) != v}


def _take_over(ctx: Context, kind: str, name: str, have: dict[str, str], calls: list, note: str, extra: dict | None = None) -> Change:
    diffs = {**(extra or {}), **_tag_diffs(ctx, have)}
    if not diffs:
        return Change(f"{KIND} {kind}", name, Action.UNCHANGED, note="ours already")
    return Change(f"{KIND} {kind}", name, Action.UPDATE, diffs, calls=calls, note=note, provides=("adopted",))


def take_over_changes(ctx: Context, found: Found) -> list[Change]:
    """One change per console-made resource: our tags on it (and the API's name, when found by its routes)."""
    cfg = ctx.config
    tags = cfg.all_tags
    changes: list[Change] = []
    if found.table is not None:
        items = found.table.get("ItemCount")
        changes.append(_take_over(ctx, "table", cfg.table_name, found.table_tags,
                                  [Call("dynamodb", "tag_resource", {"ResourceArn": found.table["TableArn"], "Tags": tag_list(tags)})],
                                  note=f"its items stay{f' (about {items})' if items else ''}"))
    if found.role is not None:
        changes.append(_take_over(ctx, "role", cfg.role_name, found.role_tags,
                                  [Call("iam", "tag_role", {"RoleName": cfg.role_name, "Tags": tag_list(tags)})], note=""))
    for base, answer in found.functions.items():
        if answer is None:
            continue
        arn = answer["Configuration"]["FunctionArn"]
        changes.append(_take_over(ctx, "function", cfg.function_name(base), function_tags(ctx, answer),
                                  [Call("lambda", "tag_resource", {"Resource": arn, "Tags": tags})], note="its name stays"))
    if found.api is not None:
        api = found.api
        calls, rename = [], {}
        if api["name"] != cfg.api_name:
            # UpdateRestApi patches the name in place (op replace, path /name: API Gateway API Reference, UpdateRestApi,
            # "PATCH /restapis/restapi_id"); the id, and with it the invoke URL https://{restapi_id}.execute-api.{region}.
            # amazonaws.com/{stage} (Developer Guide, "Invoke a REST API in API Gateway"), stay.
            rename = {"name": (api["name"], cfg.api_name)}
            calls.append(Call("apigateway", "update_rest_api", {"restApiId": api["id"], "patchOperations": [
                {"op": "replace", "path": "/name", "value": cfg.api_name}]}))
        calls.append(Call("apigateway", "tag_resource", {"resourceArn": apigateway_arn(ctx, f"/restapis/{api['id']}"), "tags": tags}))
        changes.append(_take_over(ctx, "REST API", f"{cfg.api_name} ({api['id']})", api.get("tags") or {}, calls, extra=rename,
                                  note=f"found by its {found.api_found_by}; its id and invoke URL stay"))
        if found.stage is not None:
            stage = cfg.api.stage
            changes.append(_take_over(ctx, "stage", stage, found.stage.get("tags") or {}, [Call("apigateway", "tag_resource", {
                "resourceArn": apigateway_arn(ctx, f"/restapis/{api['id']}/stages/{stage}"), "tags": tags})],
                note="its invoke URL stays"))
    return changes + left_alone(ctx, found)


def left_alone(ctx: Context, found: Found) -> list[Change]:
    """What adoption does not touch, said in the plan (SKIP: never changed, never deleted by teardown)."""
    cfg = ctx.config
    changes = []
    tutorial = {managed_policy_arn(ctx, n) for n in TUTORIAL_MANAGED_POLICY_NAMES}
    for arn in sorted(found.role_policies):
        if arn in tutorial and not cfg.role.tutorial_managed_policies:
            continue   # step 2 detaches it: our inline policy takes its place
        why = ("role.tutorial_managed_policies: true keeps it" if arn in tutorial else "not one the tutorial attaches")
        changes.append(Change("managed policy", arn.rsplit("/", 1)[1], Action.SKIP,
                              note=f"left attached: {why}; teardown.py detaches it with the role"))
    # What is left alone here is still part of what is adopted: teardown deletes a role with every policy on it
    # (IAM refuses to delete a role that has any: DeleteConflict) and a REST API with all its stages. Said now.
    for policy in sorted(set(found.role_inline) - {inline_policy_name(ctx)}):
        changes.append(Change("inline policy", policy, Action.SKIP,
                              note="left in place: not crudstack's; teardown.py deletes it with the role"))
    for stage in found.other_stages:
        hint = ("" if found.stage is not None else
                f"set api.stage: {stage} in config.yaml to take it over instead of making {cfg.api.stage}; ")
        changes.append(Change("stage", stage, Action.SKIP,
                              note=f"left alone: only the stage in api.stage is ours; {hint}teardown.py deletes it with the REST API"))
    for api in found.unrelated_apis:
        changes.append(Change("REST API", f"{api['name']} ({api['id']})", Action.SKIP,
                              note=f"left alone: it serves the same routes, but the API named {cfg.api_name} is the one adopted"))
    if any(answer is not None for answer in found.functions.values()):
        changes.append(Change("console permissions", "API Gateway invoke statements on the functions", Action.SKIP,
                              note="left in place: provision adds its own, scoped to this API"))
    return changes


class AdoptStep:
    """Step 0 of an --adopt run: take over what the console made (before steps 1-7 change anything)."""

    number = "0"
    title = "Take over the console's stack"

    def __init__(self, found: Found | None = None):
        self.found = found

    def plan(self, ctx: Context) -> list[Change]:
        return take_over_changes(ctx, self.found or discover(ctx))

    def plan_teardown(self, ctx: Context) -> list[Change]:
        return []


class AsAdopted:
    """The account as it reads once the take-over is done: our tags (and config.yaml's API name) on each
    resource `found`, in the answers of the very reads steps 1-7 plan with. Only while `active`: the plan
    is shown before any write, and then the real tags are written and the steps plan again."""

    def __init__(self, ctx: Context, found: Found):
        cfg = ctx.config
        self.aws = ctx.aws
        self.tags = cfg.all_tags
        self.api_name = cfg.api_name
        self.stage = cfg.api.stage
        self.table_arn = found.table["TableArn"] if found.table else None
        self.role = cfg.role_name if found.role else None
        self.functions = {cfg.function_name(b) for b, answer in found.functions.items() if answer is not None}
        self.api_id = found.api["id"] if found.api else None
        self.active = True

    def attach(self) -> "AsAdopted":
        self.aws.register("after-call", self._after)
        return self

    def _after(self, parsed=None, model=None, **_) -> None:
        if not self.active or not isinstance(parsed, dict) or model is None:
            return
        # This thread's call, as Aws noted it (before-parameter-build runs in the calling thread).
        _, params = self.aws.last_call or (None, {})
        operation = model.name
        if operation == "ListTagsOfResource" and params.get("ResourceArn") == self.table_arn:
            parsed["Tags"] = tag_list({**tag_dict(parsed.get("Tags")), **self.tags})
        elif operation == "GetRole" and parsed.get("Role", {}).get("RoleName") == self.role:
            parsed["Role"]["Tags"] = tag_list({**tag_dict(parsed["Role"].get("Tags")), **self.tags})
        elif operation == "ListRoleTags" and params.get("RoleName") == self.role:
            parsed["Tags"] = tag_list({**tag_dict(parsed.get("Tags")), **self.tags})
        elif operation == "GetFunction" and parsed.get("Configuration", {}).get("FunctionName") in self.functions:
            parsed["Tags"] = {**(parsed.get("Tags") or {}), **self.tags}
            parsed.pop("TagsError", None)
        elif operation == "GetRestApis":
            for api in parsed.get("items", []):
                if api["id"] == self.api_id:
                    api["name"], api["tags"] = self.api_name, {**(api.get("tags") or {}), **self.tags}
        elif operation == "GetStage" and params.get("restApiId") == self.api_id and params.get("stageName") == self.stage:
            parsed["tags"] = {**(parsed.get("tags") or {}), **self.tags}


def adoption_steps(found: Found | None = None) -> list:
    from crudstack.steps import STEPS

    return [AdoptStep(found), *STEPS]


def run_adoption(ctx: Context, shown, reporter, *, apply: bool, on_planned=None) -> list:
    """Plan the take-over and steps 1-7 on the as-adopted view, and show it (`shown`, a plan reporter);
    then, with `apply`, write the tags (step 0) and run steps 1-7 as any run (`reporter`), planning them
    again on what is really there. Without `apply` nothing is written, `ctx` holds what the plan found."""
    from crudstack.runner import run
    from crudstack.steps import STEPS

    planning = Context(config=ctx.config, aws=ctx.aws, target=ctx.target, options=ctx.options) if apply else ctx
    found = discover(planning)
    view = AsAdopted(planning, found).attach()
    try:
        planned = run(planning, shown, apply=False, steps=[AdoptStep(found), *STEPS])
    finally:
        view.active = False
    if on_planned is not None:
        on_planned(planned)
    if not apply:
        return planned
    return run(ctx, reporter, steps=[AdoptStep()]) + run(ctx, reporter, steps=STEPS)
