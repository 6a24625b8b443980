"""Step 5, how much the API may be called: the stage's default method throttling (api.throttle) and,
with api.auth api_key, a usage plan on the stage (throttle, quota) holding one API key (api.usage_plan).

The usage plan and the key are found again by name and our tags, as every resource is; a copy left by a
create whose answer was lost is found, not made twice (AWS does not de-duplicate either by name).
"""

from __future__ import annotations

from crudstack.aws import ALREADY_EXISTS, NOT_FOUND
from crudstack.calls import Call, FindOrCreate, Once, Ref
from crudstack.config import Config
from crudstack.errors import OwnershipError
from crudstack.plan import Action, Change, Context
from crudstack.steps.base import is_ours, not_ours, tag_changes

USAGE_PLAN, API_KEY, USAGE_PLAN_KEY, STAGE_THROTTLE = "usage plan", "API key", "usage plan key", "stage throttle"


# -- step 5: the stage's throttling --------------------------------------------------------------------------


def number(value: float) -> str:
    """A patch value as AWS reads it: 100, not 100.0; 5.5 stays 5.5."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def plan_stage_throttle(ctx: Context, stage: dict | None) -> Change | None:
    """The stage's default method throttling (methodSettings "*/*"), set with UpdateStage once the stage exists
    (CreateStage takes no method settings: API Reference, CreateStage; UpdateStage's paths
    /*/*/throttling/rateLimit and /*/*/throttling/burstLimit, https://docs.aws.amazon.com/apigateway/latest/api/patch-operations.html)."""
    cfg = ctx.config
    throttle = cfg.api.throttle
    settings = ((stage or {}).get("methodSettings") or {}).get("*/*") or {}
    got = {"rate": settings.get("throttlingRateLimit"), "burst": settings.get("throttlingBurstLimit")}
    wanted = {"rate": float(throttle.rate_per_s), "burst": throttle.burst}
    if got["rate"] is not None and float(got["rate"]) == wanted["rate"] and got["burst"] == wanted["burst"]:
        return None
    diffs = {k: (got[k], wanted[k]) for k in wanted if got[k] != wanted[k]} if stage is not None and settings else {}
    call = Call("apigateway", "update_stage", {"restApiId": Ref("api_id"), "stageName": cfg.api.stage, "patchOperations": [
        {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": number(throttle.rate_per_s)},
        {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": str(throttle.burst)}]})
    action = Action.UPDATE if diffs else Action.CREATE
    return Change(STAGE_THROTTLE, f"{cfg.api.stage} (every method)", action, diffs, calls=[call], after=("stage",))


# -- step 5: the usage plan and its API key ------------------------------------------------------------------


def resource_arn(ctx: Context, path: str) -> str:
    return ctx.arn("apigateway", path, account=False)


def _same_name(ctx: Context, items: list[dict], name: str, kind: str, step: str) -> tuple[dict | None, list[dict], list[dict]]:
    """(ours, extra copies of ours, someone else's) among `items` named `name`."""
    named = sorted((i for i in items if i.get("name") == name), key=lambda i: (i.get("createdDate") or 0, i["id"]))
    ours = [i for i in named if is_ours(i.get("tags") or {}, ctx.config)]
    foreign = [i for i in named if not is_ours(i.get("tags") or {}, ctx.config)]
    if foreign and not ours and ctx.config.api.auth == "api_key":
        raise OwnershipError(step=step, resource=f"{kind} {name}",
                             cause=f"a {kind} with this name exists but is not tagged as ours, so it is not ours to change",
                             fix="pick another stack name (stack:) or api.name in config.yaml, or rename that one yourself")
    return (ours[0] if ours else None), ours[1:], foreign


def find_usage_plans(ctx: Context) -> list[dict]:
    apigw = ctx.aws.client("apigateway")
    return [p for p in ctx.aws.paginate(apigw, "get_usage_plans", "items") if p.get("name") == ctx.config.usage_plan_name]


def find_api_keys(ctx: Context) -> list[dict]:
    apigw = ctx.aws.client("apigateway")
    name = ctx.config.api_key_name
    # nameQuery matches by prefix: the exact name is picked here.
    return [k for k in ctx.aws.paginate(apigw, "get_api_keys", "items", nameQuery=name, includeValues=True) if k.get("name") == name]


def usage_plan_description(cfg: Config) -> str:
    return f"Who may call the {cfg.stack} items API, how often (managed by crudstack)"


def api_key_description(cfg: Config) -> str:
    return f"The key of the {cfg.stack} items API (managed by crudstack)"


def wanted_plan(ctx: Context) -> dict:
    plan = ctx.config.api.usage_plan
    wanted = {"throttle": {"rateLimit": float(plan.rate_per_s), "burstLimit": plan.burst}}
    if plan.quota is not None:
        wanted["quota"] = {"limit": plan.quota, "period": plan.quota_period}
    return wanted


def plan_patch(ctx: Context, plan: dict, api_id: str | None) -> tuple[dict, list[dict]]:
    """(diffs, UpdateUsagePlan patch operations) that bring our plan to config.yaml and onto our stage."""
    cfg = ctx.config
    wanted = wanted_plan(ctx)
    diffs, ops = {}, []
    throttle = plan.get("throttle") or {}
    if throttle.get("rateLimit") is None or float(throttle["rateLimit"]) != wanted["throttle"]["rateLimit"]:
        diffs["rate"] = (throttle.get("rateLimit"), wanted["throttle"]["rateLimit"])
        ops.append({"op": "replace", "path": "/throttle/rateLimit", "value": number(wanted["throttle"]["rateLimit"])})
    if throttle.get("burstLimit") != wanted["throttle"]["burstLimit"]:
        diffs["burst"] = (throttle.get("burstLimit"), wanted["throttle"]["burstLimit"])
        ops.append({"op": "replace", "path": "/throttle/burstLimit", "value": str(wanted["throttle"]["burstLimit"])})
    quota = {k: (plan.get("quota") or {}).get(k) for k in ("limit", "period")} if plan.get("quota") else None
    if quota != wanted.get("quota"):
        diffs["quota"] = (quota, wanted.get("quota"))
        if "quota" in wanted:
            ops += [{"op": "replace", "path": "/quota/limit", "value": str(wanted["quota"]["limit"])},
                    {"op": "replace", "path": "/quota/period", "value": wanted["quota"]["period"]}]
        else:
            ops.append({"op": "remove", "path": "/quota"})
    # Our stage, and no other: a stage of an API deleted since (a REST API made again) is let go.
    stages = [f"{s['apiId']}:{s['stage']}" for s in plan.get("apiStages") or []]
    mine = f"{api_id}:{cfg.api.stage}" if api_id else None
    for stage in stages:
        if stage != mine:
            ops.append({"op": "remove", "path": "/apiStages", "value": stage})
    if mine not in stages:
        ops.append({"op": "add", "path": "/apiStages", "value": Ref("api_id", f"{{}}:{cfg.api.stage}")})
    if stages != [mine]:
        diffs["stages"] = (stages, [mine or f"<new API>:{cfg.api.stage}"])
    return diffs, ops


def plan_usage_plan(ctx: Context, step: str) -> list[Change]:
    """auth: api_key: the plan on our stage and the key in it, as config.yaml asks. Otherwise: ours go."""
    cfg = ctx.config
    (plan, plan_copies, foreign_plans), (key, key_copies, foreign_keys) = ctx.fan(lambda read: read(), [
        lambda: _same_name(ctx, find_usage_plans(ctx), cfg.usage_plan_name, USAGE_PLAN, step),
        lambda: _same_name(ctx, find_api_keys(ctx), cfg.api_key_name, API_KEY, step)])
    changes = [not_ours(USAGE_PLAN, f"{p['name']} ({p['id']})") for p in foreign_plans]
    changes += [not_ours(API_KEY, f"{k['name']} ({k['id']})") for k in foreign_keys]
    if cfg.api.auth != "api_key":
        gone = [p for p in (plan, *plan_copies) if p is not None]
        changes += [delete_plan(p, note=f"api.auth is {cfg.api.auth}") for p in gone]
        changes += [delete_key(k, note=f"api.auth is {cfg.api.auth}") for k in (key, *key_copies) if k is not None]
        return changes
    changes += [delete_plan(p, note="duplicate copy") for p in plan_copies]
    changes += [delete_key(k, note="duplicate copy") for k in key_copies]
    changes += _plan_key(ctx, key)
    changes += _plan_plan(ctx, plan)
    in_plan = False
    if plan is not None and key is not None:
        apigw = ctx.aws.client("apigateway")
        in_plan = any(k["id"] == key["id"] for k in ctx.aws.paginate(apigw, "get_usage_plan_keys", "items", usagePlanId=plan["id"]))
    if not in_plan:
        # ConflictException: the key is in the plan already, added by our own call whose answer was lost.
        changes.append(Change(USAGE_PLAN_KEY, f"{cfg.api_key_name} in {cfg.usage_plan_name}", Action.CREATE, calls=[
            Call("apigateway", "create_usage_plan_key", {"usagePlanId": Ref("usage_plan_id"), "keyId": Ref("api_key_id"),
                                                         "keyType": "API_KEY"}, ok=ALREADY_EXISTS["apigateway"])],
            after=(USAGE_PLAN, API_KEY)))
    return changes


def _plan_key(ctx: Context, key: dict | None) -> list[Change]:
    cfg = ctx.config
    name = cfg.api_key_name
    if key is None:
        def find(run) -> dict | None:
            return next((k for k in find_api_keys(ctx) if is_ours(k.get("tags") or {}, cfg)), None)

        create = FindOrCreate(find, Call("apigateway", "create_api_key", {
            "name": name, "description": api_key_description(cfg),
            "enabled": True, "tags": cfg.all_tags}),
            finds=f"apigateway.get_api_keys(nameQuery={name!r}, includeValues=True)  tagged as ours",
            save={"api_key_id": lambda k: k["id"], "api_key_value": lambda k: k.get("value")})
        return [Change(API_KEY, name, Action.CREATE, calls=[create], provides=(API_KEY,))]
    ctx.variables["api_key_id"], ctx.variables["api_key_value"] = key["id"], key.get("value")
    changes = tag_changes(ctx, API_KEY, name, key.get("tags") or {}, lambda missing: [
        Call("apigateway", "tag_resource", {"resourceArn": resource_arn(ctx, f"/apikeys/{key['id']}"), "tags": missing})])
    if not key.get("enabled"):
        changes.append(Change(API_KEY, name, Action.UPDATE, {"enabled": (False, True)}, calls=[
            Call("apigateway", "update_api_key", {"apiKey": key["id"], "patchOperations": [
                {"op": "replace", "path": "/enabled", "value": "true"}]})], provides=(API_KEY,)))
    return changes


def _plan_plan(ctx: Context, plan: dict | None) -> list[Change]:
    cfg = ctx.config
    name = cfg.usage_plan_name
    if plan is None:
        def find(run) -> dict | None:
            return next((p for p in find_usage_plans(ctx) if is_ours(p.get("tags") or {}, cfg)), None)

        # The stage must exist first: AWS checks each of apiStages ("Invalid stage identifier specified").
        create = FindOrCreate(find, Call("apigateway", "create_usage_plan", {
            "name": name, "description": usage_plan_description(cfg),
            "apiStages": [{"apiId": Ref("api_id"), "stage": cfg.api.stage}], **wanted_plan(ctx), "tags": cfg.all_tags}),
            finds=f"apigateway.get_usage_plans()  name {name!r}, tagged as ours",
            save={"usage_plan_id": lambda p: p["id"]})
        return [Change(USAGE_PLAN, name, Action.CREATE, calls=[create], after=("stage",), provides=(USAGE_PLAN,))]
    ctx.variables["usage_plan_id"] = plan["id"]
    changes = tag_changes(ctx, USAGE_PLAN, name, plan.get("tags") or {}, lambda missing: [
        Call("apigateway", "tag_resource", {"resourceArn": resource_arn(ctx, f"/usageplans/{plan['id']}"), "tags": missing})])
    diffs, ops = plan_patch(ctx, plan, ctx.api_id)
    if ops:
        # One call for every difference: AWS allows one UpdateUsagePlan every 20 s per account (crudstack/quotas.py).
        changes.append(Change(USAGE_PLAN, name, Action.UPDATE, diffs, calls=[
            Call("apigateway", "update_usage_plan", {"usagePlanId": plan["id"], "patchOperations": ops})],
            after=("stage",), provides=(USAGE_PLAN,)))
    return changes


def delete_plan(plan: dict, note: str = "") -> Change:
    """Let go of its stages, then delete it, as terraform-provider-aws does (internal/service/apigateway/
    usage_plan.go, resourceUsagePlanDelete). The REST API's deletion waits for this ("usage plan gone")."""
    calls: list = []
    stages = [f"{s['apiId']}:{s['stage']}" for s in plan.get("apiStages") or []]

    def current(run) -> dict | None:
        return run.aws.look("apigateway", "get_usage_plan", usagePlanId=plan["id"])

    def let_go(run) -> bool:
        found = current(run)
        return found is None or not found.get("apiStages")

    def gone(run) -> bool:
        return current(run) is None

    if stages:
        # A second "remove" of a stage already let go is refused: a retry after a lost answer looks first.
        calls.append(Once(Call("apigateway", "update_usage_plan", {"usagePlanId": plan["id"], "patchOperations": [
            {"op": "remove", "path": "/apiStages", "value": stage} for stage in stages]}, ok=NOT_FOUND["apigateway"]),
            done=let_go, checks="apigateway.get_usage_plan(...) lists no stage"))

    calls.append(Once(Call("apigateway", "delete_usage_plan", {"usagePlanId": plan["id"]}, ok=NOT_FOUND["apigateway"]), done=gone,
                      checks="apigateway.get_usage_plan(...) answers NotFound"))
    return Change(USAGE_PLAN, f"{plan['name']} ({plan['id']})", Action.DELETE, note=note, calls=calls, provides=("usage plan gone",))


def delete_key(key: dict, note: str = "") -> Change:
    return Change(API_KEY, f"{key['name']} ({key['id']})", Action.DELETE, note=note, calls=[
        Call("apigateway", "delete_api_key", {"apiKey": key["id"]}, ok=NOT_FOUND["apigateway"])])


def plan_usage_teardown(ctx: Context) -> list[Change]:
    """Teardown: our plans (stages let go first) and keys; someone else's with our names are left alone."""
    cfg = ctx.config
    plans, keys = ctx.fan(lambda read: read(), [lambda: find_usage_plans(ctx), lambda: find_api_keys(ctx)])
    changes = []
    for plan in plans:
        changes.append(delete_plan(plan) if is_ours(plan.get("tags") or {}, cfg) else not_ours(USAGE_PLAN, f"{plan['name']} ({plan['id']})"))
    for key in keys:
        changes.append(delete_key(key) if is_ours(key.get("tags") or {}, cfg) else not_ours(API_KEY, f"{key['name']} ({key['id']})"))
    return changes
