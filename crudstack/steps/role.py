"""Step 2. IAM -> Roles -> Create role, trusted by Lambda, with a least-privilege policy."""

from __future__ import annotations

import json
import logging

from crudstack.aws import ALREADY_EXISTS, NOT_FOUND
from crudstack.calls import Call
from crudstack.plan import Action, Change, Context
from crudstack.steps.base import ensure_ours, is_ours, not_ours, tag_changes, tag_list
from crudstack.scope import policy_names

log = logging.getLogger("crudstack")

# Service principals keep the form <service>.amazonaws.com in every partition, aws-cn and aws-us-gov
# included; ARNs and endpoint domains are what change. terraform-provider-aws (names/names.go,
# ServicePrincipalNameForPartition, after aws-cdk's region-info) lists the exceptions, and in aws-cn
# they are only codedeploy, elasticmapreduce and logs: lambda and apigateway are not among them.
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
# Exactly the DynamoDB actions the handlers in lambdas/ call.
TABLE_ACTIONS = ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan", "dynamodb:UpdateItem"]
# What the console tutorial attaches instead (far broader: every table, every log group).
TUTORIAL_MANAGED_POLICY_NAMES = ("AmazonDynamoDBFullAccess", "CloudWatchFullAccess")


def managed_policy_arn(ctx: Context, name: str) -> str:
    """An AWS managed policy: its ARN names the partition (arn:aws-cn:iam::aws:policy/... in China)."""
    return f"arn:{ctx.partition}:iam::aws:policy/{name}"


def inline_policy_name(ctx: Context) -> str:
    return f"{ctx.config.stack}-items-access"


def inline_policy(ctx: Context) -> dict:
    cfg = ctx.config
    log_groups = [
        ctx.arn("logs", f"log-group:/aws/lambda/{cfg.function_name(name)}:*") for name in sorted(cfg.lambda_.functions)
    ]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ItemsTable", "Effect": "Allow", "Action": TABLE_ACTIONS, "Resource": ctx.arn("dynamodb", f"table/{cfg.table_name}")},
            {"Sid": "OwnLogGroups", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": log_groups},
        ],
    }


def _normal(document) -> str:
    if isinstance(document, str):
        from urllib.parse import unquote

        document = json.loads(unquote(document))
    return json.dumps(document, sort_keys=True)


class RoleStep:
    number = "2"
    title = "IAM role"

    def _tags(self, ctx: Context, role: dict) -> dict[str, str]:
        if "Tags" in role:
            return {t["Key"]: t["Value"] for t in role["Tags"]}
        iam = ctx.aws.client("iam")
        return {t["Key"]: t["Value"] for t in ctx.aws.call(iam.list_role_tags, RoleName=role["RoleName"])["Tags"]}

    def plan(self, ctx: Context) -> list[Change]:
        cfg = ctx.config
        name = cfg.role_name
        iam = ctx.aws.client("iam")
        role = ctx.aws.find_role(ctx.config.role_name)
        ctx.role_arn = ctx.arn("iam", f"role/{name}", region=False)
        policy_name = inline_policy_name(ctx)
        wanted_policy = inline_policy(ctx)
        tutorial_managed = {managed_policy_arn(ctx, n) for n in TUTORIAL_MANAGED_POLICY_NAMES}
        wanted_managed = tutorial_managed if cfg.role.tutorial_managed_policies else set()
        if cfg.role.tutorial_managed_policies:
            log.warning("role.tutorial_managed_policies is true: attaching %s, which grant far more than the API needs",
                        " and ".join(TUTORIAL_MANAGED_POLICY_NAMES))
        changes: list[Change] = []
        role_change = dict(after=("role:made",), provides=("role",))
        if role is None:
            changes.append(Change("role", name, Action.CREATE, calls=[Call("iam", "create_role", {
                "RoleName": name, "AssumeRolePolicyDocument": json.dumps(TRUST_POLICY),
                "Description": f"Lets the {cfg.stack} items API functions use {cfg.table_name} (managed by crudstack)",
                "Tags": tag_list(cfg.all_tags)}, ok=ALREADY_EXISTS["iam"])],   # made by our own call whose answer was lost
                provides=("role", "role:made")))
            current_policy, attached = None, set()
        else:
            ctx.role_arn = role["Arn"]
            tags = self._tags(ctx, role)
            ensure_ours(ctx, f"Step {self.number} {self.title}", "role", name, tags)
            changes += tag_changes(ctx, "role", name, tags,
                                   lambda missing: [Call("iam", "tag_role", {"RoleName": name, "Tags": tag_list(missing)})])
            if _normal(role["AssumeRolePolicyDocument"]) != _normal(TRUST_POLICY):
                changes.append(Change("trust policy", name, Action.UPDATE, {"trusted": ("changed", "lambda.amazonaws.com")},
                                      calls=[Call("iam", "update_assume_role_policy", {"RoleName": name, "PolicyDocument": json.dumps(TRUST_POLICY)})],
                                      **role_change))
            found, listed = ctx.fan(lambda read: read(), [
                lambda: ctx.aws.find_role_policy(name, policy_name),
                lambda: ctx.aws.paginate(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=name)])
            current_policy = found["PolicyDocument"] if found else None
            attached = {p["PolicyArn"] for p in listed}

        put_policy = [Call("iam", "put_role_policy", {"RoleName": name, "PolicyName": policy_name, "PolicyDocument": json.dumps(wanted_policy)})]
        if current_policy is None:
            changes.append(Change("inline policy", policy_name, Action.CREATE, calls=put_policy, **role_change))
        elif _normal(current_policy) != _normal(wanted_policy):
            changes.append(Change("inline policy", policy_name, Action.UPDATE, {"document": ("differs", "this table and log groups only")},
                                  calls=put_policy, **role_change))
        for arn in sorted(wanted_managed - attached):
            changes.append(Change("managed policy", arn.rsplit("/", 1)[1], Action.CREATE,
                                  calls=[Call("iam", "attach_role_policy", {"RoleName": name, "PolicyArn": arn})], **role_change))
        for arn in sorted(attached & tutorial_managed - wanted_managed):
            changes.append(Change("managed policy", arn.rsplit("/", 1)[1], Action.DELETE,
                                  calls=[Call("iam", "detach_role_policy", {"RoleName": name, "PolicyArn": arn}, ok=NOT_FOUND["iam"])], **role_change))
        if role is not None and not any(c.action.mutates for c in changes):
            changes.append(Change("role", name, Action.UNCHANGED))
        return changes

    # -- teardown ------------------------------------------------------------------------------
    def plan_teardown(self, ctx: Context) -> list[Change]:
        role = ctx.aws.find_role(ctx.config.role_name)
        if role is None:
            return []
        name = role["RoleName"]
        if not is_ours(self._tags(ctx, role), ctx.config):
            return [not_ours("role", name)]
        going = {c.name for c in ctx.pending if c.kind == "function" and c.action is Action.DELETE}  # a dry run's step 3
        users = [f for f in self._functions_using(ctx, role["Arn"]) if f not in going]
        if users:
            # Functions run as this role: deleting it would leave them unable to reach the table. Step 3's
            # teardown deletes ours first, so these are someone else's, or ours that step could not delete.
            return [Change("role", name, Action.KEEP, note=f"still used by {', '.join(users)}: delete those first, then run again")]
        # IAM refuses to delete a role that still has policies (DeleteConflict): they go first.
        iam = ctx.aws.client("iam")
        attached, inline = ctx.fan(lambda read: read(), [
            lambda: [p["PolicyArn"] for p in ctx.aws.paginate(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=name)],
            lambda: ctx.aws.paginate(iam, "list_role_policies", "PolicyNames", RoleName=name)])
        calls = [Call("iam", "detach_role_policy", {"RoleName": name, "PolicyArn": arn}, ok=NOT_FOUND["iam"]) for arn in attached]
        calls += [Call("iam", "delete_role_policy", {"RoleName": name, "PolicyName": policy}, ok=NOT_FOUND["iam"]) for policy in inline]
        calls.append(Call("iam", "delete_role", {"RoleName": name}, ok=NOT_FOUND["iam"]))
        return [Change("role", name, Action.DELETE, calls=calls, after=("functions",))]

    def _functions_using(self, ctx: Context, role_arn: str) -> list[str]:
        """Functions that run as the role and still exist (ListFunctions may still list one just deleted).

        Only this stack's functions are read again: the deployer policy allows GetFunctionConfiguration on
        function:<stack>-* alone, or with names: tutorial on this stack's exact names (crudstack/permissions.py), so
        reading someone else's would be denied on AWS. For those, ListFunctions' Role is taken as it is: a role
        kept a run too long is the safe mistake."""

        lam = ctx.aws.client("lambda")
        listed = [f["FunctionName"] for f in ctx.aws.paginate(lam, "list_functions", "Functions") if f.get("Role") == role_arn]
        ours = [name for name in listed if policy_names(ctx.config, "function", name)]
        found = ctx.fan(ctx.aws.find_function_configuration, ours)
        gone = {name for name, there in zip(ours, found) if not there}
        return [name for name in listed if name not in gone]
