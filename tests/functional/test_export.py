"""--export sam / terraform: the exported stack is the stack provision.py builds.

How the template is proven: provision.py builds the stack in moto; moto is reset; the template is deployed
into moto's CloudFormation (create_stack); both accounts are read into the same `view` and compared field by
field. moto's CloudFormation cannot read local paths, so the test does what `aws cloudformation package` does:
it uploads build/<Function>.zip to a moto S3 bucket and writes S3Bucket/S3Key in place of each Code path.

What moto 5.2.1's CloudFormation cannot make is listed in MOTO_CFN_GAPS with the reason; for those parts of
the view, and only those, the exported side is read from the template's own properties (resolved with the
deployed stack's ids) instead of from moto, and the test checks that moto really still lacks them.

The Terraform files are parsed with python-hcl2 and read into the same view; `terraform validate` runs too
when terraform and the hashicorp/aws provider are on this machine (offline: from a plugin mirror).
"""

from __future__ import annotations

import ast
import base64
import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import boto3
import hcl2
import pytest
import yaml
from moto.core.base_backend import BackendDict

from crudstack.cli import provision_main
from crudstack.config import Config
from crudstack.export import export
from crudstack.steps.cors import preflight_shape
from tests.functional.conftest import ACCOUNT, REGION
from tests.stack_state import differences

# What moto 5.2.1's CloudFormation does not make, and why (moto/cloudformation/parsing.py and each
# service's create_from_cloudformation_json). The view's sections listed here are read from the template.
MOTO_CFN_GAPS = {
    "stage": "AWS::ApiGateway::Stage has no moto CloudFormation model: skipped with a warning",
    "alarms": "AWS::CloudWatch::Alarm has no moto CloudFormation model: skipped with a warning",
    "subscriptions": "AWS::SNS::Subscription has no moto CloudFormation model: skipped with a warning",
    "preflights": "AWS::ApiGateway::Method keeps only Type, IntegrationHttpMethod and Uri of Integration: RequestTemplates, "
                  "IntegrationResponses and MethodResponses are dropped (and a MOCK without IntegrationHttpMethod/Uri is a KeyError)",
    "rest api": "AWS::ApiGateway::RestApi drops Tags",
    "function tags": "AWS::Lambda::Function drops Tags",
    "topic": "AWS::SNS::Topic drops Tags",
}
STACK = "demo"
EMAIL = "ops@example.com"


def changed(settings: dict) -> dict:
    """config.yaml edited the three ways the issue names: a function's memory, a route, an alarm threshold;
    a function's reserved concurrency; and who may call the API (an API key, a usage plan without quota,
    another stage throttle)."""
    settings["lambda"]["functions"]["GetItemsFunction"]["memory_mb"] = 256
    settings["lambda"]["functions"]["GetItemsFunction"]["reserved_concurrency"] = 3
    settings["lambda"]["functions"]["GetItemFunction"]["route"] = "GET /things/{id}"
    settings["monitoring"]["alarms"]["function_errors"] = 5
    settings["api"] = {**settings["api"], "auth": "api_key", "throttle": {"rate_per_s": 12.5, "burst": 25},
                       "usage_plan": {"rate_per_s": 2, "burst": 4, "quota": None}}
    return settings


@pytest.fixture(params=["as shipped", "changed"])
def export_settings(request, settings) -> dict:
    settings["monitoring"]["alert_email"] = EMAIL  # so the subscription is part of the comparison
    return changed(settings) if request.param == "changed" else settings


def client(service: str):
    return boto3.client(service, region_name=REGION)


# -- the view: one shape for an account, a template and Terraform files ------------------------------


def norm_doc(document) -> dict:
    if isinstance(document, str):
        from urllib.parse import unquote

        try:
            document = json.loads(unquote(document))
        except ValueError:  # moto stores a CloudFormation inline policy as a Python repr
            document = ast.literal_eval(document)

    def listed(value):
        return sorted(value) if isinstance(value, list) else [value]

    return {"Version": document.get("Version"), "Statement": sorted(
        ({k: (listed(v) if k in ("Action", "Resource") else
               {p: listed(ids) for p, ids in v.items()} if k == "Principal" else v) for k, v in s.items()}
         for s in document["Statement"]), key=lambda s: json.dumps(s, sort_keys=True))}


def tags_of(tags) -> dict:
    if isinstance(tags, list):
        return {t["Key"]: t["Value"] for t in tags}
    return dict(tags or {})


ALARM_FIELDS = ("Namespace", "MetricName", "Dimensions", "Statistic", "ExtendedStatistic", "Period", "EvaluationPeriods",
                "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData", "AlarmActions", "OKActions", "AlarmDescription")


def alarm_view(alarm: dict, tags) -> dict:
    view = {k: alarm.get(k) for k in ALARM_FIELDS}
    view["Dimensions"] = sorted(view["Dimensions"] or [], key=lambda d: d["Name"])
    view["Threshold"] = float(view["Threshold"])
    for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        view[key] = int(view[key])
    return {**view, "tags": tags_of(tags)}


def usage_plan_view(plan: dict, keys: list[dict]) -> dict:
    """A usage plan (API shape: throttle.rateLimit ..., keys as get_api_key answers them) for the comparison."""
    throttle, quota = plan.get("throttle") or {}, plan.get("quota") or {}
    return {"description": plan.get("description"), "tags": tags_of(plan.get("tags")),
            "throttle": {"rate": float(throttle["rateLimit"]), "burst": int(throttle["burstLimit"])} if throttle else None,
            "quota": {"limit": int(quota["limit"]), "period": quota["period"]} if quota else None,
            "keys": {k["name"]: {"description": k.get("description"), "enabled": k["enabled"], "tags": tags_of(k.get("tags"))} for k in keys}}


def account_view() -> dict:
    """What the (moto) account holds, in the comparison's shape; the REST API's id written <api>."""
    ddb, iam, lam, apigw, logs, sns, cw = (client(s) for s in ("dynamodb", "iam", "lambda", "apigateway", "logs", "sns", "cloudwatch"))
    view: dict = {}
    view["table"] = {}
    for name in ddb.list_tables()["TableNames"]:
        t = ddb.describe_table(TableName=name)["Table"]
        view["table"][name] = {"key": t["KeySchema"], "attributes": t["AttributeDefinitions"],
                               "billing": t["BillingModeSummary"]["BillingMode"],
                               "tags": tags_of(ddb.list_tags_of_resource(ResourceArn=t["TableArn"])["Tags"])}
    view["role"] = {r["RoleName"]: {
        "trust": norm_doc(r["AssumeRolePolicyDocument"]),
        "policies": {p: norm_doc(iam.get_role_policy(RoleName=r["RoleName"], PolicyName=p)["PolicyDocument"])
                     for p in iam.list_role_policies(RoleName=r["RoleName"])["PolicyNames"]},
        "managed": sorted(p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=r["RoleName"])["AttachedPolicies"]),
        "tags": tags_of(iam.list_role_tags(RoleName=r["RoleName"])["Tags"])} for r in iam.list_roles()["Roles"]}
    view["functions"], view["function tags"], view["permissions"] = {}, {}, {}
    for f in lam.list_functions()["Functions"]:
        found = lam.get_function(FunctionName=f["FunctionName"])
        c = found["Configuration"]
        view["functions"][c["FunctionName"]] = {
            "runtime": c["Runtime"], "handler": c["Handler"], "memory": c["MemorySize"], "timeout": c["Timeout"],
            "role": c["Role"], "environment": c["Environment"]["Variables"], "code_sha256": c["CodeSha256"],
            "reserved": lam.get_function_concurrency(FunctionName=c["FunctionName"]).get("ReservedConcurrentExecutions")}
        view["function tags"][c["FunctionName"]] = found.get("Tags") or {}
        # The statement id is left out: CloudFormation picks its own (AWS::Lambda::Permission has no StatementId).
        statements = json.loads(lam.get_policy(FunctionName=c["FunctionName"])["Policy"])["Statement"]
        view["permissions"][c["FunctionName"]] = sorted(
            json.dumps({"action": s["Action"], "principal": s["Principal"], "source_arn": s["Condition"]["ArnLike"]["AWS:SourceArn"]},
                       sort_keys=True) for s in statements)
    view["log groups"] = {g["logGroupName"]: {"retention": g.get("retentionInDays"),
                                               "tags": logs.list_tags_log_group(logGroupName=g["logGroupName"])["tags"]}
                          for g in logs.describe_log_groups()["logGroups"]}
    apis = apigw.get_rest_apis()["items"]
    view["rest api"] = {a["name"]: {"tags": a.get("tags") or {}, "gateway responses": {
        r["responseType"]: {"parameters": r.get("responseParameters") or {}, "templates": r.get("responseTemplates") or {}}
        for r in apigw.get_gateway_responses(restApiId=a["id"])["items"] if not r.get("defaultResponse")}} for a in apis}
    view["resources"], view["methods"], view["preflights"], view["stage"], view["deployments"] = [], {}, {}, {}, 0
    for api in apis:
        for r in apigw.get_resources(restApiId=api["id"], embed=["methods"])["items"]:
            view["resources"].append(r["path"])
            for method, detail in (r.get("resourceMethods") or {}).items():
                if method == "OPTIONS":
                    integration = apigw.get_integration(restApiId=api["id"], resourceId=r["id"], httpMethod=method)
                    responses = {code: apigw.get_method_response(restApiId=api["id"], resourceId=r["id"], httpMethod=method, statusCode=code)
                                 for code in (detail.get("methodResponses") or {})}
                    view["preflights"][r["path"]] = preflight_shape({**detail, "methodIntegration": integration, "methodResponses": responses})
                else:
                    i = detail["methodIntegration"]
                    view["methods"][f"{method} {r['path']}"] = {"authorization": detail["authorizationType"], "type": i["type"],
                                                               "http_method": i["httpMethod"], "uri": i["uri"],
                                                               "api_key_required": bool(detail.get("apiKeyRequired"))}
        view["deployments"] += len(apigw.get_deployments(restApiId=api["id"])["items"])
        for s in apigw.get_stages(restApiId=api["id"])["item"]:
            settings = (s.get("methodSettings") or {}).get("*/*") or {}
            plans = [p for p in apigw.get_usage_plans()["items"] if {"apiId": api["id"], "stage": s["stageName"]} in p.get("apiStages", [])]
            view["stage"][s["stageName"]] = {
                "tags": s.get("tags") or {},
                "throttle": {"rate": float(settings["throttlingRateLimit"]), "burst": settings["throttlingBurstLimit"]} if settings else None,
                "usage plans": {p["name"]: usage_plan_view(p, [apigw.get_api_key(apiKey=k["id"]) for k in
                                                                apigw.get_usage_plan_keys(usagePlanId=p["id"])["items"]]) for p in plans}}
    view["resources"].sort()
    topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    view["topic"] = {arn.rsplit(":", 1)[1]: {"tags": tags_of(sns.list_tags_for_resource(ResourceArn=arn)["Tags"])} for arn in topics}
    view["subscriptions"] = sorted(f"{s['TopicArn'].rsplit(':', 1)[1]}/{s['Protocol']}:{s['Endpoint']}" for s in sns.list_subscriptions()["Subscriptions"])
    view["alarms"] = {a["AlarmName"]: alarm_view(a, cw.list_tags_for_resource(ResourceARN=a["AlarmArn"])["Tags"])
                      for a in cw.describe_alarms()["MetricAlarms"]}
    text = json.dumps(view, sort_keys=True, default=str)
    for api in apis:
        text = text.replace(api["id"], "<api>")
    return json.loads(text)


# -- the template ---------------------------------------------------------------------------------


def resolve(value, refs: dict):
    """Evaluate Ref, Fn::GetAtt and Fn::Sub with known values, as CloudFormation would."""
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key == "Ref":
            return refs[arg]
        if key == "Fn::GetAtt":
            return refs[".".join(arg)]
        if key == "Fn::Sub":
            text = re.sub(r"\$\{(?!!)([^}]+)\}", lambda m: str(refs[m.group(1)]), arg)
            return text.replace("${!", "${")
    if isinstance(value, dict):
        return {k: resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, refs) for v in value]
    return value


def template_refs(template: dict) -> dict:
    """What each Ref / GetAtt / pseudo-parameter stands for in the deployed (moto) stack."""
    refs = {"StackPrefix": STACK, "AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com"}
    for logical, res in template["Resources"].items():
        kind, props = res["Type"], res["Properties"]
        name = resolve(props.get("FunctionName") or props.get("RoleName") or props.get("TopicName") or props.get("StageName") or "", refs)
        if kind == "AWS::Lambda::Function":
            refs[logical], refs[f"{logical}.Arn"] = name, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        elif kind == "AWS::IAM::Role":
            refs[logical], refs[f"{logical}.Arn"] = name, f"arn:aws:iam::{ACCOUNT}:role/{name}"
        elif kind == "AWS::SNS::Topic":
            refs[logical] = f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"
        elif kind == "AWS::ApiGateway::RestApi":
            refs[logical], refs[f"{logical}.RootResourceId"] = "<api>", "<root>"
        else:
            refs[logical] = f"<{logical}>"
    return refs


def template_view(template: dict) -> dict:
    """The parts of the view moto's CloudFormation cannot show (MOTO_CFN_GAPS), from the template's properties."""
    refs = template_refs(template)
    view = {"stage": {}, "alarms": {}, "subscriptions": [], "preflights": {}, "rest api": {}, "function tags": {}, "topic": {}}
    resources = {logical: resolve(res, refs) for logical, res in template["Resources"].items()}
    paths = {}
    for logical, res in resources.items():
        if res["Type"] == "AWS::ApiGateway::Resource":
            paths[f"<{logical}>"] = res["Properties"]
    def path_of(resource_ref: str) -> str:
        props = paths[resource_ref]
        parent = props["ParentId"]
        return (path_of(parent) if parent in paths else "") + "/" + props["PathPart"]

    keys = {f"<{logical}>": res["Properties"] for logical, res in resources.items() if res["Type"] == "AWS::ApiGateway::ApiKey"}
    plan_keys = [res["Properties"] for res in resources.values() if res["Type"] == "AWS::ApiGateway::UsagePlanKey"]
    responses = {res["Properties"]["ResponseType"]: {"parameters": res["Properties"]["ResponseParameters"],
                                                     "templates": res["Properties"]["ResponseTemplates"]}
                 for res in resources.values() if res["Type"] == "AWS::ApiGateway::GatewayResponse"}
    for logical, res in resources.items():
        kind, p = res["Type"], res["Properties"]
        if kind == "AWS::ApiGateway::Stage":
            [settings] = p["MethodSettings"]
            assert (settings["ResourcePath"], settings["HttpMethod"]) == ("/*", "*")
            plans = {}
            for plan_logical, plan in resources.items():
                q = plan["Properties"]
                if plan["Type"] == "AWS::ApiGateway::UsagePlan" and q["ApiStages"][0]["Stage"] == f"<{logical}>":
                    held = [{"name": keys[k["KeyId"]]["Name"], "description": keys[k["KeyId"]]["Description"],
                             "enabled": keys[k["KeyId"]]["Enabled"], "tags": keys[k["KeyId"]]["Tags"]}
                            for k in plan_keys if k["UsagePlanId"] == f"<{plan_logical}>" and k["KeyType"] == "API_KEY"]
                    plans[q["UsagePlanName"]] = usage_plan_view({
                        "description": q["Description"], "tags": q["Tags"],
                        "throttle": {"rateLimit": q["Throttle"]["RateLimit"], "burstLimit": q["Throttle"]["BurstLimit"]},
                        "quota": {"limit": q["Quota"]["Limit"], "period": q["Quota"]["Period"]} if "Quota" in q else None}, held)
            view["stage"][p["StageName"]] = {"tags": tags_of(p["Tags"]), "usage plans": plans,
                                             "throttle": {"rate": float(settings["ThrottlingRateLimit"]), "burst": settings["ThrottlingBurstLimit"]}}
        elif kind == "AWS::CloudWatch::Alarm":
            view["alarms"][p["AlarmName"]] = alarm_view(p, p["Tags"])
        elif kind == "AWS::SNS::Subscription":
            view["subscriptions"].append(f"{p['TopicArn'].rsplit(':', 1)[1]}/{p['Protocol']}:{p['Endpoint']}")
        elif kind == "AWS::ApiGateway::RestApi":
            view["rest api"][p["Name"]] = {"tags": tags_of(p["Tags"]), "gateway responses": responses}
        elif kind == "AWS::Lambda::Function":
            view["function tags"][p["FunctionName"]] = tags_of(p["Tags"])
        elif kind == "AWS::SNS::Topic":
            view["topic"][p["TopicName"]] = {"tags": tags_of(p["Tags"])}
        elif kind == "AWS::ApiGateway::Method" and p["HttpMethod"] == "OPTIONS":
            i, response = p["Integration"], p["MethodResponses"][0]
            answer = i["IntegrationResponses"][0]
            view["preflights"][path_of(p["ResourceId"])] = preflight_shape({
                "authorizationType": p["AuthorizationType"],
                "methodIntegration": {"type": i["Type"], "requestTemplates": i["RequestTemplates"],
                                      "integrationResponses": {answer["StatusCode"]: {"responseParameters": answer["ResponseParameters"],
                                                                                     "responseTemplates": answer["ResponseTemplates"]}}},
                "methodResponses": {response["StatusCode"]: {"responseParameters": response["ResponseParameters"]}}})
    view["subscriptions"].sort()
    return view


def for_moto(template: dict, folder: Path) -> dict:
    """The template as `aws cloudformation package` leaves it (zips in S3), plus what moto needs to parse a MOCK method."""
    template = copy.deepcopy(template)
    s3 = client("s3")
    s3.create_bucket(Bucket="exported-code")
    for res in template["Resources"].values():
        if res["Type"] == "AWS::Lambda::Function":
            key = res["Properties"]["Code"]
            s3.put_object(Bucket="exported-code", Key=key, Body=(folder / key).read_bytes())
            res["Properties"]["Code"] = {"S3Bucket": "exported-code", "S3Key": key}
        if res["Type"] == "AWS::ApiGateway::Method" and res["Properties"]["Integration"]["Type"] == "MOCK":
            # moto 5.2.1 reads Integration.IntegrationHttpMethod and Uri unconditionally (a KeyError for a MOCK,
            # which AWS does not require them for): empty values, only in moto's copy.
            res["Properties"]["Integration"].update(IntegrationHttpMethod="", Uri="")
    return template


def deploy_in_fresh_moto(template: dict, folder: Path) -> None:
    BackendDict.reset()  # a fresh account, as after POST /moto-api/reset
    cf = client("cloudformation")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto warns of each type it skips: MOTO_CFN_GAPS lists them
        cf.create_stack(StackName=STACK, TemplateBody=json.dumps(for_moto(template, folder)), Capabilities=["CAPABILITY_NAMED_IAM"])
    assert cf.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"


def provision_and_view(provision, cfg: Config) -> dict:
    provision(cfg)
    return account_view()


# -- Terraform -------------------------------------------------------------------------------------


def hcl_text(value):
    """python-hcl2 keeps a string literal's quotes and writes an expression as ${...}: literals unquoted, recursively."""
    if isinstance(value, str):
        if len(value) >= 2 and value[0] == value[-1] == '"':
            return json.loads(value.replace("$${", "${"))
        return value
    if isinstance(value, dict):
        return {hcl_text(k): hcl_text(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [hcl_text(v) for v in value]
    return value


def terraform_blocks(folder: Path) -> tuple[dict, dict]:
    """(resources, data sources), each {type: {name: body}} with every literal unquoted."""
    with open(folder / "main.tf", encoding="utf-8") as handle:
        parsed = hcl2.load(handle)
    found = []
    for section in ("resource", "data"):
        blocks: dict = {}
        for entry in parsed.get(section, []):
            for kind, named in hcl_text(entry).items():
                for name, body in named.items():
                    blocks.setdefault(kind, {})[name] = body
        found.append(blocks)
    return found[0], found[1]


def terraform_view(folder: Path) -> dict:
    resources, data = terraform_blocks(folder)
    refs = {"var.stack_prefix": STACK, "data.aws_partition.current.partition": "aws", "data.aws_region.current.name": REGION,
            "data.aws_caller_identity.current.account_id": ACCOUNT}
    for name, body in resources["aws_lambda_function"].items():
        fn = resolve_tf(body["function_name"], refs)
        refs[f"aws_lambda_function.{name}.arn"] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn}"
        refs[f"aws_lambda_function.{name}.function_name"] = fn
    for name, body in resources["aws_iam_role"].items():
        refs[f"aws_iam_role.{name}.arn"] = f"arn:aws:iam::{ACCOUNT}:role/{resolve_tf(body['name'], refs)}"
    for name, body in resources["aws_sns_topic"].items():
        refs[f"aws_sns_topic.{name}.arn"] = f"arn:aws:sns:{REGION}:{ACCOUNT}:{resolve_tf(body['name'], refs)}"
    for name in resources["aws_api_gateway_rest_api"]:
        refs[f"aws_api_gateway_rest_api.{name}.id"] = "<api>"
    r = {kind: {name: resolve_tf(body, refs) for name, body in named.items()} for kind, named in resources.items()}

    def document(name: str) -> dict:
        statements = []
        for s in resolve_tf(data["aws_iam_policy_document"][name], refs)["statement"]:
            statement = {"Effect": s["effect"], "Action": s["actions"]}
            if "sid" in s:
                statement["Sid"] = s["sid"]
            if "resources" in s:
                statement["Resource"] = s["resources"]
            if "principals" in s:
                statement["Principal"] = {p["type"]: p["identifiers"] for p in s["principals"]}
            statements.append(statement)
        return norm_doc({"Version": "2012-10-17", "Statement": statements})

    view: dict = {}
    view["table"] = {t["name"]: {"key": [{"AttributeName": t["hash_key"], "KeyType": "HASH"}],
                                 "attributes": [{"AttributeName": a["name"], "AttributeType": a["type"]} for a in t["attribute"]],
                                 "billing": t["billing_mode"], "tags": t["tags"]} for t in r["aws_dynamodb_table"].values()}
    policies = {p["name"]: document(p["policy"].split(".")[2]) for p in r["aws_iam_role_policy"].values()}
    view["role"] = {role["name"]: {"trust": document(role["assume_role_policy"].split(".")[2]), "policies": policies,
                                   "managed": sorted(a["policy_arn"] for a in r.get("aws_iam_role_policy_attachment", {}).values()),
                                   "tags": role["tags"]} for role in r["aws_iam_role"].values()}
    view["functions"], view["function tags"], view["permissions"] = {}, {}, {}
    for f in r["aws_lambda_function"].values():
        zipped = (folder / f["filename"].replace("${path.module}/", "")).read_bytes()
        view["functions"][f["function_name"]] = {
            "runtime": f["runtime"], "handler": f["handler"], "memory": f["memory_size"], "timeout": f["timeout"], "role": f["role"],
            "environment": f["environment"][0]["variables"], "code_sha256": base64.b64encode(hashlib.sha256(zipped).digest()).decode(),
            "reserved": f.get("reserved_concurrent_executions")}
        view["function tags"][f["function_name"]] = f["tags"]
    for p in r["aws_lambda_permission"].values():
        view["permissions"].setdefault(p["function_name"], []).append(json.dumps({
            "action": p["action"], "principal": {"Service": p["principal"]}, "source_arn": p["source_arn"]}, sort_keys=True))
    view["log groups"] = {g["name"]: {"retention": g["retention_in_days"], "tags": g["tags"]} for g in r["aws_cloudwatch_log_group"].values()}
    responses = {g["response_type"]: {"parameters": g["response_parameters"], "templates": g["response_templates"]}
                 for g in r.get("aws_api_gateway_gateway_response", {}).values()}
    view["rest api"] = {a["name"]: {"tags": a["tags"], "gateway responses": responses} for a in r["aws_api_gateway_rest_api"].values()}
    paths = {}

    def path_of(name: str) -> str:
        res = resources["aws_api_gateway_resource"][name]
        parent = res["parent_id"]
        return (path_of(parent.split(".")[1]) if parent.startswith("${aws_api_gateway_resource.") else "") + "/" + hcl_text(res["path_part"])

    for name in resources["aws_api_gateway_resource"]:
        paths[f"${{aws_api_gateway_resource.{name}.id}}"] = path_of(name)
    view["resources"] = sorted(["/", *paths.values()])
    view["methods"], view["preflights"] = {}, {}
    for name, m in r["aws_api_gateway_method"].items():
        path, integration = paths[m["resource_id"]], r["aws_api_gateway_integration"][name]
        if m["http_method"] == "OPTIONS":
            response, answer = r["aws_api_gateway_method_response"][name], r["aws_api_gateway_integration_response"][name]
            view["preflights"][path] = preflight_shape({
                "authorizationType": m["authorization"],
                "methodIntegration": {"type": integration["type"], "requestTemplates": integration["request_templates"],
                                      "integrationResponses": {response["status_code"]: {"responseParameters": answer["response_parameters"],
                                                                                        "responseTemplates": answer["response_templates"]}}},
                "methodResponses": {response["status_code"]: {"responseParameters": response["response_parameters"]}}})
        else:
            view["methods"][f"{m['http_method']} {path}"] = {"authorization": m["authorization"], "type": integration["type"],
                                                          "http_method": integration["integration_http_method"], "uri": integration["uri"],
                                                          "api_key_required": m.get("api_key_required", False)}
    view["deployments"] = len(r["aws_api_gateway_deployment"])
    view["stage"] = {}
    for stage_name, s in r["aws_api_gateway_stage"].items():
        ref = f"${{aws_api_gateway_stage.{stage_name}.stage_name}}"
        [settings] = [x for x in r["aws_api_gateway_method_settings"].values() if x["stage_name"] == ref and x["method_path"] == "*/*"]
        plans = {}
        for plan_name, plan in r.get("aws_api_gateway_usage_plan", {}).items():
            if plan["api_stages"][0]["stage"] != ref:
                continue
            held = [r["aws_api_gateway_api_key"][k["key_id"].split(".")[1]] for k in r["aws_api_gateway_usage_plan_key"].values()
                    if k["usage_plan_id"] == f"${{aws_api_gateway_usage_plan.{plan_name}.id}}" and k["key_type"] == "API_KEY"]
            throttle, quota = plan["throttle_settings"][0], (plan.get("quota_settings") or [None])[0]
            plans[plan["name"]] = usage_plan_view({
                "description": plan["description"], "tags": plan["tags"],
                "throttle": {"rateLimit": throttle["rate_limit"], "burstLimit": throttle["burst_limit"]},
                "quota": quota and {"limit": quota["limit"], "period": quota["period"]}}, held)
        view["stage"][s["stage_name"]] = {"tags": s["tags"], "usage plans": plans, "throttle": {
            "rate": float(settings["settings"][0]["throttling_rate_limit"]), "burst": settings["settings"][0]["throttling_burst_limit"]}}
    view["topic"] = {t["name"]: {"tags": t["tags"]} for t in r["aws_sns_topic"].values()}
    view["subscriptions"] = sorted(f"{s['topic_arn'].rsplit(':', 1)[1]}/{s['protocol']}:{s['endpoint']}"
                                   for s in r.get("aws_sns_topic_subscription", {}).values())
    view["alarms"] = {}
    for a in r["aws_cloudwatch_metric_alarm"].values():
        spec = {"Namespace": a["namespace"], "MetricName": a["metric_name"], "Statistic": a.get("statistic"),
                "ExtendedStatistic": a.get("extended_statistic"), "Period": a["period"], "EvaluationPeriods": a["evaluation_periods"],
                "DatapointsToAlarm": a["datapoints_to_alarm"], "Threshold": a["threshold"], "ComparisonOperator": a["comparison_operator"],
                "TreatMissingData": a["treat_missing_data"], "AlarmActions": a["alarm_actions"], "OKActions": a["ok_actions"],
                "AlarmDescription": a["alarm_description"], "Dimensions": [{"Name": k, "Value": v} for k, v in a["dimensions"].items()]}
        view["alarms"][a["alarm_name"]] = alarm_view(spec, a["tags"])
    return view


def resolve_tf(value, refs: dict):
    if isinstance(value, str):
        whole = re.fullmatch(r"\$\{([\w.\[\]]+)\}", value)
        if whole and whole.group(1) in refs:
            return refs[whole.group(1)]
        return re.sub(r"\$\{([\w.]+)\}", lambda m: str(refs.get(m.group(1), m.group(0))), value)
    if isinstance(value, dict):
        return {k: resolve_tf(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_tf(v, refs) for v in value]
    return value


# -- tests ----------------------------------------------------------------------------------------


def test_the_exported_template_passes_cfn_lint_without_any_finding(config, tmp_path):
    from cfnlint.api import lint_file

    export(config, "sam", tmp_path / "sam")

    findings = lint_file(tmp_path / "sam" / "template.yaml")

    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in findings] == []


def test_the_template_deployed_in_moto_cloudformation_builds_what_provision_builds_field_by_field(
        export_settings, make_config, provision, tmp_path):
    cfg = make_config(export_settings)
    provisioned = provision_and_view(provision, cfg)
    export(cfg, "sam", tmp_path / "sam")
    template = yaml.safe_load((tmp_path / "sam" / "template.yaml").read_text())

    deploy_in_fresh_moto(template, tmp_path / "sam")
    deployed = account_view()

    for section, reason in MOTO_CFN_GAPS.items():
        # Each listed gap is real: were moto to make it, this says to drop the exception and compare moto's.
        assert deployed[section] != provisioned[section], f"moto now makes {section} ({reason}): remove it from MOTO_CFN_GAPS"
    deployed.update(template_view(template))
    assert differences(deployed, provisioned) == []
    # The parts this compares, named so an empty view cannot pass.
    assert len(deployed["functions"]) == 5 and len(deployed["alarms"]) == 17 and len(deployed["methods"]) == 5
    assert len(deployed["preflights"]) == len({f.path for f in cfg.lambda_.functions.values()})
    assert deployed["subscriptions"] == [f"{STACK}-ItemsApiAlerts/email:{EMAIL}"] and deployed["stage"]["prod"]["tags"]["crudstack-stack"] == STACK


def test_the_terraform_files_declare_what_provision_builds_field_by_field(export_settings, make_config, provision, tmp_path):
    cfg = make_config(export_settings)
    provisioned = provision_and_view(provision, cfg)
    export(cfg, "terraform", tmp_path / "tf")

    declared = terraform_view(tmp_path / "tf")

    assert differences(declared, provisioned) == []
    assert len(declared["functions"]) == 5 and len(declared["alarms"]) == 17
    assert len(declared["preflights"]) == len({f.path for f in cfg.lambda_.functions.values()})


def test_the_comparison_finds_an_export_made_from_another_config(settings, make_config, provision, tmp_path):
    provisioned = provision_and_view(provision, make_config(settings))
    export(make_config(changed(copy.deepcopy(settings))), "terraform", tmp_path / "tf")

    found = differences(terraform_view(tmp_path / "tf"), provisioned)

    assert "/functions/demo-GetItemsFunction/memory: 256 != 128" in found
    assert "/functions/demo-GetItemsFunction/reserved: 3 != null" in found
    assert "/alarms/demo-GetItemFunction-Errors/Threshold: 5.0 != 1.0" in found
    assert any(line.startswith("/methods/GET /things/{id}: missing") or "things" in line for line in found)


def test_changing_config_yaml_changes_both_exports_accordingly(settings, make_config, tmp_path):
    export(make_config(settings), "sam", tmp_path / "sam-before")
    export(make_config(settings), "terraform", tmp_path / "tf-before")
    edited = make_config(changed(settings))
    export(edited, "sam", tmp_path / "sam-after")
    export(edited, "terraform", tmp_path / "tf-after")

    before, after = (yaml.safe_load((tmp_path / f"sam-{w}" / "template.yaml").read_text())["Resources"] for w in ("before", "after"))
    assert before["GetItemsFunction"]["Properties"]["MemorySize"] == 128 and after["GetItemsFunction"]["Properties"]["MemorySize"] == 256
    assert "ReservedConcurrentExecutions" not in before["GetItemsFunction"]["Properties"]
    assert after["GetItemsFunction"]["Properties"]["ReservedConcurrentExecutions"] == 3
    assert after["GetItemFunction"]["Properties"]["MemorySize"] == 128
    assert before["CreateItemFunctionErrorsAlarm"]["Properties"]["Threshold"] == 1.0
    assert after["CreateItemFunctionErrorsAlarm"]["Properties"]["Threshold"] == 5.0
    assert "ThingsIdGetMethod" in after and "ThingsIdGetMethod" not in before and "ThingsIdOptionsMethod" in after
    assert after["ThingsIdResource"]["Properties"]["PathPart"] == "{id}"
    assert [k for k in after if k.startswith("Deployment")] != [k for k in before if k.startswith("Deployment")]  # a new snapshot
    tf_before, tf_after = terraform_view(tmp_path / "tf-before"), terraform_view(tmp_path / "tf-after")
    assert tf_before["functions"]["demo-GetItemsFunction"]["memory"] == 128 and tf_after["functions"]["demo-GetItemsFunction"]["memory"] == 256
    assert tf_before["functions"]["demo-GetItemsFunction"]["reserved"] is None
    assert tf_after["functions"]["demo-GetItemsFunction"]["reserved"] == 3
    assert tf_after["alarms"]["demo-GetItemFunction-Errors"]["Threshold"] == 5.0
    assert "GET /things/{id}" in tf_after["methods"] and "GET /items/{id}" not in tf_after["methods"]
    assert "/things" in tf_after["preflights"] or "/things/{id}" in tf_after["preflights"]


def test_the_stack_prefix_is_a_parameter_and_a_variable_defaulting_to_config_yamls_stack(config, tmp_path):
    export(config, "sam", tmp_path / "sam")
    export(config, "terraform", tmp_path / "tf")

    template = yaml.safe_load((tmp_path / "sam" / "template.yaml").read_text())
    assert template["Parameters"]["StackPrefix"]["Default"] == "demo"
    assert template["Resources"]["ItemsTable"]["Properties"]["TableName"] == {"Fn::Sub": "${StackPrefix}-ItemsTable"}
    assert "demo-" not in json.dumps(template["Resources"])  # every name follows the parameter
    variables = hcl2.load(open(tmp_path / "tf" / "variables.tf", encoding="utf-8"))
    assert hcl_text(variables["variable"][0])["stack_prefix"]["default"] == "demo"
    main = (tmp_path / "tf" / "main.tf").read_text()
    assert '"${var.stack_prefix}-ItemsTable"' in main and '"demo-' not in main
    assert "data.aws_caller_identity.current.account_id" in main and "data.aws_partition.current.partition" in main
    outputs = (tmp_path / "tf" / "outputs.tf").read_text()
    assert all(f"output \"{name}\"" in outputs for name in ("invoke_url", "table_name", "function_arns"))
    assert set(template["Outputs"]) == {"InvokeUrl", "TableName"} | {f"{b}Arn" for b in config.lambda_.functions}


def test_the_function_zips_are_the_bytes_provision_uploads(config, tmp_path):
    from crudstack.packaging import build_package

    written = export(config, "sam", tmp_path / "sam")

    for base, fn in config.lambda_.functions.items():
        zipped = tmp_path / "sam" / "build" / f"{base}.zip"
        assert zipped in written and zipped.read_bytes() == build_package(config.code_dir, fn.module).zip_bytes


# -- the command ------------------------------------------------------------------------------------


@pytest.fixture
def export_cli(settings, tmp_path, monkeypatch, capsys):
    """export_cli(*args) -> (exit code, stdout, stderr); any attempt to reach AWS fails the test."""
    import crudstack.cli

    def no_aws(*_, **__):
        raise AssertionError("--export must not connect to AWS")

    monkeypatch.setattr(crudstack.cli, "connect", no_aws)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")

    def run(*args):
        capsys.readouterr()
        code = provision_main(["--config", str(path), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_export_writes_the_files_and_says_how_to_deploy_them_without_deploying(export_cli, tmp_path):
    code, out, _ = export_cli("--export", "terraform", str(tmp_path / "tf"))

    assert code == 0
    assert sorted(p.name for p in (tmp_path / "tf").iterdir()) == ["build", "main.tf", "outputs.tf", "variables.tf"]
    assert len(list((tmp_path / "tf" / "build").glob("*.zip"))) == 5
    assert "nothing was deployed" in out and "terraform init && terraform validate && terraform apply" in out


def test_export_into_a_folder_that_is_not_empty_is_refused_and_nothing_is_overwritten(export_cli, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "template.yaml").write_text("my own template\n")

    code, _, err = export_cli("--export", "sam", str(folder))

    assert code == 2
    assert "the folder is not empty (it holds template.yaml); nothing was written" in err and "--force" in err
    assert (folder / "template.yaml").read_text() == "my own template\n"
    assert sorted(p.name for p in folder.iterdir()) == ["template.yaml"]


def test_export_with_force_overwrites_its_own_files_and_leaves_the_others(export_cli, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "template.yaml").write_text("old\n")
    (folder / "notes.txt").write_text("keep me\n")

    code, _, _ = export_cli("--export", "sam", str(folder), "--force")

    assert code == 0
    assert (folder / "template.yaml").read_text().startswith("# Generated by `python provision.py --export sam`")
    assert (folder / "notes.txt").read_text() == "keep me\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--export", "cdk", "out"], "--export: found 'cdk', expected sam or terraform"),
    (["--force"], "--force goes with --export"),
])
def test_bad_export_arguments_are_refused_naming_what_to_write(export_cli, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        export_cli(*args)

    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_export_onto_a_file_is_refused(export_cli, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("x")

    code, _, err = export_cli("--export", "terraform", str(target))

    assert code == 2 and "this is a file, not a folder" in err and target.read_text() == "x"


def _terraform_with_provider() -> tuple[str, str] | None:
    """terraform and a local mirror of the hashicorp/aws provider (the test never downloads one)."""
    binary = shutil.which("terraform")
    mirror = os.environ.get("CRUDSTACK_TF_PLUGIN_DIR", "/opt/tf-plugins")
    if binary and (Path(mirror) / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        return binary, mirror
    return None


@pytest.mark.skipif(_terraform_with_provider() is None, reason="terraform, or a local mirror of the hashicorp/aws provider, is not installed")
def test_terraform_validate_accepts_the_exported_files_and_fmt_leaves_them_as_they_are(config, tmp_path):
    binary, mirror = _terraform_with_provider()
    export(config, "terraform", tmp_path / "tf")
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": os.devnull}

    def run(*args):
        return subprocess.run([binary, *args], cwd=tmp_path / "tf", env=env, capture_output=True, text=True, timeout=240)

    init = run("init", "-backend=false", "-input=false", f"-plugin-dir={mirror}")
    assert init.returncode == 0, init.stderr
    validate = run("validate", "-no-color")
    assert validate.returncode == 0, validate.stderr + validate.stdout
    fmt = run("fmt", "-check", "-diff")
    assert fmt.returncode == 0, fmt.stdout


@pytest.mark.parametrize("auth", ["api_key", "iam"])
def test_each_auth_mode_exports_a_template_cfn_lint_accepts_with_its_methods_authorization(settings, make_config, tmp_path, auth):
    from cfnlint.api import lint_file

    settings["api"] = {**settings["api"], "auth": auth}
    cfg = make_config(settings)
    export(cfg, "sam", tmp_path / "sam")
    export(cfg, "terraform", tmp_path / "tf")

    assert [f"{m.rule.id} {m.message}" for m in lint_file(tmp_path / "sam" / "template.yaml")] == []
    resources = yaml.safe_load((tmp_path / "sam" / "template.yaml").read_text())["Resources"]
    methods = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::Method"]
    for method in methods:
        opened = method["HttpMethod"] == "OPTIONS"
        assert method["AuthorizationType"] == ("AWS_IAM" if auth == "iam" and not opened else "NONE")
        assert method.get("ApiKeyRequired", False) is (auth == "api_key" and not opened)
    kinds = {r["Type"] for r in resources.values()}
    assert {"AWS::ApiGateway::UsagePlan", "AWS::ApiGateway::ApiKey", "AWS::ApiGateway::UsagePlanKey"} <= kinds or auth == "iam"
    assert not {"AWS::ApiGateway::UsagePlan", "AWS::ApiGateway::ApiKey"} & kinds or auth == "api_key"
    declared = terraform_view(tmp_path / "tf")
    assert {m["authorization"] for m in declared["methods"].values()} == {"AWS_IAM" if auth == "iam" else "NONE"}
    assert bool(declared["stage"]["prod"]["usage plans"]) is (auth == "api_key")
    outputs = (tmp_path / "tf" / "outputs.tf").read_text()
    assert ('output "api_key_value"' in outputs) is (auth == "api_key")
