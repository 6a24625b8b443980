"""What an account holds, for comparing a run that survived faults or kills with a clean run.

    inventory(client)    every resource of every kind the stack is made of, by name, in the whole
                         account (a name listed twice is a duplicate; anything left after a
                         teardown is an orphan)
    state(client)        the same resources with every setting that matters, ids that AWS picks
                         (REST API, resource and deployment ids) replaced by names, so two
                         accounts built by different runs compare equal when they hold the same stack
    duplicates(inv)      {kind: [names listed more than once]}

`client(service)` returns a boto3 client: plain ones under mock_aws, or ones with an endpoint_url
for a moto server. Used by tests/functional (in-process) and tests/e2e (subprocesses), and by
bench/reliability.py.

What counts as a duplicate: two resources of one kind with the same name, and for deployments two
with the same fingerprint (their description). A resumed run makes at most the one deployment a
clean run makes: step 5 reuses a deployment whose fingerprint matches, so one left by a run cut
off before it moved the stage is taken, not made again. Any other extra (e.g. a deployment of a
partial API) shows as a difference from the clean run's state.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any, Callable

Client = Callable[[str], Any]
KINDS = ("table", "role", "inline policy", "attached policy", "function", "permission", "rest api", "resource", "method",
         "deployment", "stage", "topic", "subscription", "alarm", "log group")


def _all(client, operation: str, key: str, **kwargs) -> list:
    if client.can_paginate(operation):
        return [item for page in client.get_paginator(operation).paginate(**kwargs) for item in page.get(key, [])]
    return getattr(client, operation)(**kwargs).get(key, [])


def _statements(lam, name: str) -> list[dict]:
    try:
        return json.loads(lam.get_policy(FunctionName=name)["Policy"])["Statement"]
    except lam.exceptions.ResourceNotFoundException:
        return []


def inventory(client: Client) -> dict[str, list[str]]:
    ddb, iam, lam, apigw, logs, sns, cw = (client(s) for s in ("dynamodb", "iam", "lambda", "apigateway", "logs", "sns", "cloudwatch"))
    inv: dict[str, list[str]] = defaultdict(list)
    inv["table"] = _all(ddb, "list_tables", "TableNames")
    for role in _all(iam, "list_roles", "Roles"):
        name = role["RoleName"]
        inv["role"].append(name)
        inv["inline policy"] += [f"{name}/{p}" for p in _all(iam, "list_role_policies", "PolicyNames", RoleName=name)]
        inv["attached policy"] += [f"{name}/{p['PolicyArn']}" for p in _all(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=name)]
    for fn in _all(lam, "list_functions", "Functions"):
        name = fn["FunctionName"]
        inv["function"].append(name)
        inv["permission"] += [f"{name}/{s.get('Sid')}" for s in _statements(lam, name)]
    for api in _all(apigw, "get_rest_apis", "items"):
        name, api_id = api["name"], api["id"]
        inv["rest api"].append(name)
        for resource in _all(apigw, "get_resources", "items", restApiId=api_id, embed=["methods"]):
            inv["resource"].append(f"{name}{resource['path']}")
            inv["method"] += [f"{name} {m} {resource['path']}" for m in resource.get("resourceMethods") or {}]
        inv["deployment"] += [f"{name}/{d.get('description')}" for d in _all(apigw, "get_deployments", "items", restApiId=api_id)]
        inv["stage"] += [f"{name}/{s['stageName']}" for s in apigw.get_stages(restApiId=api_id)["item"]]
    for topic in _all(sns, "list_topics", "Topics"):
        inv["topic"].append(topic["TopicArn"].rsplit(":", 1)[1])
    inv["subscription"] = [f"{s['TopicArn'].rsplit(':', 1)[1]}/{s['Protocol']}:{s['Endpoint']}" for s in _all(sns, "list_subscriptions", "Subscriptions")]
    inv["alarm"] = [a["AlarmName"] for a in _all(cw, "describe_alarms", "MetricAlarms")]
    inv["log group"] = [g["logGroupName"] for g in _all(logs, "describe_log_groups", "logGroups")]
    return {kind: sorted(inv.get(kind, [])) for kind in KINDS}


def duplicates(inv: dict[str, list[str]]) -> dict[str, list[str]]:
    found = {kind: sorted(name for name, n in Counter(names).items() if n > 1) for kind, names in inv.items()}
    return {kind: names for kind, names in found.items() if names}


def left_over(inv: dict[str, list[str]]) -> dict[str, list[str]]:
    return {kind: names for kind, names in inv.items() if names}


def count(inv: dict[str, list[str]]) -> int:
    return sum(len(names) for names in inv.values())


def _tags(tags) -> dict:
    if isinstance(tags, list):
        return {t["Key"]: t["Value"] for t in tags}
    return dict(tags or {})


def _doc(document) -> Any:
    if isinstance(document, str):
        from urllib.parse import unquote

        document = json.loads(unquote(document))
    return document


def state(client: Client) -> dict[str, Any]:
    """Every resource and its settings; AWS-chosen ids replaced, timestamps and revision ids left out."""
    ddb, iam, lam, apigw, logs, sns, cw = (client(s) for s in ("dynamodb", "iam", "lambda", "apigateway", "logs", "sns", "cloudwatch"))
    out: dict[str, Any] = {}
    ids: dict[str, str] = {}
    apis = {}
    for api in _all(apigw, "get_rest_apis", "items"):
        ids[api["id"]] = f"<api {api['name']}>"
        deployments = {d["id"]: d.get("description") for d in _all(apigw, "get_deployments", "items", restApiId=api["id"])}
        resources = {}
        for resource in _all(apigw, "get_resources", "items", restApiId=api["id"], embed=["methods"]):
            methods = {}
            for method, detail in (resource.get("resourceMethods") or {}).items():
                integration = detail.get("methodIntegration") or {}
                # The responses and templates too: a CORS preflight (MOCK) is made of them.
                methods[method] = [detail.get("authorizationType"), integration.get("type"), integration.get("httpMethod"), integration.get("uri"),
                                   integration.get("requestTemplates"), detail.get("methodResponses"), integration.get("integrationResponses")]
            resources.setdefault(resource["path"], []).append(methods)
        apis.setdefault(api["name"], []).append({
            "tags": _tags(api.get("tags")),
            "resources": resources,
            "deployments": sorted(str(d) for d in deployments.values()),
            "stages": {s["stageName"]: deployments.get(s["deploymentId"], "<unknown deployment>")
                       for s in apigw.get_stages(restApiId=api["id"])["item"]},
        })
    out["rest apis"] = apis
    tables = {}
    for name in _all(ddb, "list_tables", "TableNames"):
        table = ddb.describe_table(TableName=name)["Table"]
        tables[name] = {"key": table["KeySchema"], "billing": table.get("BillingModeSummary", {}).get("BillingMode"),
                        "status": table["TableStatus"], "tags": _tags(ddb.list_tags_of_resource(ResourceArn=table["TableArn"]).get("Tags"))}
    out["tables"] = tables
    roles = {}
    for role in _all(iam, "list_roles", "Roles"):
        name = role["RoleName"]
        roles[name] = {
            "trust": _doc(role["AssumeRolePolicyDocument"]),
            "inline": {p: _doc(iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"])
                       for p in _all(iam, "list_role_policies", "PolicyNames", RoleName=name)},
            "attached": sorted(p["PolicyArn"] for p in _all(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=name)),
            "tags": _tags(iam.list_role_tags(RoleName=name)["Tags"]),
        }
    out["roles"] = roles
    functions = {}
    for listed in _all(lam, "list_functions", "Functions"):
        name = listed["FunctionName"]
        found = lam.get_function(FunctionName=name)
        c = found["Configuration"]
        functions[name] = {
            **{k: c.get(k) for k in ("Runtime", "Handler", "MemorySize", "Timeout", "Role", "CodeSha256", "State", "LastUpdateStatus", "Description")},
            "environment": (c.get("Environment") or {}).get("Variables", {}),
            "tags": found.get("Tags") or {},
            "permissions": sorted(json.dumps({k: s.get(k) for k in ("Sid", "Effect", "Action", "Principal", "Condition")}, sort_keys=True)
                                  for s in _statements(lam, name)),
        }
    out["functions"] = functions
    topics = {}
    for topic in _all(sns, "list_topics", "Topics"):
        arn = topic["TopicArn"]
        topics[arn] = {"tags": _tags(sns.list_tags_for_resource(ResourceArn=arn).get("Tags")),
                       "subscriptions": sorted(f"{s['Protocol']}:{s['Endpoint']}" for s in _all(sns, "list_subscriptions_by_topic", "Subscriptions", TopicArn=arn))}
    out["topics"] = topics
    alarms = {}
    for alarm in _all(cw, "describe_alarms", "MetricAlarms"):
        fields = ("Namespace", "MetricName", "Dimensions", "Statistic", "ExtendedStatistic", "Period", "EvaluationPeriods",
                  "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData", "AlarmActions", "OKActions", "AlarmDescription")
        alarms[alarm["AlarmName"]] = {k: alarm.get(k) for k in fields} | {
            "tags": _tags(cw.list_tags_for_resource(ResourceARN=alarm["AlarmArn"]).get("Tags"))}
    out["alarms"] = alarms
    out["log groups"] = {g["logGroupName"]: {"retention": g.get("retentionInDays"),
                                              "tags": logs.list_tags_log_group(logGroupName=g["logGroupName"]).get("tags", {})}
                         for g in _all(logs, "describe_log_groups", "logGroups")}
    text = json.dumps(out, sort_keys=True, default=str)
    for api_id, label in ids.items():
        text = text.replace(api_id, label)
    return json.loads(text)


def differences(got: dict, want: dict, path: str = "") -> list[str]:
    """Where two states differ, as readable key paths (for assertion messages)."""
    if isinstance(got, dict) and isinstance(want, dict):
        found = []
        for key in sorted(set(got) | set(want)):
            if key not in got:
                found.append(f"{path}/{key}: missing")
            elif key not in want:
                found.append(f"{path}/{key}: extra")
            else:
                found += differences(got[key], want[key], f"{path}/{key}")
        return found
    return [] if got == want else [f"{path}: {json.dumps(got, default=str)[:200]} != {json.dumps(want, default=str)[:200]}"]
