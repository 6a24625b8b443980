"""`--export terraform`: the stack as Terraform (hashicorp/aws provider 5.x): main.tf, variables.tf, outputs.tf.

Account id, partition and region come from data sources (aws_caller_identity, aws_partition, aws_region), the
stack prefix from var.stack_prefix. Policies are aws_iam_policy_document data sources, one statement block per
statement of the steps' own documents. Function code: build/<Function>.zip next to main.tf, with
source_code_hash = filebase64sha256(...) so a code change, and only that, updates the function.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crudstack.export.model import TOKEN, Function, Method, StackModel, snake

MAIN_FILE, VARIABLES_FILE, OUTPUTS_FILE = "main.tf", "variables.tf", "outputs.tf"
PROVIDER_VERSION = "~> 5.0"
# put_metric_alarm's arguments -> aws_cloudwatch_metric_alarm's (terraform-provider-aws,
# website/docs/r/cloudwatch_metric_alarm.html.markdown). An argument the steps add later and that is
# not listed here stops the export rather than go missing from it.
ALARM_ARGUMENTS = {
    "Namespace": "namespace", "MetricName": "metric_name", "Statistic": "statistic", "ExtendedStatistic": "extended_statistic",
    "Period": "period", "EvaluationPeriods": "evaluation_periods", "DatapointsToAlarm": "datapoints_to_alarm",
    "Threshold": "threshold", "ComparisonOperator": "comparison_operator", "TreatMissingData": "treat_missing_data",
    "AlarmActions": "alarm_actions", "OKActions": "ok_actions", "AlarmDescription": "alarm_description",
}
FUNCTION_ARGUMENTS = {"Runtime": "runtime", "Handler": "handler", "MemorySize": "memory_size", "Timeout": "timeout", "Role": "role"}


class Expr(str):
    """An HCL expression written as it is (a reference, a function call), not as a quoted string."""


@dataclass
class Block:
    type: str
    labels: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    blocks: list["Block"] = field(default_factory=list)

    def render(self, indent: int = 0) -> str:
        pad = "  " * indent
        head = " ".join([self.type, *(f'"{label}"' for label in self.labels)])
        lines = [f"{pad}{head} {{"]
        lines += _aligned([(key, _value(value, indent + 1)) for key, value in self.attrs.items()], pad + "  ")
        for block in self.blocks:
            if self.attrs or block is not self.blocks[0]:
                lines.append("")
            lines.append(block.render(indent + 1))
        lines.append(f"{pad}}}")
        return "\n".join(lines)


def _aligned(pairs: list[tuple[str, str]], pad: str) -> list[str]:
    """`key = value` lines as `terraform fmt` writes them: the = of consecutive one-line values aligned,
    a value spanning lines neither padded nor part of a run."""
    lines, run = [], []

    def flush():
        width = max((len(k) for k, _ in run), default=0)
        lines.extend(f"{pad}{k.ljust(width)} = {v}" for k, v in run)
        run.clear()

    for key, text in pairs:
        if "\n" in text:
            flush()
            lines.append(f"{pad}{key} = {text}")
        else:
            run.append((key, text))
    flush()
    return lines


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("${", "$${").replace("%{", "%%{") + '"'


def _value(value: Any, indent: int) -> str:
    pad = "  " * indent
    if isinstance(value, Expr):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, (list, tuple)):
        items = [_value(v, indent + 1) for v in value]
        if sum(len(i) for i in items) < 80 and all("\n" not in i for i in items):
            return "[" + ", ".join(items) + "]"
        return "[\n" + "".join(f"{pad}  {i},\n" for i in items) + f"{pad}]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        pairs = [(_quote(k), _value(v, indent + 1)) for k, v in value.items()]
        return "{\n" + "".join(line + "\n" for line in _aligned(pairs, pad + "  ")) + f"{pad}}}"
    raise TypeError(f"no HCL form for {value!r}")


class Writer:
    """Turns the model's tokens into Terraform references and builds the blocks."""

    def __init__(self, model: StackModel):
        self.model = model

    def ref(self, kind: str, name: str | None) -> str:
        m = self.model
        if kind == "stack":
            return "var.stack_prefix"
        if kind == "partition":
            return "data.aws_partition.current.partition"
        if kind == "region":
            return "data.aws_region.current.name"
        if kind == "account":
            return "data.aws_caller_identity.current.account_id"
        if kind == "api_id":
            return f"aws_api_gateway_rest_api.{snake(m.api_logical)}.id"
        if kind == "topic_arn":
            return f"aws_sns_topic.{snake(m.topic_logical)}.arn"
        if kind == "role_arn":
            return f"aws_iam_role.{snake(m.role_logical)}.arn"
        if kind == "function_arn":
            return f"aws_lambda_function.{snake(m.function(name).logical)}.arn"
        raise ValueError(f"no Terraform reference for token {kind}")

    def text(self, value: str):
        """A string with tokens: a bare reference when it is one token alone, else an interpolated string."""
        found = list(TOKEN.finditer(value))
        if len(found) == 1 and found[0].group(0) == value:
            return Expr(self.ref(*found[0].groups()))
        if not found:
            return value
        quoted = _quote(value)
        return Expr(TOKEN.sub(lambda match: "${" + self.ref(*match.groups()) + "}", quoted))

    def deep(self, value):
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.deep(v) for v in value]
        return value

    def tags(self) -> dict:
        return {k: self.text(v) for k, v in sorted(self.model.tags.items())}

    # -- blocks ----------------------------------------------------------------------------------------
    def policy_document(self, name: str, document: dict) -> Block:
        statements = []
        for statement in document["Statement"]:
            unknown = set(statement) - {"Sid", "Effect", "Action", "Resource", "Principal"}
            if unknown:
                raise ValueError(f"policy statement keys {sorted(unknown)} have no Terraform form here yet")
            block = Block("statement")
            if "Sid" in statement:
                block.attrs["sid"] = statement["Sid"]
            block.attrs["effect"] = statement["Effect"]
            block.attrs["actions"] = _listed(statement["Action"])
            if "Resource" in statement:
                block.attrs["resources"] = self.deep(_listed(statement["Resource"]))
            for kind, identifiers in (statement.get("Principal") or {}).items():
                block.blocks.append(Block("principals", attrs={"type": kind, "identifiers": _listed(identifiers)}))
            statements.append(block)
        return Block("data", ("aws_iam_policy_document", name), blocks=statements)

    def main(self) -> str:
        m = self.model
        api = f"aws_api_gateway_rest_api.{snake(m.api_logical)}"
        role = snake(m.role_logical)
        blocks = [
            Block("terraform", attrs={"required_version": ">= 1.5"}, blocks=[
                Block("required_providers", attrs={"aws": {"source": "hashicorp/aws", "version": PROVIDER_VERSION}})]),
            Block("provider", ("aws",), attrs={"region": Expr("var.region")}),
            Block("data", ("aws_caller_identity", "current")),
            Block("data", ("aws_partition", "current")),
            Block("data", ("aws_region", "current")),
            # Step 1
            Block("resource", ("aws_dynamodb_table", snake(m.table_logical)), attrs={
                "name": self.text(m.table_name), "billing_mode": m.billing_mode, "hash_key": m.partition_key, "tags": self.tags()},
                blocks=[Block("attribute", attrs={"name": m.partition_key, "type": "S"})]),
            # Step 2
            self.policy_document("lambda_trust", m.trust_policy),
            Block("resource", ("aws_iam_role", role), attrs={
                "name": self.text(m.role_name), "description": self.text(m.role_description),
                "assume_role_policy": Expr("data.aws_iam_policy_document.lambda_trust.json"), "tags": self.tags()}),
            self.policy_document("items_access", m.policy),
            Block("resource", ("aws_iam_role_policy", "items_access"), attrs={
                "name": self.text(m.policy_name), "role": Expr(f"aws_iam_role.{role}.id"),
                "policy": Expr("data.aws_iam_policy_document.items_access.json")}),
        ]
        for arn in m.managed_policy_arns:
            blocks.append(Block("resource", ("aws_iam_role_policy_attachment", snake(arn.rsplit("/", 1)[1])), attrs={
                "role": Expr(f"aws_iam_role.{role}.name"), "policy_arn": self.text(arn)}))
        # Step 3, and step 7's log groups (made before the functions, so no invocation makes its own)
        for fn in m.functions:
            blocks.append(Block("resource", ("aws_cloudwatch_log_group", snake(fn.log_group_logical)), attrs={
                "name": self.text(fn.log_group), "retention_in_days": m.retention_days, "tags": self.tags()}))
            blocks.append(self.function(fn))
        # Step 4
        blocks.append(Block("resource", ("aws_api_gateway_rest_api", snake(m.api_logical)), attrs={
            "name": self.text(m.api_name), "description": self.text(m.api_description), "tags": self.tags()},
            blocks=[Block("endpoint_configuration", attrs={"types": ["REGIONAL"]})]))
        for res in m.resources:
            parent = (Expr(f"{api}.root_resource_id") if res.parent == "/"
                      else Expr(f"aws_api_gateway_resource.{snake(m.resource(res.parent).logical)}.id"))
            blocks.append(Block("resource", ("aws_api_gateway_resource", snake(res.logical)), attrs={
                "rest_api_id": Expr(f"{api}.id"), "parent_id": parent, "path_part": res.part}))
        integrations = []
        for method in m.methods:
            made = self.method(method)
            blocks += made
            integrations += [f"{b.labels[0]}.{b.labels[1]}" for b in made if b.labels[0] != "aws_api_gateway_method"]
        for kind, response in m.access.gateway_responses.items():
            name = f"gateway_response_{kind.lower()}"
            blocks.append(Block("resource", ("aws_api_gateway_gateway_response", name), attrs={
                "rest_api_id": Expr(f"{api}.id"), "response_type": kind,
                "response_parameters": dict(response["parameters"]), "response_templates": dict(response["templates"])}))
            integrations.append(f"aws_api_gateway_gateway_response.{name}")
        for fn in m.functions:
            blocks.append(Block("resource", ("aws_lambda_permission", snake(fn.permission_logical)), attrs={
                "statement_id": self.text(m.permission_statement_id), "action": "lambda:InvokeFunction",
                "function_name": Expr(f"aws_lambda_function.{snake(fn.logical)}.function_name"),
                # apigateway.amazonaws.com in every partition (see TRUST_POLICY in crudstack/steps/role.py).
                "principal": "apigateway.amazonaws.com", "source_arn": self.text(fn.source_arn)}))
        # Step 5. A deployment is a snapshot: `triggers` replaces it when the routes change, and create_before_destroy
        # moves the stage to the new one before the old goes (terraform-provider-aws, docs of aws_api_gateway_deployment).
        blocks.append(Block("resource", ("aws_api_gateway_deployment", snake(m.api_logical)), attrs={
            "rest_api_id": Expr(f"{api}.id"), "description": f"crudstack export, routes {m.deployment_hash}",
            "triggers": {"routes": m.deployment_hash}, "depends_on": Expr("[\n" + "".join(f"    {i},\n" for i in integrations) + "  ]")},
            blocks=[Block("lifecycle", attrs={"create_before_destroy": True})]))
        blocks.append(Block("resource", ("aws_api_gateway_stage", snake(m.stage)), attrs={
            "rest_api_id": Expr(f"{api}.id"), "stage_name": m.stage,
            "deployment_id": Expr(f"aws_api_gateway_deployment.{snake(m.api_logical)}.id"), "tags": self.tags()}))
        blocks += self.access(api)
        # Step 7
        topic = snake(m.topic_logical)
        blocks.append(Block("resource", ("aws_sns_topic", topic), attrs={"name": self.text(m.topic_name), "tags": self.tags()}))
        if m.alert_email:
            blocks.append(Block("resource", ("aws_sns_topic_subscription", f"{topic}_email"), attrs={
                "topic_arn": Expr(f"aws_sns_topic.{topic}.arn"), "protocol": "email", "endpoint": m.alert_email}))
        for alarm in m.alarms:
            blocks.append(self.alarm(alarm.name, alarm.logical, alarm.spec))
        header = (f"# Generated by `python provision.py --export terraform` from config.yaml (stack {m.config.stack}).\n"
                  "# terraform init && terraform validate && terraform apply; see docs/export.md.\n\n")
        return header + "\n\n".join(b.render() for b in blocks) + "\n"

    def access(self, api: str) -> list[Block]:
        """The stage's Default Method Throttling (method_path "*/*"), and api.auth api_key's usage plan and key."""
        m, access = self.model, self.model.access
        stage = f"aws_api_gateway_stage.{snake(m.stage)}"
        blocks = [Block("resource", ("aws_api_gateway_method_settings", "default_throttling"), attrs={
            "rest_api_id": Expr(f"{api}.id"), "stage_name": Expr(f"{stage}.stage_name"), "method_path": "*/*"},
            blocks=[Block("settings", attrs={"throttling_rate_limit": access.throttle_rate,
                                             "throttling_burst_limit": access.throttle_burst})])]
        if access.usage_plan is None:
            return blocks
        plan, key = access.usage_plan, access.api_key
        plan_name, key_name = snake(access.usage_plan_logical), snake(access.api_key_logical)
        settings = [Block("api_stages", attrs={"api_id": Expr(f"{api}.id"), "stage": Expr(f"{stage}.stage_name")}),
                    Block("throttle_settings", attrs={"rate_limit": plan["throttle"]["rateLimit"],
                                                      "burst_limit": plan["throttle"]["burstLimit"]})]
        if "quota" in plan:
            settings.append(Block("quota_settings", attrs={"limit": plan["quota"]["limit"], "period": plan["quota"]["period"]}))
        blocks.append(Block("resource", ("aws_api_gateway_usage_plan", plan_name), attrs={
            "name": self.text(plan["name"]), "description": self.text(plan["description"]), "tags": self.tags()}, blocks=settings))
        blocks.append(Block("resource", ("aws_api_gateway_api_key", key_name), attrs={
            "name": self.text(key["name"]), "description": self.text(key["description"]), "enabled": True, "tags": self.tags()}))
        blocks.append(Block("resource", ("aws_api_gateway_usage_plan_key", plan_name), attrs={
            "key_id": Expr(f"aws_api_gateway_api_key.{key_name}.id"), "key_type": "API_KEY",
            "usage_plan_id": Expr(f"aws_api_gateway_usage_plan.{plan_name}.id")}))
        return blocks

    def function(self, fn: Function) -> Block:
        settings = dict(fn.settings)
        environment = settings.pop("Environment", None)
        unknown = set(settings) - set(FUNCTION_ARGUMENTS)
        if unknown:
            raise ValueError(f"function settings {sorted(unknown)} have no Terraform form here yet")
        path = Expr(f'"${{path.module}}/{fn.zip_path}"')
        attrs = {"function_name": self.text(fn.name), "description": self.text(fn.description),
                 **{FUNCTION_ARGUMENTS[k]: self.deep(v) for k, v in settings.items()},
                 # terraform-provider-aws: "0 disables lambda from being triggered and -1 removes any concurrency
                 # limitations. Defaults to Unreserved Concurrency Limits -1" (aws_lambda_function): left out when unreserved.
                 **({"reserved_concurrent_executions": fn.reserved_concurrency} if fn.reserved_concurrency is not None else {}),
                 "filename": path, "source_code_hash": Expr(f"filebase64sha256({path})"), "tags": self.tags(),
                 "depends_on": Expr(f"[aws_cloudwatch_log_group.{snake(fn.log_group_logical)}, aws_iam_role_policy.items_access]")}
        blocks = [Block("environment", attrs={"variables": self.deep(environment["Variables"])})] if environment else []
        return Block("resource", ("aws_lambda_function", snake(fn.logical)), attrs=attrs, blocks=blocks)

    def method(self, method: Method) -> list[Block]:
        m = self.model
        name = snake(method.logical)
        where = {"rest_api_id": Expr(f"aws_api_gateway_rest_api.{snake(m.api_logical)}.id"),
                 "resource_id": Expr(f"aws_api_gateway_resource.{snake(m.resource(method.path).logical)}.id")}
        made = [Block("resource", ("aws_api_gateway_method", name), attrs={**where, "http_method": method.method, "authorization": "NONE"})]
        if method.function is not None:   # api.auth: AWS_IAM or an API key; a preflight (OPTIONS) stays open
            made[0].attrs["authorization"] = m.access.authorization["authorizationType"]
            if m.access.authorization["apiKeyRequired"]:
                made[0].attrs["api_key_required"] = True
        http_method = Expr(f"aws_api_gateway_method.{name}.http_method")
        if method.function is not None:
            # Lambda proxy integrations are always called with POST, whatever the client's method.
            made.append(Block("resource", ("aws_api_gateway_integration", name), attrs={
                **where, "http_method": http_method, "type": "AWS_PROXY", "integration_http_method": "POST",
                "uri": self.text(m.function(method.function).integration_uri)}))
            return made
        headers = method.preflight_headers or {}
        made.append(Block("resource", ("aws_api_gateway_integration", name), attrs={
            **where, "http_method": http_method, "type": "MOCK", "request_templates": m.mock_request_templates}))
        made.append(Block("resource", ("aws_api_gateway_method_response", name), attrs={
            **where, "http_method": http_method, "status_code": "200", "response_models": {"application/json": "Empty"},
            "response_parameters": {f"method.response.header.{k}": False for k in headers}}))
        made.append(Block("resource", ("aws_api_gateway_integration_response", name), attrs={
            **where, "http_method": http_method, "status_code": Expr(f"aws_api_gateway_method_response.{name}.status_code"),
            "response_templates": {"application/json": ""},
            "response_parameters": {f"method.response.header.{k}": f"'{v}'" for k, v in headers.items()},
            "depends_on": Expr(f"[aws_api_gateway_integration.{name}]")}))
        return made

    def alarm(self, name: str, logical: str, spec: dict) -> Block:
        spec = dict(spec)
        dimensions = spec.pop("Dimensions", [])
        unknown = set(spec) - set(ALARM_ARGUMENTS)
        if unknown:
            raise ValueError(f"alarm settings {sorted(unknown)} have no Terraform form here yet")
        attrs = {"alarm_name": self.text(name), **{ALARM_ARGUMENTS[k]: self.deep(v) for k, v in spec.items()},
                 "dimensions": {d["Name"]: self.text(d["Value"]) for d in dimensions}, "tags": self.tags()}
        return Block("resource", ("aws_cloudwatch_metric_alarm", snake(logical)), attrs=attrs)

    def variables(self) -> str:
        cfg = self.model.config
        blocks = [
            Block("variable", ("stack_prefix",), attrs={
                "description": "Prefix of every name (config.yaml's stack): two stacks can share an account",
                "type": Expr("string"), "default": cfg.stack},
                blocks=[Block("validation", attrs={
                    "condition": Expr('can(regex("^[a-z][a-z0-9-]{0,19}$", var.stack_prefix))'),
                    "error_message": "stack_prefix: lower-case letters, digits and '-', starting with a letter, at most 20 characters."})]),
            Block("variable", ("region",), attrs={"description": "The region to deploy to (config.yaml's region)",
                                                  "type": Expr("string"), "default": cfg.region}),
        ]
        return "\n\n".join(b.render() for b in blocks) + "\n"

    def outputs(self) -> str:
        m = self.model
        blocks = [
            Block("output", ("invoke_url",), attrs={"description": "The API's invoke URL (append /items)",
                                                   "value": Expr(f"aws_api_gateway_stage.{snake(m.stage)}.invoke_url")}),
            Block("output", ("table_name",), attrs={"description": "The DynamoDB table",
                                                   "value": Expr(f"aws_dynamodb_table.{snake(m.table_logical)}.name")}),
            Block("output", ("function_arns",), attrs={"description": "Each function's ARN, by its name in config.yaml",
                                                      "value": {fn.base: Expr(f"aws_lambda_function.{snake(fn.logical)}.arn")
                                                                for fn in m.functions}}),
        ]
        if m.access.api_key is not None:
            blocks.append(Block("output", ("api_key_value",), attrs={
                "description": "The API key to send as x-api-key (terraform output -raw api_key_value)",
                "value": Expr(f"aws_api_gateway_api_key.{snake(m.access.api_key_logical)}.value"), "sensitive": True}))
        return "\n\n".join(b.render() for b in blocks) + "\n"


def _listed(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def write(model: StackModel, folder: Path) -> list[Path]:
    writer = Writer(model)
    written = []
    for name, text in ((MAIN_FILE, writer.main()), (VARIABLES_FILE, writer.variables()), (OUTPUTS_FILE, writer.outputs())):
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
