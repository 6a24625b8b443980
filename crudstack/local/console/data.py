"""What the console shows, read from the local AWS's own APIs (boto3 against its own endpoint, as
`aws --endpoint-url` would) and its outbox: the stack step by step, the table's items, the functions'
logs, a function's test invoke, the alert e-mails. The charts are in charts.py.

A stack's resources are found as provision finds them: by name (prefixed by the stack) and by the
tags `managed-by=crudstack` and `crudstack-stack=<stack>` (docs/reliability.md, "Idempotent, resumable").
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from botocore.exceptions import ClientError

from crudstack.local.console.exceptions import BadRequest, NotFound
from crudstack.local.sns.outbox import Outbox
from crudstack.local import moto_backends

STACK_TAG, MANAGED_TAG = "crudstack-stack", "managed-by"
# Credentials when none are given (a console tested alone); the server passes the local AWS's own
# (crudstack/local/iam/credentials.py), as provision uses.
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
LOG_LINES = 200
ITEMS_PAGE_MAX = 100
TEST_EVENT_MAX_BYTES = 256 * 1024  # Lambda's limit for an asynchronous payload; plenty for a test event
_NOT_FOUND = ("ResourceNotFoundException", "NotFoundException", "NoSuchEntity")


def plain(value: Any) -> Any:
    """DynamoDB's Decimals and sets as JSON: whole numbers as int, others as float, sets as lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    return value


def _tags(pairs: list[dict] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in pairs or []}


def ours(tags: dict[str, str], stack: str) -> bool:
    return tags.get(MANAGED_TAG) == "crudstack" and tags.get(STACK_TAG) == stack


def auth_mode(resources: list[dict]) -> str:
    """api.auth as the API's methods show it (OPTIONS aside: preflights stay open in every mode):
    iam if a method is AWS_IAM, api_key if one requires a key, else none."""
    methods = [m for r in resources for name, m in (r.get("resourceMethods") or {}).items() if name != "OPTIONS"]
    if any(m.get("authorizationType") == "AWS_IAM" for m in methods):
        return "iam"
    if any(m.get("apiKeyRequired") for m in methods):
        return "api_key"
    return "none"


class ConsoleData:
    """Reads for the console. endpoint: the local AWS's own URL (http://127.0.0.1:<port>)."""

    def __init__(self, endpoint: str, outbox: Outbox, credentials: dict[str, str] | None = None):
        self.endpoint = endpoint.rstrip("/")
        self.outbox = outbox
        self._credentials = credentials or CREDENTIALS
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._config = Config(retries={"total_max_attempts": 2}, connect_timeout=5, read_timeout=60)

    def client(self, service: str, region: str) -> Any:
        # boto3 clients cost tens of ms to build (docs/performance.md): one per service and region, kept.
        key = (service, region)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = boto3.session.Session().client(
                    service, endpoint_url=self.endpoint, region_name=region, config=self._config,
                    **self._credentials)
            return self._clients[key]

    # -- which stacks ----------------------------------------------------------------------------

    def regions(self) -> list[str]:
        """Regions where the local AWS holds a table or a REST API (read from moto in-process: no call per region)."""
        apigateway_backends = moto_backends.backends('apigateway')
        backend_lock = moto_backends.lock()
        dynamodb_backends = moto_backends.backends('dynamodb')

        found = set()
        for backends, attribute in ((dynamodb_backends, "tables"), (apigateway_backends, "apis")):
            with backend_lock:
                listed = list(backends.iter_backends())
            found.update(region for _account, region, backend in listed if getattr(backend, attribute, None))
        return sorted(found)

    def stacks(self, region: str) -> list[str]:
        dynamodb, apigateway = self.client("dynamodb", region), self.client("apigateway", region)
        names = set()
        for table in dynamodb.list_tables().get("TableNames", []):
            arn = dynamodb.describe_table(TableName=table)["Table"]["TableArn"]
            tags = _tags(dynamodb.list_tags_of_resource(ResourceArn=arn).get("Tags"))
            if tags.get(MANAGED_TAG) == "crudstack" and STACK_TAG in tags:
                names.add(tags[STACK_TAG])
        for api in apigateway.get_rest_apis(limit=500).get("items", []):
            tags = api.get("tags") or {}
            if tags.get(MANAGED_TAG) == "crudstack" and STACK_TAG in tags:
                names.add(tags[STACK_TAG])
        return sorted(names)

    # -- the stack at a glance --------------------------------------------------------------------

    def overview(self, region: str, stack: str) -> dict[str, Any]:
        steps = [
            {"step": 1, "title": "DynamoDB table", "resources": self._tables(region, stack)},
            {"step": 2, "title": "IAM role", "resources": self._roles(region, stack)},
            {"step": 3, "title": "Lambda functions", "resources": self.functions(region, stack)},
        ]
        apis, stages = self._apis(region, stack)
        steps += [{"step": 4, "title": "API Gateway REST API", "resources": apis},
                  {"step": 5, "title": "Deploy to stage", "resources": stages}]
        invoke = stages[0] if stages else None
        auth = self.api_auth(region, stack, invoke) if invoke else {"mode": "none", "api_key": None, "api_key_name": None}
        steps[4]["resources"] += auth.pop("resources", [])
        steps.append({"step": 6, "title": "Test the API", "resources": [
            {"kind": "invoke URL", "name": invoke["invoke_url"], "state": "serving", "ok": True,
             "detail": "curl it, or open the browser client (outputs/items.html)"
                       + {"api_key": ", sending the API key as x-api-key",
                          "iam": ", signing each request (SigV4, execute-api)"}.get(auth["mode"], "")}] if invoke else []})
        steps.append({"step": 7, "title": "Monitoring: logs, alerts, alarms", "resources": self._monitoring(region, stack)})
        if not any(step["resources"] for step in steps):
            raise NotFound(f"no resources of stack {stack!r} in {region}: run python provision.py, or pick another stack")
        tables = [r["name"] for r in steps[0]["resources"]]
        return {
            "stack": stack, "region": region, "steps": steps,
            "table": tables[0] if tables else None,
            "functions": [r["name"] for r in steps[2]["resources"]],
            "invoke_url": invoke["invoke_url"] if invoke else None,
            "invoke_path": invoke["invoke_path"] if invoke else None,
            "auth": auth,
        }

    def _tables(self, region: str, stack: str) -> list[dict]:
        dynamodb = self.client("dynamodb", region)
        found = []
        for name in dynamodb.list_tables().get("TableNames", []):
            if not name.startswith(f"{stack}-"):
                continue
            table = dynamodb.describe_table(TableName=name)["Table"]
            if not ours(_tags(dynamodb.list_tags_of_resource(ResourceArn=table["TableArn"]).get("Tags")), stack):
                continue
            keys = ", ".join(f"{k['AttributeName']} ({k['KeyType']})" for k in table["KeySchema"])
            mode = (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
            found.append({"kind": "table", "name": name, "state": table["TableStatus"],
                          "ok": table["TableStatus"] == "ACTIVE", "detail": f"key {keys}; {mode}"})
        return found

    def _roles(self, region: str, stack: str) -> list[dict]:
        iam = self.client("iam", region)
        found = []
        for role in iam.list_roles().get("Roles", []):
            if role["RoleName"].startswith(f"{stack}-") and ours(
                    _tags(iam.list_role_tags(RoleName=role["RoleName"]).get("Tags")), stack):
                policies = iam.list_role_policies(RoleName=role["RoleName"]).get("PolicyNames", [])
                found.append({"kind": "role", "name": role["RoleName"], "state": "exists", "ok": True,
                              "detail": f"inline policies: {', '.join(policies) or 'none'}"})
        return found

    def functions(self, region: str, stack: str) -> list[dict]:
        lam = self.client("lambda", region)
        found = []
        for page in lam.get_paginator("list_functions").paginate():
            for fn in page["Functions"]:
                if not fn["FunctionName"].startswith(f"{stack}-"):
                    continue
                if not ours(lam.list_tags(Resource=fn["FunctionArn"]).get("Tags", {}), stack):
                    continue
                state = fn.get("State", "Active")
                found.append({"kind": "function", "name": fn["FunctionName"], "state": state, "ok": state == "Active",
                              "detail": f"{fn.get('Runtime')} {fn.get('Handler')}, {fn.get('MemorySize')} MB, "
                                        f"{fn.get('Timeout')} s"})
        return sorted(found, key=lambda r: r["name"])

    def _apis(self, region: str, stack: str) -> tuple[list[dict], list[dict]]:
        apigateway = self.client("apigateway", region)
        apis, stages = [], []
        for api in apigateway.get_rest_apis(limit=500).get("items", []):
            if not ours(api.get("tags") or {}, stack):
                continue
            # embed=methods: without it AWS lists each resource's methods by name only, not their authorization
            # (GetResources, https://docs.aws.amazon.com/apigateway/latest/api/API_GetResources.html).
            resources = apigateway.get_resources(restApiId=api["id"], limit=500, embed=["methods"]).get("items", [])
            routes = sorted(f"{method} {r['path']}" for r in resources for method in (r.get("resourceMethods") or {}))
            mode = auth_mode(resources)
            apis.append({"kind": "REST API", "name": f"{api['name']} ({api['id']})", "state": "exists", "ok": True,
                         "detail": ", ".join(routes)})
            for stage in apigateway.get_stages(restApiId=api["id"]).get("item", []):
                path = f"/restapis/{api['id']}/{stage['stageName']}/_user_request_"
                stages.append({"kind": "stage", "name": stage["stageName"], "state": "deployed", "ok": True,
                               "detail": f"deployment {stage.get('deploymentId')}",
                               "invoke_url": self.endpoint + path, "invoke_path": path,
                               "api_id": api["id"], "auth_mode": mode})
        return apis, stages

    def api_auth(self, region: str, stack: str, stage: dict) -> dict[str, Any]:
        """Who may call the stage's methods, for the console's own writes through the items API: with api_key,
        the value of an enabled key in a usage plan on this stage, found as API Gateway matches a key (the
        plans of the stage, their keys: https://docs.aws.amazon.com/apigateway/latest/developerguide/
        api-gateway-api-usage-plans.html), preferring the stack's own. The console answers this machine's
        own pages only (guard.py), and whoever reaches it can read the table and invoke the functions anyway.
        "resources": the usage plans and keys, for step 5 of the overview."""
        found: dict[str, Any] = {"mode": stage["auth_mode"], "api_key": None, "api_key_name": None, "resources": []}
        if found["mode"] != "api_key":
            return found
        apigateway = self.client("apigateway", region)
        keys = []
        here = (stage["api_id"], stage["name"])
        for plan in apigateway.get_usage_plans(limit=500).get("items", []):
            if here not in {(s.get("apiId"), s.get("stage")) for s in plan.get("apiStages") or []}:
                continue
            limits = plan.get("throttle") or {}
            quota = plan.get("quota")
            found["resources"].append({
                "kind": "usage plan", "name": plan["name"], "state": "exists", "ok": True,
                "detail": f"throttle {limits.get('rateLimit')}/s, burst {limits.get('burstLimit')}; "
                          + (f"quota {quota['limit']} a {str(quota['period']).lower()}" if quota else "no quota")})
            for plan_key in apigateway.get_usage_plan_keys(usagePlanId=plan["id"], limit=500).get("items", []):
                try:
                    key = apigateway.get_api_key(apiKey=plan_key["id"], includeValue=True)
                except ClientError as exc:
                    if exc.response["Error"]["Code"] in _NOT_FOUND:
                        continue
                    raise
                enabled = bool(key.get("enabled"))
                found["resources"].append({"kind": "API key", "name": key["name"], "ok": enabled,
                                           "state": "enabled" if enabled else "disabled",
                                           "detail": f"in {plan['name']}; sent as x-api-key"})
                if enabled and key.get("value"):
                    keys.append(key)
        stack_keys = [k for k in keys if ours(k.get("tags") or {}, stack)]
        if keys:
            chosen = (stack_keys or keys)[0]
            found["api_key"], found["api_key_name"] = chosen["value"], chosen["name"]
        return found

    def _monitoring(self, region: str, stack: str) -> list[dict]:
        logs, sns = self.client("logs", region), self.client("sns", region)
        found = []
        for group in logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{stack}-").get("logGroups", []):
            retention = group.get("retentionInDays")
            found.append({"kind": "log group", "name": group["logGroupName"], "state": "exists", "ok": True,
                          "detail": f"retention {retention} days" if retention else "never expires"})
        for topic in sns.list_topics().get("Topics", []):
            arn = topic["TopicArn"]
            if not arn.rsplit(":", 1)[-1].startswith(f"{stack}-"):
                continue
            if not ours(_tags(sns.list_tags_for_resource(ResourceArn=arn).get("Tags")), stack):
                continue
            subs = sns.list_subscriptions_by_topic(TopicArn=arn).get("Subscriptions", [])
            found.append({"kind": "SNS topic", "name": arn.rsplit(":", 1)[-1], "state": "exists", "ok": True,
                          "detail": ", ".join(f"{s['Protocol']}: {s['Endpoint']}" for s in subs) or "no subscriptions"})
        for alarm in self.alarms(region, stack):
            found.append({"kind": "alarm", "name": alarm["AlarmName"], "state": alarm["StateValue"],
                          "ok": alarm["StateValue"] == "OK", "detail": alarm.get("StateReason", "")})
        return found

    def alarms(self, region: str, stack: str) -> list[dict]:
        cloudwatch = self.client("cloudwatch", region)
        found = []
        for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=f"{stack}-"):
            for alarm in page.get("MetricAlarms", []):
                tags = _tags(cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"]).get("Tags"))
                if ours(tags, stack):
                    found.append(alarm)
        return found

    # -- DynamoDB: the table's items ---------------------------------------------------------------

    def items(self, region: str, table: str, limit: int, token: str | None) -> dict[str, Any]:
        if not 1 <= limit <= ITEMS_PAGE_MAX:
            raise BadRequest(f"limit must be 1 to {ITEMS_PAGE_MAX}, not {limit}")
        args: dict[str, Any] = {"TableName": table, "Limit": limit}
        if token:
            try:
                args["ExclusiveStartKey"] = json.loads(base64.urlsafe_b64decode(token.encode()))
            except (ValueError, binascii.Error, UnicodeDecodeError):
                raise BadRequest("next is not a token this console gave: start again from the first page") from None
            if not isinstance(args["ExclusiveStartKey"], dict):
                raise BadRequest("next is not a token this console gave: start again from the first page")
        try:
            page = self.client("dynamodb", region).scan(**args)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in _NOT_FOUND:
                raise NotFound(f"no table {table!r} in {region}") from None
            if code == "ValidationException":
                raise BadRequest(f"next is not a token this console gave ({exc.response['Error']['Message']})") from None
            raise
        deserializer = TypeDeserializer()
        items = [plain({k: deserializer.deserialize(v) for k, v in item.items()}) for item in page.get("Items", [])]
        last = page.get("LastEvaluatedKey")
        return {"table": table, "items": items, "count": len(items),
                "next": base64.urlsafe_b64encode(json.dumps(last).encode()).decode() if last else None}

    # -- Lambda: logs and the Test tab -------------------------------------------------------------

    def logs(self, region: str, function: str, minutes: int = 60) -> dict[str, Any]:
        logs = self.client("logs", region)
        group = f"/aws/lambda/{function}"
        args = {"logGroupName": group, "startTime": int((time.time() - minutes * 60) * 1000)}
        events: list[dict] = []
        try:
            for page in logs.get_paginator("filter_log_events").paginate(**args):
                events.extend(page.get("events", []))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _NOT_FOUND:
                return {"function": function, "group": group, "events": []}  # no invocation yet
            raise
        events.sort(key=lambda e: (e["timestamp"], e.get("ingestionTime", 0)))
        shown = [{"timestamp": e["timestamp"], "stream": e.get("logStreamName"), "message": e["message"].rstrip("\n")}
                 for e in events[-LOG_LINES:]]
        return {"function": function, "group": group, "events": shown}

    def invoke(self, region: str, function: str, body: bytes) -> dict[str, Any]:
        """What the Lambda console's Test tab does: Invoke with an event, show the result and the log tail
        (Lambda Developer Guide, "Testing Lambda functions in the console":
        https://docs.aws.amazon.com/lambda/latest/dg/testing-functions.html). An unhandled exception is a
        function error, counted in the Errors metric ("Types of metrics for Lambda functions":
        https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html)."""
        if len(body) > TEST_EVENT_MAX_BYTES:
            raise BadRequest(f"the test event is {len(body)} bytes; at most {TEST_EVENT_MAX_BYTES} are accepted")
        try:
            json.loads(body or b"{}")
        except ValueError as exc:
            raise BadRequest(f"the test event is not valid JSON: {exc}") from None
        try:
            answer = self.client("lambda", region).invoke(FunctionName=function, Payload=body or b"{}", LogType="Tail")
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _NOT_FOUND:
                raise NotFound(f"no function {function!r} in {region}") from None
            raise
        log = base64.b64decode(answer.get("LogResult", "")).decode("utf-8", "replace")
        return {"function": function, "statusCode": answer["StatusCode"], "functionError": answer.get("FunctionError"),
                "payload": answer["Payload"].read().decode("utf-8", "replace"), "log": log}

    # -- SNS: the outbox ---------------------------------------------------------------------------

    def outbox_messages(self) -> list[dict[str, str]]:
        messages = [{**m.as_dict(), "file": m.path.name} for m in self.outbox.messages()]
        return list(reversed(messages))  # newest first
