"""Step 5. API Gateway -> Actions -> Deploy API -> stage "prod".

A deployment is a snapshot of the API's resources and integrations. We make a new
one only when that snapshot would differ: its fingerprint is kept in the
deployment's description, so no state file is needed to know what is live.
"""

from __future__ import annotations

import hashlib
import json

from crudstack.plan import Action, Change, Context
from crudstack.steps.api import PREFLIGHT, preflight_shape, set_tags
from crudstack.steps.base import tag_changes

NOT_FOUND = ("NotFoundException",)
FINGERPRINT_PREFIX = "crudstack fingerprint "
ROUTE_KINDS = ("resource", "method", PREFLIGHT)  # the changes of step 4 that alter the deployed snapshot


def api_fingerprint(ctx: Context) -> str:
    apigw = ctx.aws.client("apigateway")
    shape = []
    for resource in ctx.aws.paginate(apigw, "get_resources", "items", restApiId=ctx.api_id, embed=["methods"]):
        for method, detail in sorted((resource.get("resourceMethods") or {}).items()):
            integration = detail.get("methodIntegration") or {}
            shape.append([resource["path"], method, detail.get("authorizationType"),
                          integration.get("type"), integration.get("httpMethod"), integration.get("uri")])
            if integration.get("type") == "MOCK":
                # A MOCK's answer is its templates and responses: a changed CORS origin must be redeployed.
                shape[-1].append(preflight_shape(detail))
    return hashlib.sha256(json.dumps(sorted(shape)).encode()).hexdigest()[:16]


class DeployStep:
    number = "5"
    title = "Deploy to stage"
    console = "API Gateway -> Resources -> Deploy API -> New stage"

    def plan(self, ctx: Context) -> list[Change]:
        stage = ctx.config.api.stage
        label = f"{ctx.config.api_name}/{stage}"
        if ctx.api_id is None:  # dry run before the API exists
            return [Change("deployment", label, Action.CREATE), Change("stage", stage, Action.CREATE)]
        apigw = ctx.aws.client("apigateway")
        fingerprint = api_fingerprint(ctx)
        current = ctx.aws.find(apigw.get_stage, not_found=NOT_FOUND, restApiId=ctx.api_id, stageName=stage)
        live = None
        if current:
            deployment = ctx.aws.find(apigw.get_deployment, not_found=NOT_FOUND, restApiId=ctx.api_id, deploymentId=current["deploymentId"])
            live = (deployment or {}).get("description", "").removeprefix(FINGERPRINT_PREFIX) or None
            ctx.deployment_id = current["deploymentId"]
        if live == fingerprint and any(c.kind in ROUTE_KINDS for c in ctx.pending):
            # Dry run: step 4's route changes are planned, not made, so the fingerprint read above
            # cannot show them yet; once they are made it will differ, and this step deploys.
            fingerprint = "changed by step 4"
        changes = []
        if live != fingerprint:
            changes.append(Change("deployment", label, Action.CREATE, {"routes": (live or "none", fingerprint)} if current else {},
                                  apply=lambda: self._deploy(ctx, fingerprint)))
        if current is None:
            changes.append(Change("stage", stage, Action.CREATE, apply=lambda: self._create_stage(ctx)))
        elif live != fingerprint:
            changes.append(Change("stage", stage, Action.UPDATE, {"deployment": (current["deploymentId"], "new")},
                                  apply=lambda: self._point_stage(ctx)))
        if current is not None:
            changes += tag_changes(ctx, "stage", stage, current.get("tags") or {},
                                   lambda missing: set_tags(ctx, f"/restapis/{ctx.api_id}/stages/{stage}", missing))
        if changes and not any(c.action.mutates for c in changes):
            changes.append(Change("stage", stage, Action.UNCHANGED, note=f"deployment {ctx.deployment_id}"))
        return changes or [Change("stage", stage, Action.UNCHANGED, note=f"deployment {ctx.deployment_id}")]

    def _deploy(self, ctx: Context, fingerprint: str) -> None:
        apigw = ctx.aws.client("apigateway")
        description = FINGERPRINT_PREFIX + fingerprint

        def find_or_create():
            # A deployment made by a run that was cut off before it moved the stage is reused.
            for deployment in apigw.get_deployments(restApiId=ctx.api_id, limit=500)["items"]:
                if deployment.get("description") == description:
                    return deployment
            return apigw.create_deployment(restApiId=ctx.api_id, description=description)

        ctx.deployment_id = ctx.aws.retry_unit(find_or_create)["id"]

    def _create_stage(self, ctx: Context) -> None:
        apigw = ctx.aws.client("apigateway")
        try:
            ctx.aws.call(apigw.create_stage, restApiId=ctx.api_id, stageName=ctx.config.api.stage,
                         deploymentId=ctx.deployment_id, tags=ctx.config.all_tags)
        except Exception as exc:
            from crudstack.aws import error_code

            if error_code(exc) != "ConflictException":  # made by our own call whose answer was lost
                raise
            self._point_stage(ctx)

    def _point_stage(self, ctx: Context) -> None:
        apigw = ctx.aws.client("apigateway")
        ctx.aws.call(apigw.update_stage, restApiId=ctx.api_id, stageName=ctx.config.api.stage,
                     patchOperations=[{"op": "replace", "path": "/deploymentId", "value": ctx.deployment_id}])

    def plan_teardown(self, ctx: Context) -> list[Change]:
        return []  # the stage and its deployments go with the REST API (step 4's teardown)
