"""`--export sam`: the stack as one CloudFormation template, template.yaml, for `sam deploy` or `aws cloudformation deploy`.

Plain CloudFormation resources, no `Transform: AWS::Serverless-2016-10-31`: AWS::Serverless::Function and ::Api
would make their own role, permissions, deployment and stage, named and shaped their way, so the template
would no longer be what provision.py builds resource for resource. SAM CLI deploys plain templates too.

Function code: `Code: build/<Function>.zip`, a path relative to the template. `sam deploy` and
`aws cloudformation package` upload such local paths to S3 and write the bucket and key in its place
("The Code property for the AWS::Lambda::Function resource" is among the properties `aws cloudformation
package` uploads: AWS CLI Command Reference, cloudformation package). cfn-lint warns (W3002) that such a
template needs that packaging: the template says it expects it, in Metadata.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from crudstack.export.model import TOKEN, Function, Method, StackModel, logical_id, substitute

TEMPLATE_FILE = "template.yaml"
STACK_PARAMETER = "StackPrefix"


def _reference(model: StackModel, kind: str, name: str | None) -> str:
    """A token as the name Fn::Sub takes: a parameter, pseudo-parameter, Ref or Logical.Attribute."""
    if kind == "stack":
        return STACK_PARAMETER
    if kind in ("partition", "region"):
        return f"AWS::{kind.capitalize()}"
    if kind == "account":
        return "AWS::AccountId"
    if kind == "api_id":
        return model.api_logical                      # Ref of a RestApi: its id
    if kind == "topic_arn":
        return model.topic_logical                    # Ref of a Topic: its ARN
    if kind == "role_arn":
        return f"{model.role_logical}.Arn"
    if kind == "function_arn":
        return f"{model.function(name).logical}.Arn"
    raise ValueError(f"no CloudFormation reference for token {kind}")


def cfn_value(model: StackModel, text: str):
    """A string with tokens -> a plain string, a Ref / Fn::GetAtt (one token alone) or a Fn::Sub."""
    found = list(TOKEN.finditer(text))
    if not found:
        return text
    if len(found) == 1 and found[0].group(0) == text:
        ref = _reference(model, *found[0].groups())
        return {"Fn::GetAtt": ref.split(".", 1)} if "." in ref and not ref.startswith("AWS::") else {"Ref": ref}
    escaped = text.replace("${", "${!")  # a literal ${ in Fn::Sub is written ${!
    return {"Fn::Sub": TOKEN.sub(lambda m: "${" + _reference(model, *m.groups()) + "}", escaped)}


def _tags(model: StackModel) -> list[dict]:
    return [{"Key": k, "Value": cfn_value(model, v)} for k, v in sorted(model.tags.items())]


def _resolve(model: StackModel, value):
    return substitute(value, lambda text: cfn_value(model, text))


def template(model: StackModel) -> dict:
    cfg = model.config
    r = {}
    r[model.table_logical] = {
        "Type": "AWS::DynamoDB::Table",
        # teardown.py keeps a table that holds items; a stack deletion keeps the table always.
        "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
        "Properties": {
            "TableName": cfn_value(model, model.table_name),
            "AttributeDefinitions": [{"AttributeName": model.partition_key, "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": model.partition_key, "KeyType": "HASH"}],
            "BillingMode": model.billing_mode,
            "Tags": _tags(model),
        },
    }
    role = {
        "RoleName": cfn_value(model, model.role_name),
        "Description": cfn_value(model, model.role_description),
        "AssumeRolePolicyDocument": model.trust_policy,
        "Policies": [{"PolicyName": cfn_value(model, model.policy_name), "PolicyDocument": _resolve(model, model.policy)}],
        "Tags": _tags(model),
    }
    if model.managed_policy_arns:
        role["ManagedPolicyArns"] = [cfn_value(model, arn) for arn in model.managed_policy_arns]
    r[model.role_logical] = {"Type": "AWS::IAM::Role", "Properties": role}
    for fn in model.functions:
        r[fn.log_group_logical] = _log_group(model, fn)
        r[fn.logical] = _function(model, fn)
    r[model.api_logical] = {"Type": "AWS::ApiGateway::RestApi", "Properties": {
        "Name": cfn_value(model, model.api_name), "Description": cfn_value(model, model.api_description),
        "EndpointConfiguration": {"Types": ["REGIONAL"]}, "Tags": _tags(model)}}
    for res in model.resources:
        parent = ({"Fn::GetAtt": [model.api_logical, "RootResourceId"]} if res.parent == "/"
                  else {"Ref": model.resource(res.parent).logical})
        r[res.logical] = {"Type": "AWS::ApiGateway::Resource", "Properties": {
            "RestApiId": {"Ref": model.api_logical}, "ParentId": parent, "PathPart": res.part}}
    for method in model.methods:
        r[method.logical] = _method(model, method)
    access = model.access
    responses = []
    for kind, response in access.gateway_responses.items():
        logical = logical_id("GatewayResponse", kind)
        responses.append(logical)
        r[logical] = {"Type": "AWS::ApiGateway::GatewayResponse", "Properties": {
            "RestApiId": {"Ref": model.api_logical}, "ResponseType": kind,
            "ResponseParameters": dict(response["parameters"]), "ResponseTemplates": dict(response["templates"])}}
    for fn in model.functions:
        r[fn.permission_logical] = {"Type": "AWS::Lambda::Permission", "Properties": {
            "FunctionName": {"Ref": fn.logical}, "Action": "lambda:InvokeFunction",
            # apigateway.amazonaws.com in every partition (see TRUST_POLICY in crudstack/steps/role.py).
            "Principal": "apigateway.amazonaws.com", "SourceArn": cfn_value(model, fn.source_arn)}}
    # A Deployment is a snapshot made once: CloudFormation does not make a new one when a method changes.
    # Its logical id carries a hash of the routes, so a changed route replaces it and the stage moves on.
    deployment = f"Deployment{model.deployment_hash}"
    r[deployment] = {"Type": "AWS::ApiGateway::Deployment", "DependsOn": [m.logical for m in model.methods] + responses,
                     "Properties": {"RestApiId": {"Ref": model.api_logical},
                                    "Description": f"crudstack export, routes {model.deployment_hash}"}}
    stage_logical = "Stage" + re.sub(r"[^A-Za-z0-9]", "", model.stage.title())
    r[stage_logical] = {"Type": "AWS::ApiGateway::Stage", "Properties": {
        "RestApiId": {"Ref": model.api_logical}, "StageName": model.stage, "DeploymentId": {"Ref": deployment},
        # The stage's Default Method Throttling: every resource ("/*"), every method ("*").
        "MethodSettings": [{"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": access.throttle_rate,
                            "ThrottlingBurstLimit": access.throttle_burst}],
        "Tags": _tags(model)}}
    if access.usage_plan is not None:
        plan = access.usage_plan
        props = {"UsagePlanName": cfn_value(model, plan["name"]), "Description": cfn_value(model, plan["description"]),
                 "ApiStages": [{"ApiId": {"Ref": model.api_logical}, "Stage": {"Ref": stage_logical}}],
                 "Throttle": {"RateLimit": plan["throttle"]["rateLimit"], "BurstLimit": plan["throttle"]["burstLimit"]}}
        if "quota" in plan:
            props["Quota"] = {"Limit": plan["quota"]["limit"], "Period": plan["quota"]["period"]}
        r[access.usage_plan_logical] = {"Type": "AWS::ApiGateway::UsagePlan", "Properties": {**props, "Tags": _tags(model)}}
        r[access.api_key_logical] = {"Type": "AWS::ApiGateway::ApiKey", "Properties": {
            "Name": cfn_value(model, access.api_key["name"]), "Description": cfn_value(model, access.api_key["description"]),
            "Enabled": True, "Tags": _tags(model)}}
        r[access.usage_plan_logical + "Key"] = {"Type": "AWS::ApiGateway::UsagePlanKey", "Properties": {
            "KeyId": {"Ref": access.api_key_logical}, "KeyType": "API_KEY", "UsagePlanId": {"Ref": access.usage_plan_logical}}}
    r[model.topic_logical] = {"Type": "AWS::SNS::Topic", "Properties": {
        "TopicName": cfn_value(model, model.topic_name), "Tags": _tags(model)}}
    if model.alert_email:
        r[model.topic_logical + "EmailSubscription"] = {"Type": "AWS::SNS::Subscription", "Properties": {
            "TopicArn": {"Ref": model.topic_logical}, "Protocol": "email", "Endpoint": model.alert_email}}
    for alarm in model.alarms:
        props = {"AlarmName": cfn_value(model, alarm.name), **_resolve(model, alarm.spec), "Tags": _tags(model)}
        r[alarm.logical] = {"Type": "AWS::CloudWatch::Alarm", "Properties": props}
    outputs = {
        "InvokeUrl": {"Description": "The API's invoke URL (append /items)",
                      "Value": {"Fn::Sub": f"https://${{{model.api_logical}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/"
                                          f"{model.stage}"}},
        "TableName": {"Description": "The DynamoDB table", "Value": {"Ref": model.table_logical}},
    }
    if access.api_key is not None:
        # CloudFormation cannot give out a key's value: its id, and the command that shows it.
        outputs["ApiKeyId"] = {"Description": "The API key (its value: aws apigateway get-api-key --include-value --api-key <id>)",
                               "Value": {"Ref": access.api_key_logical}}
    for fn in model.functions:
        outputs[f"{fn.logical}Arn"] = {"Description": f"{fn.method} {fn.path}", "Value": {"Fn::GetAtt": [fn.logical, "Arn"]}}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"Serverless CRUD API (crudstack export of stack {cfg.stack}): DynamoDB table, IAM role, "
                       f"{len(model.functions)} Lambda functions, REST API with stage {model.stage}, log groups, alarms, SNS topic",
        "Metadata": {"cfn-lint": {"config": {"ignore_checks": ["W3002"]}},
                     "crudstack": {"code": "Code paths are local zips: deploy with sam deploy, or aws cloudformation package first"}},
        "Parameters": {STACK_PARAMETER: {
            "Type": "String", "Default": cfg.stack, "AllowedPattern": "^[a-z][a-z0-9-]{0,19}$",
            "Description": "Prefix of every name (config.yaml's stack): two stacks can share an account"}},
        "Resources": r,
        "Outputs": outputs,
    }


def _log_group(model: StackModel, fn: Function) -> dict:
    return {"Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete", "Properties": {
        "LogGroupName": cfn_value(model, fn.log_group), "RetentionInDays": model.retention_days, "Tags": _tags(model)}}


def _function(model: StackModel, fn: Function) -> dict:
    settings = _resolve(model, fn.settings)
    if fn.reserved_concurrency is not None:
        # AWS::Lambda::Function's ReservedConcurrentExecutions: what step 3's PutFunctionConcurrency sets
        # (CloudFormation User Guide, AWS::Lambda::Function; left out, the function is unreserved).
        settings["ReservedConcurrentExecutions"] = fn.reserved_concurrency
    return {
        "Type": "AWS::Lambda::Function",
        # Its log group first, with retention and tags, before any invocation makes one of its own.
        "DependsOn": [fn.log_group_logical],
        "Properties": {
            "FunctionName": cfn_value(model, fn.name),
            "Description": cfn_value(model, fn.description),
            "Code": fn.zip_path,
            **settings,
            "Tags": _tags(model),
        },
    }


def _method(model: StackModel, method: Method) -> dict:
    props = {"RestApiId": {"Ref": model.api_logical}, "ResourceId": {"Ref": model.resource(method.path).logical},
             "HttpMethod": method.method, "AuthorizationType": "NONE"}
    if method.function is not None:
        # api.auth: AWS_IAM, or an API key required; a preflight (OPTIONS) stays open.
        props["AuthorizationType"] = model.access.authorization["authorizationType"]
        if model.access.authorization["apiKeyRequired"]:
            props["ApiKeyRequired"] = True
        # Lambda proxy integrations are always called with POST, whatever the client's method.
        props["Integration"] = {"Type": "AWS_PROXY", "IntegrationHttpMethod": "POST",
                                "Uri": cfn_value(model, model.function(method.function).integration_uri)}
    else:
        headers = method.preflight_headers or {}
        props["Integration"] = {
            "Type": "MOCK", "RequestTemplates": model.mock_request_templates,
            "IntegrationResponses": [{"StatusCode": "200", "ResponseTemplates": {"application/json": ""},
                                      "ResponseParameters": {f"method.response.header.{k}": f"'{v}'" for k, v in headers.items()}}]}
        props["MethodResponses"] = [{"StatusCode": "200", "ResponseModels": {"application/json": "Empty"},
                                     "ResponseParameters": {f"method.response.header.{k}": False for k in headers}}]
    return {"Type": "AWS::ApiGateway::Method", "Properties": props}


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper, text: str):
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style='"' if "'" in text or "{" in text else None)


_Dumper.add_representer(str, _str)


def render(model: StackModel) -> str:
    header = (f"# Generated by `python provision.py --export sam` from config.yaml (stack {model.config.stack}).\n"
              f"# Deploy: sam deploy --guided   (or: aws cloudformation package ... && aws cloudformation deploy ...\n"
              f"#          --capabilities CAPABILITY_NAMED_IAM); see docs/export.md.\n")
    return header + yaml.dump(template(model), Dumper=_Dumper, sort_keys=False, width=140, allow_unicode=True)


def write(model: StackModel, folder: Path) -> list[Path]:
    path = folder / TEMPLATE_FILE
    path.write_text(render(model), encoding="utf-8")
    return [path]
