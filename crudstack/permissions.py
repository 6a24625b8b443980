"""The deployer policy: the IAM identity policy a user or role needs to run provision.py and teardown.py.

One table, OPERATIONS, says which IAM actions each botocore operation of the steps needs, and in
which statement of the policy each action lives. The policy (`deployer_policy`, printed by
`python provision.py --deployer-policy`, shipped for stack "demo" as deployer-policy.json) is
built from it, and the runner reads it to name the IAM action an AWS refusal is about
(`denied_action`), so the two can never disagree.

A statement's Resource is scoped by the stack prefix (with names: tutorial, by this stack's exact names) wherever the Service Authorization Reference
gives the action a resource type (https://docs.aws.amazon.com/service-authorization/latest/reference/);
the few actions AWS authorizes only against "*" (listings, who-am-I) have a statement of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import botocore.exceptions

from crudstack.aws import partition_of_region
from crudstack.config import Config
from crudstack.scope import policy_names, scoped_names  # noqa: F401 - policy_names: part of this module's interface
from crudstack.steps.role import TUTORIAL_MANAGED_POLICY_NAMES

# Statement keys. Each need below names the statement its action belongs to.
UNSCOPED, TABLE, BACKUPS, ROLE, PASS_ROLE, FUNCTIONS = "unscoped", "table", "backups", "role", "pass-role", "functions"
REST_APIS, REST_API, API_TAGS, LOG_GROUPS, TOPIC, ALARMS = "rest-apis", "rest-api", "api-tags", "log-groups", "topic", "alarms"
MANAGED_POLICIES, USAGE_PLANS = "managed-policies", "usage-plans"


@dataclass(frozen=True)
class Need:
    action: str       # the IAM action, e.g. "lambda:GetFunction", "apigateway:POST"
    statement: str    # the key of the statement that allows it


def _needs(*pairs: tuple[str, str]) -> tuple[Need, ...]:
    return tuple(Need(action, statement) for action, statement in pairs)


# (botocore service, operation) -> what AWS checks for it. The first need is the call's own action
# (what an AccessDenied for that call is normally about); the others are what AWS checks as well:
#  - tag-on-create: a create that carries Tags is also authorized as the service's tag action
#    (Lambda: "lambda:TagResource ... to call TagResource or perform tagging on create",
#    https://docs.aws.amazon.com/lambda/latest/dg/configuration-tags.html; CloudWatch Logs: "To assign
#    tags when you create a log group, you must have either the logs:TagResource or logs:TagLogGroup
#    permission", API_CreateLogGroup; likewise dynamodb:TagResource, iam:TagRole, sns:TagResource,
#    cloudwatch:TagResource, and apigateway:PUT on /tags/* for API Gateway).
#  - iam:PassRole whenever a call hands our role to Lambda (CreateFunction, UpdateFunctionConfiguration:
#    https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html).
#  - lambda:ListTags: "For tagged functions, this permission is also necessary for GetFunction" (same Lambda page).
# API Gateway's IAM actions are the HTTP verbs of its management API on resource paths
# (https://docs.aws.amazon.com/apigateway/latest/developerguide/permissions.html#api-gateway-control-access-iam-permissions-model-for-managing-api).
OPERATIONS: dict[tuple[str, str], tuple[Need, ...]] = {
    ("sts", "GetCallerIdentity"): _needs(("sts:GetCallerIdentity", UNSCOPED)),
    # Step 1: the table (and teardown's backup)
    ("dynamodb", "DescribeTable"): _needs(("dynamodb:DescribeTable", TABLE)),
    ("dynamodb", "ListTagsOfResource"): _needs(("dynamodb:ListTagsOfResource", TABLE)),
    ("dynamodb", "CreateTable"): _needs(("dynamodb:CreateTable", TABLE), ("dynamodb:TagResource", TABLE)),
    ("dynamodb", "TagResource"): _needs(("dynamodb:TagResource", TABLE)),
    ("dynamodb", "UpdateTable"): _needs(("dynamodb:UpdateTable", TABLE)),
    ("dynamodb", "Scan"): _needs(("dynamodb:Scan", TABLE)),
    ("dynamodb", "DeleteTable"): _needs(("dynamodb:DeleteTable", TABLE)),
    ("dynamodb", "ListBackups"): _needs(("dynamodb:ListBackups", UNSCOPED)),
    ("dynamodb", "CreateBackup"): _needs(("dynamodb:CreateBackup", TABLE)),
    ("dynamodb", "DescribeBackup"): _needs(("dynamodb:DescribeBackup", BACKUPS)),
    # Step 2: the role
    ("iam", "GetRole"): _needs(("iam:GetRole", ROLE)),
    ("iam", "ListRoleTags"): _needs(("iam:ListRoleTags", ROLE)),
    ("iam", "CreateRole"): _needs(("iam:CreateRole", ROLE), ("iam:TagRole", ROLE)),
    ("iam", "TagRole"): _needs(("iam:TagRole", ROLE)),
    ("iam", "UpdateAssumeRolePolicy"): _needs(("iam:UpdateAssumeRolePolicy", ROLE)),
    ("iam", "GetRolePolicy"): _needs(("iam:GetRolePolicy", ROLE)),
    ("iam", "PutRolePolicy"): _needs(("iam:PutRolePolicy", ROLE)),
    ("iam", "ListRolePolicies"): _needs(("iam:ListRolePolicies", ROLE)),
    ("iam", "DeleteRolePolicy"): _needs(("iam:DeleteRolePolicy", ROLE)),
    ("iam", "ListAttachedRolePolicies"): _needs(("iam:ListAttachedRolePolicies", ROLE)),
    ("iam", "AttachRolePolicy"): _needs(("iam:AttachRolePolicy", MANAGED_POLICIES)),
    ("iam", "DetachRolePolicy"): _needs(("iam:DetachRolePolicy", MANAGED_POLICIES)),
    ("iam", "DeleteRole"): _needs(("iam:DeleteRole", ROLE)),
    # Step 3: the functions
    ("lambda", "ListFunctions"): _needs(("lambda:ListFunctions", UNSCOPED)),
    ("lambda", "GetFunction"): _needs(("lambda:GetFunction", FUNCTIONS), ("lambda:ListTags", FUNCTIONS)),
    ("lambda", "ListTags"): _needs(("lambda:ListTags", FUNCTIONS)),
    ("lambda", "TagResource"): _needs(("lambda:TagResource", FUNCTIONS)),
    ("lambda", "CreateFunction"): _needs(("lambda:CreateFunction", FUNCTIONS), ("lambda:TagResource", FUNCTIONS),
                                         ("iam:PassRole", PASS_ROLE)),
    ("lambda", "GetFunctionConfiguration"): _needs(("lambda:GetFunctionConfiguration", FUNCTIONS)),
    ("lambda", "UpdateFunctionCode"): _needs(("lambda:UpdateFunctionCode", FUNCTIONS)),
    ("lambda", "UpdateFunctionConfiguration"): _needs(("lambda:UpdateFunctionConfiguration", FUNCTIONS), ("iam:PassRole", PASS_ROLE)),
    ("lambda", "DeleteFunction"): _needs(("lambda:DeleteFunction", FUNCTIONS)),
    # reserved concurrency (lambda.reserved_concurrency in config.yaml)
    ("lambda", "GetFunctionConcurrency"): _needs(("lambda:GetFunctionConcurrency", FUNCTIONS)),
    ("lambda", "PutFunctionConcurrency"): _needs(("lambda:PutFunctionConcurrency", FUNCTIONS)),
    ("lambda", "DeleteFunctionConcurrency"): _needs(("lambda:DeleteFunctionConcurrency", FUNCTIONS)),
    ("lambda", "GetPolicy"): _needs(("lambda:GetPolicy", FUNCTIONS)),
    ("lambda", "AddPermission"): _needs(("lambda:AddPermission", FUNCTIONS)),
    ("lambda", "RemovePermission"): _needs(("lambda:RemovePermission", FUNCTIONS)),
    # Steps 4 and 5: the REST API, its resources and methods, its deployment and stage
    ("apigateway", "GetRestApis"): _needs(("apigateway:GET", REST_APIS)),
    ("apigateway", "CreateRestApi"): _needs(("apigateway:POST", REST_APIS), ("apigateway:PUT", API_TAGS)),
    ("apigateway", "GetRestApi"): _needs(("apigateway:GET", REST_API)),
    ("apigateway", "DeleteRestApi"): _needs(("apigateway:DELETE", REST_API)),
    ("apigateway", "GetResources"): _needs(("apigateway:GET", REST_API)),
    ("apigateway", "GetResource"): _needs(("apigateway:GET", REST_API)),
    ("apigateway", "CreateResource"): _needs(("apigateway:POST", REST_API)),
    ("apigateway", "DeleteResource"): _needs(("apigateway:DELETE", REST_API)),
    ("apigateway", "PutMethod"): _needs(("apigateway:PUT", REST_API)),
    ("apigateway", "UpdateMethod"): _needs(("apigateway:PATCH", REST_API)),
    ("apigateway", "DeleteMethod"): _needs(("apigateway:DELETE", REST_API)),
    ("apigateway", "PutIntegration"): _needs(("apigateway:PUT", REST_API)),
    ("apigateway", "PutMethodResponse"): _needs(("apigateway:PUT", REST_API)),
    ("apigateway", "PutIntegrationResponse"): _needs(("apigateway:PUT", REST_API)),
    ("apigateway", "GetDeployments"): _needs(("apigateway:GET", REST_API)),
    ("apigateway", "CreateDeployment"): _needs(("apigateway:POST", REST_API)),
    ("apigateway", "GetDeployment"): _needs(("apigateway:GET", REST_API)),
    ("apigateway", "GetStage"): _needs(("apigateway:GET", REST_API)),
    # --adopt (crudstack/adopt.py): the stages of the REST API it takes over, and its name set to api.name
    ("apigateway", "GetStages"): _needs(("apigateway:GET", REST_API)),
    ("apigateway", "UpdateRestApi"): _needs(("apigateway:PATCH", REST_API)),
    ("apigateway", "CreateStage"): _needs(("apigateway:POST", REST_API), ("apigateway:PUT", API_TAGS)),
    ("apigateway", "UpdateStage"): _needs(("apigateway:PATCH", REST_API)),
    ("apigateway", "TagResource"): _needs(("apigateway:PUT", API_TAGS)),
    ("apigateway", "GetGatewayResponses"): _needs(("apigateway:GET", REST_API)),
    ("apigateway", "PutGatewayResponse"): _needs(("apigateway:PUT", REST_API)),
    # Step 5 with api.auth api_key: the usage plan and the API key (/usageplans/..., /apikeys/...); every run
    # looks for them, so that a switch away from api_key removes them.
    ("apigateway", "GetUsagePlans"): _needs(("apigateway:GET", USAGE_PLANS)),
    ("apigateway", "GetUsagePlan"): _needs(("apigateway:GET", USAGE_PLANS)),
    ("apigateway", "CreateUsagePlan"): _needs(("apigateway:POST", USAGE_PLANS), ("apigateway:PUT", API_TAGS)),
    ("apigateway", "UpdateUsagePlan"): _needs(("apigateway:PATCH", USAGE_PLANS)),
    ("apigateway", "DeleteUsagePlan"): _needs(("apigateway:DELETE", USAGE_PLANS)),
    ("apigateway", "GetUsagePlanKeys"): _needs(("apigateway:GET", USAGE_PLANS)),
    ("apigateway", "CreateUsagePlanKey"): _needs(("apigateway:POST", USAGE_PLANS)),
    ("apigateway", "GetApiKeys"): _needs(("apigateway:GET", USAGE_PLANS)),
    ("apigateway", "CreateApiKey"): _needs(("apigateway:POST", USAGE_PLANS), ("apigateway:PUT", API_TAGS)),
    ("apigateway", "UpdateApiKey"): _needs(("apigateway:PATCH", USAGE_PLANS)),
    ("apigateway", "DeleteApiKey"): _needs(("apigateway:DELETE", USAGE_PLANS)),
    # Step 7: log groups, the alerts topic, alarms
    ("logs", "DescribeLogGroups"): _needs(("logs:DescribeLogGroups", UNSCOPED)),
    ("logs", "CreateLogGroup"): _needs(("logs:CreateLogGroup", LOG_GROUPS), ("logs:TagResource", LOG_GROUPS)),
    ("logs", "ListTagsLogGroup"): _needs(("logs:ListTagsLogGroup", LOG_GROUPS)),
    ("logs", "TagLogGroup"): _needs(("logs:TagLogGroup", LOG_GROUPS)),
    ("logs", "PutRetentionPolicy"): _needs(("logs:PutRetentionPolicy", LOG_GROUPS)),
    ("logs", "DeleteLogGroup"): _needs(("logs:DeleteLogGroup", LOG_GROUPS)),
    ("sns", "ListTopics"): _needs(("sns:ListTopics", UNSCOPED)),
    ("sns", "CreateTopic"): _needs(("sns:CreateTopic", TOPIC), ("sns:TagResource", TOPIC)),
    ("sns", "ListTagsForResource"): _needs(("sns:ListTagsForResource", TOPIC)),
    ("sns", "TagResource"): _needs(("sns:TagResource", TOPIC)),
    ("sns", "ListSubscriptionsByTopic"): _needs(("sns:ListSubscriptionsByTopic", TOPIC)),
    ("sns", "Subscribe"): _needs(("sns:Subscribe", TOPIC)),
    ("sns", "Unsubscribe"): _needs(("sns:Unsubscribe", TOPIC)),
    ("sns", "DeleteTopic"): _needs(("sns:DeleteTopic", TOPIC)),
    ("cloudwatch", "DescribeAlarms"): _needs(("cloudwatch:DescribeAlarms", UNSCOPED)),
    ("cloudwatch", "ListTagsForResource"): _needs(("cloudwatch:ListTagsForResource", ALARMS)),
    ("cloudwatch", "PutMetricAlarm"): _needs(("cloudwatch:PutMetricAlarm", ALARMS), ("cloudwatch:TagResource", ALARMS)),
    ("cloudwatch", "TagResource"): _needs(("cloudwatch:TagResource", ALARMS)),
    ("cloudwatch", "DeleteAlarms"): _needs(("cloudwatch:DeleteAlarms", ALARMS)),
}


@dataclass(frozen=True)
class Statement:
    key: str
    sid: str          # IAM allows letters and digits only: the Sid reads as the statement's reason
    why: str          # docs/real-account.md's "why each statement exists"


STATEMENTS = (
    Statement(UNSCOPED, "ListingsAndCallerIdentityAwsAuthorizesOnlyOnStar",
              "Listings and who-am-I: AWS authorizes these only against Resource \"*\" (no resource type in the "
              "Service Authorization Reference), so they cannot be scoped to the stack. Reads only."),
    Statement(TABLE, "ItemsTableOfThisStack", "Step 1: find, create (tagged), change and delete the table; teardown scans it "
              "for items and backs it up (--backup)."),
    Statement(BACKUPS, "BackupsOfThisStacksTable", "teardown --backup waits for the on-demand backup to be AVAILABLE (DescribeBackup "
              "is authorized on the backup's ARN, below the table's)."),
    Statement(ROLE, "RoleOfThisStack", "Step 2: find, create (tagged), update and delete the functions' role and its inline policy."),
    Statement(PASS_ROLE, "PassOnlyThisStacksRoleToLambda", "Step 3: creating or configuring a function hands it the role; "
              "only this role, and only to Lambda."),
    Statement(FUNCTIONS, "FunctionsOfThisStack", "Step 3: find, create (tagged), update and delete the functions; step 4 "
              "lets API Gateway invoke them (their resource policy)."),
    Statement(REST_APIS, "RestApiIdsAreRandomSoListAndCreateOnAllRestApis", "Step 4: a REST API's id is random, so it is found by "
              "listing every REST API (GET /restapis) and made with POST /restapis."),
    Statement(REST_API, "RestApisAreNotNamedByStackSoEveryRestApiOfTheRegion", "Steps 4-5: resources, methods, integrations, "
              "deployments, the stage, and deleting the API. API Gateway paths hold the random id, not our name, "
              "so this cannot be narrowed to the stack by Resource."),
    Statement(API_TAGS, "TagRestApisAndStagesOnCreate", "Steps 4-5: the REST API and the stage (and, with auth: api_key, the "
              "usage plan and the API key) are created with our tags (API Gateway authorizes tag-on-create as PUT on /tags/...)."),
    Statement(USAGE_PLANS, "UsagePlansAndApiKeysIdsAreRandomSoEveryOneOfTheRegion", "Step 5: find (every run), create (tagged), "
              "update and delete the usage plan and API key of api.auth api_key. Their paths hold random ids, not our name."),
    Statement(LOG_GROUPS, "LogGroupsOfThisStacksFunctions", "Step 7: create (tagged), adopt, set retention on and delete the "
              "functions' log groups /aws/lambda/<stack>-*."),
    Statement(TOPIC, "AlertsTopicOfThisStack", "Step 7: create (tagged) and delete the alerts topic, and its e-mail subscription."),
    Statement(ALARMS, "AlarmsOfThisStack", "Step 7: create (tagged), update and delete the alarms."),
    Statement(MANAGED_POLICIES, "TutorialManagedPoliciesOnThisStacksRole", "Only with role.tutorial_managed_policies: true: "
              "attach (and later detach) the tutorial's two AWS managed policies, and no other policy; with names: tutorial "
              "too, as --adopt's run detaches the two the console attached when role.tutorial_managed_policies is false."),
)


def _resources(config: Config, key: str) -> list[str]:
    region = config.region
    names = scoped_names(config)
    # Account "*": the policy is written before we know the account, and every ARN below is
    # already narrowed by region and stack prefix (or exact names). The partition is the region's (aws-cn in China).
    p = partition_of_region(region)
    return {
        UNSCOPED: ["*"],
        TABLE: [f"arn:{p}:dynamodb:{region}:*:table/{name}" for name in names["table"]],
        BACKUPS: [f"arn:{p}:dynamodb:{region}:*:table/{name}/backup/*" for name in names["table"]],
        ROLE: [f"arn:{p}:iam::*:role/{name}" for name in names["role"]],
        PASS_ROLE: [f"arn:{p}:iam::*:role/{config.role_name}"],
        MANAGED_POLICIES: [f"arn:{p}:iam::*:role/{config.role_name}"],
        FUNCTIONS: [f"arn:{p}:lambda:{region}:*:function:{name}" for name in names["function"]],
        REST_APIS: [f"arn:{p}:apigateway:{region}::/restapis"],
        REST_API: [f"arn:{p}:apigateway:{region}::/restapis/*"],
        API_TAGS: [f"arn:{p}:apigateway:{region}::/tags/*"],
        USAGE_PLANS: [f"arn:{p}:apigateway:{region}::/usageplans", f"arn:{p}:apigateway:{region}::/usageplans/*",
                      f"arn:{p}:apigateway:{region}::/apikeys", f"arn:{p}:apigateway:{region}::/apikeys/*"],
        # "log-group:NAME" and "log-group:NAME:*" (the form most Logs actions are authorized on) both match.
        LOG_GROUPS: [f"arn:{p}:logs:{region}:*:log-group:/aws/lambda/{name}" for name in names["log group"]],
        TOPIC: [f"arn:{p}:sns:{region}:*:{name}" for name in names["topic"]],
        ALARMS: [f"arn:{p}:cloudwatch:{region}:*:alarm:{name}" for name in names["alarm"]],
    }[key]


def _condition(key: str, partition: str) -> dict | None:
    if key == PASS_ROLE:
        return {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
    if key == MANAGED_POLICIES:
        return {"ArnEquals": {"iam:PolicyARN": [f"arn:{partition}:iam::aws:policy/{name}" for name in TUTORIAL_MANAGED_POLICY_NAMES]}}
    return None


def actions_of(key: str) -> list[str]:
    return sorted({need.action for needs in OPERATIONS.values() for need in needs if need.statement == key})


def deployer_policy(config: Config) -> dict:
    """The least-privilege identity policy for provisioning, re-running, changing and tearing down `config`'s stack."""
    statements = []
    for statement in STATEMENTS:
        if statement.key == MANAGED_POLICIES and not (config.role.tutorial_managed_policies or config.names == "tutorial"):
            continue
        body = {"Sid": statement.sid, "Effect": "Allow", "Action": actions_of(statement.key),
                "Resource": _resources(config, statement.key)}
        condition = _condition(statement.key, partition_of_region(config.region))
        if condition:
            body["Condition"] = condition
        statements.append(body)
    return {"Version": "2012-10-17", "Statement": statements}


def statement_for(sid: str) -> Statement:
    return next(s for s in STATEMENTS if s.sid == sid)


# -- naming what was refused --------------------------------------------------------------------

def is_access_denied(exc: BaseException) -> bool:
    if not isinstance(exc, botocore.exceptions.ClientError):
        return False
    error = exc.response.get("Error", {})
    code = error.get("Code") or ""
    if code.startswith("AccessDenied") or code in ("UnauthorizedOperation", "AuthorizationError", "UnauthorizedException"):
        return True
    # Some answers come back with only an HTTP status as their code (moto's XML error bodies to
    # JSON services do): "is not authorized to perform" is IAM's wording for a refusal.
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 403 and "not authorized to perform" in (error.get("Message") or "")


def denied_action(service: str | None, operation: str) -> str:
    """The IAM action(s) a refused call needs, as a policy lists them, e.g. "lambda:CreateFunction (and
    lambda:TagResource, iam:PassRole), which CreateFunction needs"; "apigateway:GET, which GetRestApis needs"."""
    needs = OPERATIONS.get((service or "", operation))
    if needs is None:  # a call not in the table: IAM actions are mostly named after the operation
        return f"{service}:{operation}, which {operation} needs" if service else operation
    first, *others = dict.fromkeys(n.action for n in needs)
    return first + (f" (and {', '.join(others)})" if others else "") + f", which {operation} needs"
