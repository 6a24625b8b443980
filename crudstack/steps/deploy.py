"""Step 5. API Gateway -> Actions -> Deploy API -> stage "prod"; its default method throttling, and with
api.auth api_key a usage plan on it holding one API key (crudstack/steps/usage_plan.py).

A deployment is a snapshot of the API's resources, integrations and gateway responses. We make a new
one only when that snapshot would differ: its fingerprint is kept in the
deployment's description, so no state file is needed to know what is live.
"""

from __future__ import annotations

import hashlib
import json

from crudstack.plan import Action, Change, Context
from crudstack.aws import ALREADY_EXISTS
from crudstack.calls import Call, FindOrCreate, Local, Poll, Ref
from crudstack.steps.cors import GATEWAY_RESPONSE, PREFLIGHT, gateway_responses_fingerprint, preflight_shape
from crudstack.steps.usage_plan import plan_stage_throttle, plan_usage_plan, plan_usage_teardown
from crudstack.steps.base import tag_calls, tag_changes, wanted_paths

FINGERPRINT_PREFIX = "crudstack fingerprint "
ROUTE_KINDS = ("resource", "method", PREFLIGHT, GATEWAY_RESPONSE)  # the changes of step 4 that alter the deployed snapshot


def fingerprint_of(resources: list[dict], gateway_responses: list[dict]) -> str:
    shape = []
    for resource in resources:
        for method, detail in sorted((resource.get("resourceMethods") or {}).items()):
            integration = detail.get("methodIntegration") or {}
            shape.append([resource["path"], method, detail.get("authorizationType"), bool(detail.get("apiKeyRequired")),
                          integration.get("type"), integration.get("httpMethod"), integration.get("uri")])
            if integration.get("type") == "MOCK":
                # A MOCK's answer is its templates and responses: a changed CORS origin must be redeployed.
                shape[-1].append(preflight_shape(detail))
    everything = [sorted(shape), gateway_responses_fingerprint(gateway_responses)]
    return hashlib.sha256(json.dumps(everything).encode()).hexdigest()[:16]


def api_fingerprint(ctx: Context, api_id: str) -> str:
    apigw = ctx.aws.client("apigateway")
    resources, responses = ctx.fan(lambda read: read(), [
        lambda: ctx.aws.paginate(apigw, "get_resources", "items", restApiId=api_id, embed=["methods"]),
        lambda: ctx.aws.paginate(apigw, "get_gateway_responses", "items", restApiId=api_id)])
    return fingerprint_of(resources, responses)


class DeployStep:
    number = "5"
    title = "Deploy to stage"

    def plan(self, ctx: Context) -> list[Change]:
        stage = ctx.config.api.stage
        if ctx.api_id is None:  # the API is about to be made
            return [self._deploy(ctx, {}), self._create_stage(ctx), *self._access(ctx, None)]
        # The usage plan and key (api.auth) need nothing read here: read at once with the rest.
        fingerprint, current, usage = ctx.fan(lambda read: read(), [
            lambda: api_fingerprint(ctx, ctx.api_id), lambda: ctx.aws.find_stage(ctx.api_id, stage),
            lambda: plan_usage_plan(ctx, f"Step {self.number} {self.title}")])
        live = None
        if current:
            deployment = ctx.aws.find_deployment(ctx.api_id, current["deploymentId"])
            live = (deployment or {}).get("description", "").removeprefix(FINGERPRINT_PREFIX) or None
            ctx.deployment_id = ctx.variables["deployment_id"] = current["deploymentId"]
        if live == fingerprint and any(c.kind in ROUTE_KINDS and c.action.mutates for c in ctx.pending):
            # Step 4's route changes are planned, not made: the fingerprint read above cannot show them yet;
            # once they are made it will differ, and this step deploys.
            fingerprint = "changed by step 4"
        changes = []
        if live != fingerprint:
            changes.append(self._deploy(ctx, {"routes": (live or "none", fingerprint)} if current else {}))
        if current is None:
            changes.append(self._create_stage(ctx))
        elif live != fingerprint:
            point = self._point_stage(ctx)
            # Step 4 may only put back what the live deployment still has (a method deleted by hand): then the
            # deployment found is the live one, and the stage already serves it.
            point.unless = ("the stage already serves that deployment",
                            lambda run, live_id=current["deploymentId"]: run.variables.get("deployment_id") == live_id)
            changes.append(Change("stage", stage, Action.UPDATE, {"deployment": (current["deploymentId"], "new")},
                                  calls=[point], after=("deployment",), provides=("stage",)))
        if current is not None:
            changes += tag_changes(ctx, "stage", stage, current.get("tags") or {},
                                   lambda missing: tag_calls(ctx, f"/restapis/{{}}/stages/{stage}", missing), after=("stage",))
        changes += self._access(ctx, current, usage)
        if changes and not any(c.action.mutates for c in changes):
            changes.append(Change("stage", stage, Action.UNCHANGED, note=f"deployment {ctx.deployment_id}"))
        return changes or [Change("stage", stage, Action.UNCHANGED, note=f"deployment {ctx.deployment_id}")]

    def _access(self, ctx: Context, stage: dict | None, usage: list[Change] | None = None) -> list[Change]:
        """The stage's throttling, and the usage plan and key of api.auth api_key (or their removal); `usage`:
        those already planned (plan_usage_plan)."""
        throttle = plan_stage_throttle(ctx, stage)
        return ([throttle] if throttle else []) + (plan_usage_plan(ctx, f"Step {self.number} {self.title}") if usage is None else usage)

    def _deploy(self, ctx: Context, diffs: dict) -> Change:
        """A deployment of what step 4 left: its fingerprint, read once every route change is done, is its
        description, so a run cut off before it moved the stage finds and reuses it."""
        wanted = {path for path in wanted_paths(ctx)}

        def all_listed(resources: dict | None) -> bool:
            # get_resources may not list a new resource for a while: the snapshot must hold every route.
            return wanted <= {r["path"] for r in (resources or {}).get("items", [])}

        def find(run) -> dict | None:
            apigw = run.aws.client("apigateway")
            description = run.variables["deployment_description"]
            return next((d for d in apigw.get_deployments(restApiId=run.variables["api_id"], limit=500)["items"]
                         if d.get("description") == description), None)

        read = Poll(Call("apigateway", "get_resources", {"restApiId": Ref("api_id"), "limit": 500, "embed": ["methods"]},
                         save={"deployed_resources": lambda answer: answer["items"]}),
                    all_listed, "every resource of the API to be listed by API Gateway")
        responses = Call("apigateway", "get_gateway_responses", {"restApiId": Ref("api_id"), "limit": 500},
                         save={"deployed_gateway_responses": lambda answer: answer["items"]})

        def describe(run) -> None:
            run.variables["deployment_description"] = FINGERPRINT_PREFIX + fingerprint_of(
                run.variables["deployed_resources"], run.variables["deployed_gateway_responses"])

        fingerprint = Local("the deployment's description: the fingerprint of the routes and gateway responses just read", describe)
        create = FindOrCreate(find, Call("apigateway", "create_deployment", {
            "restApiId": Ref("api_id"), "description": Ref("deployment_description")}),
            finds="apigateway.get_deployments(restApiId=<api_id>)  with that description",
            save={"deployment_id": lambda deployment: deployment["id"]})
        return Change("deployment", f"{ctx.config.api_name}/{ctx.config.api.stage}", Action.CREATE, diffs,
                      calls=[read, responses, fingerprint, create],
                      after=("api", "routes"), provides=("deployment",))

    def _point_stage(self, ctx: Context) -> Call:
        return Call("apigateway", "update_stage", {"restApiId": Ref("api_id"), "stageName": ctx.config.api.stage, "patchOperations": [
            {"op": "replace", "path": "/deploymentId", "value": Ref("deployment_id")}]})

    def _create_stage(self, ctx: Context) -> Change:
        # ConflictException: made by our own call whose answer was lost; point it at the new deployment.
        create = Call("apigateway", "create_stage", {"restApiId": Ref("api_id"), "stageName": ctx.config.api.stage,
                                                     "deploymentId": Ref("deployment_id"), "tags": ctx.config.all_tags},
                      fallback=self._point_stage(ctx), fallback_on=ALREADY_EXISTS["apigateway"])
        return Change("stage", ctx.config.api.stage, Action.CREATE, calls=[create], after=("deployment",), provides=("stage",))

    def plan_teardown(self, ctx: Context) -> list[Change]:
        # The stage and its deployments go with the REST API (step 4's teardown); the usage plan and the key
        # are the account's, not the API's: they go here, the plan before the REST API.
        return plan_usage_teardown(ctx)
